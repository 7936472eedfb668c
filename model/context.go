package model

import (
	"fmt"
	"log/slog"
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
	be   backend.Backend // the last stage's: logits and sampling
	opts ContextOptions

	st               []ctxStage // per model stage
	logitsIn, logits backend.Buffer
	nOut             int
	host             []float32 // logits read back
	// whole is the backend's whole one-token step over this context
	// (backend.WholeStepper), bound at the first one-token Forward of
	// the model's weight generation wholeGen; nil where it does not apply
	whole      backend.WholeStep
	wholeGen   int
	wholeTried bool
	tapBuf     []float32 // activations read back for a Tap
	cross      []float32 // a split model's hidden state between stages
}

// ctxStage is a context's memory on one stage's backend: the layer
// buffers, the step metadata and the rotary tables.
type ctxStage struct {
	be                         backend.Backend
	x, h, qkv, q, k, v, att, o backend.Buffer
	gu, gate, up, act          backend.Buffer
	step                       backend.StepBuf
	rope                       backend.Rope
}

// NewContext allocates a context's buffers on the model's backends.
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
	ctx := &Context{m: m, be: m.be, opts: o, st: make([]ctxStage, len(m.stages))}
	var err error
	var be backend.Backend
	buf := func(size int) backend.Buffer {
		if err != nil {
			return nil
		}
		b, e := be.NewBuffer(size)
		if e != nil {
			err = fmt.Errorf("model: context buffers on %s: %w", be.Name(), e)
		}
		return b
	}
	blocks := (o.Positions + o.BlockSize - 1) / o.BlockSize
	for i := range ctx.st {
		st := &ctx.st[i]
		be = m.stages[i].Backend
		st.be = be
		st.x, st.h, st.att, st.o = buf(n*d), buf(n*d), buf(n*qd), buf(n*d)
		if m.fusedQKV {
			st.qkv = buf(n * (qd + 2*kvd))
		} else {
			st.q, st.k, st.v = buf(n*qd), buf(n*kvd), buf(n*kvd)
		}
		if m.fusedGateUp {
			st.gu = buf(n * 2 * f)
		} else {
			st.gate, st.up = buf(n*f), buf(n*f)
		}
		st.act = buf(n * f)
		if i == len(ctx.st)-1 {
			ctx.logitsIn, ctx.logits = buf(o.MaxOut*d), buf(o.MaxOut*c.Vocab)
		}
		if err != nil {
			return nil, err
		}
		if st.step, err = be.NewStep(backend.StepLimits{Tokens: n, Seqs: o.MaxSeqs, BlocksPerSeq: blocks}); err != nil {
			return nil, err
		}
		if st.rope, err = be.NewRope(m.RopeSpec(o.Positions)); err != nil {
			return nil, err
		}
	}
	if len(ctx.st) > 1 {
		ctx.cross = make([]float32, n*d)
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
// written. A split model's kv is its own (Model.NewKV, through the pool);
// its hidden state crosses to the next stage's backend once, between the
// stages' layers.
func (ctx *Context) Forward(s *backend.Step, kv backend.KV) error {
	if err := ctx.setStep(s, kv, -1); err != nil {
		return err
	}
	if len(s.Out) > ctx.opts.MaxOut {
		return fmt.Errorf("model: step asks for %d logits rows, the context holds %d", len(s.Out), ctx.opts.MaxOut)
	}
	dw, c := &ctx.m.dev, &ctx.m.Config
	n := len(s.Tokens)
	first := &ctx.st[0]
	first.be.Embed(first.x, dw.embed, first.step)
	if n == 1 && len(s.Out) == 1 {
		if w := ctx.wholeStep(); w != nil {
			w.Run(kv, first.step)
			ctx.nOut = 1
			return nil
		}
	}
	for si := range ctx.st {
		st, ms := &ctx.st[si], &ctx.m.stages[si]
		if si > 0 {
			// The hidden state crosses: read after the previous stage's
			// ops, written before this stage's.
			h := ctx.cross[:n*c.Hidden]
			ctx.st[si-1].be.Read(h, ctx.st[si-1].x, 0)
			st.be.Write(st.x, 0, h)
		}
		part, l0, err := ctx.m.kvPart(kv, si, ms.First)
		if err != nil {
			return err
		}
		for li := ms.First; li < ms.End; li++ {
			ctx.layer(st, li, n, part, l0+li-ms.First, nil)
		}
	}
	last := &ctx.st[len(ctx.st)-1]
	ctx.nOut = len(s.Out)
	if ctx.nOut > 0 {
		last.be.RMSNormOut(ctx.logitsIn, last.x, dw.norm, float32(c.NormEps), last.step)
		last.be.MatMul(ctx.logits, ctx.logitsIn, dw.output, ctx.nOut)
	}
	return nil
}

// wholeStep is the backend's whole one-token step over this context, bound
// once per weight generation, or nil: a split model, projections that are
// not fused, biases, or a backend that is not a WholeStepper or does not
// take the model (the per-op calls run then).
func (ctx *Context) wholeStep() backend.WholeStep {
	m := ctx.m
	if ctx.wholeTried && ctx.wholeGen == m.gen {
		return ctx.whole
	}
	if ctx.whole != nil {
		ctx.whole.Close()
		ctx.whole = nil
	}
	ctx.wholeTried, ctx.wholeGen = true, m.gen
	ws, ok := ctx.st[0].be.(backend.WholeStepper)
	if !ok || len(ctx.st) != 1 || !m.fusedQKV || !m.fusedGateUp {
		return nil
	}
	c, dw := &m.Config, &m.dev
	wm := backend.WholeStepModel{Layers: make([]backend.WholeStepLayer, len(dw.layers)), Norm: dw.norm, Output: dw.output,
		Hidden: c.Hidden, FFN: c.FFN, Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		Eps: float32(c.NormEps), Scale: float32(1 / math.Sqrt(float64(c.HeadDim))), Rope: ctx.st[0].rope,
		X: ctx.st[0].x, Logits: ctx.logits}
	for i := range dw.layers {
		l := &dw.layers[i]
		if l.qkv == nil || l.gateUp == nil || l.qb != nil {
			return nil
		}
		wm.Layers[i] = backend.WholeStepLayer{AttnNorm: l.attnNorm, QKV: l.qkv, O: l.o, FFNNorm: l.ffnNorm, GateUp: l.gateUp, Down: l.down}
	}
	w, why := ws.BindWholeStep(wm)
	if w == nil {
		slog.Debug("model: one-token steps run op by op", "backend", ctx.st[0].be.Name(), "why", why)
		return nil
	}
	slog.Info("model: one-token steps run as one whole step", "backend", ctx.st[0].be.Name())
	ctx.whole = w
	return w
}

// setStep validates s against the context and kv and copies it to the
// backend of stage only, or of every stage when only < 0. A split model's
// kv must hold every layer (Model.NewKV) when the step runs all of them.
func (ctx *Context) setStep(s *backend.Step, kv backend.KV, only int) error {
	if len(s.Tokens) == 0 {
		return fmt.Errorf("model: empty step")
	}
	if s.PrevTokens && !ctx.Pipelines() {
		return fmt.Errorf("model: a step on sampled tokens (PrevTokens) needs a context that pipelines")
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
	if only < 0 && len(ctx.st) > 1 && spec.Layers != c.Layers {
		return fmt.Errorf("model: KV cache of %d layers for a forward pass through %d", spec.Layers, c.Layers)
	}
	if err := s.Validate(spec, c.Vocab); err != nil {
		return err
	}
	for _, p := range s.Pos {
		if int(p) >= ctx.opts.Positions {
			return fmt.Errorf("model: position %d is outside the context window of %d tokens", p, ctx.opts.Positions)
		}
	}
	for i := range ctx.st {
		if only >= 0 && i != only {
			continue
		}
		if err := ctx.st[i].be.SetStep(ctx.st[i].step, s); err != nil {
			return err
		}
	}
	return nil
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

// Pipelines reports whether the context can run a step on tokens its
// backend sampled but has not returned (backend.Pipeliner: SampleAsync,
// then a step with PrevTokens): a model on one backend that implements it
// and embeds the table's tokens on the device.
func (ctx *Context) Pipelines() bool {
	p, ok := ctx.be.(backend.Pipeliner)
	return ok && len(ctx.st) == 1 && p.DeviceTokens(ctx.m.dev.embed)
}

// SampleAsync is Sample whose tokens the returned function delivers, on a
// context that Pipelines; a following step may feed them with PrevTokens
// before they are delivered.
func (ctx *Context) SampleAsync(reqs []backend.SampleRequest) (backend.SampleWait, error) {
	p, ok := ctx.be.(backend.Pipeliner)
	if !ok || len(ctx.st) != 1 {
		return nil, fmt.Errorf("model: the context's backend does not pipeline steps")
	}
	if len(reqs) > ctx.nOut {
		return nil, fmt.Errorf("model: %d sample requests for %d logits rows", len(reqs), ctx.nOut)
	}
	return p.SampleAsync(ctx.logits, ctx.m.Config.Vocab, reqs)
}

// RunLayer applies layer li to the host hidden states x (len(s.Tokens) ×
// hidden, updated in place), storing keys and values in layer kvLayer of
// kv and reporting the projections' inputs to tap when it is not nil: the
// compressor's entry point. In a split model the layer runs on its stage's
// backend, over that stage's part of kv (Model.NewKV).
func (ctx *Context) RunLayer(li int, x []float32, s *backend.Step, kv backend.KV, kvLayer int, tap Tap) error {
	if li < 0 || li >= ctx.m.Config.Layers {
		return fmt.Errorf("model: layer %d of %d", li, ctx.m.Config.Layers)
	}
	si := ctx.m.stageOf(li)
	part, l, err := ctx.m.kvPart(kv, si, kvLayer)
	if err != nil {
		return err
	}
	if err := ctx.setStep(s, kv, si); err != nil {
		return err
	}
	st := &ctx.st[si]
	n, d := len(s.Tokens), ctx.m.Config.Hidden
	st.be.Write(st.x, 0, x[:n*d])
	ctx.layer(st, li, n, part, l, tap)
	st.be.Read(x[:n*d], st.x, 0)
	return nil
}

// FinalNorm applies the output RMSNorm to n host hidden states (the input
// of the output head); n ≤ the context's MaxTokens.
func (ctx *Context) FinalNorm(dst, x []float32, n int) {
	d := ctx.m.Config.Hidden
	st := &ctx.st[len(ctx.st)-1]
	st.be.Write(st.h, 0, x[:n*d])
	st.be.RMSNorm(st.o, st.h, ctx.m.dev.norm, float32(ctx.m.Config.NormEps), n)
	st.be.Read(dst[:n*d], st.o, 0)
}

func (ctx *Context) tap(st *ctxStage, tap Tap, p TapPoint, b backend.Buffer, n, cols int) {
	if tap == nil {
		return
	}
	if cap(ctx.tapBuf) < n*cols {
		ctx.tapBuf = make([]float32, n*cols)
	}
	a := ctx.tapBuf[:n*cols]
	st.be.Read(a, b, 0)
	tap(p, a, n)
}

// layer runs decoder layer li over the n tokens of the step in st.x.
func (ctx *Context) layer(st *ctxStage, li, n int, kv backend.KV, kvLayer int, tap Tap) {
	be, c := st.be, &ctx.m.Config
	l := &ctx.m.dev.layers[li]
	d, qd, kvd, f := c.Hidden, c.QDim(), c.KVDim(), c.FFN
	eps := float32(c.NormEps)

	// Attention block.
	be.RMSNorm(st.h, st.x, l.attnNorm, eps, n)
	ctx.tap(st, tap, TapAttnIn, st.h, n, d)
	var q, k, v backend.View
	if l.qkv != nil {
		be.MatMul(st.qkv, st.h, l.qkv, n)
		w := qd + 2*kvd
		q = backend.View{Buf: st.qkv, Stride: w}
		k = backend.View{Buf: st.qkv, Off: qd, Stride: w}
		v = backend.View{Buf: st.qkv, Off: qd + kvd, Stride: w}
	} else {
		be.MatMul(st.q, st.h, l.q, n)
		be.MatMul(st.k, st.h, l.k, n)
		be.MatMul(st.v, st.h, l.v, n)
		if l.qb != nil {
			be.AddBias(st.q, l.qb, n)
			be.AddBias(st.k, l.kb, n)
			be.AddBias(st.v, l.vb, n)
		}
		q, k, v = backend.Whole(st.q, qd), backend.Whole(st.k, kvd), backend.Whole(st.v, kvd)
	}
	be.Rope(q, c.Heads, c.HeadDim, st.rope, st.step)
	be.Rope(k, c.KVHeads, c.HeadDim, st.rope, st.step)
	be.StoreKV(kv, kvLayer, k, v, st.step)
	be.Attention(st.att, q, c.Heads, float32(1/math.Sqrt(float64(c.HeadDim))), kv, kvLayer, st.step)
	ctx.tap(st, tap, TapOIn, st.att, n, qd)
	be.MatMul(st.o, st.att, l.o, n)
	be.Add(st.x, st.o, n*d)

	// Feed-forward block (SwiGLU).
	be.RMSNorm(st.h, st.x, l.ffnNorm, eps, n)
	ctx.tap(st, tap, TapFFNIn, st.h, n, d)
	if l.gateUp != nil {
		be.MatMul(st.gu, st.h, l.gateUp, n)
		be.SwiGLU(st.act, backend.View{Buf: st.gu, Stride: 2 * f}, backend.View{Buf: st.gu, Off: f, Stride: 2 * f}, f, n)
	} else {
		be.MatMul(st.gate, st.h, l.gate, n)
		be.MatMul(st.up, st.h, l.up, n)
		be.SwiGLU(st.act, backend.Whole(st.gate, f), backend.Whole(st.up, f), f, n)
	}
	ctx.tap(st, tap, TapDownIn, st.act, n, f)
	be.MatMul(st.o, st.act, l.down, n)
	be.Add(st.x, st.o, n*d)
}
