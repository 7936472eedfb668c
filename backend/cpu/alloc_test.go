package cpu_test

import (
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/synth"
)

// TestDecodeStepAllocs proves a full decode step (a context's Forward of one
// token on a dense-codec model, on every kernel level) allocates nothing
// after warm-up, with f16 and q8 KV caches, with query-head groups of two (the general attention
// kernels) and of four (the four-head kernels).
func TestDecodeStepAllocs(t *testing.T) {
	for _, heads := range []int{4, 8} {
		decodeStepAllocs(t, heads)
	}
}

func decodeStepAllocs(t *testing.T, heads int) {
	path := filepath.Join(t.TempDir(), "s.upg")
	opts := synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: heads, KVHeads: 2, HeadDim: 256 / heads, Seed: 1}
	if err := synth.Write(path, opts); err != nil {
		t.Fatal(err)
	}
	l, err := engine.Load(path, engine.Options{Threads: 2, Ctx: 256})
	if err != nil {
		t.Fatal(err) // synth embeds a tokenizer even without the shared data
	}
	defer l.Close()
	for _, lv := range cpu.Levels() {
		be := cpu.NewWithLevel(2, lv)
		m, err := model.New(&l.Model.Config, l.Model.Weights, be)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range []backend.KVType{backend.KVF16, backend.KVQ8} {
			run, err := m.NewSingle(256, kv)
			if err != nil {
				t.Fatal(err)
			}
			allocs := decodetest.StepAllocs(t, run)
			if allocs != 0 {
				t.Errorf("%s, %d query heads, %v cache: decode step allocates %v times", lv, heads, kv, allocs)
			}
			// A step of 8 tokens, as a batched decode step of 8 sequences
			// runs its ops (token tiles, per-token ops on the pool), with
			// 8 logits rows.
			run.Pool.Truncate(0, 4)
			st8, err := run.Pool.StepFor(0, []int{5, 6, 7, 8, 9, 10, 11, 12}, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := run.Ctx.Forward(st8, run.Pool.KV()); err != nil { // warm-up
				t.Fatal(err)
			}
			allocs = testing.AllocsPerRun(10, func() {
				if err := run.Ctx.Forward(st8, run.Pool.KV()); err != nil {
					t.Fatal(err)
				}
				_ = run.Ctx.ReadLogits()
			})
			if allocs != 0 {
				t.Errorf("%s, %d query heads, %v cache: 8-token step allocates %v times", lv, heads, kv, allocs)
			}
		}
		be.Close()
	}
}
