package compress

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/eval"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// measuredSensitivityMaxParams bounds the model size for which sensitivities
// are measured with real forward passes (one per 2-D tensor); larger models
// use the activation-energy proxy alone.
const measuredSensitivityMaxParams = 2_000_000_000

// measureSensitivity sets each plan's weight so that weight·err estimates the
// KL divergence the tensor's quantization error adds to the model's output.
// It quantizes one tensor at a time with its probe candidate (about 3 bits
// per weight, the operating point), runs up to two calibration sequences and
// measures the mean KL divergence from the original model's next-token
// distributions.
//
// A tensor of layer l changes nothing before layer l, so its probe starts
// from the original model's hidden states at layer l's input (advanced
// through the original layers as the probes move on) and runs layers l..L-1
// only: half the work of full forward passes, with the same results. The
// model runs one layer at a time with a one-layer cache, dropping the mapped
// source pages after each, so memory does not grow with the number of layers.
func (c *compressor) measureSensitivity(plans []*tensorPlan) error {
	if len(c.seqs) == 0 {
		return nil
	}
	var ids []int
	for _, s := range c.seqs[:min(2, len(c.seqs))] {
		ids = append(ids, s...)
	}
	n := len(ids)
	cfg := &c.m.Config
	V, d, L := cfg.Vocab, cfg.Hidden, c.opts.CalibCtx
	m := c.m
	y := make([]float32, n*d)
	hn := make([]float32, n*d)
	logits := make([]float32, n*V)
	// run returns the logits of every token, starting from the hidden
	// states x at the input of layer from (from < 0: from the embeddings).
	run := func(from int, x []float32) ([]float32, error) {
		if from < 0 {
			m.Embed(y, ids)
			from = 0
		} else {
			copy(y, x)
		}
		for li := from; li < cfg.Layers; li++ {
			if err := c.lr.run(li, y, ids, L, nil); err != nil {
				return nil, err
			}
			c.ck.Release()
		}
		c.lr.ctx.FinalNorm(hn, y, n)
		c.be.MatMulF32(logits, hn, m.Weights.Output, n)
		return logits, nil
	}
	refOut, err := run(-1, nil)
	if err != nil {
		return err
	}
	refLP := make([]float64, n*V)
	for i := range n {
		eval.LogSoftmax(refLP[i*V:(i+1)*V], refOut[i*V:(i+1)*V])
	}

	// Group the probes by the first layer they affect: -1 for the
	// embedding (and a tied head), cfg.Layers for an untied head.
	byLayer := map[int][]*tensorPlan{}
	for _, p := range plans {
		from := -1
		if li, _, ok := tapFor(p.name); ok {
			from = li
		} else if p.name == "lm_head.weight" && c.m.Weights.Output != c.m.Weights.Embed {
			from = cfg.Layers
		}
		byLayer[from] = append(byLayer[from], p)
	}
	last := -1
	for li := range byLayer {
		last = max(last, li)
	}
	lq := make([]float64, V)
	x := make([]float32, n*d) // original hidden states at the input of layer li
	m.Embed(x, ids)
	k := 0
	for li := -1; li <= last; li++ {
		if li > 0 {
			if err := c.lr.run(li-1, x, ids, L, nil); err != nil {
				return err
			}
			c.ck.Release()
		}
		for _, p := range byLayer[li] {
			k++
			c.opts.Progress(0, c.totalParams, fmt.Sprintf("sensitivity %d/%d %s", k, len(plans), p.name))
			restore, err := c.swapQuantized(p)
			if err != nil {
				return err
			}
			out, err := run(li, x)
			restore()
			if err != nil {
				return err
			}
			var kl float64
			for i := range n {
				eval.LogSoftmax(lq, out[i*V:(i+1)*V])
				lp := refLP[i*V : (i+1)*V]
				for v := range V {
					kl += math.Exp(lp[v]) * (lp[v] - lq[v])
				}
			}
			kl /= float64(n)
			// The probe is rounded to nearest: its KL per unit of its
			// error is the tensor's weight, whatever errs estimate.
			e := p.errs[p.probe()]
			if p.probeErr > 0 {
				e = p.probeErr
			}
			if e > 0 {
				p.weight = max(kl, 1e-9) / e
			}
			p.sens = kl
		}
	}
	return nil
}

// probe is the candidate whose size is closest to 3 bits per weight.
func (p *tensorPlan) probe() int {
	best, bestD := 0, math.Inf(1)
	for i, s := range p.sizes {
		d := math.Abs(float64(s*8)/float64(p.rows*p.cols) - 3.1)
		if d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// swapQuantized replaces the plan's tensor in the model with its probe
// encoding (round to nearest) and returns a function that restores it.
func (c *compressor) swapQuantized(p *tensorPlan) (func(), error) {
	src, err := c.ck.Tensors.Matrix(p.name)
	if err != nil {
		return nil, err
	}
	w := make([]float32, p.rows*p.cols)
	src.DecodeRows(w, 0, p.rows)
	cp := p.cands[p.probe()]
	if cp.Levels == "lloyd" {
		cp.Levels = "" // matches the error estimate in planTensor
	}
	// With token row weights the probe is encoded as the encoder will
	// (and as planTensor estimated its error): rows weighted by token.
	var h *codec.Hessian
	if rw := c.rowWeights(p.name, p.rows); rw != nil {
		h = &codec.Hessian{Cols: p.cols, RowWeights: rw}
	}
	data, err := codec.Encode(w, p.rows, p.cols, cp, h)
	if err != nil {
		return nil, err
	}
	q, err := codec.Open(cp, p.rows, p.cols, data)
	if err != nil {
		return nil, err
	}
	slot := c.matrixSlots(p.name)
	if len(slot) == 0 {
		return nil, fmt.Errorf("internal error: %s is not a model weight", p.name)
	}
	old := make([]tensor.Matrix, len(slot))
	for i, s := range slot {
		old[i] = *s
		*s = q
	}
	if err := c.m.Rebind(); err != nil {
		return nil, err
	}
	return func() {
		for i, s := range slot {
			*s = old[i]
		}
		if err := c.m.Rebind(); err != nil {
			panic(err) // the same weights bound a moment ago
		}
	}, nil
}

// matrixSlots returns the model fields that hold the named tensor (the
// embedding and a tied output head share one).
func (c *compressor) matrixSlots(name string) []*tensor.Matrix {
	w := c.m.Weights
	switch name {
	case "model.embed_tokens.weight":
		if w.Output == w.Embed {
			return []*tensor.Matrix{&w.Embed, &w.Output}
		}
		return []*tensor.Matrix{&w.Embed}
	case "lm_head.weight":
		if w.Output == w.Embed {
			return []*tensor.Matrix{&w.Embed, &w.Output}
		}
		return []*tensor.Matrix{&w.Output}
	}
	li, _, ok := tapFor(name)
	if !ok || li >= len(w.Layers) {
		return nil
	}
	l := &w.Layers[li]
	suffix := name[len(model.LayerPrefix(li)):]
	switch suffix {
	case "self_attn.qkv_proj.weight":
		return []*tensor.Matrix{&l.QKV}
	case "self_attn.q_proj.weight":
		return []*tensor.Matrix{&l.Q}
	case "self_attn.k_proj.weight":
		return []*tensor.Matrix{&l.K}
	case "self_attn.v_proj.weight":
		return []*tensor.Matrix{&l.V}
	case "self_attn.o_proj.weight":
		return []*tensor.Matrix{&l.O}
	case "mlp.gate_up_proj.weight":
		return []*tensor.Matrix{&l.GateUp}
	case "mlp.gate_proj.weight":
		return []*tensor.Matrix{&l.Gate}
	case "mlp.up_proj.weight":
		return []*tensor.Matrix{&l.Up}
	case "mlp.down_proj.weight":
		return []*tensor.Matrix{&l.Down}
	}
	return nil
}
