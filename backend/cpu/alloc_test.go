package cpu_test

import (
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/synth"
)

// TestDecodeStepAllocs proves a full decode step (model.Forward of one
// token on a dense-codec model, on every kernel level) allocates nothing
// after warm-up, with query-head groups of two (the general attention
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
		t.Skipf("cannot load the synthetic model (tokenizer data missing?): %v", err)
	}
	defer l.Close()
	for _, lv := range cpu.Levels() {
		be := cpu.NewWithLevel(2, lv)
		m, err := model.New(&l.Model.Config, l.Model.Weights, be)
		if err != nil {
			t.Fatal(err)
		}
		cache := l.Cache
		cache.Truncate(0, 0)
		b := &model.Batch{Tokens: []int{1, 2, 3, 4}, Pos: []int{0, 1, 2, 3}, Seq: []int{0, 0, 0, 0}}
		if _, err := m.Forward(b, cache); err != nil { // warm-up: buffers, cache chunk
			t.Fatal(err)
		}
		pos := 4
		step := &model.Batch{Tokens: []int{5}, Pos: []int{0}, Seq: []int{0}}
		allocs := testing.AllocsPerRun(10, func() {
			step.Pos[0] = pos
			if _, err := m.Forward(step, cache); err != nil {
				t.Fatal(err)
			}
			pos++
		})
		if allocs != 0 {
			t.Errorf("%s, %d query heads: decode step allocates %v times", lv, heads, allocs)
		}
		be.Close()
	}
}
