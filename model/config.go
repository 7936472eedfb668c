// Package model holds the architecture-neutral transformer graph: its
// configuration, its weights (as tensor.Matrix, so any codec can back them)
// and the forward pass over a batch of tokens from one or more sequences.
// Matrix multiplies go through a backend.Backend; keys and values through a
// kvcache.Cache.
package model

import (
	"encoding/json"
	"fmt"
	"math"
)

// Architectures this package runs, keyed by the Hugging Face class name.
var hfArchitectures = map[string]string{
	"Phi3ForCausalLM":    "phi3",
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "llama",
	"Qwen2ForCausalLM":   "qwen2",
}

// SupportedArchitectures lists the Hugging Face class names that load.
func SupportedArchitectures() []string {
	return []string{"Phi3ForCausalLM", "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}
}

// RopeScaling describes a non-default rotary embedding frequency schedule.
type RopeScaling struct {
	Type                 string  `json:"type"` // "linear" or "llama3"
	Factor               float64 `json:"factor,omitempty"`
	LowFreqFactor        float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor       float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositions int     `json:"original_max_position_embeddings,omitempty"`
}

// Config is the architecture-neutral description of a decoder-only model.
// It is what a .upg file stores as its "architecture".
type Config struct {
	Arch           string       `json:"arch"`            // "phi3", "llama" or "qwen2"
	HFArchitecture string       `json:"hf_architecture"` // e.g. "Phi3ForCausalLM"
	Hidden         int          `json:"hidden_size"`
	FFN            int          `json:"intermediate_size"`
	Layers         int          `json:"num_layers"`
	Heads          int          `json:"num_heads"`
	KVHeads        int          `json:"num_kv_heads"`
	HeadDim        int          `json:"head_dim"`
	Vocab          int          `json:"vocab_size"`
	NormEps        float64      `json:"rms_norm_eps"`
	RopeTheta      float64      `json:"rope_theta"`
	RopeDim        int          `json:"rope_dim"`         // rotated dimensions per head (partial rotary); = HeadDim normally
	RopeInterleave bool         `json:"rope_interleaved"` // rotate adjacent pairs (GGUF/Meta layout) instead of HF's rotate-half
	RopeScaling    *RopeScaling `json:"rope_scaling,omitempty"`
	MaxPositions   int          `json:"max_position_embeddings"`
	TieEmbeddings  bool         `json:"tie_word_embeddings"`
	AttnBias       bool         `json:"attention_bias"` // q/k/v projections carry biases (Qwen2)
	BOS            int          `json:"bos_token_id"`   // -1 when none
	EOS            []int        `json:"eos_token_ids"`
}

// Validate checks that the dimensions are consistent and positive.
// The largest dimensions Validate accepts: far past any published model
// (Llama 3.1 405B: hidden 16,384, FFN 53,248, 126 layers, 128 heads of 128;
// vocabularies up to 256K), and small enough that every product the loader
// and the KV cache size from them fits an int — a config.json that claims
// 2^62 layers is an error naming it, not a panic while allocating.
const (
	maxWidth   = 1 << 20
	maxVocab   = 1 << 23
	maxLayers  = 1 << 12
	maxHeads   = 1 << 12
	maxHeadDim = 1 << 12
)

func (c *Config) Validate() error {
	switch {
	case c.Arch != "phi3" && c.Arch != "llama" && c.Arch != "qwen2":
		return fmt.Errorf("unsupported architecture %q", c.Arch)
	case c.Hidden <= 0 || c.FFN <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Vocab <= 0 || c.HeadDim <= 0:
		return fmt.Errorf("config has a non-positive dimension (hidden %d, ffn %d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d)",
			c.Hidden, c.FFN, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Vocab)
	case c.Hidden > maxWidth || c.FFN > maxWidth || c.Vocab > maxVocab || c.Layers > maxLayers || c.Heads > maxHeads ||
		c.KVHeads > maxHeads || c.HeadDim > maxHeadDim:
		return fmt.Errorf("config has an implausible dimension (hidden %d, ffn %d, layers %d, heads %d, kv heads %d, head dim %d, vocab %d; limits %d, %d, %d, %d, %d, %d, %d)",
			c.Hidden, c.FFN, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Vocab,
			maxWidth, maxWidth, maxLayers, maxHeads, maxHeads, maxHeadDim, maxVocab)
	case c.MaxPositions < 0:
		return fmt.Errorf("max_position_embeddings %d is negative", c.MaxPositions)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	case c.RopeDim <= 0 || c.RopeDim > c.HeadDim || c.RopeDim%2 != 0:
		return fmt.Errorf("rotary dimension %d is invalid for head dim %d", c.RopeDim, c.HeadDim)
	case c.NormEps <= 0 || math.IsNaN(c.NormEps):
		return fmt.Errorf("rms_norm_eps %v must be positive", c.NormEps)
	case c.RopeTheta <= 0:
		return fmt.Errorf("rope_theta %v must be positive", c.RopeTheta)
	}
	if r := c.RopeScaling; r != nil {
		switch {
		case r.Type != "linear" && r.Type != "llama3":
			return fmt.Errorf("unsupported rope scaling type %q (supported: default, linear, llama3)", r.Type)
		case !(r.Factor > 0) || math.IsInf(r.Factor, 0):
			return fmt.Errorf("%s rope scaling factor %v must be positive", r.Type, r.Factor)
		case r.Type == "llama3" && (!(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) || math.IsInf(r.HighFreqFactor, 0) ||
			r.OriginalMaxPositions <= 0):
			return fmt.Errorf("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and a positive original_max_position_embeddings (got %v, %v, %d)",
				r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPositions)
		}
	}
	return nil
}

// QDim is the width of all query heads together; KVDim of all key (or value) heads.
func (c *Config) QDim() int  { return c.Heads * c.HeadDim }
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// hfConfig is the subset of a Hugging Face config.json that we read. Both the
// old (rope_theta, rope_scaling) and transformers-5 (rope_parameters) styles
// occur in the wild.
type hfConfig struct {
	Architectures     []string        `json:"architectures"`
	ModelType         string          `json:"model_type"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumLayers         int             `json:"num_hidden_layers"`
	NumHeads          int             `json:"num_attention_heads"`
	NumKVHeads        int             `json:"num_key_value_heads"`
	HeadDim           int             `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	RMSNormEps        float64         `json:"rms_norm_eps"`
	RopeTheta         float64         `json:"rope_theta"`
	PartialRotary     float64         `json:"partial_rotary_factor"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
	MaxPositions      int             `json:"max_position_embeddings"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	AttentionBias     *bool           `json:"attention_bias"`
	BOSTokenID        json.RawMessage `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
}

type hfRope struct {
	RopeType       string  `json:"rope_type"`
	Type           string  `json:"type"`
	RopeTheta      float64 `json:"rope_theta"`
	Factor         float64 `json:"factor"`
	PartialRotary  float64 `json:"partial_rotary_factor"`
	LowFreqFactor  float64 `json:"low_freq_factor"`
	HighFreqFactor float64 `json:"high_freq_factor"`
	OriginalMaxPos int     `json:"original_max_position_embeddings"`
}

// ParseHFConfig reads a Hugging Face config.json.
func ParseHFConfig(data []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("bad config.json: %v", err)
	}
	if len(h.Architectures) == 0 {
		return nil, fmt.Errorf("config.json names no architecture (\"architectures\" is empty)")
	}
	arch, ok := hfArchitectures[h.Architectures[0]]
	if !ok {
		return nil, fmt.Errorf("unsupported architecture %q (supported: %v)", h.Architectures[0], SupportedArchitectures())
	}
	c := &Config{
		Arch: arch, HFArchitecture: h.Architectures[0],
		Hidden: h.HiddenSize, FFN: h.IntermediateSize, Layers: h.NumLayers,
		Heads: h.NumHeads, KVHeads: h.NumKVHeads, HeadDim: h.HeadDim, Vocab: h.VocabSize,
		NormEps: h.RMSNormEps, RopeTheta: h.RopeTheta, MaxPositions: h.MaxPositions,
		AttnBias: arch == "qwen2", BOS: -1,
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if h.AttentionBias != nil && arch == "llama" {
		c.AttnBias = *h.AttentionBias
	}
	c.TieEmbeddings = h.TieWordEmbeddings != nil && *h.TieWordEmbeddings
	if h.TieWordEmbeddings == nil && arch == "llama" {
		c.TieEmbeddings = false
	}
	partial := h.PartialRotary
	for _, raw := range []json.RawMessage{h.RopeScaling, h.RopeParameters} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var r hfRope
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("bad rope parameters: %v", err)
		}
		if r.RopeTheta != 0 {
			c.RopeTheta = r.RopeTheta
		}
		if r.PartialRotary != 0 {
			partial = r.PartialRotary
		}
		typ := r.RopeType
		if typ == "" {
			typ = r.Type
		}
		switch typ {
		case "", "default":
		case "linear", "llama3":
			c.RopeScaling = &RopeScaling{Type: typ, Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
				HighFreqFactor: r.HighFreqFactor, OriginalMaxPositions: r.OriginalMaxPos}
		default:
			return nil, fmt.Errorf("unsupported rope type %q (supported: default, linear, llama3)", typ)
		}
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if partial == 0 {
		partial = 1
	}
	c.RopeDim = int(float64(c.HeadDim) * partial)
	if c.NormEps == 0 {
		c.NormEps = 1e-6
	}
	if ids := parseIDs(h.BOSTokenID); len(ids) > 0 {
		c.BOS = ids[0]
	}
	c.EOS = parseIDs(h.EOSTokenID)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseIDs accepts a token id given as a number, a list of numbers, or null.
func parseIDs(raw json.RawMessage) []int {
	if len(raw) == 0 {
		return nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}
	}
	var many []int
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}
