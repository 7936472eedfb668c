package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/synth"
)

func TestMemAvailable(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if MemAvailable() <= 0 {
		t.Fatal("MemAvailable found no MemAvailable line")
	}
}

func TestRunSmallModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	opts := synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 1}
	if err := synth.Write(path, opts); err != nil {
		t.Fatal(err)
	}
	r, err := Run(path, Options{Threads: 2, PromptTokens: 40, GenTokens: 8, Bandwidth: 10})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if r.ModelBytes <= 0 || r.ModelBytes >= st.Size() {
		t.Errorf("model bytes %d for a %d-byte file", r.ModelBytes, st.Size())
	}
	// Per token: everything but the embedding table (untied head).
	if r.BytesPerToken >= r.ModelBytes || r.Layers != 2 || r.PrefillTokS <= 0 || r.DecodeTokS <= 0 {
		t.Errorf("implausible result %+v", r)
	}
	if want := r.DecodeTokS * float64(r.BytesPerToken) / 1e9; r.EffectiveGBs != want || r.RooflinePct != 100*want/10 {
		t.Errorf("effective %v GB/s (%v%%), want %v", r.EffectiveGBs, r.RooflinePct, want)
	}
}

// TestRunBatchPrompts: a batch forked from one prompt and a batch of
// distinct prompts both decode every sequence, and the result says which;
// the distinct prompts hold more of the KV pool (no shared blocks).
func TestRunBatchPrompts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	if err := synth.Write(path, synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	blocks := map[bool]int{}
	for _, distinct := range []bool{false, true} {
		r, err := Run(path, Options{Threads: 2, PromptTokens: 70, GenTokens: 4, Bandwidth: 10, Batch: 3, DistinctPrompts: distinct})
		if err != nil {
			t.Fatalf("distinct prompts %v: %v", distinct, err)
		}
		if r.Batch != 3 || r.SharedPrompt == distinct || r.AggregateTokS <= 0 || r.AggregateTokS != 3*r.DecodeTokS {
			t.Errorf("distinct prompts %v: batch %d, shared prompt %v, aggregate %v tok/s, each %v", distinct, r.Batch, r.SharedPrompt, r.AggregateTokS, r.DecodeTokS)
		}
		if r.KVBlocksUsed <= 0 {
			t.Errorf("distinct prompts %v: %d KV blocks in use", distinct, r.KVBlocksUsed)
		}
		blocks[distinct] = r.KVBlocksUsed
	}
	// forked, the prompt's full blocks are held once for the three
	if blocks[true] <= blocks[false] {
		t.Errorf("KV blocks in use: %d with distinct prompts, %d forked; want more", blocks[true], blocks[false])
	}
}

func TestCheckMemory(t *testing.T) {
	if err := CheckMemory("/nonexistent/x.upg"); err == nil {
		t.Error("no error for a missing file")
	}
}

// TestLayerBytes checks the per-layer byte count a split's roofline uses:
// nothing for no layers, two equal layers twice one, all layers less than
// a token's bytes (the head is not a layer).
func TestLayerBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	if err := synth.Write(path, synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	l, err := engine.Load(path, engine.Options{Threads: 1, Device: "cpu", Ctx: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, perToken := modelBytes(l, path)
	one, two := layerBytes(l, 1), layerBytes(l, 2)
	if layerBytes(l, 0) != 0 || one <= 0 || two != 2*one || two >= perToken {
		t.Errorf("layer bytes: 0 → %d, 1 → %d, 2 → %d; %d per token", layerBytes(l, 0), one, two, perToken)
	}
}

// TestDecodeOverlappedEqualsPlain: decoding steps queued on the device's
// tokens (a CPU context made a Pipeliner, engine.CPUOverlapEnv) feed each
// sequence the tokens one step at a time feeds it, greedy and sampled; and
// Run says when it overlapped.
func TestDecodeOverlappedEqualsPlain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	if err := synth.Write(path, synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(engine.CPUOverlapEnv, "1")
	l, err := engine.Load(path, engine.Options{Threads: 2, Ctx: 256, MaxSeqs: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Context().Pipelines() {
		t.Fatal("the CPU context under " + engine.CPUOverlapEnv + " does not pipeline")
	}
	const steps = 20
	decode := func(o sample.Options, overlap bool) [][]int {
		r := &runner{pool: l.Pool, ctx: l.Context(), hist: make([][]int, 3), tok: make([]int, 3)}
		seqs, next := []int{0, 1, 2}, make([][]int, 3)
		for k := range seqs {
			o := o
			o.Seed += uint64(k)
			s, err := sample.New(o)
			if err != nil {
				t.Fatal(err)
			}
			r.samplers = append(r.samplers, s)
			if err := r.prefill(k, []int{1 + k, 20 + k, 30, 40 + 3*k, 50}); err != nil {
				t.Fatal(err)
			}
			next[k] = []int{r.tok[0]}
		}
		if overlap {
			if err := r.decodeOverlapped(seqs, next, steps); err != nil {
				t.Fatal(err)
			}
		} else {
			for range steps {
				if err := r.feed(seqs, next); err != nil {
					t.Fatal(err)
				}
				for k := range seqs {
					next[k][0] = r.tok[k]
				}
			}
		}
		for k := range seqs {
			r.hist[k] = append(r.hist[k], r.tok[k])
			l.Pool.Truncate(k, 0)
		}
		return r.hist
	}
	for _, o := range []sample.Options{{}, {Temperature: 0.9, TopP: 0.9, Seed: 5}} {
		want, got := decode(o, false), decode(o, true)
		for k := range want {
			if !slices.Equal(got[k], want[k]) {
				t.Errorf("%v sequence %d: overlapped %v\nplain %v", o, k, got[k], want[k])
			}
		}
	}
	for _, no := range []bool{false, true} {
		r, err := Run(path, Options{Threads: 2, PromptTokens: 20, GenTokens: 4, Bandwidth: 10, Batch: 2, NoOverlap: no})
		if err != nil {
			t.Fatal(err)
		}
		if r.Overlapped == no {
			t.Errorf("NoOverlap %v: overlapped %v", no, r.Overlapped)
		}
	}
}
