package model

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/tensor"
)

// Model is a configuration and its weights, handed to a backend once (or
// to two: see NewSplit). It holds no per-call state: forward passes run in
// a Context, and several contexts may run over one model at the same time.
type Model struct {
	Config  Config
	Weights *Weights        // the host views (the memory map), as loaded
	be      backend.Backend // the output head's (the last stage's)
	stages  []Stage
	dev     devWeights
	// fusedQKV, fusedGateUp: the checkpoint fuses q/k/v and gate/up (Phi-3);
	// fixed at New, as contexts size their buffers by them.
	fusedQKV, fusedGateUp bool
	// gen counts Rebind calls: a context's whole-step binding
	// (context.go, wholeStep) is of the weights of one generation
	gen int
}

// Stage is a run of consecutive decoder layers, [First, End), on one
// backend. The first stage also holds the embedding table, the last one
// the final norm and the output head. An unsplit model has one stage.
type Stage struct {
	Backend    backend.Backend
	First, End int
}

// devWeights are the backend's handles of Weights.
type devWeights struct {
	embed, output, norm backend.Weight
	layers              []devLayer
}

type devLayer struct {
	attnNorm, ffnNorm      backend.Weight
	qkv, q, k, v, o        backend.Weight
	qb, kb, vb             backend.Weight // q/k/v biases (Qwen2; split projections only)
	gateUp, gate, up, down backend.Weight
}

// New binds a configuration and its weights to a backend.
func New(c *Config, w *Weights, be backend.Backend) (*Model, error) {
	return NewSplit(c, w, be, be, len(w.Layers))
}

// NewSplit binds a configuration and its weights to two backends, as
// llama.cpp's --n-gpu-layers places a model that does not fit a GPU: the
// embedding table and the first Layers−lastLayers decoder layers on first
// (the CPU), the last lastLayers layers, the final norm and the output head
// (the largest matrix, whose logits are sampled where they are) on last
// (the GPU). lastLayers = Layers (or first == last) is New(c, w, last):
// one stage, no copies; lastLayers = 0 is New(c, w, first). A forward pass
// crosses from first to last once, with the hidden state (Read into a host
// buffer, Write into last's), and its KV storage (NewKV) keeps each stage's
// layers on the stage's backend.
func NewSplit(c *Config, w *Weights, first, last backend.Backend, lastLayers int) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(w.Layers) == 0 {
		return nil, fmt.Errorf("model: no layers")
	}
	L := len(w.Layers)
	if lastLayers < 0 || lastLayers > L {
		return nil, fmt.Errorf("model: %d of %d layers on the second backend", lastLayers, L)
	}
	if first == nil || last == nil {
		return nil, fmt.Errorf("model: nil backend")
	}
	m := &Model{Config: *c, Weights: w, fusedQKV: w.Layers[0].QKV != nil, fusedGateUp: w.Layers[0].GateUp != nil}
	switch {
	case first == last || lastLayers == L:
		m.stages = []Stage{{Backend: last, First: 0, End: L}}
	case lastLayers == 0:
		m.stages = []Stage{{Backend: first, First: 0, End: L}}
	default:
		m.stages = []Stage{{Backend: first, First: 0, End: L - lastLayers}, {Backend: last, First: L - lastLayers, End: L}}
	}
	m.be = m.stages[len(m.stages)-1].Backend
	if err := m.Rebind(); err != nil {
		return nil, err
	}
	return m, nil
}

// Backend returns the backend of the output head (the one an unsplit
// model runs on; in a split, the second: the GPU).
func (m *Model) Backend() backend.Backend { return m.be }

// Stages lists where the layers run, in order: one stage for an unsplit
// model, two for a split one (NewSplit). The slice is the model's own.
func (m *Model) Stages() []Stage { return m.stages }

// stageOf is the index of the stage holding layer li.
func (m *Model) stageOf(li int) int {
	for i := range m.stages {
		if li < m.stages[i].End {
			return i
		}
	}
	return len(m.stages) - 1
}

// Rebind hands m.Weights to the backends again, after the caller replaced
// some of them (the compressor swaps in each layer's compressed matrices).
// It must not run while a context of m is in a forward pass.
func (m *Model) Rebind() error {
	w := m.Weights
	var err error
	var be backend.Backend
	mat := func(t tensor.Matrix) backend.Weight {
		if t == nil || err != nil {
			return nil
		}
		h, e := be.LoadMatrix(t)
		if e != nil {
			err = fmt.Errorf("model: binding weights to %s: %w", be.Name(), e)
		}
		return h
	}
	vec := func(v []float32) backend.Weight {
		if v == nil || err != nil {
			return nil
		}
		h, e := be.LoadVector(v)
		if e != nil {
			err = fmt.Errorf("model: binding weights to %s: %w", be.Name(), e)
		}
		return h
	}
	d := devWeights{layers: make([]devLayer, len(w.Layers))}
	// Load order as an unsplit model always had it: embedding, head, norm, layers.
	be = m.stages[0].Backend
	d.embed = mat(w.Embed)
	be = m.be
	d.output, d.norm = mat(w.Output), vec(w.Norm)
	for _, st := range m.stages {
		be = st.Backend
		for i := st.First; i < st.End; i++ {
			l := &w.Layers[i]
			dl := &d.layers[i]
			dl.attnNorm, dl.ffnNorm = vec(l.AttnNorm), vec(l.FFNNorm)
			dl.qkv, dl.q, dl.k, dl.v, dl.o = mat(l.QKV), mat(l.Q), mat(l.K), mat(l.V), mat(l.O)
			if l.QBias != nil {
				if l.QKV != nil && err == nil {
					err = fmt.Errorf("model: binding weights to %s: layer %d: q/k/v biases with a fused qkv projection are not supported", be.Name(), i)
				}
				dl.qb, dl.kb, dl.vb = vec(l.QBias), vec(l.KBias), vec(l.VBias)
			}
			dl.gateUp, dl.gate, dl.up, dl.down = mat(l.GateUp), mat(l.Gate), mat(l.Up), mat(l.Down)
		}
	}
	if err != nil {
		return err
	}
	m.dev = d
	m.gen++
	return nil
}

// RopeSpec is the model's rotary embedding for contexts of positions
// positions.
func (m *Model) RopeSpec(positions int) backend.RopeSpec {
	c := &m.Config
	r := backend.RopeSpec{Dim: c.RopeDim, Interleave: c.RopeInterleave, PosScale: 1, Positions: positions}
	half := c.RopeDim / 2
	r.InvFreq = make([]float64, half)
	for i := range r.InvFreq {
		// HF computes base ** (arange(0, dim, 2) / dim) in float32.
		r.InvFreq[i] = float64(float32(1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.RopeDim))))
	}
	if s := c.RopeScaling; s != nil {
		switch s.Type {
		case "linear":
			if s.Factor > 0 {
				r.PosScale = 1 / s.Factor
			}
		case "llama3":
			lowWave := float64(s.OriginalMaxPositions) / s.LowFreqFactor
			highWave := float64(s.OriginalMaxPositions) / s.HighFreqFactor
			for i, f := range r.InvFreq {
				wave := 2 * math.Pi / f
				switch {
				case wave > lowWave:
					r.InvFreq[i] = f / s.Factor
				case wave >= highWave:
					smooth := (float64(s.OriginalMaxPositions)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
					r.InvFreq[i] = (1-smooth)*f/s.Factor + smooth*f
				}
			}
		}
	}
	return r
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

// rowDecoder is implemented by backends that decode one host matrix row
// without allocating (embedding lookups of compressed tables).
type rowDecoder interface {
	DecodeRow(dst []float32, w tensor.Matrix, r int)
}

// Embed writes the embeddings of tokens into the host slice x
// (len(tokens) × hidden); the compressor's entry point.
func (m *Model) Embed(x []float32, tokens []int) {
	d := m.Config.Hidden
	rd, fast := m.stages[0].Backend.(rowDecoder)
	for i, tok := range tokens {
		if fast {
			rd.DecodeRow(x[i*d:(i+1)*d], m.Weights.Embed, tok)
		} else {
			m.Weights.Embed.DecodeRows(x[i*d:(i+1)*d], tok, tok+1)
		}
	}
}
