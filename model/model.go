package model

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/tensor"
)

// Batch is a set of tokens to run through the model together, possibly from
// several sequences (as in llama.cpp's llama_batch). Token i of sequence
// Seq[i] sits at position Pos[i]; positions of a sequence must continue what
// the cache already holds for it, in order.
type Batch struct {
	Tokens []int
	Pos    []int
	Seq    []int
	// Logits marks the tokens whose next-token logits are wanted; nil means
	// only the last token.
	Logits []bool
}

// Model is a loaded transformer ready to run.
type Model struct {
	Config  Config
	Weights *Weights
	be      backend.Backend
	rope    ropeTable
	buf     buffers
	attn    attnJob                  // the attention call in flight
	attnRun func(worker, lo, hi int) // m.attnWork, bound once so calls do not allocate
	swiN    int                      // tokens of the SwiGLU call in flight
	swiFuse bool                     // its input is the fused gate_up output
	swiRun  func(worker, lo, hi int) // m.swigluWork
}

// parallelBackend is implemented by backends that can run Go work on their
// worker pool (the CPU backend); attention is then split across heads.
type parallelBackend interface {
	ParallelFor(n, align int, fn func(worker, lo, hi int))
	Threads() int
}

// rowDecoder is implemented by backends that decode one matrix row without
// allocating (embedding lookups of compressed tables).
type rowDecoder interface {
	DecodeRow(dst []float32, w tensor.Matrix, r int)
}

type attnJob struct {
	li    int
	b     *Batch
	cache kvcache.Cache
	maxT  int
}

// New binds a configuration, its weights and a backend.
func New(c *Config, w *Weights, be backend.Backend) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: *c, Weights: w, be: be}
	m.rope.init(c)
	m.attnRun = m.attnWork
	m.swiRun = m.swigluWork
	return m, nil
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() backend.Backend { return m.be }

// buffers are the activations of one forward pass, reused across calls so
// that decoding allocates nothing after warm-up.
type buffers struct {
	n                      int
	x, h, q, k, v, qkv     []float32
	att, o, gu, gate, up   []float32
	logitsIn, logits, prob []float32
	inv                    []float32 // attention's per-head softmax normalisers
	outRows                []int
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func (b *buffers) ensure(c *Config, n, nOut int) {
	d, q, kv, f := c.Hidden, c.QDim(), c.KVDim(), c.FFN
	b.x = grow(b.x, n*d)
	b.h = grow(b.h, n*d)
	b.q = grow(b.q, n*q)
	b.k = grow(b.k, n*kv)
	b.v = grow(b.v, n*kv)
	b.qkv = grow(b.qkv, n*(q+2*kv))
	b.att = grow(b.att, n*q)
	b.o = grow(b.o, n*d)
	b.gu = grow(b.gu, n*2*f)
	b.gate = grow(b.gate, n*f)
	b.up = grow(b.up, n*f)
	b.logitsIn = grow(b.logitsIn, nOut*d)
	b.logits = grow(b.logits, nOut*c.Vocab)
}

// Forward runs the batch through the model, stores every token's keys and
// values in cache, and returns the logits of the tokens marked in
// b.Logits, one row of Config.Vocab values each, in batch order. The
// returned slice is reused by the next call.
func (m *Model) Forward(b *Batch, cache kvcache.Cache) ([]float32, error) {
	c := &m.Config
	n := len(b.Tokens)
	if n == 0 {
		return nil, nil
	}
	if len(b.Pos) != n || len(b.Seq) != n || (b.Logits != nil && len(b.Logits) != n) {
		return nil, fmt.Errorf("model: batch of %d tokens has %d positions, %d sequence ids, %d logit flags", n, len(b.Pos), len(b.Seq), len(b.Logits))
	}
	nOut := 0
	for i := range n {
		if b.Tokens[i] < 0 || b.Tokens[i] >= c.Vocab {
			return nil, fmt.Errorf("model: token id %d out of range [0, %d)", b.Tokens[i], c.Vocab)
		}
		if b.Pos[i] < 0 || b.Pos[i] >= cache.Capacity() {
			return nil, fmt.Errorf("model: position %d is outside the context window of %d tokens", b.Pos[i], cache.Capacity())
		}
		if b.Logits == nil && i == n-1 || b.Logits != nil && b.Logits[i] {
			nOut++
		}
	}
	m.rope.ensure(cache.Capacity())
	bf := &m.buf
	bf.ensure(c, n, nOut)
	d := c.Hidden

	m.Embed(bf.x, b.Tokens)
	for li := range m.Weights.Layers {
		if err := m.layer(li, b, cache, nil); err != nil {
			return nil, err
		}
	}
	// Final norm and output head for the requested tokens only.
	j := 0
	for i := range n {
		if b.Logits == nil && i == n-1 || b.Logits != nil && b.Logits[i] {
			rmsNorm(bf.logitsIn[j*d:(j+1)*d], bf.x[i*d:(i+1)*d], m.Weights.Norm, float32(c.NormEps))
			j++
		}
	}
	m.be.MatMul(bf.logits, bf.logitsIn, m.Weights.Output, nOut)
	return bf.logits, nil
}

// TapPoint names the input of a layer's projections, observed by a Tap.
type TapPoint int

const (
	TapAttnIn TapPoint = iota // normed input of the q/k/v projections
	TapOIn                    // attention output, input of o_proj
	TapFFNIn                  // normed input of the gate/up projections
	TapDownIn                 // SwiGLU output, input of down_proj
)

// Tap observes the n×cols activations entering a layer's projections (used
// by the compressor to collect calibration statistics).
type Tap func(point TapPoint, act []float32, n int)

// Embed writes the embeddings of tokens into x (len(tokens) × hidden).
func (m *Model) Embed(x []float32, tokens []int) {
	d := m.Config.Hidden
	rd, fast := m.be.(rowDecoder)
	for i, tok := range tokens {
		if fast {
			rd.DecodeRow(x[i*d:(i+1)*d], m.Weights.Embed, tok)
		} else {
			m.Weights.Embed.DecodeRows(x[i*d:(i+1)*d], tok, tok+1)
		}
	}
}

// RunLayer applies layer li to the hidden states x (len(b.Tokens) × hidden,
// updated in place), storing keys and values in cache and reporting the
// projections' inputs to tap when it is not nil.
func (m *Model) RunLayer(li int, x []float32, b *Batch, cache kvcache.Cache, tap Tap) error {
	n := len(b.Tokens)
	m.rope.ensure(cache.Capacity())
	m.buf.ensure(&m.Config, n, 0)
	d := m.Config.Hidden
	copy(m.buf.x[:n*d], x)
	if err := m.layer(li, b, cache, tap); err != nil {
		return err
	}
	copy(x, m.buf.x[:n*d])
	return nil
}

func (m *Model) layer(li int, b *Batch, cache kvcache.Cache, tap Tap) error {
	c := &m.Config
	l := &m.Weights.Layers[li]
	bf := &m.buf
	n := len(b.Tokens)
	d, qd, kvd, f := c.Hidden, c.QDim(), c.KVDim(), c.FFN
	eps := float32(c.NormEps)

	// Attention block.
	for i := range n {
		rmsNorm(bf.h[i*d:(i+1)*d], bf.x[i*d:(i+1)*d], l.AttnNorm, eps)
	}
	if tap != nil {
		tap(TapAttnIn, bf.h[:n*d], n)
	}
	if l.QKV != nil {
		m.be.MatMul(bf.qkv, bf.h, l.QKV, n)
		w := qd + 2*kvd
		for i := range n {
			row := bf.qkv[i*w : (i+1)*w]
			copy(bf.q[i*qd:(i+1)*qd], row[:qd])
			copy(bf.k[i*kvd:(i+1)*kvd], row[qd:qd+kvd])
			copy(bf.v[i*kvd:(i+1)*kvd], row[qd+kvd:])
		}
	} else {
		m.be.MatMul(bf.q, bf.h, l.Q, n)
		m.be.MatMul(bf.k, bf.h, l.K, n)
		m.be.MatMul(bf.v, bf.h, l.V, n)
	}
	for i := range n {
		q, k, v := bf.q[i*qd:(i+1)*qd], bf.k[i*kvd:(i+1)*kvd], bf.v[i*kvd:(i+1)*kvd]
		if l.QBias != nil {
			addTo(q, l.QBias)
			addTo(k, l.KBias)
			addTo(v, l.VBias)
		}
		m.rope.apply(q, c.Heads, b.Pos[i])
		m.rope.apply(k, c.KVHeads, b.Pos[i])
		if err := cache.Store(b.Seq[i], li, b.Pos[i], k, v); err != nil {
			return fmt.Errorf("model: layer %d: %w", li, err)
		}
	}
	m.attention(li, b, cache)
	if tap != nil {
		tap(TapOIn, bf.att[:n*qd], n)
	}
	m.be.MatMul(bf.o, bf.att, l.O, n)
	addTo(bf.x[:n*d], bf.o[:n*d])

	// Feed-forward block (SwiGLU).
	for i := range n {
		rmsNorm(bf.h[i*d:(i+1)*d], bf.x[i*d:(i+1)*d], l.FFNNorm, eps)
	}
	if tap != nil {
		tap(TapFFNIn, bf.h[:n*d], n)
	}
	if l.GateUp != nil {
		m.be.MatMul(bf.gu, bf.h, l.GateUp, n)
	} else {
		m.be.MatMul(bf.gate, bf.h, l.Gate, n)
		m.be.MatMul(bf.up, bf.h, l.Up, n)
	}
	m.swiN, m.swiFuse = n, l.GateUp != nil
	if pb, ok := m.be.(parallelBackend); ok {
		pb.ParallelFor(n*f, 64, m.swiRun)
	} else {
		m.swigluWork(0, 0, n*f)
	}
	if tap != nil {
		tap(TapDownIn, bf.gate[:n*f], n)
	}
	m.be.MatMul(bf.o, bf.gate, l.Down, n)
	addTo(bf.x[:n*d], bf.o[:n*d])
	return nil
}

// swigluWork computes gate = silu(gate)·up for the flattened (token,
// feature) indices [lo, hi) of the SwiGLU call in flight, reading the fused
// gate_up rows when the layer has them.
func (m *Model) swigluWork(worker, lo, hi int) {
	f := m.Config.FFN
	bf := &m.buf
	for k := lo; k < hi; {
		i, c := k/f, k%f
		e := min(hi, (i+1)*f) - i*f // end feature in this token
		if m.swiFuse {
			row := bf.gu[i*2*f : (i+1)*2*f]
			swiglu(bf.gate[i*f+c:i*f+e], row[c:e], row[f+c:f+e])
		} else {
			swiglu(bf.gate[i*f+c:i*f+e], bf.gate[i*f+c:i*f+e], bf.up[i*f+c:i*f+e])
		}
		k = i*f + e
	}
}

// attention computes softmax(q·kᵀ/√d)·v for every token and head over the
// cached positions 0..pos of the token's sequence (causal by construction).
// The work is split into (token, KV head) units, each handling the query
// heads that share that KV head so that every cached key and value row is
// loaded once for all of them; units are ordered KV head first so that a
// worker's contiguous share has a mix of short and long (causal) rows.
// Each worker keeps its scores in its own slice of bf.prob and its
// per-head softmax normalisers in its own slice of bf.inv.
func (m *Model) attention(li int, b *Batch, cache kvcache.Cache) {
	c := &m.Config
	n := len(b.Tokens)
	maxT := 0
	for i := range n {
		maxT = max(maxT, b.Pos[i]+1)
	}
	maxT = max(maxT, cache.Capacity())
	group := c.Heads / c.KVHeads
	m.attn = attnJob{li: li, b: b, cache: cache, maxT: maxT}
	if pb, ok := m.be.(parallelBackend); ok && n*c.KVHeads > 1 {
		m.buf.prob = grow(m.buf.prob, pb.Threads()*group*maxT)
		m.buf.inv = grow(m.buf.inv, pb.Threads()*group)
		pb.ParallelFor(n*c.KVHeads, 1, m.attnRun)
	} else {
		m.buf.prob = grow(m.buf.prob, group*maxT)
		m.buf.inv = grow(m.buf.inv, group)
		m.attnWork(0, 0, n*c.KVHeads)
	}
	m.attn = attnJob{}
}

// attnWork computes the (token, KV head) units [lo, hi) of the attention
// call; unit p is token p%n, KV head p/n.
func (m *Model) attnWork(worker, lo, hi int) {
	c := &m.Config
	a := &m.attn
	bf := &m.buf
	n := len(a.b.Tokens)
	hd, qd := c.HeadDim, c.QDim()
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	prob := bf.prob[worker*group*a.maxT : (worker+1)*group*a.maxT]
	inv := bf.inv[worker*group : (worker+1)*group]
	for p := lo; p < hi; p++ {
		i, kvh := p%n, p/n
		seq, pos := a.b.Seq[i], a.b.Pos[i]
		q := bf.q[i*qd+kvh*group*hd : i*qd+(kvh+1)*group*hd] // the group's query heads
		att := bf.att[i*qd+kvh*group*hd : i*qd+(kvh+1)*group*hd]
		T := pos + 1
		for t := 0; t < T; {
			sp := a.cache.Span(seq, a.li, t)
			cnt, off := min(sp.N, T-t), kvh*sp.HeadStride
			if sp.K16 != nil {
				attnScoresF16(prob[t:], a.maxT, q, sp.K16[off:], sp.RowStride, cnt, group, hd, scale)
			} else {
				attnScores(prob[t:], a.maxT, q, sp.K[off:], sp.RowStride, cnt, group, hd, scale)
			}
			t += cnt
		}
		// Unnormalised probabilities; each head's output is divided by its
		// sum afterwards (a pass over hd values instead of T).
		for g := 0; g < group; g++ {
			inv[g] = 1 / expNorm(prob[g*a.maxT:g*a.maxT+T])
		}
		clear(att)
		for t := 0; t < T; {
			sp := a.cache.Span(seq, a.li, t)
			cnt, off := min(sp.N, T-t), kvh*sp.HeadStride
			if sp.V16 != nil {
				attnValuesF16(att, prob[t:], a.maxT, sp.V16[off:], sp.RowStride, cnt, group, hd)
			} else {
				attnValues(att, prob[t:], a.maxT, sp.V[off:], sp.RowStride, cnt, group, hd)
			}
			t += cnt
		}
		for g := 0; g < group; g++ {
			scaleVec(att[g*hd:(g+1)*hd], inv[g])
		}
	}
}

// attnScoresGo is the portable attnScores.
func attnScoresGo(prob []float32, ps int, q, k []float32, ks, n, group, hd int, scale float32) {
	for t := 0; t < n; t++ {
		kt := k[t*ks : t*ks+hd]
		for g := 0; g < group; g++ {
			prob[g*ps+t] = dot(q[g*hd:(g+1)*hd], kt) * scale
		}
	}
}

// attnValuesGo is the portable attnValues.
func attnValuesGo(att, prob []float32, ps int, v []float32, vs, n, group, hd int) {
	for t := 0; t < n; t++ {
		vt := v[t*vs : t*vs+hd]
		for g := 0; g < group; g++ {
			axpy(att[g*hd:(g+1)*hd], prob[g*ps+t], vt)
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
