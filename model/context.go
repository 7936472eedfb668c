package model

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/backend"
)

// ContextOptions size a Context.
type ContextOptions struct {
	MaxTokens int // the most tokens one step carries
	MaxOut    int // the most logits rows one step returns (0 = MaxTokens)
	MaxSeqs   int // the most sequences one step carries (0 = MaxTokens)
	Positions int // the most positions a sequence may reach
	BlockSize int // KV block size of the caches the context runs over
}

// Context holds the activations and scratch of forward passes over a
// Model: everything that changes while a step runs. Use one Context per
// goroutine; several may run over one Model at once.
type Context struct {
	m    *Model
	be   backend.Backend
	opts ContextOptions

	x, h, qkv, q, k, v, att, o backend.Buffer
	gu, gate, up, act          backend.Buffer
	logitsIn, logits           backend.Buffer
	step                       backend.StepBuf
	rope                       backend.Rope
	nOut                       int
	host                       []float32 // logits read back
	tapBuf                     []float32 // activations read back for a Tap
}

// NewContext allocates a context's buffers on the model's backend.
func (m *Model) NewContext(o ContextOptions) (*Context, error) {
	if o.MaxTokens <= 0 || o.Positions <= 0 || o.BlockSize <= 0 {
		return nil, fmt.Errorf("model: invalid context options %+v", o)
	}
	if o.MaxOut <= 0 || o.MaxOut > o.MaxTokens {
		o.MaxOut = o.MaxTokens
	}
	if o.MaxSeqs <= 0 || o.MaxSeqs > o.MaxTokens {
		o.MaxSeqs = o.MaxTokens
	}
	c := &m.Config
	n, d, qd, kvd, f := o.MaxTokens, c.Hidden, c.QDim(), c.KVDim(), c.FFN
	ctx := &Context{m: m, be: m.be, opts: o}
	var err error
	buf := func(size int) backend.Buffer {
		if err != nil {
			return nil
		}
		b, e := m.be.NewBuffer(size)
		if e != nil {
			err = e
		}
		return b
	}
	ctx.x, ctx.h, ctx.att, ctx.o = buf(n*d), buf(n*d), buf(n*qd), buf(n*d)
	if m.fusedQKV {
		ctx.qkv = buf(n * (qd + 2*kvd))
	} else {
		ctx.q, ctx.k, ctx.v = buf(n*qd), buf(n*kvd), buf(n*kvd)
	}
	if m.fusedGateUp {
		ctx.gu = buf(n * 2 * f)
	} else {
		ctx.gate, ctx.up = buf(n*f), buf(n*f)
	}
	ctx.act = buf(n * f)
	ctx.logitsIn, ctx.logits = buf(o.MaxOut*d), buf(o.MaxOut*c.Vocab)
	if err != nil {
		return nil, fmt.Errorf("model: context buffers on %s: %w", m.be.Name(), err)
	}
	blocks := (o.Positions + o.BlockSize - 1) / o.BlockSize
	if ctx.step, err = m.be.NewStep(backend.StepLimits{Tokens: n, Seqs: o.MaxSeqs, BlocksPerSeq: blocks}); err != nil {
		return nil, err
	}
	if ctx.rope, err = m.be.NewRope(m.RopeSpec(o.Positions)); err != nil {
		return nil, err
	}
	return ctx, nil
}

// Model is the model the context runs.
func (ctx *Context) Model() *Model { return ctx.m }

// Options are the context's sizes.
func (ctx *Context) Options() ContextOptions { return ctx.opts }

// Forward runs the step's tokens through the model, storing their keys and
// values in kv, and computes the logits of the tokens in s.Out (kept on
// the backend: see Logits, ReadLogits, Sample). A step that does not fit
// the context or disagrees with itself is an error, before anything is
// written.
func (ctx *Context) Forward(s *backend.Step, kv backend.KV) error {
	if err := ctx.setStep(s, kv); err != nil {
		return err
	}
	if len(s.Out) > ctx.opts.MaxOut {
		return fmt.Errorf("model: step asks for %d logits rows, the context holds %d", len(s.Out), ctx.opts.MaxOut)
	}
	be, dw, c := ctx.be, &ctx.m.dev, &ctx.m.Config
	be.Embed(ctx.x, dw.embed, ctx.step)
	for li := range dw.layers {
		ctx.layer(li, len(s.Tokens), kv, li, nil)
	}
	ctx.nOut = len(s.Out)
	if ctx.nOut > 0 {
		be.RMSNormOut(ctx.logitsIn, ctx.x, dw.norm, float32(c.NormEps), ctx.step)
		be.MatMul(ctx.logits, ctx.logitsIn, dw.output, ctx.nOut)
	}
	return nil
}

func (ctx *Context) setStep(s *backend.Step, kv backend.KV) error {
	if len(s.Tokens) == 0 {
		return fmt.Errorf("model: empty step")
	}
	if len(s.Tokens) > ctx.opts.MaxTokens {
		return fmt.Errorf("model: step of %d tokens, the context holds %d", len(s.Tokens), ctx.opts.MaxTokens)
	}
	spec := kv.Spec()
	c := &ctx.m.Config
	if spec.KVHeads != c.KVHeads || spec.HeadDim != c.HeadDim || spec.BlockSize != ctx.opts.BlockSize {
		return fmt.Errorf("model: KV cache of %d heads × %d in blocks of %d does not fit this context (%d × %d, blocks of %d)",
			spec.KVHeads, spec.HeadDim, spec.BlockSize, c.KVHeads, c.HeadDim, ctx.opts.BlockSize)
	}
	if err := s.Validate(spec, c.Vocab); err != nil {
		return err
	}
	for _, p := range s.Pos {
		if int(p) >= ctx.opts.Positions {
			return fmt.Errorf("model: position %d is outside the context window of %d tokens", p, ctx.opts.Positions)
		}
	}
	return ctx.be.SetStep(ctx.step, s)
}

// Logits is the backend buffer of the last Forward's logits rows.
func (ctx *Context) Logits() backend.Buffer { return ctx.logits }

// ReadLogits copies the last Forward's logits to the host: one row of
// Config.Vocab values per entry of the step's Out. The slice is reused by
// the next call.
func (ctx *Context) ReadLogits() []float32 {
	n := ctx.nOut * ctx.m.Config.Vocab
	if cap(ctx.host) < n {
		ctx.host = make([]float32, n)
	}
	ctx.host = ctx.host[:n]
	ctx.be.Read(ctx.host, ctx.logits, 0)
	return ctx.host
}

// Sample samples a token from each logits row of the last Forward, row i
// for reqs[i].
func (ctx *Context) Sample(reqs []backend.SampleRequest, res []backend.SampleResult) error {
	if len(reqs) > ctx.nOut {
		return fmt.Errorf("model: %d sample requests for %d logits rows", len(reqs), ctx.nOut)
	}
	return ctx.be.Sample(ctx.logits, ctx.m.Config.Vocab, reqs, res)
}

// RunLayer applies layer li to the host hidden states x (len(s.Tokens) ×
// hidden, updated in place), storing keys and values in layer kvLayer of
// kv and reporting the projections' inputs to tap when it is not nil: the
// compressor's entry point.
func (ctx *Context) RunLayer(li int, x []float32, s *backend.Step, kv backend.KV, kvLayer int, tap Tap) error {
	if err := ctx.setStep(s, kv); err != nil {
		return err
	}
	n, d := len(s.Tokens), ctx.m.Config.Hidden
	ctx.be.Write(ctx.x, 0, x[:n*d])
	ctx.layer(li, n, kv, kvLayer, tap)
	ctx.be.Read(x[:n*d], ctx.x, 0)
	return nil
}

// FinalNorm applies the output RMSNorm to n host hidden states (the input
// of the output head); n ≤ the context's MaxTokens.
func (ctx *Context) FinalNorm(dst, x []float32, n int) {
	d := ctx.m.Config.Hidden
	ctx.be.Write(ctx.h, 0, x[:n*d])
	ctx.be.RMSNorm(ctx.o, ctx.h, ctx.m.dev.norm, float32(ctx.m.Config.NormEps), n)
	ctx.be.Read(dst[:n*d], ctx.o, 0)
}

func (ctx *Context) tap(tap Tap, p TapPoint, b backend.Buffer, n, cols int) {
	if tap == nil {
		return
	}
	if cap(ctx.tapBuf) < n*cols {
		ctx.tapBuf = make([]float32, n*cols)
	}
	a := ctx.tapBuf[:n*cols]
	ctx.be.Read(a, b, 0)
	tap(p, a, n)
}

// layer runs decoder layer li over the n tokens of the step in ctx.x.
func (ctx *Context) layer(li, n int, kv backend.KV, kvLayer int, tap Tap) {
	be, c := ctx.be, &ctx.m.Config
	l := &ctx.m.dev.layers[li]
	d, qd, kvd, f := c.Hidden, c.QDim(), c.KVDim(), c.FFN
	eps := float32(c.NormEps)

	// Attention block.
	be.RMSNorm(ctx.h, ctx.x, l.attnNorm, eps, n)
	ctx.tap(tap, TapAttnIn, ctx.h, n, d)
	var q, k, v backend.View
	if l.qkv != nil {
		be.MatMul(ctx.qkv, ctx.h, l.qkv, n)
		w := qd + 2*kvd
		q = backend.View{Buf: ctx.qkv, Stride: w}
		k = backend.View{Buf: ctx.qkv, Off: qd, Stride: w}
		v = backend.View{Buf: ctx.qkv, Off: qd + kvd, Stride: w}
	} else {
		be.MatMul(ctx.q, ctx.h, l.q, n)
		be.MatMul(ctx.k, ctx.h, l.k, n)
		be.MatMul(ctx.v, ctx.h, l.v, n)
		if l.qb != nil {
			be.AddBias(ctx.q, l.qb, n)
			be.AddBias(ctx.k, l.kb, n)
			be.AddBias(ctx.v, l.vb, n)
		}
		q, k, v = backend.Whole(ctx.q, qd), backend.Whole(ctx.k, kvd), backend.Whole(ctx.v, kvd)
	}
	be.Rope(q, c.Heads, c.HeadDim, ctx.rope, ctx.step)
	be.Rope(k, c.KVHeads, c.HeadDim, ctx.rope, ctx.step)
	be.StoreKV(kv, kvLayer, k, v, ctx.step)
	be.Attention(ctx.att, q, c.Heads, float32(1/math.Sqrt(float64(c.HeadDim))), kv, kvLayer, ctx.step)
	ctx.tap(tap, TapOIn, ctx.att, n, qd)
	be.MatMul(ctx.o, ctx.att, l.o, n)
	be.Add(ctx.x, ctx.o, n*d)

	// Feed-forward block (SwiGLU).
	be.RMSNorm(ctx.h, ctx.x, l.ffnNorm, eps, n)
	ctx.tap(tap, TapFFNIn, ctx.h, n, d)
	if l.gateUp != nil {
		be.MatMul(ctx.gu, ctx.h, l.gateUp, n)
		be.SwiGLU(ctx.act, backend.View{Buf: ctx.gu, Stride: 2 * f}, backend.View{Buf: ctx.gu, Off: f, Stride: 2 * f}, f, n)
	} else {
		be.MatMul(ctx.gate, ctx.h, l.gate, n)
		be.MatMul(ctx.up, ctx.h, l.up, n)
		be.SwiGLU(ctx.act, backend.Whole(ctx.gate, f), backend.Whole(ctx.up, f), f, n)
	}
	ctx.tap(tap, TapDownIn, ctx.act, n, f)
	be.MatMul(ctx.o, ctx.act, l.down, n)
	be.Add(ctx.x, ctx.o, n*d)
}
