package model_test

import (
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// opsWhole is a backend.WholeStep written with the Backend's own ops: the
// contract's executable form. A model whose one-token steps run through it
// must give the bits its per-op calls give, which checks that
// WholeStepModel carries everything a step reads and writes (the CUDA
// persistent step implements the same contract in one kernel).
type opsWhole struct {
	be                      backend.Backend
	m                       backend.WholeStepModel
	h, qkv, att, o, gu, act backend.Buffer
	runs                    int
	closed                  bool
}

func (w *opsWhole) Run(kv backend.KV, s backend.StepBuf) {
	be, m := w.be, &w.m
	if s.N() != 1 {
		panic("opsWhole: a step of more than one token")
	}
	d, qd, kvd, f := m.Hidden, m.Heads*m.HeadDim, m.KVHeads*m.HeadDim, m.FFN
	for li, l := range m.Layers {
		be.RMSNorm(w.h, m.X, l.AttnNorm, m.Eps, 1)
		be.MatMul(w.qkv, w.h, l.QKV, 1)
		st := qd + 2*kvd
		q, k, v := backend.View{Buf: w.qkv, Stride: st}, backend.View{Buf: w.qkv, Off: qd, Stride: st}, backend.View{Buf: w.qkv, Off: qd + kvd, Stride: st}
		be.Rope(q, m.Heads, m.HeadDim, m.Rope, s)
		be.Rope(k, m.KVHeads, m.HeadDim, m.Rope, s)
		be.StoreKV(kv, li, k, v, s)
		be.Attention(w.att, q, m.Heads, m.Scale, kv, li, s)
		be.MatMul(w.o, w.att, l.O, 1)
		be.Add(m.X, w.o, d)
		be.RMSNorm(w.h, m.X, l.FFNNorm, m.Eps, 1)
		be.MatMul(w.gu, w.h, l.GateUp, 1)
		be.SwiGLU(w.act, backend.View{Buf: w.gu, Stride: 2 * f}, backend.View{Buf: w.gu, Off: f, Stride: 2 * f}, f, 1)
		be.MatMul(w.o, w.act, l.Down, 1)
		be.Add(m.X, w.o, d)
	}
	be.RMSNorm(w.h, m.X, m.Norm, m.Eps, 1)
	be.MatMul(m.Logits, w.h, m.Output, 1)
	w.runs++
}

func (w *opsWhole) Close() { w.closed = true }

// wholeCPU is the CPU backend offering opsWhole as its whole step.
type wholeCPU struct {
	backend.Backend
	binds []*opsWhole
}

func (b *wholeCPU) BindWholeStep(m backend.WholeStepModel) (backend.WholeStep, string) {
	w := &opsWhole{be: b.Backend, m: m}
	for _, p := range []*backend.Buffer{&w.h, &w.qkv, &w.att, &w.o, &w.gu, &w.act} {
		var err error
		if *p, err = b.NewBuffer(2*m.FFN + (m.Heads+2*m.KVHeads)*m.HeadDim); err != nil {
			return nil, err.Error()
		}
	}
	b.binds = append(b.binds, w)
	return w, ""
}

// TestWholeStepContract: the demo model decodes to the same bits with its
// one-token steps run by a WholeStep as op by op; steps of more tokens do
// not use it, a context binds it once, and Rebind (new weights) binds
// again after closing the old one.
func TestWholeStepContract(t *testing.T) {
	path := "../models/miniphi-29m.upg"
	testutil.NeedData(t, path)
	ck, w := decodetest.OpenWeights(t, path)
	run := func(be backend.Backend, rebind bool) ([][]float32, *model.Model) {
		m, err := model.New(ck.Config, w, be)
		if err != nil {
			t.Fatal(err)
		}
		c := &m.Config
		const bs, positions = 16, 64
		o := kvcache.Options{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: backend.KVF32, BlockSize: bs}
		o.Budget = kvcache.BudgetFor(o, positions, 1)
		pool, err := kvcache.New(m, o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, err := m.NewContext(model.ContextOptions{MaxTokens: 16, MaxOut: 1, MaxSeqs: 1, Positions: positions, BlockSize: bs})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		var st backend.Step
		step := func(toks []int) int {
			st.Reset()
			if err := pool.Reserve(0, len(toks)); err != nil {
				t.Fatal(err)
			}
			pool.AppendStep(&st, 0, toks)
			st.Out = append(st.Out, int32(len(st.Tokens)-1))
			if err := ctx.Forward(&st, pool.KV()); err != nil {
				t.Fatal(err)
			}
			pool.Commit(0, len(toks))
			lg := append([]float32(nil), ctx.ReadLogits()...)
			out = append(out, lg)
			return argmax(lg[:c.Vocab])
		}
		next := step([]int{1, 450, 4996, 1735, 1701, 2991, 1250})
		for i := 0; i < 6; i++ {
			if i == 3 && rebind {
				if err := m.Rebind(); err != nil {
					t.Fatal(err)
				}
			}
			next = step([]int{next})
		}
		step([]int{next, 17, 29}) // more than one token: op by op
		return out, m
	}
	ref := cpu.New(0)
	defer ref.Close()
	want, _ := run(ref, false)
	wb := &wholeCPU{Backend: cpu.New(0)}
	defer wb.Close()
	got, _ := run(wb, true)
	if err := sameBits(splitRun(got), splitRun(want)); err != nil {
		t.Errorf("one-token steps through the WholeStep: %v", err)
	}
	if len(wb.binds) != 2 {
		t.Fatalf("%d binds, want 2 (one, then one after Rebind)", len(wb.binds))
	}
	if a, b := wb.binds[0], wb.binds[1]; a.runs != 3 || !a.closed || b.runs != 3 || b.closed {
		t.Errorf("binds ran %d and %d steps (want 3 and 3), closed %v and %v (want true, false)", a.runs, b.runs, a.closed, b.closed)
	}
}
