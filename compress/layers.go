package compress

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// stage is a group of projections that read the same input.
type stage struct {
	tap   model.TapPoint
	names []string // tensor name suffixes present in this layer
}

// layerStages lists a layer's projections in the order they run.
func (c *compressor) layerStages(li int) []stage { return layerStages(c.ck.Tensors.Has, li) }

// layerStages lists layer li's projections in the order they run, those
// that has reports present.
func layerStages(has func(string) bool, li int) []stage {
	p := model.LayerPrefix(li)
	pick := func(fused string, split ...string) []string {
		if has(p + fused) {
			return []string{fused}
		}
		var out []string
		for _, s := range split {
			if has(p + s) {
				out = append(out, s)
			}
		}
		return out
	}
	return []stage{
		{model.TapAttnIn, pick("self_attn.qkv_proj.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight")},
		{model.TapOIn, pick("self_attn.o_proj.weight")},
		{model.TapFFNIn, pick("mlp.gate_up_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight")},
		{model.TapDownIn, pick("mlp.down_proj.weight")},
	}
}

// encodeAll writes every tensor: embedding, layers in order, final norm, head.
func (c *compressor) encodeAll(names []string) error {
	cfg := &c.m.Config
	written := map[string]bool{}
	d := cfg.Hidden

	embedName := "model.embed_tokens.weight"
	if !c.ck.Tensors.Has(embedName) {
		embedName = "lm_head.weight"
	}
	// With output targets, the original model's hidden states go along
	// with the compressed model's (xo, embedded before the embedding is
	// compressed).
	asym := c.opts.OutputTargets && len(c.seqs) > 0 && !c.opts.NoGPTQ
	var xo [][]float32
	if asym {
		xo = make([][]float32, len(c.seqs))
		for s, ids := range c.seqs {
			xo[s] = make([]float32, len(ids)*d)
			c.m.Embed(xo[s], ids)
		}
	}
	em, err := c.encodeMatrix(embedName, nil, nil)
	if err != nil {
		return err
	}
	c.m.Weights.Embed = em
	if cfg.TieEmbeddings || !c.ck.Tensors.Has("lm_head.weight") {
		c.m.Weights.Output = em
	}
	if err := c.m.Rebind(); err != nil {
		return err
	}
	written[embedName] = true

	// Hidden states of every calibration sequence, after the compressed layers so far.
	xs := make([][]float32, len(c.seqs))
	for s, ids := range c.seqs {
		xs[s] = make([]float32, len(ids)*d)
		c.m.Embed(xs[s], ids)
	}
	if c.held != nil {
		c.m.Embed(c.held.x, c.held.ids)
	}
	tmp := make([]float32, c.opts.CalibCtx*d)
	for li := 0; li < cfg.Layers; li++ {
		p := model.LayerPrefix(li)
		layer := &c.m.Weights.Layers[li]
		for _, name := range names {
			if strings.HasPrefix(name, p) {
				if shape, _ := c.ck.Tensors.Shape(name); len(shape) != 2 {
					if err := c.writeVector(name); err != nil {
						return err
					}
					written[name] = true
				}
			}
		}
		if !asym {
			// One pass over the calibration data collects the Hessians of all
			// four projection inputs (the layer's input already went through the
			// compressed earlier layers).
			stages := c.layerStages(li)
			hs := map[model.TapPoint]*codec.Hessian{}
			if len(c.seqs) > 0 && !c.opts.NoGPTQ {
				accs := map[model.TapPoint]*hessianAcc{}
				err := c.forEachSeq(func(s int, ids []int) error {
					copy(tmp, xs[s])
					return c.lr.run(li, tmp[:len(xs[s])], ids, len(ids), func(tp model.TapPoint, act []float32, n int) {
						if accs[tp] == nil {
							accs[tp] = newHessianAcc(len(act) / n)
						}
						accs[tp].add(act, n)
					})
				})
				if err != nil {
					return err
				}
				for tp, acc := range accs {
					hs[tp] = acc.hessian()
				}
			}
			for _, st := range stages {
				if err := c.encodeStage(p, st.names, hs[st.tap], nil, written); err != nil {
					return err
				}
				// Done with this input's Hessian: free it before the next
				// stage's encoder needs its own scratch (the FFN-down one is
				// the largest and comes last).
				if h := hs[st.tap]; h != nil {
					h.H = nil
					delete(hs, st.tap)
				}
			}
		} else {
			// Each stage's Hessian is collected right before it is encoded, by a
			// pass over the calibration data through the layer as it is then: its
			// input has gone through the compressed earlier layers and the
			// compressed earlier stages of this one (the attention output
			// projection sees the compressed q/k/v, the FFN down projection the
			// compressed gate/up), as GPTQ's "true sequential" order does.
			orig := *layer // the original weights, for the original activations
			xa := make([]float32, c.opts.CalibCtx*d)
			for _, st := range c.layerStages(li) {
				if len(st.names) == 0 {
					continue
				}
				var h *codec.Hessian
				var cross *crossAcc
				if len(c.seqs) > 0 && !c.opts.NoGPTQ {
					var acc *hessianAcc
					var xorig []float32 // the original model's activations at st.tap
					err := c.forEachSeq(func(s int, ids []int) error {
						if asym {
							cur := *layer
							*layer = orig
							if err := c.m.Rebind(); err != nil {
								return err
							}
							copy(xa, xo[s])
							err := c.lr.run(li, xa[:len(xo[s])], ids, len(ids), func(tp model.TapPoint, act []float32, n int) {
								if tp == st.tap {
									xorig = append(xorig[:0], act...)
								}
							})
							*layer = cur
							if err != nil {
								return err
							}
							if err := c.m.Rebind(); err != nil {
								return err
							}
						}
						copy(tmp, xs[s])
						return c.lr.run(li, tmp[:len(xs[s])], ids, len(ids), func(tp model.TapPoint, act []float32, n int) {
							if tp != st.tap {
								return
							}
							if acc == nil {
								acc = newHessianAcc(len(act) / n)
							}
							acc.add(act, n)
							if asym && len(xorig) == len(act) {
								if cross == nil {
									cross = newCrossAcc(len(act) / n)
								}
								cross.add(xorig, act, n)
							}
						})
					})
					if err != nil {
						return err
					}
					if acc != nil {
						h = acc.hessian()
					}
				}
				if err := c.encodeStage(p, st.names, h, cross, written); err != nil {
					return err
				}
			}
			if asym {
				// Advance the original hidden states through the original layer.
				cur := *layer
				*layer = orig
				if err := c.m.Rebind(); err != nil {
					return err
				}
				err := c.forEachSeq(func(s int, ids []int) error {
					return c.lr.run(li, xo[s], ids, len(ids), nil)
				})
				*layer = cur
				if err != nil {
					return err
				}
				if err := c.m.Rebind(); err != nil {
					return err
				}
			}
		}
		// Advance the hidden states through the compressed layer.
		if len(c.seqs) > 0 {
			err := c.forEachSeq(func(s int, ids []int) error {
				return c.lr.run(li, xs[s], ids, len(ids), nil)
			})
			if err != nil {
				return err
			}
			if err := c.advanceHeldOut(li); err != nil {
				return err
			}
		}
		*layer = model.Layer{} // done with this layer: let its memory go
		if err := c.m.Rebind(); err != nil {
			return err
		}
		c.keep = nil
		c.ck.Release()
		debug.FreeOSMemory()
		u := sysmem.Self()
		slog.Debug("layer compressed", "layer", li, "rss_anon", u.RSSAnon, "rss_file", u.RSSFile, "peak_rss", u.PeakRSS)
	}
	for _, name := range names {
		if written[name] || name == "lm_head.weight" {
			continue
		}
		if shape, _ := c.ck.Tensors.Shape(name); len(shape) != 2 {
			if err := c.writeVector(name); err != nil {
				return err
			}
			written[name] = true
		}
	}
	if c.ck.Tensors.Has("lm_head.weight") && !written["lm_head.weight"] {
		var h *codec.Hessian
		var cross *crossAcc
		if len(c.seqs) > 0 && !c.opts.NoGPTQ {
			acc := newHessianAcc(d)
			if asym {
				cross = newCrossAcc(d)
			}
			hn := make([]float32, c.opts.CalibCtx*d)
			ho := make([]float32, c.opts.CalibCtx*d)
			for s, x := range xs {
				n := len(c.seqs[s])
				c.lr.ctx.FinalNorm(hn, x, n)
				acc.add(hn[:n*d], n)
				if asym {
					c.lr.ctx.FinalNorm(ho, xo[s], n)
					cross.add(ho[:n*d], hn[:n*d], n)
				}
			}
			h = acc.hessian()
		}
		head, err := c.encodeMatrix("lm_head.weight", h, cross)
		if err != nil {
			return err
		}
		c.m.Weights.Output = head
		if err := c.m.Rebind(); err != nil {
			return err
		}
		written["lm_head.weight"] = true
	}
	if c.held != nil {
		c.quality = c.held.measure(c, c.m.Weights.Output)
	}
	for _, name := range names {
		if !written[name] {
			return fmt.Errorf("internal error: tensor %s was not written", name)
		}
	}
	return nil
}

// encodeStage encodes the projections prefix+suffix of one stage of a layer
// (sharing an input, so h and cross), installs each compressed matrix in the
// model, so that later projections and layers see it, and marks it written.
func (c *compressor) encodeStage(prefix string, suffixes []string, h *codec.Hessian, cross *crossAcc, written map[string]bool) error {
	for _, suffix := range suffixes {
		m, err := c.encodeMatrix(prefix+suffix, h, cross)
		if err != nil {
			return err
		}
		for _, slot := range c.matrixSlots(prefix + suffix) {
			*slot = m
		}
		if err := c.m.Rebind(); err != nil {
			return err
		}
		written[prefix+suffix] = true
	}
	return nil
}

// encodeMatrix encodes one 2-D tensor with its planned parameters, writes it
// and returns the compressed matrix (valid while c.keep holds its bytes).
//
// With cross (the original and compressed inputs' E[x x̃ᵀ]) the encoded
// target is outputTarget's W·C·H̃⁻¹ instead of W.
func (c *compressor) encodeMatrix(name string, h *codec.Hessian, cross *crossAcc) (tensor.Matrix, error) {
	plan := c.planOf[name]
	if plan == nil {
		return nil, fmt.Errorf("internal error: no plan for %s", name)
	}
	src, err := c.ck.Tensors.Matrix(name)
	if err != nil {
		return nil, err
	}
	rows, cols := src.Rows(), src.Cols()
	w := make([]float32, rows*cols)
	src.DecodeRows(w, 0, rows)
	c.ck.Release() // the float copy is all we need of the source now
	cp := plan.cands[plan.choice]
	if rw := c.rowWeights(name, rows); rw != nil {
		if h == nil {
			h = &codec.Hessian{Cols: cols, RowWeights: rw}
		} else {
			hw := *h
			hw.RowWeights = rw
			h = &hw
		}
	}
	if cross != nil && h != nil {
		damp := cp.Damp
		if damp <= 0 {
			damp = 0.01
		}
		if !outputTarget(w, rows, cols, cross, h, damp, c.opts.Threads) {
			slog.Warn("output target skipped: the compressed inputs' Hessian is singular", "tensor", name)
		}
	}
	c.opts.Progress(c.done, c.totalParams, "encoding "+name)
	data, err := codec.Encode(w, rows, cols, cp, h)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", name, err)
	}
	pj, _ := json.Marshal(cp)
	if err := c.w.AddTensor(name, []int{rows, cols}, pj, data); err != nil {
		return nil, err
	}
	m, err := codec.Open(cp, rows, cols, data)
	if err != nil {
		return nil, fmt.Errorf("reopening %s: %w", name, err)
	}
	c.keep = append(c.keep, data)
	rep := TensorReport{Name: name, Shape: []int{rows, cols}, Encoding: describe(cp), Params: cp,
		Bytes: int64(len(data)), BPW: float64(len(data)*8) / float64(rows*cols)}
	if h != nil {
		rep.RelErr = sampledRelErr(w, m, rows, cols, h)
	}
	c.reports = append(c.reports, rep)
	c.done += int64(rows * cols)
	// The float copy and the encoder's scratch are garbage now; hand the
	// memory back so the peak stays that of the largest tensor, whatever
	// the number of layers.
	w = nil
	debug.FreeOSMemory()
	c.opts.Progress(c.done, c.totalParams, "encoded "+name)
	return m, nil
}

// sampledRelErr estimates tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) on up to planRows rows.
func sampledRelErr(w []float32, m tensor.Matrix, rows, cols int, h *codec.Hessian) float64 {
	sr := min(rows, planRows)
	ws := make([]float32, sr*cols)
	wq := make([]float32, sr*cols)
	zero := make([]float32, sr*cols)
	for i := 0; i < sr; i++ {
		r := i * rows / sr
		copy(ws[i*cols:(i+1)*cols], w[r*cols:(r+1)*cols])
		m.DecodeRows(wq[i*cols:(i+1)*cols], r, r+1)
	}
	num := codec.OutputError(ws, wq, sr, cols, h)
	den := codec.OutputError(ws, zero, sr, cols, h)
	if den == 0 {
		return 0
	}
	return num / den
}

// writeVector stores a 1-D tensor (norm weight, bias) exactly as float32.
func (c *compressor) writeVector(name string) error {
	v, err := c.ck.Tensors.Vector(name)
	if err != nil {
		return err
	}
	cp := codec.Params{Codec: "f32"}
	data, err := codec.Encode(v, 1, len(v), cp, nil)
	if err != nil {
		return err
	}
	pj, _ := json.Marshal(cp)
	shape, _ := c.ck.Tensors.Shape(name)
	if err := c.w.AddTensor(name, shape, pj, data); err != nil {
		return err
	}
	c.reports = append(c.reports, TensorReport{Name: name, Shape: shape, Encoding: "f32", Params: cp,
		Bytes: int64(len(data)), BPW: 32})
	c.done += int64(len(v))
	return nil
}
