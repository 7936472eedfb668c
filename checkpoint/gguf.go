package checkpoint

import (
	"fmt"
	"regexp"

	"github.com/upg-ai/upg/gguf"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// ggufSource serves a GGUF file's tensors under Hugging Face names.
// Block-quantized tensors (Q4_K, Q8_0, IQ4_XS, ...) are dequantized
// exactly: whole, into float32 memory, when all of them together fit
// comfortably (eager); otherwise row by row on every use, which keeps
// memory at the file's size but makes every matrix multiply decode its
// weights (fine for `upg compress`, slow to run: package ggufcache converts
// such a file once into a cached .upg for inference).
type ggufSource struct {
	f      *gguf.File
	toGGUF map[string]string // HF name -> GGUF name
	names  []string
	eager  bool
	dq     GGUFDequant
}

// MaxEagerDequant bounds the float32 memory of eagerly dequantized tensors
// (also bounded by half the available memory, where that is known). Tests
// lower it to exercise the path of a large file with a small one.
var MaxEagerDequant int64 = 4 << 30

// GGUFDequant says how a GGUF checkpoint serves its block-quantized tensors.
type GGUFDequant struct {
	Quantized    bool  // the file has block-quantized tensors
	Float32Bytes int64 // their size dequantized to float32
	Limit        int64 // the eager limit: MaxEagerDequant, or half the available memory if less
	Eager        bool  // dequantized whole into float32 memory; else row by row at every use
}

// GGUFDequant reports how a GGUF checkpoint's quantized tensors are served;
// ok is false for other formats.
func (c *Checkpoint) GGUFDequant() (d GGUFDequant, ok bool) {
	if s, ok := c.Tensors.(*ggufSource); ok {
		return s.dq, true
	}
	return GGUFDequant{}, false
}

var ggufArchitectures = map[string]string{"llama": "llama", "phi3": "phi3", "qwen2": "qwen2"}

var blkName = regexp.MustCompile(`^blk\.(\d+)\.(.+)$`)

// hfName translates a GGUF tensor name to its Hugging Face equivalent.
func hfName(arch, name string) (string, bool) {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", true
	case "output_norm.weight":
		return "model.norm.weight", true
	case "output.weight":
		return "lm_head.weight", true
	}
	m := blkName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	p := "model.layers." + m[1] + "."
	sub := map[string]string{
		"attn_norm.weight":   "input_layernorm.weight",
		"ffn_norm.weight":    "post_attention_layernorm.weight",
		"attn_q.weight":      "self_attn.q_proj.weight",
		"attn_k.weight":      "self_attn.k_proj.weight",
		"attn_v.weight":      "self_attn.v_proj.weight",
		"attn_q.bias":        "self_attn.q_proj.bias",
		"attn_k.bias":        "self_attn.k_proj.bias",
		"attn_v.bias":        "self_attn.v_proj.bias",
		"attn_qkv.weight":    "self_attn.qkv_proj.weight",
		"attn_output.weight": "self_attn.o_proj.weight",
		"ffn_gate.weight":    "mlp.gate_proj.weight",
		"ffn_up.weight":      "mlp.up_proj.weight",
		"ffn_down.weight":    "mlp.down_proj.weight",
	}
	s, ok := sub[m[2]]
	if arch == "phi3" && m[2] == "ffn_up.weight" {
		s = "mlp.gate_up_proj.weight" // llama.cpp keeps Phi-3's fused gate/up in ffn_up
	}
	return p + s, ok
}

func openGGUF(path string) (*Checkpoint, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ggufConfig(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	src := &ggufSource{f: f, toGGUF: map[string]string{}}
	var quantBytes int64 // float32 bytes of the quantized tensors
	for _, t := range f.Tensors {
		if hf, ok := hfName(cfg.Arch, t.Name); ok {
			src.toGGUF[hf] = t.Name
			src.names = append(src.names, hf)
			if t.Type.Quantized() {
				quantBytes += 4 * int64(t.Elements())
			}
		}
	}
	limit := MaxEagerDequant
	if avail := sysmem.Available(); avail > 0 {
		limit = min(limit, avail/2)
	}
	src.eager = quantBytes <= limit
	src.dq = GGUFDequant{Quantized: quantBytes > 0, Float32Bytes: quantBytes, Limit: limit, Eager: src.eager}
	ck := &Checkpoint{Path: path, Format: "gguf", Config: cfg, Tensors: src, closer: f.Close, gguf: f}
	ck.ChatTemplate, _ = f.String("tokenizer.chat_template")
	return ck, nil
}

// ggufConfig builds a model.Config from GGUF metadata ("<arch>.*" keys).
func ggufConfig(f *gguf.File) (*model.Config, error) {
	ga, _ := f.String("general.architecture")
	arch, ok := ggufArchitectures[ga]
	if !ok {
		return nil, fmt.Errorf("unsupported GGUF architecture %q (supported: llama, phi3, qwen2)", ga)
	}
	u := func(key string) int {
		v, _ := f.Uint(ga + "." + key)
		return int(v)
	}
	c := &model.Config{
		Arch: arch, HFArchitecture: "gguf:" + ga,
		Hidden: u("embedding_length"), FFN: u("feed_forward_length"), Layers: u("block_count"),
		Heads: u("attention.head_count"), KVHeads: u("attention.head_count_kv"),
		MaxPositions: u("context_length"), AttnBias: arch == "qwen2", BOS: -1,
		RopeInterleave: arch == "llama", // llama.cpp permutes Llama's q/k for adjacent-pair RoPE
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if kd := u("attention.key_length"); kd > 0 {
		c.HeadDim = kd
	}
	c.RopeDim = c.HeadDim
	if rd := u("rope.dimension_count"); rd > 0 {
		c.RopeDim = rd
	}
	c.NormEps, _ = f.Float(ga + ".attention.layer_norm_rms_epsilon")
	c.RopeTheta, _ = f.Float(ga + ".rope.freq_base")
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if t, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		c.Vocab = len(t)
	}
	if v := u("vocab_size"); v > 0 {
		c.Vocab = v
	}
	if info, ok := f.Tensor("token_embd.weight"); ok && len(info.Dims) == 2 && c.Vocab == 0 {
		c.Vocab = int(info.Dims[1])
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieEmbeddings = !hasOutput
	if id, ok := f.Uint("tokenizer.ggml.bos_token_id"); ok {
		c.BOS = int(id)
	}
	if id, ok := f.Uint("tokenizer.ggml.eos_token_id"); ok {
		c.EOS = []int{int(id)}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *ggufSource) Names() []string { return s.names }

func (s *ggufSource) Has(name string) bool { _, ok := s.toGGUF[name]; return ok }

func (s *ggufSource) info(name string) (gguf.TensorInfo, []byte, error) {
	g, ok := s.toGGUF[name]
	if !ok {
		return gguf.TensorInfo{}, nil, fmt.Errorf("gguf: %s: tensor %q not found", s.f.Path, name)
	}
	return s.f.TensorData(g)
}

func (s *ggufSource) Shape(name string) ([]int, bool) {
	g, ok := s.toGGUF[name]
	if !ok {
		return nil, false
	}
	ti, _ := s.f.Tensor(g)
	shape := make([]int, len(ti.Dims))
	for i, d := range ti.Dims {
		shape[len(ti.Dims)-1-i] = int(d) // GGUF lists the fastest dimension first
	}
	return shape, true
}

func (s *ggufSource) Info(name string) (TensorInfo, bool) {
	shape, ok := s.Shape(name)
	if !ok {
		return TensorInfo{}, false
	}
	ti, _ := s.f.Tensor(s.toGGUF[name])
	return TensorInfo{Name: name, Shape: shape, Encoding: ti.Type.String(), Bytes: int64(ti.Size)}, true
}

func ggufDType(t gguf.GGMLType) (tensor.DType, error) {
	switch t {
	case gguf.TypeF32:
		return tensor.F32, nil
	case gguf.TypeF16:
		return tensor.F16, nil
	case gguf.TypeBF16:
		return tensor.BF16, nil
	}
	return 0, fmt.Errorf("GGUF tensor type %s is not supported (F32, F16, BF16 and the quantized types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K to Q6_K, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0 are)", t)
}

func (s *ggufSource) Matrix(name string) (tensor.Matrix, error) {
	ti, data, err := s.info(name)
	if err != nil {
		return nil, err
	}
	if len(ti.Dims) != 2 {
		return nil, fmt.Errorf("gguf: %s: tensor %q has %d dimensions, want 2", s.f.Path, ti.Name, len(ti.Dims))
	}
	rows, cols := int(ti.Dims[1]), int(ti.Dims[0])
	if ti.Type.Quantized() {
		bs, ts := int(ti.Type.BlockSize()), int(ti.Type.TypeSize())
		if cols%bs != 0 || len(data) != rows*cols/bs*ts {
			return nil, fmt.Errorf("gguf: %s: tensor %q: %d columns are not whole %s blocks of %d", s.f.Path, ti.Name, cols, ti.Type, bs)
		}
		m := &quantMatrix{typ: ti.Type, rows: rows, cols: cols, rowBytes: cols / bs * ts, data: data}
		if !s.eager {
			return m, nil
		}
		out := make([]float32, rows*cols)
		m.DecodeRows(out, 0, rows)
		return tensor.FromF32(rows, cols, out), nil
	}
	dt, err := ggufDType(ti.Type)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", s.f.Path, ti.Name, err)
	}
	return tensor.NewDense(dt, rows, cols, data)
}

func (s *ggufSource) Vector(name string) ([]float32, error) {
	ti, data, err := s.info(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, ti.Elements())
	if err := gguf.Dequantize(ti.Type, out, data); err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", s.f.Path, ti.Name, err)
	}
	return out, nil
}

// quantMatrix is a block-quantized GGUF matrix decoded row by row (exactly,
// as ggml's to_float does) by DecodeRows.
type quantMatrix struct {
	typ        gguf.GGMLType
	rows, cols int
	rowBytes   int
	data       []byte
}

func (m *quantMatrix) Rows() int { return m.rows }
func (m *quantMatrix) Cols() int { return m.cols }

func (m *quantMatrix) DecodeRows(dst []float32, r0, r1 int) {
	if err := gguf.Dequantize(m.typ, dst[:(r1-r0)*m.cols], m.data[r0*m.rowBytes:r1*m.rowBytes]); err != nil {
		panic(err) // the sizes were checked when the matrix was made
	}
}
