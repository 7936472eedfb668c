//go:build linux && (amd64 || arm64)

package cuda

import "github.com/upg-ai/upg/backend"

// Peephole fusion of step ops. The backend queues ops as they are called;
// when an op's input is what the op queued just before it produced, the
// two are replaced by one fused launch (kernels/fused.cu) that computes the
// same values with the same float operations:
//
//	RMSNorm(h, x) · MatMul(y, h)   -> upg_rms_rotq + GEMV
//	SwiGLU(a, ..) · MatMul(y, a)   -> upg_swiglu_rotq + GEMV
//	Attention(o, ..) · MatMul(y, o) -> split + upg_combine_rotq + GEMV
//	MatMul(y, ..) · Add(x, y)      -> GEMV with x += y in its epilogue
//	Rope(q) · Rope(k) · StoreKV(k, v) -> upg_rope_kv
//	MatMul(qkv, ..) · Rope(q) · Rope(k) · StoreKV(k, v)
//	                               -> GEMV + upg_splitk_rope_kv (split-K parts
//	                                  summed and rotated in one launch), or
//	                                  GEMV + upg_rope_kv
//	MatMul(o/down) · Add(x, ..) · RMSNorm(h, x) · MatMul(qkv, h) · Rope · Rope · StoreKV
//	                               -> GEMV (leaves x's row-group sums of
//	                                  squares) + the rope GEMV quantizing x
//	                                  itself (selfQuant: one token, a norm
//	                                  gain of ones, a reader without input
//	                                  rotation: --rotate-residual files)
//
// The producers still write their outputs (h, a, o, y, the rotated q and
// k), so later readers see what the unfused ops would have left. A Phi-4
// layer's decode step goes from 18 launches to 11 (10 on a rotated-residual
// file).

// FuseEnv set to 0 turns the fusions off (A/B measurements, debugging).
const FuseEnv = "UPG_CUDA_FUSE"

// fuseMaxTokens is the largest step the fusions apply to. Run 11 measured
// prefill (512 tokens) 7% slower fused, when prefill's attention took the
// split kernels and so fused with upg_combine_rotq (256 threads per 1024
// columns recomputing each head's max and sum per column). Prefill
// attention (attn_prefill) does not fuse now, and run 37 measured prefill
// fused 2-7% faster (4,368-4,697 tok/s against 4,298-4,398), so every step
// fuses; FuseMaxEnv sets a limit for measurements.
var fuseMaxTokens = envInt(FuseMaxEnv, 1<<30)

// FuseMaxEnv overrides fuseMaxTokens.
const FuseMaxEnv = "UPG_CUDA_FUSE_MAX"

// fusing reports whether ops of an n-token step may fuse.
func (b *Backend) fusing(n int) bool { return b.fuse && n > 0 && n <= fuseMaxTokens }

// fusedOp marks a fused op in the queue's key.
const fusedOp = 1 << 32

// pend is the last queued op, kept while the next op may fuse with it.
type pend struct {
	kind int
	idx  int    // its index in b.ops
	out  DevPtr // what it writes: n rows of cols floats
	n    int
	cols int
	// producers of a dense GEMV's input: the op fused with the input's
	// rotation+quantization for g (into b.sc)
	rotq func(g *DenseGPU) func() error
	// MatMul: the op with dst += y fused into the GEMV's epilogue, or with
	// rope_kv after it (ropeEpilogue: in its split-K sum)
	withRes  func(res DevPtr) func() error
	withRope func(e *ropeEpilogue) func() error
	// and with its split-K parts left for the SwiGLU after it (partsOut)
	withParts func() func() error
	// RMSNorm: set when its reader may quantize the input itself (selfQuant),
	// to sqMade, made the first time (the op's key fixes its values)
	selfq, sqMade *selfQuant
	// Rope: its arguments, the Rope queued just before it, and the MatMul
	// queued just before the first of two (which may take both and the
	// StoreKV after them as its epilogue)
	rope *ropeOp
	prev *pend
	mm   *pend
}

type ropeOp struct {
	v         backend.View
	heads, hd int
	r         *rope
	st        *stepBuf
}

// hasFusedKernels reports whether the loaded module has the fused kernels
// (an older fatbin, e.g. one named by UPG_CUDA_FATBIN, may not).
func (d *Device) hasFusedKernels() bool {
	return d.Do(func() error {
		for _, n := range []string{"upg_rms_rotq", "upg_swiglu_rotq", "upg_combine_rotq", "upg_rope_kv_f16", "upg_rope_kv_f32"} {
			if _, err := d.function(n); err != nil {
				return err
			}
		}
		return nil
	}) == nil
}

// fuseMatMul queues y = W·x for n tokens, fused with the op before it when
// that op produced x, and leaves it open to a residual add.
func (b *Backend) fuseMatMul(g *DenseGPU, y, x DevPtr, n int) {
	l := b.last
	fused := l != nil && l.rotq != nil && l.out == x && l.n == n && l.cols == g.C && g.fusable(n, b.sc)
	op := uint64(opMatMul)
	if fused {
		op |= fusedOp
	}
	var sq *selfQuant // the norm before may be left to the rope GEMV (gemvSelfQ)
	if fused && l.selfq != nil && g.selfQuantable() {
		sq = l.selfq
		op |= selfqOp
	}
	args := []uint64{uint64(y), uint64(x), uint64(g.codes | g.w16), uint64(n)}
	var q *queued
	if fused {
		q = b.enqueueAt(len(b.ops)-1, op, args...) // replaces the producer, which is the last op
	} else {
		q = b.enqueue(op, args...)
	}
	if q.run == nil {
		var pre func() error
		if fused {
			pre = l.rotq(g)
		}
		mm := func(res DevPtr, rope *ropeEpilogue) func() error {
			return func() error {
				if pre == nil && res == 0 && rope == nil {
					return b.d.matMul(g, y, x, g.C, n, b.sc)
				}
				if sq != nil && rope != nil {
					if done, err := b.d.gemvSelfQ(g, y, b.sc, rope, sq); done || err != nil {
						return err
					}
				}
				if pre != nil {
					if err := pre(); err != nil {
						return err
					}
				} else if err := b.d.rotq(g, x, g.C, n, b.sc); err != nil {
					return err
				}
				return b.d.gemv(g, y, n, b.sc, res, rope)
			}
		}
		q.run = mm(0, nil)
		if b.fusing(n) && g.w16 == 0 && g.ovK == 0 && g.fusable(n, b.sc) {
			q.pend = &pend{kind: opMatMul, idx: len(b.ops) - 1, out: y, n: n, cols: g.R,
				withRes:  func(res DevPtr) func() error { return mm(res, nil) },
				withRope: func(e *ropeEpilogue) func() error { return mm(0, e) },
				withParts: func() func() error {
					run := mm(0, nil)
					return func() error {
						b.sc.leaveParts = true
						defer func() { b.sc.leaveParts = false }()
						return run()
					}
				}}
		}
	}
	if q.pend != nil {
		b.last = q.pend
	}
}

// fuseRopeKV replaces the queue's last two ops, Rope(q) and Rope(k), and
// StoreKV(k, v) by one launch when they fit together: k is the view the
// second Rope rotated, both Ropes use the same tables and step, and q, k
// and v do not overlap. It reports whether it did.
func (b *Backend) fuseRopeKV(kc, vc DevPtr, f16 bool, k, v backend.View, sp backend.KVSpec, st *stepBuf) bool {
	l := b.last
	if l == nil || l.kind != opRope || l.prev == nil || l.idx != len(b.ops)-1 || l.prev.idx != len(b.ops)-2 {
		return false
	}
	rk, rq := l.rope, l.prev.rope
	if rk.v != k || rk.heads != sp.KVHeads || rk.hd != sp.HeadDim || rq.hd != sp.HeadDim || rk.r != rq.r || rk.st != st || rq.st != st {
		return false
	}
	q := rq.v
	if !disjoint(q, rq.heads*rq.hd, k, sp.KVHeads*sp.HeadDim) || !disjoint(q, rq.heads*rq.hd, v, sp.KVHeads*sp.HeadDim) ||
		!disjoint(k, sp.KVHeads*sp.HeadDim, v, sp.KVHeads*sp.HeadDim) {
		return false
	}
	qp, kp, vp := viewPtr(q), viewPtr(k), viewPtr(v)
	if m := l.prev.mm; m != nil && m.withRope != nil && m.idx == len(b.ops)-3 && m.n == st.n &&
		projects(m, q, k, v, rq.heads, sp.KVHeads, sp.HeadDim) {
		// the projection that wrote q, k and v takes the ropes and the
		// store as its epilogue: the three ops after it become one
		b.ops = b.ops[:len(b.ops)-2]
		e := b.enqueueAt(len(b.ops)-1, opStoreKV|fusedOp|projFused, uint64(kc), uint64(st.slot), uint64(st.pos), uint64(rq.r.cos), uint64(m.out))
		if e.run == nil {
			r := rq.r
			e.run = m.withRope(&ropeEpilogue{heads: rq.heads, H: sp.KVHeads, hd: sp.HeadDim, bs: sp.BlockSize, dim: r.spec.Dim,
				interleave: r.spec.Interleave, f16: f16, kc: kc, vc: vc, slots: st.slot, cos: r.cos, sin: r.sin, pos: st.pos})
		}
		return true
	}
	// replaces the rope of the keys and the one before it, of the queries
	b.ops = b.ops[:len(b.ops)-1]
	e := b.enqueueAt(len(b.ops)-1, opStoreKV|fusedOp, uint64(kc), uint64(kp), uint64(vp), uint64(v.Stride), uint64(st.slot), uint64(st.pos), uint64(st.n))
	if e.run == nil {
		qs, ks, vs, heads, r, n := q.Stride, k.Stride, v.Stride, rq.heads, rq.r, st.n
		e.run = func() error {
			return b.d.ropeKV(qp, qs, heads, kp, ks, vp, vs, kc, vc, f16, st.slot, sp.KVHeads, sp.HeadDim, sp.BlockSize,
				r.spec.Dim, r.spec.Interleave, r.cos, r.sin, st.pos, n)
		}
	}
	return true
}

// partsOut lets the MatMul queued last leave its split-K parts unsummed
// when the SwiGLU about to be queued reads exactly its output: gate and up
// the two halves of its rows (the fused gate|up projection). The SwiGLU's
// kernel then sums the parts (takeParts), with upg_splitk_sum's additions,
// where a sum kernel would have run between them; the GEMM may take two
// parts where the one-wave model gives one (splitParts).
func (b *Backend) partsOut(gate, up DevPtr, gs, us, width, n int) {
	m := b.last
	if !useSplitParts || m == nil || m.kind != opMatMul || m.withParts == nil || m.idx != len(b.ops)-1 || m.n != n ||
		m.out != gate || up != gate+DevPtr(4*width) || gs != m.cols || us != m.cols || m.cols != 2*width {
		return
	}
	e := b.enqueueAt(m.idx, opMatMul|fusedOp|partsFused, uint64(m.out), uint64(n))
	if e.run == nil {
		e.run = m.withParts()
	}
}

// partsFused marks, in the queue's key, a MatMul whose split-K parts the
// SwiGLU after it sums.
const partsFused = 1 << 34

// projFused marks, in the queue's key, rope_kv fused into the projection
// before it.
const projFused = 1 << 33

// selfqOp marks, in the queue's key, a MatMul whose RMSNorm before it may
// be left to its rope GEMV (selfQuant).
const selfqOp = 1 << 35

// projects reports whether the MatMul m wrote exactly the q, k and v views
// as one fused projection: rows of (heads + 2H)·hd values, the query heads,
// then the key heads, then the value heads.
func projects(m *pend, q, k, v backend.View, heads, H, hd int) bool {
	R := (heads + 2*H) * hd
	return m.cols == R && q.Stride == R && k.Stride == R && v.Stride == R && viewPtr(q) == m.out &&
		viewPtr(k) == m.out+DevPtr(4*heads*hd) && viewPtr(v) == m.out+DevPtr(4*(heads+H)*hd)
}

// disjoint reports whether views a and b (rows of wa and wb floats) touch
// no common float: different buffers, or one buffer with equal strides
// whose row ranges do not overlap.
func disjoint(a backend.View, wa int, b backend.View, wb int) bool {
	if bufOf(a.Buf) != bufOf(b.Buf) {
		return true
	}
	if a.Stride != b.Stride || wa > a.Stride || wb > b.Stride {
		return false
	}
	s := a.Stride
	oa, ob := a.Off%s, b.Off%s
	if a.Off/s != b.Off/s {
		return false // rows shifted against each other: keep it simple
	}
	return oa+wa <= ob || ob+wb <= oa
}
