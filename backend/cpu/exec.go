package cpu

import (
	"fmt"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// This file implements backend.Backend's memory and ops on the host: buffers
// are Go slices, weights stay where the caller has them (the memory map),
// and each op runs at once on the worker pool.

var _ backend.Backend = (*Backend)(nil)

// Buf is the CPU backend's backend.Buffer: a float32 slice.
type Buf struct{ F []float32 }

// Len implements backend.Buffer.
func (b *Buf) Len() int { return len(b.F) }

// NewBuffer implements backend.Backend.
func (b *Backend) NewBuffer(n int) (backend.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: buffer of %d values", n)
	}
	return &Buf{F: make([]float32, n)}, nil
}

// Floats returns the slice behind a buffer of this backend.
func Floats(b backend.Buffer) []float32 {
	cb, ok := b.(*Buf)
	if !ok {
		panic(fmt.Sprintf("cpu: buffer %T does not belong to the CPU backend", b))
	}
	return cb.F
}

func view(v backend.View) []float32 { return Floats(v.Buf)[v.Off:] }

// MatrixWeight is a weight matrix as the CPU backend holds it: the caller's
// tensor.Matrix itself.
type MatrixWeight struct{ M tensor.Matrix }

// Rows implements backend.Weight.
func (w *MatrixWeight) Rows() int { return w.M.Rows() }

// Cols implements backend.Weight.
func (w *MatrixWeight) Cols() int { return w.M.Cols() }

// VectorWeight is a weight vector.
type VectorWeight struct{ V []float32 }

// Rows implements backend.Weight.
func (w *VectorWeight) Rows() int { return 1 }

// Cols implements backend.Weight.
func (w *VectorWeight) Cols() int { return len(w.V) }

// LoadMatrix implements backend.Backend: no copy, except the repacked
// codes of the kernels that run on one (planesFor: 3-bit dense matrices on
// the AVX2 integer kernels), made here rather than in the first multiply.
func (b *Backend) LoadMatrix(m tensor.Matrix) (backend.Weight, error) {
	if m == nil {
		return nil, fmt.Errorf("cpu: nil matrix")
	}
	dm, _ := m.(*codec.DenseMatrix)
	if om, ok := m.(*codec.OverlayMatrix); ok {
		dm = om.Base
	}
	if dm != nil {
		b.mu.Lock()
		b.planesFor(dm)
		b.mu.Unlock()
	}
	return &MatrixWeight{M: m}, nil
}

// LoadVector implements backend.Backend: no copy.
func (b *Backend) LoadVector(v []float32) (backend.Weight, error) { return &VectorWeight{V: v}, nil }

func matrixOf(w backend.Weight) tensor.Matrix {
	mw, ok := w.(*MatrixWeight)
	if !ok {
		panic(fmt.Sprintf("cpu: weight %T does not belong to the CPU backend", w))
	}
	return mw.M
}

func vectorOf(w backend.Weight) []float32 {
	vw, ok := w.(*VectorWeight)
	if !ok {
		panic(fmt.Sprintf("cpu: weight %T is not a CPU backend vector", w))
	}
	return vw.V
}

// kvStore is paged KV storage: per layer, keys and values laid out
// [block][KV head][position in block][head dim], so that attention streams
// each head's rows of a block contiguously. One pair of arrays per layer is
// used, by the spec's type: k/v (f32), k16/v16 (f16), or k8/v8 with their
// scales ks8/vs8, laid out [block][KV head][position in block][group]
// (q8, see kvq8.go).
type kvStore struct {
	spec     backend.KVSpec
	k, v     [][]float32
	k16, v16 [][]uint16
	k8, v8   [][]int8
	ks8, vs8 [][]uint16
}

// Spec implements backend.KV.
func (s *kvStore) Spec() backend.KVSpec { return s.spec }

// NewKV implements backend.Backend. Pages are committed by the OS as
// blocks are first written, so memory follows use up to the budget.
func (b *Backend) NewKV(spec backend.KVSpec) (backend.KV, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	per := spec.Blocks * spec.BlockSize * spec.KVHeads * spec.HeadDim
	rows := spec.Blocks * spec.BlockSize * spec.KVHeads
	s := &kvStore{spec: spec}
	for range spec.Layers {
		switch spec.Type {
		case backend.KVF16:
			s.k16 = append(s.k16, make([]uint16, per))
			s.v16 = append(s.v16, make([]uint16, per))
		case backend.KVQ8:
			g := backend.KVQ8Groups(spec.HeadDim)
			s.k8 = append(s.k8, make([]int8, per))
			s.v8 = append(s.v8, make([]int8, per))
			s.ks8 = append(s.ks8, make([]uint16, rows*g))
			s.vs8 = append(s.vs8, make([]uint16, rows*g))
		default:
			s.k = append(s.k, make([]float32, per))
			s.v = append(s.v, make([]float32, per))
		}
	}
	return s, nil
}

func kvOf(kv backend.KV) *kvStore {
	s, ok := kv.(*kvStore)
	if !ok {
		panic(fmt.Sprintf("cpu: KV storage %T does not belong to the CPU backend", kv))
	}
	return s
}

// rope is a rotary embedding's cos/sin tables.
type rope struct {
	spec     backend.RopeSpec
	half     int
	cos, sin []float32
}

// NewRope implements backend.Backend.
func (b *Backend) NewRope(spec backend.RopeSpec) (backend.Rope, error) {
	if spec.Dim <= 0 || spec.Dim%2 != 0 || len(spec.InvFreq) < spec.Dim/2 || spec.Positions <= 0 {
		return nil, fmt.Errorf("cpu: invalid rotary embedding (dim %d, %d frequencies, %d positions)", spec.Dim, len(spec.InvFreq), spec.Positions)
	}
	cos, sin := spec.Tables()
	return &rope{spec: spec, half: spec.Dim / 2, cos: cos, sin: sin}, nil
}

// apply rotates the first dim values of each of heads head vectors (hd
// values apart) in x.
func (r *rope) apply(x []float32, heads, hd, pos int) {
	cs := r.cos[pos*r.half : (pos+1)*r.half]
	sn := r.sin[pos*r.half : (pos+1)*r.half]
	for h := 0; h < heads; h++ {
		v := x[h*hd : h*hd+r.spec.Dim]
		if r.spec.Interleave {
			for i := 0; i < r.half; i++ {
				a, b := v[2*i], v[2*i+1]
				v[2*i] = a*cs[i] - b*sn[i]
				v[2*i+1] = b*cs[i] + a*sn[i]
			}
		} else {
			for i := 0; i < r.half; i++ {
				a, b := v[i], v[i+r.half]
				v[i] = a*cs[i] - b*sn[i]
				v[i+r.half] = b*cs[i] + a*sn[i]
			}
		}
	}
}

// stepBuf is a step's metadata: on the CPU, a copy of the host Step in
// buffers sized once.
type stepBuf struct {
	lim backend.StepLimits
	s   backend.Step
}

// N implements backend.StepBuf.
func (s *stepBuf) N() int { return len(s.s.Tokens) }

// NewStep implements backend.Backend.
func (b *Backend) NewStep(lim backend.StepLimits) (backend.StepBuf, error) {
	if lim.Tokens <= 0 || lim.Seqs <= 0 || lim.BlocksPerSeq <= 0 {
		return nil, fmt.Errorf("cpu: invalid step limits %+v", lim)
	}
	sb := &stepBuf{lim: lim}
	sb.s.Tokens = make([]int32, 0, lim.Tokens)
	sb.s.Pos = make([]int32, 0, lim.Tokens)
	sb.s.Slot = make([]int32, 0, lim.Tokens)
	sb.s.Seq = make([]int32, 0, lim.Tokens)
	sb.s.Out = make([]int32, 0, lim.Tokens)
	sb.s.Tables = make([][]int32, lim.Seqs)
	for i := range sb.s.Tables {
		sb.s.Tables[i] = make([]int32, 0, lim.BlocksPerSeq)
	}
	sb.s.Tables = sb.s.Tables[:0]
	return sb, nil
}

func stepOf(s backend.StepBuf) *stepBuf {
	sb, ok := s.(*stepBuf)
	if !ok {
		panic(fmt.Sprintf("cpu: step %T does not belong to the CPU backend", s))
	}
	return sb
}

// SetStep implements backend.Backend. It does not allocate within the
// limits the StepBuf was made with.
func (b *Backend) SetStep(dst backend.StepBuf, s *backend.Step) error {
	sb := stepOf(dst)
	n := len(s.Tokens)
	if n > sb.lim.Tokens || len(s.Tables) > sb.lim.Seqs {
		return fmt.Errorf("cpu: step of %d tokens in %d sequences exceeds the context's limits (%d tokens, %d sequences)", n, len(s.Tables), sb.lim.Tokens, sb.lim.Seqs)
	}
	for _, t := range s.Tables {
		if len(t) > sb.lim.BlocksPerSeq {
			return fmt.Errorf("cpu: block table of %d blocks exceeds the context's limit of %d", len(t), sb.lim.BlocksPerSeq)
		}
	}
	// The ops of the step follow: workers that went to sleep while the
	// host sampled and built this step start waking now, during the
	// embedding lookup, rather than at the first parallel op.
	b.mu.Lock()
	b.pool.prewake()
	b.mu.Unlock()
	d := &sb.s
	d.Tokens = append(d.Tokens[:0], s.Tokens...)
	d.Pos = append(d.Pos[:0], s.Pos...)
	d.Slot = append(d.Slot[:0], s.Slot...)
	d.Seq = append(d.Seq[:0], s.Seq...)
	d.Out = append(d.Out[:0], s.Out...)
	d.Tables = d.Tables[:len(s.Tables)]
	for i, t := range s.Tables {
		d.Tables[i] = append(d.Tables[i][:0], t...)
	}
	return nil
}

// Write implements backend.Backend.
func (b *Backend) Write(dst backend.Buffer, off int, src []float32) { copy(Floats(dst)[off:], src) }

// Read implements backend.Backend.
func (b *Backend) Read(dst []float32, src backend.Buffer, off int) { copy(dst, Floats(src)[off:]) }

// Embed implements backend.Backend.
func (b *Backend) Embed(dst backend.Buffer, table backend.Weight, s backend.StepBuf) {
	x, w, sb := Floats(dst), matrixOf(table), stepOf(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	if kernelFor(w).decodeRow == nil { // DecodeRows of an unknown type: one goroutine
		d := w.Cols()
		for i, tok := range sb.s.Tokens {
			b.decodeRow(&b.ws[0], x[i*d:(i+1)*d], w, int(tok))
		}
		return
	}
	b.tok = tokJob{dst: x, mat: w, s: sb}
	n := len(sb.s.Tokens)
	b.tokens(n, n >= 4, b.embedRun) // a row's decode and unrotation: microseconds
}

// parValues is how many values a per-token op (RMSNorm, RoPE, StoreKV, Add)
// must touch for it to run on the worker pool: a pool job costs roughly 2 µs on the
// development VM, so the few thousand values of a batched decode step of a
// small model are done sooner by the caller alone; a prefill chunk or a
// large model's step is split.
const parValues = 1 << 14

// tokJob is the per-token op in flight (tokens).
type tokJob struct {
	dst, x, w     []float32
	eps           float32
	mat           tensor.Matrix
	s             *stepBuf
	stride, heads int
	hd            int
	rope          *rope
	kv            *kvStore
	layer         int
	k, v          backend.View
}

// tokens runs fn over tokens [0, n) of the job in b.tok, on the pool when
// par; b.mu must be held.
func (b *Backend) tokens(n int, par bool, fn func(w, lo, hi int)) {
	if par {
		b.parallelFor(n, 1, fn)
	} else {
		fn(0, 0, n)
	}
	b.tok = tokJob{}
}

func (b *Backend) embedWork(worker, lo, hi int) {
	j := &b.tok
	d := j.mat.Cols()
	for i := lo; i < hi; i++ {
		b.decodeRow(&b.ws[worker], j.dst[i*d:(i+1)*d], j.mat, int(j.s.s.Tokens[i]))
	}
}

// RMSNorm implements backend.Backend.
func (b *Backend) RMSNorm(dst, x backend.Buffer, w backend.Weight, eps float32, n int) {
	o, in, wv := Floats(dst), Floats(x), vectorOf(w)
	if n*len(wv) >= parValues {
		b.mu.Lock()
		b.tok = tokJob{dst: o, x: in, w: wv, eps: eps}
		b.tokens(n, true, b.rmsRun)
		b.mu.Unlock()
		return
	}
	d := len(wv)
	for i := range n {
		rmsNorm(b.level, o[i*d:(i+1)*d], in[i*d:(i+1)*d], wv, eps)
	}
}

func (b *Backend) rmsWork(worker, lo, hi int) {
	j := &b.tok
	d := len(j.w)
	for i := lo; i < hi; i++ {
		rmsNorm(b.level, j.dst[i*d:(i+1)*d], j.x[i*d:(i+1)*d], j.w, j.eps)
	}
}

// RMSNormOut implements backend.Backend.
func (b *Backend) RMSNormOut(dst, x backend.Buffer, w backend.Weight, eps float32, s backend.StepBuf) {
	o, in, wv := Floats(dst), Floats(x), vectorOf(w)
	d := len(wv)
	for j, i := range stepOf(s).s.Out {
		rmsNorm(b.level, o[j*d:(j+1)*d], in[int(i)*d:(int(i)+1)*d], wv, eps)
	}
}

// MatMul implements backend.Backend.
func (b *Backend) MatMul(dst, x backend.Buffer, w backend.Weight, n int) {
	b.MatMulF32(Floats(dst), Floats(x), matrixOf(w), n)
}

// AddBias implements backend.Backend.
func (b *Backend) AddBias(x backend.Buffer, bias backend.Weight, n int) {
	xs, bv := Floats(x), vectorOf(bias)
	d := len(bv)
	for i := range n {
		addTo(xs[i*d:(i+1)*d], bv)
	}
}

// Add implements backend.Backend.
func (b *Backend) Add(dst, src backend.Buffer, n int) {
	d, sr := Floats(dst)[:n], Floats(src)[:n]
	if n < parValues {
		addTo(d, sr)
		return
	}
	b.mu.Lock()
	b.tok = tokJob{dst: d, x: sr}
	b.parallelFor(n, addSpan, b.addRun)
	b.tok = tokJob{}
	b.mu.Unlock()
}

// addSpan is the unit of a parallel Add, in values.
const addSpan = 512

func (b *Backend) addWork(worker, lo, hi int) { addTo(b.tok.dst[lo:hi], b.tok.x[lo:hi]) }

// Rope implements backend.Backend.
func (b *Backend) Rope(x backend.View, heads, headDim int, r backend.Rope, s backend.StepBuf) {
	rp, ok := r.(*rope)
	if !ok {
		panic(fmt.Sprintf("cpu: rope %T does not belong to the CPU backend", r))
	}
	sb := stepOf(s)
	b.mu.Lock()
	b.tok = tokJob{x: view(x), stride: x.Stride, heads: heads, hd: headDim, rope: rp, s: sb}
	b.tokens(sb.N(), sb.N()*heads*headDim >= parValues, b.ropeRun)
	b.mu.Unlock()
}

func (b *Backend) ropeWork(worker, lo, hi int) {
	j := &b.tok
	for i := lo; i < hi; i++ {
		j.rope.apply(j.x[i*j.stride:i*j.stride+j.heads*j.hd], j.heads, j.hd, int(j.s.s.Pos[i]))
	}
}

// StoreKV implements backend.Backend.
func (b *Backend) StoreKV(kv backend.KV, layer int, k, v backend.View, s backend.StepBuf) {
	sb := stepOf(s)
	b.mu.Lock()
	b.tok = tokJob{kv: kvOf(kv), layer: layer, k: k, v: v, s: sb}
	b.tokens(sb.N(), 2*sb.N()*kvOf(kv).spec.KVHeads*kvOf(kv).spec.HeadDim >= parValues, b.storeRun)
	b.mu.Unlock()
}

func (b *Backend) storeWork(worker, lo, hi int) {
	j := &b.tok
	st, layer, k, v := j.kv, j.layer, j.k, j.v
	sp := st.spec
	H, hd, bs := sp.KVHeads, sp.HeadDim, sp.BlockSize
	G := backend.KVQ8Groups(hd)
	ks, vs := view(k), view(v)
	for i := lo; i < hi; i++ {
		slot := j.s.s.Slot[i]
		blk, off := int(slot)/bs, int(slot)%bs
		for h := 0; h < H; h++ {
			row := (blk*H+h)*bs + off
			dst := row * hd
			kr := ks[i*k.Stride+h*hd : i*k.Stride+(h+1)*hd]
			vr := vs[i*v.Stride+h*hd : i*v.Stride+(h+1)*hd]
			switch {
			case st.k16 != nil:
				tensor.F32ToF16s(st.k16[layer][dst:dst+hd], kr)
				tensor.F32ToF16s(st.v16[layer][dst:dst+hd], vr)
			case st.k8 != nil:
				quantQ8(st.k8[layer][dst:dst+hd], st.ks8[layer][row*G:(row+1)*G], kr)
				quantQ8(st.v8[layer][dst:dst+hd], st.vs8[layer][row*G:(row+1)*G], vr)
			default:
				copy(st.k[layer][dst:dst+hd], kr)
				copy(st.v[layer][dst:dst+hd], vr)
			}
		}
	}
}

// CopyKVBlock implements backend.Backend.
func (b *Backend) CopyKVBlock(kv backend.KV, dst, src int) {
	st := kvOf(kv)
	sp := st.spec
	per := sp.KVHeads * sp.BlockSize * sp.HeadDim
	rows := sp.KVHeads * sp.BlockSize * backend.KVQ8Groups(sp.HeadDim) // scales per block
	for l := 0; l < sp.Layers; l++ {
		switch {
		case st.k16 != nil:
			copy(st.k16[l][dst*per:(dst+1)*per], st.k16[l][src*per:(src+1)*per])
			copy(st.v16[l][dst*per:(dst+1)*per], st.v16[l][src*per:(src+1)*per])
		case st.k8 != nil:
			copy(st.k8[l][dst*per:(dst+1)*per], st.k8[l][src*per:(src+1)*per])
			copy(st.v8[l][dst*per:(dst+1)*per], st.v8[l][src*per:(src+1)*per])
			copy(st.ks8[l][dst*rows:(dst+1)*rows], st.ks8[l][src*rows:(src+1)*rows])
			copy(st.vs8[l][dst*rows:(dst+1)*rows], st.vs8[l][src*rows:(src+1)*rows])
		default:
			copy(st.k[l][dst*per:(dst+1)*per], st.k[l][src*per:(src+1)*per])
			copy(st.v[l][dst*per:(dst+1)*per], st.v[l][src*per:(src+1)*per])
		}
	}
}

// attnJob is the attention call in flight.
type attnJob struct {
	dst   []float32
	q     []float32
	qs    int // q row stride
	heads int
	scale float32
	kv    *kvStore
	layer int
	s     *stepBuf
	ps    int // stride of a query head's scores
}

// Attention implements backend.Backend. The work is split into (token, KV
// head) units, each handling the query heads that share that KV head so
// that every cached key and value row is loaded once for all of them;
// units are ordered KV head first so that a worker's contiguous share has
// a mix of short and long (causal) rows. Each worker keeps its scores in
// its own slice of b.prob and its softmax normalisers in b.inv.
func (b *Backend) Attention(dst backend.Buffer, q backend.View, heads int, scale float32, kv backend.KV, layer int, s backend.StepBuf) {
	st, sb := kvOf(kv), stepOf(s)
	n := sb.N()
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	group := heads / st.spec.KVHeads
	// Scores of a query head are ps apart: room for every position a
	// sequence of this context can reach, so the scratch never regrows.
	ps := sb.lim.BlocksPerSeq * st.spec.BlockSize
	b.attn = attnJob{dst: Floats(dst), q: view(q), qs: q.Stride, heads: heads, scale: scale, kv: st, layer: layer, s: sb, ps: ps}
	units := n * st.spec.KVHeads
	workers := 1
	if units > 1 {
		workers = b.threads
	}
	b.prob = growF(b.prob, workers*group*ps)
	b.inv = growF(b.inv, workers*group)
	if workers > 1 {
		b.parallelFor(units, 1, b.attnRun)
	} else {
		b.attnWork(0, 0, units)
	}
	b.attn = attnJob{}
}

// attnWork computes the (token, KV head) units [lo, hi) of the attention
// call; unit p is token p%n, KV head p/n.
func (b *Backend) attnWork(worker, lo, hi int) {
	a := &b.attn
	sp := a.kv.spec
	lv := b.level
	n := a.s.N()
	hd, bs, H := sp.HeadDim, sp.BlockSize, sp.KVHeads
	qd := a.heads * hd
	group := a.heads / H
	G := backend.KVQ8Groups(hd)
	maxT := a.ps
	prob := b.prob[worker*group*maxT : (worker+1)*group*maxT]
	inv := b.inv[worker*group : (worker+1)*group]
	for p := lo; p < hi; p++ {
		i, kvh := p%n, p/n
		table := a.s.s.Tables[a.s.s.Seq[i]]
		q := a.q[i*a.qs+kvh*group*hd : i*a.qs+(kvh+1)*group*hd] // the group's query heads
		att := a.dst[i*qd+kvh*group*hd : i*qd+(kvh+1)*group*hd]
		T := int(a.s.s.Pos[i]) + 1
		for t := 0; t < T; t += bs {
			cnt, off := min(bs, T-t), (int(table[t/bs])*H+kvh)*bs*hd
			switch {
			case a.kv.k16 != nil:
				attnScoresF16(lv, prob[t:], maxT, q, a.kv.k16[a.layer][off:], hd, cnt, group, hd, a.scale)
			case a.kv.k8 != nil:
				attnScoresQ8(lv, prob[t:], maxT, q, a.kv.k8[a.layer][off:], a.kv.ks8[a.layer][off/hd*G:], cnt, group, hd, a.scale)
			default:
				attnScores(lv, prob[t:], maxT, q, a.kv.k[a.layer][off:], hd, cnt, group, hd, a.scale)
			}
		}
		// Unnormalised probabilities; each head's output is divided by its
		// sum afterwards (a pass over hd values instead of T).
		for g := 0; g < group; g++ {
			inv[g] = 1 / expNorm(lv, prob[g*maxT:g*maxT+T])
		}
		clear(att)
		for t := 0; t < T; t += bs {
			cnt, off := min(bs, T-t), (int(table[t/bs])*H+kvh)*bs*hd
			switch {
			case a.kv.v16 != nil:
				attnValuesF16(lv, att, prob[t:], maxT, a.kv.v16[a.layer][off:], hd, cnt, group, hd)
			case a.kv.v8 != nil:
				attnValuesQ8(lv, att, prob[t:], maxT, a.kv.v8[a.layer][off:], a.kv.vs8[a.layer][off/hd*G:], cnt, group, hd)
			default:
				attnValues(lv, att, prob[t:], maxT, a.kv.v[a.layer][off:], hd, cnt, group, hd)
			}
		}
		for g := 0; g < group; g++ {
			scaleVec(att[g*hd:(g+1)*hd], inv[g])
		}
	}
}

// swiJob is the SwiGLU call in flight.
type swiJob struct {
	dst, gate, up []float32
	gs, us, width int
}

// SwiGLU implements backend.Backend.
func (b *Backend) SwiGLU(dst backend.Buffer, gate, up backend.View, width, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.swi = swiJob{dst: Floats(dst), gate: view(gate), up: view(up), gs: gate.Stride, us: up.Stride, width: width}
	b.parallelFor(n*width, 64, b.swiRun)
	b.swi = swiJob{}
}

// swigluWork computes the flattened (token, feature) indices [lo, hi) of
// the SwiGLU call in flight.
func (b *Backend) swigluWork(worker, lo, hi int) {
	j := &b.swi
	f := j.width
	for k := lo; k < hi; {
		i, c := k/f, k%f
		e := min(hi, (i+1)*f) - i*f // end feature in this token
		swiglu(b.level, j.dst[i*f+c:i*f+e], j.gate[i*j.gs+c:i*j.gs+e], j.up[i*j.us+c:i*j.us+e])
		k = i*f + e
	}
}

// Sample implements backend.Backend: on the CPU, sampling runs on the host
// with each sequence's own sampler.
func (b *Backend) Sample(logits backend.Buffer, vocab int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	l := Floats(logits)
	if len(res) < len(reqs) || len(reqs)*vocab > len(l) {
		return fmt.Errorf("cpu: %d sample requests for %d logits rows of %d and %d results", len(reqs), len(l)/max(vocab, 1), vocab, len(res))
	}
	for i, r := range reqs {
		row := l[i*vocab : (i+1)*vocab]
		tok := r.Sampler.Sample(row, r.History)
		res[i] = backend.SampleResult{Token: tok, Top: res[i].Top[:0]}
		if r.TopLogprobs >= 0 {
			res[i].Logprob, res[i].Top = backend.Logprobs(row, tok, r.TopLogprobs, res[i].Top)
		}
	}
	return nil
}

// decodeRow writes row r of w into dst (len ≥ w.Cols()) without allocating
// for the encodings this backend knows; b.mu must be held.
func (b *Backend) decodeRow(ws *workerState, dst []float32, w tensor.Matrix, r int) {
	if k := kernelFor(w); k.decodeRow != nil {
		k.decodeRow(b, ws, dst, w, r)
		return
	}
	w.DecodeRows(dst[:w.Cols()], r, r+1)
}

// attnScoresGo is the portable attnScores.
func attnScoresGo(lv Level, prob []float32, ps int, q, k []float32, ks, n, group, hd int, scale float32) {
	for t := 0; t < n; t++ {
		kt := k[t*ks : t*ks+hd]
		for g := 0; g < group; g++ {
			prob[g*ps+t] = dot(lv, q[g*hd:(g+1)*hd], kt) * scale
		}
	}
}

// attnValuesGo is the portable attnValues.
func attnValuesGo(lv Level, att, prob []float32, ps int, v []float32, vs, n, group, hd int) {
	for t := 0; t < n; t++ {
		vt := v[t*vs : t*vs+hd]
		for g := 0; g < group; g++ {
			axpy(lv, att[g*hd:(g+1)*hd], prob[g*ps+t], vt)
		}
	}
}

// attnScoresF16Go is attnScoresGo over fp16 keys.
func attnScoresF16Go(prob []float32, ps int, q []float32, k []uint16, ks, n, group, hd int, scale float32) {
	for t := 0; t < n; t++ {
		kt := k[t*ks : t*ks+hd]
		for g := 0; g < group; g++ {
			qg := q[g*hd : (g+1)*hd]
			var s float32
			for i, h := range kt {
				s += qg[i] * tensor.F16ToF32(h)
			}
			prob[g*ps+t] = s * scale
		}
	}
}

// attnValuesF16Go is attnValuesGo over fp16 values.
func attnValuesF16Go(att, prob []float32, ps int, v []uint16, vs, n, group, hd int) {
	for t := 0; t < n; t++ {
		vt := v[t*vs : t*vs+hd]
		for g := 0; g < group; g++ {
			p, ag := prob[g*ps+t], att[g*hd:(g+1)*hd]
			for i, h := range vt {
				ag[i] += p * tensor.F16ToF32(h)
			}
		}
	}
}
