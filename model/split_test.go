package model_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// splitRun is what a script of forward passes read back: every logits row
// (and, for the compressor's entry points, every hidden state and tap).
type splitRun [][]float32

// batchedScript drives m through steps of one and of several sequences: a
// prompt alone, then a batched step (a decode token, a second prompt, and a
// fork of the first sequence writing into a block it shares, which copies
// the block on both backends), then greedy decode steps of all three.
func batchedScript(t *testing.T, m *model.Model, kvt backend.KVType) splitRun {
	t.Helper()
	c := &m.Config
	const bs, positions = 16, 64
	o := kvcache.Options{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: kvt, BlockSize: bs}
	o.Budget = kvcache.BudgetFor(o, positions, 4)
	pool, err := kvcache.New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := m.NewContext(model.ContextOptions{MaxTokens: positions, MaxOut: positions, MaxSeqs: 4, Positions: positions, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	V := c.Vocab
	var out splitRun
	var st backend.Step
	step := func(seqs []int, toks [][]int, all bool) []float32 {
		st.Reset()
		for k, id := range seqs {
			if err := pool.Reserve(id, len(toks[k])); err != nil {
				t.Fatal(err)
			}
			pool.AppendStep(&st, id, toks[k])
			if all {
				for i := len(st.Tokens) - len(toks[k]); i < len(st.Tokens); i++ {
					st.Out = append(st.Out, int32(i))
				}
			} else {
				st.Out = append(st.Out, int32(len(st.Tokens)-1))
			}
		}
		if err := ctx.Forward(&st, pool.KV()); err != nil {
			t.Fatal(err)
		}
		for k, id := range seqs {
			pool.Commit(id, len(toks[k]))
		}
		lg := append([]float32(nil), ctx.ReadLogits()...)
		out = append(out, lg)
		return lg
	}
	prompt := func(n, seed int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = (seed*7919 + i*104729) % V
		}
		return p
	}
	lg := step([]int{0}, [][]int{prompt(20, 1)}, true)
	if err := pool.Fork(2, 0, 18); err != nil {
		t.Fatal(err)
	}
	next := []int{argmax(lg[19*V : 20*V]), 0, 0}
	lg = step([]int{0, 1, 2}, [][]int{{next[0]}, prompt(13, 2), {5, 6}}, false)
	for range 4 {
		for k := range next {
			next[k] = argmax(lg[k*V : (k+1)*V])
		}
		lg = step([]int{0, 1, 2}, [][]int{{next[0]}, {next[1]}, {next[2]}}, false)
	}
	return out
}

// layerScript runs the compressor's entry points: Embed, RunLayer over a
// one-layer pool made through the model, FinalNorm; it returns every
// hidden state, the taps' activations and the final norm.
func layerScript(t *testing.T, m *model.Model) splitRun {
	t.Helper()
	c := &m.Config
	const bs, seqLen = 16, 24
	o := kvcache.Options{Layers: 1, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: backend.KVF32, BlockSize: bs}
	o.Budget = kvcache.BudgetFor(o, seqLen, 2)
	pool, err := kvcache.New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := m.NewContext(model.ContextOptions{MaxTokens: 2 * seqLen, MaxOut: 1, MaxSeqs: 2, Positions: seqLen, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 2*seqLen)
	for i := range ids {
		ids[i] = (i*31 + 7) % c.Vocab
	}
	x := make([]float32, len(ids)*c.Hidden)
	m.Embed(x, ids)
	out := splitRun{append([]float32(nil), x...)}
	var st backend.Step
	for li := range c.Layers {
		st.Reset()
		for k := range 2 {
			pool.Truncate(k, 0)
			if err := pool.Reserve(k, seqLen); err != nil {
				t.Fatal(err)
			}
			pool.AppendStep(&st, k, ids[k*seqLen:(k+1)*seqLen])
		}
		tap := func(p model.TapPoint, act []float32, n int) { out = append(out, append([]float32(nil), act...)) }
		if err := ctx.RunLayer(li, x, &st, pool.KV(), 0, tap); err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]float32(nil), x...))
	}
	hn := make([]float32, len(x))
	ctx.FinalNorm(hn, x, len(ids))
	return append(out, hn)
}

// sameBits reports the first difference between two runs, bit for bit.
func sameBits(got, want splitRun) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d rows read back, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			return fmt.Errorf("read %d: %d values, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				return fmt.Errorf("read %d, value %d: %v, want %v", i, j, got[i][j], want[i][j])
			}
		}
	}
	return nil
}

// TestSplitEqualsWhole runs the demo model and the golden model split over
// two CPU backend instances (the first L−N layers and the embedding on one,
// the last N layers and the head on the other) at N = 0, 1, L/2, L−1, L and
// checks every logits row — a prompt alone, a batched step with a prompt, a
// decode token and a forked sequence writing into a shared block (copied on
// both backends), greedy decode steps of three sequences, with f32, f16 and
// q8 KV caches — and the compressor's entry points (Embed, RunLayer over a
// one-layer pool, FinalNorm, the taps) against the unsplit model's, bit for
// bit: both backends run the same kernels, each op is per token or a
// matrix multiply whose per-row result does not depend on the worker
// count, and the hidden state crosses as exact float32.
func TestSplitEqualsWhole(t *testing.T) {
	for _, path := range []string{"../models/miniphi-29m.upg", filepath.Join(sharedModels, "miniphi-29m")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			testutil.NeedData(t, path)
			ck, w := decodetest.OpenWeights(t, path)
			whole := cpu.New(0)
			defer whole.Close()
			ref, err := model.New(ck.Config, w, whole)
			if err != nil {
				t.Fatal(err)
			}
			kvts := []backend.KVType{backend.KVF32, backend.KVF16, backend.KVQ8}
			want := map[backend.KVType]splitRun{}
			for _, kvt := range kvts {
				want[kvt] = batchedScript(t, ref, kvt)
			}
			wantLayers := layerScript(t, ref)
			L := ck.Config.Layers
			for _, n := range []int{0, 1, L / 2, L - 1, L} {
				t.Run(fmt.Sprintf("gpu-layers=%d", n), func(t *testing.T) {
					a, b := cpu.New(0), cpu.New(0)
					defer a.Close()
					defer b.Close()
					m, err := model.NewSplit(ck.Config, w, a, b, n)
					if err != nil {
						t.Fatal(err)
					}
					checkStages(t, m, a, b, n)
					for _, kvt := range kvts {
						if err := sameBits(batchedScript(t, m, kvt), want[kvt]); err != nil {
							t.Errorf("kv %v: %v", kvt, err)
						}
					}
					if err := sameBits(layerScript(t, m), wantLayers); err != nil {
						t.Errorf("compressor entry points: %v", err)
					}
					// Single (eval's path) goes through the model's storage too.
					s, err := m.NewSingle(32, backend.KVF32)
					if err != nil {
						t.Fatal(err)
					}
					rs, err := ref.NewSingle(32, backend.KVF32)
					if err != nil {
						t.Fatal(err)
					}
					toks := []int{1, 2, 3, 500, 1000, 7}
					got, err := s.Forward(toks, 0)
					if err != nil {
						t.Fatal(err)
					}
					got = append([]float32(nil), got...)
					exp, err := rs.Forward(toks, 0)
					if err != nil {
						t.Fatal(err)
					}
					if err := sameBits(splitRun{got}, splitRun{exp}); err != nil {
						t.Errorf("Single: %v", err)
					}
				})
			}
		})
	}
}

// checkStages: the layers sit where NewSplit says.
func checkStages(t *testing.T, m *model.Model, first, last backend.Backend, n int) {
	t.Helper()
	L := m.Config.Layers
	var want []model.Stage
	switch n {
	case 0:
		want = []model.Stage{{Backend: first, First: 0, End: L}}
	case L:
		want = []model.Stage{{Backend: last, First: 0, End: L}}
	default:
		want = []model.Stage{{Backend: first, First: 0, End: L - n}, {Backend: last, First: L - n, End: L}}
	}
	got := m.Stages()
	if len(got) != len(want) {
		t.Fatalf("%d stages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("stage %d: layers %d-%d on %p, want %d-%d on %p", i, got[i].First, got[i].End, got[i].Backend, want[i].First, want[i].End, want[i].Backend)
		}
	}
	if m.Backend() != want[len(want)-1].Backend {
		t.Errorf("the head is not on the last stage's backend")
	}
}

// TestSplitErrors: bad splits and foreign KV storage are errors, not panics.
func TestSplitErrors(t *testing.T) {
	path := "../models/miniphi-29m.upg"
	testutil.NeedData(t, path)
	ck, w := decodetest.OpenWeights(t, path)
	a, b := cpu.New(1), cpu.New(1)
	defer a.Close()
	defer b.Close()
	L := ck.Config.Layers
	for _, n := range []int{-1, L + 1} {
		if _, err := model.NewSplit(ck.Config, w, a, b, n); err == nil {
			t.Errorf("NewSplit with %d of %d layers: no error", n, L)
		}
	}
	m, err := model.NewSplit(ck.Config, w, a, b, 2)
	if err != nil {
		t.Fatal(err)
	}
	c := ck.Config
	spec := backend.KVSpec{Layers: L, KVHeads: c.KVHeads, HeadDim: c.HeadDim, BlockSize: 16, Blocks: 2}
	foreign, err := b.NewKV(spec) // one backend's storage, not the model's
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := m.NewContext(model.ContextOptions{MaxTokens: 4, Positions: 32, BlockSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	st := &backend.Step{Tokens: []int32{1}, Pos: []int32{0}, Slot: []int32{0}, Seq: []int32{0}, Tables: [][]int32{{0}}, Out: []int32{0}}
	if err := ctx.Forward(st, foreign); err == nil {
		t.Errorf("Forward of a split model over one backend's KV: no error")
	}
	if _, err := m.NewKV(backend.KVSpec{Layers: L + 1, KVHeads: c.KVHeads, HeadDim: c.HeadDim, BlockSize: 16, Blocks: 2}); err == nil {
		t.Errorf("NewKV of more layers than the model: no error")
	}
	kv, err := m.NewKV(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.Forward(st, kv); err != nil {
		t.Errorf("Forward over the model's KV: %v", err)
	}
	x := make([]float32, c.Hidden)
	if err := ctx.RunLayer(L, x, st, kv, 0, nil); err == nil {
		t.Errorf("RunLayer of layer %d of %d: no error", L, L)
	}
	if err := ctx.RunLayer(0, x, st, kv, L-1, nil); err == nil {
		t.Errorf("RunLayer of layer 0 over KV layer %d (on the other backend): no error", L-1)
	}
}

// TestSplitDecodeAllocs: a decode step of a split model (the hidden state
// read into the context's host buffer and written to the other backend)
// allocates nothing after warm-up, like an unsplit one.
func TestSplitDecodeAllocs(t *testing.T) {
	path := "../models/miniphi-29m.upg"
	testutil.NeedData(t, path)
	ck, w := decodetest.OpenWeights(t, path)
	a, b := cpu.New(1), cpu.New(1)
	defer a.Close()
	defer b.Close()
	m, err := model.NewSplit(ck.Config, w, a, b, 3)
	if err != nil {
		t.Fatal(err)
	}
	run, err := m.NewSingle(64, backend.KVF16)
	if err != nil {
		t.Fatal(err)
	}
	allocs := decodetest.StepAllocs(t, run)
	if allocs != 0 {
		t.Errorf("split decode step allocates %v times", allocs)
	}
}
