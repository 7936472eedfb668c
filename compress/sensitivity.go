package compress

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/eval"
	"github.com/upg-ai/upg/kvcache"
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
func (c *compressor) measureSensitivity(plans []*tensorPlan) error {
	if len(c.seqs) == 0 {
		return nil
	}
	var ids []int
	for _, s := range c.seqs[:min(2, len(c.seqs))] {
		ids = append(ids, s...)
	}
	n := len(ids)
	V := c.m.Config.Vocab
	b := &model.Batch{Tokens: ids, Pos: make([]int, n), Seq: make([]int, n), Logits: make([]bool, n)}
	L := c.opts.CalibCtx
	for i := range n {
		b.Pos[i] = i % L
		b.Seq[i] = i / L
		b.Logits[i] = true
	}
	cache := kvcache.NewContiguous(c.m.Config.Layers, c.m.Config.KVDim(), L)
	run := func() ([]float32, error) {
		for s := 0; s*L < n; s++ {
			cache.Truncate(s, 0)
		}
		return c.m.Forward(b, cache)
	}
	refOut, err := run()
	if err != nil {
		return err
	}
	refLP := make([]float64, n*V)
	for i := range n {
		eval.LogSoftmax(refLP[i*V:(i+1)*V], refOut[i*V:(i+1)*V])
	}
	lq := make([]float64, V)
	for k, p := range plans {
		c.opts.Progress(0, c.totalParams, fmt.Sprintf("sensitivity %d/%d %s", k+1, len(plans), p.name))
		restore, err := c.swapQuantized(p)
		if err != nil {
			return err
		}
		out, err := run()
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
		if e := p.errs[p.probe()]; e > 0 {
			p.weight = max(kl, 1e-9) / e
		}
		p.sens = kl
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
	data, err := codec.Encode(w, p.rows, p.cols, cp, nil)
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
	return func() {
		for i, s := range slot {
			*s = old[i]
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
