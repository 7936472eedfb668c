// Command prefetch-sweep measures decode speed of a .upg model for a grid of
// the CPU decode kernel's software prefetch distances, to tune them for a
// machine (the best pair is then given to upg through UPG_PREFETCH=near,far).
//
//	go run ./tools/prefetch-sweep -model /tmp/phi4.upg -tokens 16
//
// It loads the model once, decodes a few warm-up tokens, then for each pair
// decodes -tokens tokens and prints tok/s; the grid is walked twice (the
// second pass in reverse) so drift over time shows.
package main

import (
	"flag"
	"fmt"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/engine"
)

func ints(s string) []int {
	var v []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("bad list %q: %v", s, err)
		}
		v = append(v, n)
	}
	return v
}

func main() {
	path := flag.String("model", "", ".upg model file")
	tokens := flag.Int("tokens", 16, "decoded tokens per setting")
	nears := flag.String("near", "1024,1536,2048,2560,3072,4096", "near (L1) distances in bytes")
	fars := flag.String("far", "0,8192,12288,16384,24576", "far (L2) distances in bytes")
	flag.Parse()
	if *path == "" {
		log.Fatal("-model is required")
	}
	l, err := engine.Load(*path, engine.Options{Ctx: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	m := l.Model
	pool, ctx := l.Pool, l.Context()
	pos := 0
	step := func() {
		st, err := pool.StepFor(0, []int{pos % m.Config.Vocab}, false)
		if err != nil {
			log.Fatal(err)
		}
		if err := ctx.Forward(st, pool.KV()); err != nil {
			log.Fatal(err)
		}
		pool.Commit(0, 1)
		pos++
		if pos >= l.Capacity()-1 {
			pool.Truncate(0, 0)
			pos = 0
		}
	}
	for range 4 {
		step()
	}
	type pair struct{ near, far int }
	var grid []pair
	for _, n := range ints(*nears) {
		for _, f := range ints(*fars) {
			grid = append(grid, pair{n, f})
		}
	}
	res := map[pair][]float64{}
	for pass := 0; pass < 2; pass++ {
		for i := range grid {
			p := grid[i]
			if pass == 1 {
				p = grid[len(grid)-1-i]
			}
			if err := cpu.SetPrefetch(p.near, p.far); err != nil {
				log.Fatal(err)
			}
			step()
			start := time.Now()
			for range *tokens {
				step()
			}
			res[p] = append(res[p], float64(*tokens)/time.Since(start).Seconds())
		}
	}
	fmt.Printf("%8s %8s %10s %10s\n", "near", "far", "tok/s #1", "tok/s #2")
	for _, p := range grid {
		fmt.Printf("%8d %8d %10.3f %10.3f\n", p.near, p.far, res[p][0], res[p][1])
	}
}
