package model

import (
	"fmt"

	"github.com/upg-ai/upg/tensor"
)

// TensorSource gives access to a checkpoint's tensors by their Hugging Face
// names (model.layers.N.self_attn.q_proj.weight, ...). Checkpoint readers
// (safetensors, GGUF, .upg) implement it, translating names where needed.
type TensorSource interface {
	// Has reports whether the tensor exists.
	Has(name string) bool
	// Shape returns the tensor's shape (rows first for matrices).
	Shape(name string) ([]int, bool)
	// Matrix returns a 2-D tensor as a matrix view (no copy for plain data).
	Matrix(name string) (tensor.Matrix, error)
	// Vector returns a tensor decoded to float32 (a copy; for small tensors).
	Vector(name string) ([]float32, error)
}

// Layer holds one transformer block's weights. Phi-3 checkpoints fuse the
// q/k/v and gate/up projections into one matrix each; Llama and Qwen2 keep
// them split. Exactly one of each pair of forms is set.
type Layer struct {
	AttnNorm       []float32
	QKV            tensor.Matrix // fused [q; k; v] (Phi-3)
	Q, K, V        tensor.Matrix // split projections
	QBias, KBias   []float32     // Qwen2
	VBias          []float32
	O              tensor.Matrix
	FFNNorm        []float32
	GateUp         tensor.Matrix // fused [gate; up] (Phi-3)
	Gate, Up, Down tensor.Matrix
}

// Weights are all of a model's parameters.
type Weights struct {
	Embed  tensor.Matrix // [vocab, hidden]
	Layers []Layer
	Norm   []float32
	Output tensor.Matrix // [vocab, hidden]; the embedding when tied
}

// LayerPrefix is the Hugging Face name prefix of layer i.
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// LoadWeights resolves every tensor the configuration needs and checks its shape.
func LoadWeights(c *Config, src TensorSource) (*Weights, error) {
	var firstErr error
	matrix := func(name string, rows, cols int) tensor.Matrix {
		if firstErr != nil {
			return nil
		}
		m, err := src.Matrix(name)
		if err != nil {
			firstErr = err
			return nil
		}
		if m.Rows() != rows || m.Cols() != cols {
			firstErr = fmt.Errorf("tensor %s has shape [%d %d], the config implies [%d %d]", name, m.Rows(), m.Cols(), rows, cols)
			return nil
		}
		return m
	}
	vector := func(name string, n int) []float32 {
		if firstErr != nil {
			return nil
		}
		v, err := src.Vector(name)
		if err != nil {
			firstErr = err
			return nil
		}
		if len(v) != n {
			firstErr = fmt.Errorf("tensor %s has %d values, the config implies %d", name, len(v), n)
			return nil
		}
		return v
	}
	w := &Weights{Layers: make([]Layer, c.Layers)}
	embedName := "model.embed_tokens.weight"
	if !src.Has(embedName) && c.TieEmbeddings && src.Has("lm_head.weight") {
		embedName = "lm_head.weight" // tied checkpoints may store only the head
	}
	w.Embed = matrix(embedName, c.Vocab, c.Hidden)
	for i := range w.Layers {
		p := LayerPrefix(i)
		l := &w.Layers[i]
		l.AttnNorm = vector(p+"input_layernorm.weight", c.Hidden)
		l.FFNNorm = vector(p+"post_attention_layernorm.weight", c.Hidden)
		if src.Has(p + "self_attn.qkv_proj.weight") {
			l.QKV = matrix(p+"self_attn.qkv_proj.weight", c.QDim()+2*c.KVDim(), c.Hidden)
		} else {
			l.Q = matrix(p+"self_attn.q_proj.weight", c.QDim(), c.Hidden)
			l.K = matrix(p+"self_attn.k_proj.weight", c.KVDim(), c.Hidden)
			l.V = matrix(p+"self_attn.v_proj.weight", c.KVDim(), c.Hidden)
		}
		if c.AttnBias {
			l.QBias = vector(p+"self_attn.q_proj.bias", c.QDim())
			l.KBias = vector(p+"self_attn.k_proj.bias", c.KVDim())
			l.VBias = vector(p+"self_attn.v_proj.bias", c.KVDim())
		}
		l.O = matrix(p+"self_attn.o_proj.weight", c.Hidden, c.QDim())
		if src.Has(p + "mlp.gate_up_proj.weight") {
			l.GateUp = matrix(p+"mlp.gate_up_proj.weight", 2*c.FFN, c.Hidden)
		} else {
			l.Gate = matrix(p+"mlp.gate_proj.weight", c.FFN, c.Hidden)
			l.Up = matrix(p+"mlp.up_proj.weight", c.FFN, c.Hidden)
		}
		l.Down = matrix(p+"mlp.down_proj.weight", c.Hidden, c.FFN)
	}
	w.Norm = vector("model.norm.weight", c.Hidden)
	if c.TieEmbeddings || !src.Has("lm_head.weight") {
		w.Output = w.Embed
	} else {
		w.Output = matrix("lm_head.weight", c.Vocab, c.Hidden)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return w, nil
}

// Matrices lists the distinct matrices of w (a tied output head once).
func (w *Weights) Matrices() []tensor.Matrix {
	var out []tensor.Matrix
	seen := map[tensor.Matrix]bool{}
	add := func(ms ...tensor.Matrix) {
		for _, m := range ms {
			if m != nil && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	add(w.Embed, w.Output)
	for i := range w.Layers {
		l := &w.Layers[i]
		add(l.QKV, l.Q, l.K, l.V, l.O, l.GateUp, l.Gate, l.Up, l.Down)
	}
	return out
}
