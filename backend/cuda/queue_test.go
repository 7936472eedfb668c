//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
)

// queueFixture is a Backend over a device that is never called: the op
// methods only queue closures and hash their arguments, so a decode step's
// queueing (the host's work while the GPU waits between steps) can be timed
// on the CPU. Pointers are fake and nothing is flushed.
type queueFixture struct {
	b                               *Backend
	x, h, qkv, att, o, gu, act      *buffer
	qkvW, oW, guW, downW, n1, n2    *weight
	kv                              *kvStore
	rp                              *rope
	st                              *stepBuf
	heads, hd, kvHeads, ffn, hidden int
}

func newQueueFixture(n int) *queueFixture {
	const d, heads, kvHeads, hd, ffn = 5120, 40, 10, 128, 17920
	next := DevPtr(1 << 30)
	alloc := func(floats int) *buffer {
		next += DevPtr(4*floats + 4096)
		return &buffer{p: next, n: floats}
	}
	dense := func(R, C int) *weight {
		next += 1 << 28
		return &weight{rows: R, cols: C, g: &DenseGPU{R: R, C: C, codes: next}}
	}
	vec := func(c int) *weight { next += 1 << 16; return &weight{rows: 1, cols: c, vec: next} }
	f := &queueFixture{
		b: &Backend{d: &Device{SMs: 132}, fuse: true, key: fnvOffset, graphs: newGraphCache(defaultGraphs),
			made: map[uint64]*queued{}},
		heads: heads, hd: hd, kvHeads: kvHeads, ffn: ffn, hidden: d,
	}
	f.b.sc = &Scratch{Tokens: 64, Cols: ffn}
	f.b.part, f.b.partSize = 1, 1<<40
	f.b.attnCnt, f.b.cntSize = 2, 1<<40
	qkvW := (heads + 2*kvHeads) * hd
	f.x, f.h, f.qkv, f.att, f.o = alloc(n*d), alloc(n*d), alloc(n*qkvW), alloc(n*d), alloc(n*d)
	f.gu, f.act = alloc(n*2*ffn), alloc(n*ffn)
	f.qkvW, f.oW, f.guW, f.downW = dense(qkvW, d), dense(d, d), dense(2*ffn, d), dense(d, ffn)
	f.n1, f.n2 = vec(d), vec(d)
	f.kv = &kvStore{spec: backend.KVSpec{Layers: 40, KVHeads: kvHeads, HeadDim: hd, BlockSize: 16, Blocks: 4096, Type: backend.KVF16},
		k: 1 << 40, v: 1 << 41, perLayer: 1 << 28}
	f.rp = &rope{spec: backend.RopeSpec{Dim: hd}, cos: 1 << 42, sin: 1<<42 + 1<<20}
	f.st = &stepBuf{lim: backend.StepLimits{Tokens: 64, Seqs: n, BlocksPerSeq: 64}, n: n, nOut: n, oneSeq: n == 1, maxPos: 512,
		tokens: 1 << 43, pos: 1<<43 + 4096, slot: 1<<43 + 8192, seq: 1<<43 + 12288, tables: 1<<43 + 16384}
	f.st.host = make([]int32, 5*f.st.lim.Tokens+sharedWords+f.st.lim.Seqs*f.st.lim.BlocksPerSeq)
	return f
}

// step queues one decode step's 40 layers as model.Context.layer calls
// them (fused qkv and gate_up), then drops the queue as a flush does; it
// returns a copy of the ops queued (when keep) and the key.
func (f *queueFixture) step(keep bool) (ops []*queued, key uint64) {
	b, n, d := f.b, f.st.n, f.hidden
	qd, kvd := f.heads*f.hd, f.kvHeads*f.hd
	w := qd + 2*kvd
	q := backend.View{Buf: f.qkv, Stride: w}
	k := backend.View{Buf: f.qkv, Off: qd, Stride: w}
	v := backend.View{Buf: f.qkv, Off: qd + kvd, Stride: w}
	for l := 0; l < 40; l++ {
		b.RMSNorm(f.h, f.x, f.n1, 1e-5, n)
		b.MatMul(f.qkv, f.h, f.qkvW, n)
		b.Rope(q, f.heads, f.hd, f.rp, f.st)
		b.Rope(k, f.kvHeads, f.hd, f.rp, f.st)
		b.StoreKV(f.kv, l, k, v, f.st)
		b.Attention(f.att, q, f.heads, 0.088, f.kv, l, f.st)
		b.MatMul(f.o, f.att, f.oW, n)
		b.Add(f.x, f.o, n*d)
		b.RMSNorm(f.h, f.x, f.n2, 1e-5, n)
		b.MatMul(f.gu, f.h, f.guW, n)
		b.SwiGLU(f.act, backend.View{Buf: f.gu, Stride: 2 * f.ffn}, backend.View{Buf: f.gu, Off: f.ffn, Stride: 2 * f.ffn}, f.ffn, n)
		b.MatMul(f.o, f.act, f.downW, n)
		b.Add(f.x, f.o, n*d)
	}
	if keep {
		ops = slices.Clone(b.ops)
	}
	key = b.key
	clear(b.ops)
	b.ops, b.key, b.last = b.ops[:0], fnvOffset, nil
	return ops, key
}

// TestQueueStep (CPU): a Phi-4 decode step queues 4 ops per layer (the
// projection with rope_kv as its epilogue, attention with o and the
// residual, the norm with gate_up, SwiGLU with down and the residual)
// with the fusions (fuse.go's count) and the same key every step (so that
// its graph replays); a step that repeats one before reuses its ops
// (queue.go) and allocates nothing, and a step of another size does not.
func TestQueueStep(t *testing.T) {
	f := newQueueFixture(1)
	ops1, k1 := f.step(true)
	ops2, k2 := f.step(true)
	if len(ops1) != 40*4 {
		t.Errorf("%d ops queued for 40 layers, want %d (4 a layer after fusion)", len(ops1), 40*4)
	}
	if k1 != k2 || k1 == fnvOffset {
		t.Errorf("step keys %x and %x: want one key, the same every step", k1, k2)
	}
	for i, q := range ops1 {
		if q.run == nil {
			t.Fatalf("op %d has no launch", i)
		}
		if i < len(ops2) && ops2[i] != q {
			t.Fatalf("op %d of the repeated step is a new one: want the first step's", i)
		}
	}
	if a := testing.AllocsPerRun(5, func() { f.step(false) }); a != 0 {
		t.Errorf("a repeated step allocates %.0f times, want 0", a)
	}
	if f.b.err != nil {
		t.Fatal(f.b.err)
	}

	f.st.n, f.st.oneSeq = 2, false
	ops3, k3 := f.step(true)
	if k3 == k1 || len(ops3) != len(ops1) {
		t.Fatalf("2-token step: key %x (1 token: %x), %d ops: want another key and %d ops", k3, k1, len(ops3), len(ops1))
	}
	for i, q := range ops3 {
		if q == ops1[i] {
			t.Fatalf("op %d of the 2-token step is the 1-token step's", i)
		}
	}

	// a GEMV left open to a residual add names its own place in the queue,
	// fused with the op before it (replacing it) or not, built or kept
	g := newQueueFixture(1)
	for range 2 {
		b := g.b
		b.RMSNorm(g.h, g.x, g.n1, 1e-5, 1)
		b.MatMul(g.qkv, g.h, g.qkvW, 1) // fused with the RMSNorm
		if l := b.last; l == nil || l.idx != len(b.ops)-1 || b.ops[l.idx].pend != l || len(b.ops) != 1 {
			t.Fatalf("fused GEMV: pending %+v in a queue of %d", l, len(b.ops))
		}
		b.MatMul(g.o, g.att, g.oW, 1) // its input from no op before
		if l := b.last; l == nil || l.idx != len(b.ops)-1 || b.ops[l.idx].pend != l || len(b.ops) != 2 {
			t.Fatalf("unfused GEMV: pending %+v in a queue of %d", l, len(b.ops))
		}
		clear(b.ops)
		b.ops, b.key, b.last = b.ops[:0], fnvOffset, nil
	}

	// growing a workspace drops the kept ops with the graphs (their
	// closures may hold the old pointers)
	f.b.dropGraphs()
	if len(f.b.made) != 0 {
		t.Errorf("%d ops kept after dropGraphs, want 0", len(f.b.made))
	}
	if ops4, _ := f.step(true); ops4[0] == ops3[0] {
		t.Error("a step after dropGraphs reuses an op kept before it")
	}
}

// TestQueueKeyStrides (CPU): ops that hand the kernels a view's stride name
// it in their key, so that a kept op is not reused for a view that shares
// its pointer but not its rows: SwiGLU's gate and up, the fused RoPE and KV
// store's values (checked to fail without them).
func TestQueueKeyStrides(t *testing.T) {
	f := newQueueFixture(1)
	b, n := f.b, f.st.n
	key := func(queue func()) uint64 {
		queue()
		k := b.key
		clear(b.ops)
		b.ops, b.key, b.last = b.ops[:0], fnvOffset, nil
		return k
	}
	swiglu := func(gs, us int) func() {
		return func() {
			b.SwiGLU(f.act, backend.View{Buf: f.gu, Stride: gs}, backend.View{Buf: f.gu, Off: f.ffn, Stride: us}, f.ffn, n)
		}
	}
	if key(swiglu(2*f.ffn, 2*f.ffn)) == key(swiglu(3*f.ffn, 2*f.ffn)) || key(swiglu(2*f.ffn, 2*f.ffn)) == key(swiglu(2*f.ffn, 3*f.ffn)) {
		t.Error("SwiGLU steps whose gate or up strides differ share a key")
	}
	qd, kvd := f.heads*f.hd, f.kvHeads*f.hd
	w := qd + 2*kvd
	ropeKV := func(vs int) func() {
		return func() {
			b.Rope(backend.View{Buf: f.qkv, Stride: w}, f.heads, f.hd, f.rp, f.st)
			b.Rope(backend.View{Buf: f.qkv, Off: qd, Stride: w}, f.kvHeads, f.hd, f.rp, f.st)
			b.StoreKV(f.kv, 0, backend.View{Buf: f.qkv, Off: qd, Stride: w}, backend.View{Buf: f.att, Stride: vs}, f.st)
		}
	}
	k1 := key(ropeKV(kvd))
	if len(f.b.made) == 0 {
		t.Fatal("nothing kept")
	}
	if k1 == key(ropeKV(2*kvd)) {
		t.Error("fused RoPE and KV stores whose value strides differ share a key")
	}
}

// BenchmarkQueueStep times the host's queueing of one Phi-4-shaped decode
// step (40 layers, the fusions on), the work the GPU waits on between steps.
func BenchmarkQueueStep(bm *testing.B) {
	for _, n := range []int{1, 32} {
		bm.Run(fmt.Sprintf("tokens=%d", n), func(bm *testing.B) {
			f := newQueueFixture(n)
			bm.ReportAllocs()
			for bm.Loop() {
				f.step(false)
			}
		})
	}
}
