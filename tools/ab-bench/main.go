// Command ab-bench alternates two upg binaries' `bench --json` runs in one
// sitting (old, new, old, new, ...) and prints every run and the medians,
// so that a change's speed is compared under the same machine drift.
//
//	go run ./tools/ab-bench -old /tmp/upg_old -new /tmp/upg_new -pairs 5 -- --model /tmp/phi4.upg
//
// Arguments after -- go to both binaries' `bench --json`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"sort"
)

type result struct {
	Prefill   float64 `json:"prefill_tok_s"`
	Decode    float64 `json:"decode_tok_s"`
	Aggregate float64 `json:"aggregate_decode_tok_s"`
	Roofline  float64 `json:"roofline_pct"`
	Bandwidth float64 `json:"read_bandwidth_gbs"`
}

func main() {
	oldBin := flag.String("old", "", "the baseline upg binary")
	newBin := flag.String("new", "", "the changed upg binary")
	pairs := flag.Int("pairs", 5, "alternated pairs of runs")
	oldArgs := flag.String("old-args", "", "extra arguments for the old binary only (space-separated)")
	flag.Parse()
	if *oldBin == "" || *newBin == "" {
		log.Fatal("-old and -new are required")
	}
	args := append([]string{"bench", "--json"}, flag.Args()...)
	runs := map[string][]result{}
	for i := 0; i < *pairs; i++ {
		for _, b := range []struct{ name, bin string }{{"old", *oldBin}, {"new", *newBin}} {
			a := args
			if b.name == "old" && *oldArgs != "" {
				a = append(append([]string(nil), args...), splitFields(*oldArgs)...)
			}
			var out bytes.Buffer
			cmd := exec.Command(b.bin, a...)
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			if err := cmd.Run(); err != nil {
				log.Fatalf("%s %v: %v", b.bin, a, err)
			}
			var r result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				log.Fatalf("%s: %v in %q", b.bin, err, out.String())
			}
			if r.Aggregate == 0 {
				r.Aggregate = r.Decode
			}
			runs[b.name] = append(runs[b.name], r)
			fmt.Printf("pair %d %s: prefill %.2f tok/s, decode %.2f tok/s (aggregate %.2f), %.1f%% of %.1f GB/s\n",
				i+1, b.name, r.Prefill, r.Decode, r.Aggregate, r.Roofline, r.Bandwidth)
		}
	}
	for _, name := range []string{"old", "new"} {
		rs := runs[name]
		med := func(f func(result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			sort.Float64s(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		fmt.Printf("median %s: prefill %.2f tok/s, decode %.2f tok/s, aggregate %.2f tok/s, %.1f%% of read bandwidth\n", name,
			med(func(r result) float64 { return r.Prefill }), med(func(r result) float64 { return r.Decode }),
			med(func(r result) float64 { return r.Aggregate }), med(func(r result) float64 { return r.Roofline }))
	}
}

func splitFields(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}
