// Package synth writes synthetic .upg models: real architectures' shapes
// (Phi-4 by default) with random Gaussian weights, encoded in the "dense"
// codec layout at a target bits-per-weight, for benchmarking the runtime
// without downloading or compressing a real checkpoint.
//
// Tensors are generated, encoded and written one at a time (rows in
// parallel), so memory stays bounded by the largest encoded tensor (about
// 200 MB for Phi-4's embedding) whatever the model size.
//
// The codes are produced by a fast round-to-nearest encoder that writes the
// codec's documented "dense" byte layout (uniform levels, fp16 absmax
// scales); codec.Encode's scale search is far too slow for 14.7 billion
// weights (about 2 M weights/s). The files open and decode through the real
// codec (codec.Open), which the tests check.
package synth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
	"github.com/upg-ai/upg/upgfile"
)

// Options configure Write. Zero values mean Phi-4's.
type Options struct {
	Layers    int     // transformer blocks (Phi-4: 40)
	Hidden    int     // 5120
	FFN       int     // 17920
	Heads     int     // 40 query heads
	KVHeads   int     // 10
	HeadDim   int     // 128
	Vocab     int     // 100352
	TargetBPW float64 // bits per weight of the whole file's tensors (default 3.2)
	Std       float64 // weight standard deviation (default 0.02)
	Seed      uint64
	// Tokenizer is the cl100k_base.tiktoken rank file to embed (default:
	// /work/shared/tokenizers/tiktoken/cl100k_base.tiktoken); empty data and
	// a missing file mean no tokenizer.
	TokenizerPath string
	// Progress, if set, is called after each tensor with the weights
	// written so far, the total and the tensor's name.
	Progress func(done, total int64, name string)
}

// DefaultTokenizer is where the shared cl100k_base rank file lives.
const DefaultTokenizer = "/work/shared/tokenizers/tiktoken/cl100k_base.tiktoken"

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Layers, 40)
	def(&o.Hidden, 5120)
	def(&o.FFN, 17920)
	def(&o.Heads, 40)
	def(&o.KVHeads, 10)
	def(&o.HeadDim, 128)
	def(&o.Vocab, 100352)
	if o.TargetBPW <= 0 {
		o.TargetBPW = 3.2
	}
	if o.Std <= 0 {
		o.Std = 0.02
	}
}

// Config returns the model configuration Write stores for opts.
func Config(opts Options) model.Config {
	opts.defaults()
	return model.Config{
		Arch: "phi3", HFArchitecture: "Phi3ForCausalLM",
		Hidden: opts.Hidden, FFN: opts.FFN, Layers: opts.Layers, Heads: opts.Heads, KVHeads: opts.KVHeads,
		HeadDim: opts.HeadDim, Vocab: opts.Vocab, NormEps: 1e-5, RopeTheta: 250000, RopeDim: opts.HeadDim,
		MaxPositions: 16384, BOS: -1, EOS: []int{100257, 100265},
	}
}

type tensorSpec struct {
	name       string
	rows, cols int
	vector     bool // norm weight: f32, values ≈ 1
}

func specs(c *model.Config) []tensorSpec {
	d, qkv := c.Hidden, c.QDim()+2*c.KVDim()
	s := []tensorSpec{{name: "model.embed_tokens.weight", rows: c.Vocab, cols: d}}
	for i := 0; i < c.Layers; i++ {
		p := model.LayerPrefix(i)
		s = append(s,
			tensorSpec{name: p + "input_layernorm.weight", rows: 1, cols: d, vector: true},
			tensorSpec{name: p + "self_attn.qkv_proj.weight", rows: qkv, cols: d},
			tensorSpec{name: p + "self_attn.o_proj.weight", rows: d, cols: c.QDim()},
			tensorSpec{name: p + "post_attention_layernorm.weight", rows: 1, cols: d, vector: true},
			tensorSpec{name: p + "mlp.gate_up_proj.weight", rows: 2 * c.FFN, cols: d},
			tensorSpec{name: p + "mlp.down_proj.weight", rows: d, cols: c.FFN})
	}
	return append(s, tensorSpec{name: "model.norm.weight", rows: 1, cols: d, vector: true},
		tensorSpec{name: "lm_head.weight", rows: c.Vocab, cols: d})
}

// pickParams returns the densest dense-codec setting whose whole-file bits
// per weight stay within target.
func pickParams(sp []tensorSpec, target float64) (codec.Params, float64, error) {
	cands := []codec.Params{
		{Codec: "dense", Bits: 4, GroupSize: 64}, {Codec: "dense", Bits: 4, GroupSize: 128},
		{Codec: "dense", Bits: 3, GroupSize: 64}, {Codec: "dense", Bits: 3, GroupSize: 128},
		{Codec: "dense", Bits: 2, GroupSize: 64}, {Codec: "dense", Bits: 2, GroupSize: 128},
	}
	for _, p := range cands {
		var bytes, n int64
		for _, t := range sp {
			if t.vector {
				bytes += int64(4 * t.cols)
			} else {
				sz, err := codec.EncodedSize(p, t.rows, t.cols)
				if err != nil {
					return p, 0, err
				}
				bytes += sz
			}
			n += int64(t.rows) * int64(t.cols)
		}
		if bpw := float64(bytes) * 8 / float64(n); bpw <= target {
			return p, bpw, nil
		}
	}
	return codec.Params{}, 0, fmt.Errorf("synth: no dense setting reaches %.3g bits per weight (the smallest is 2-bit group 128)", target)
}

// Write creates the model file at path.
func Write(path string, opts Options) error {
	opts.defaults()
	cfg := Config(opts)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	sp := specs(&cfg)
	p, bpw, err := pickParams(sp, opts.TargetBPW)
	if err != nil {
		return err
	}
	p.Levels = "uniform"
	arch, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	meta := upgfile.Metadata{Architecture: arch,
		Provenance: json.RawMessage(fmt.Sprintf(`{"synthetic":true,"seed":%d,"std":%g,"codec":"dense %d-bit group %d uniform","bpw":%.4f}`,
			opts.Seed, opts.Std, p.Bits, p.GroupSize, bpw))}
	tokPath := opts.TokenizerPath
	if tokPath == "" {
		tokPath = DefaultTokenizer
	}
	if data, err := os.ReadFile(tokPath); err == nil {
		meta.Tokenizer = map[string][]byte{"cl100k_base.tiktoken": data}
	} else if opts.TokenizerPath != "" {
		return fmt.Errorf("synth: tokenizer: %w", err)
	}
	w, err := upgfile.Create(path)
	if err != nil {
		return err
	}
	if err := w.SetMetadata(meta); err != nil {
		w.Abort()
		return err
	}
	pj, _ := json.Marshal(p)
	f32j, _ := json.Marshal(codec.Params{Codec: "f32"})
	var total, done int64
	for _, t := range sp {
		total += int64(t.rows) * int64(t.cols)
	}
	for i, t := range sp {
		seed := opts.Seed*1_000_003 + uint64(i)
		var data []byte
		var params json.RawMessage
		if t.vector {
			rng := rand.New(rand.NewPCG(seed, 7))
			data = make([]byte, 4*t.cols)
			for c := 0; c < t.cols; c++ {
				binary.LittleEndian.PutUint32(data[4*c:], math.Float32bits(float32(1+0.02*rng.NormFloat64())))
			}
			params = f32j
		} else {
			if data, err = encodeDense(t.rows, t.cols, p, opts.Std, seed); err != nil {
				w.Abort()
				return fmt.Errorf("synth: %s: %w", t.name, err)
			}
			params = pj
		}
		shape := []int{t.rows, t.cols}
		if t.vector {
			shape = []int{t.cols}
		}
		if err := w.AddTensor(t.name, shape, params, data); err != nil {
			w.Abort()
			return err
		}
		done += int64(t.rows) * int64(t.cols)
		if opts.Progress != nil {
			opts.Progress(done, total, t.name)
		}
	}
	return w.Close()
}

// gaussTable returns 65536 samples of N(0, std²) (std is applied by the
// caller's scale); rows are drawn from it by a fast PCG stream, which keeps
// the exact Gaussian marginal at a fraction of NormFloat64's cost.
func gaussTable(seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	t := make([]float32, 1<<16)
	for i := range t {
		t[i] = float32(rng.NormFloat64())
	}
	return t
}

// encodeDense generates a rows×cols Gaussian matrix and encodes it with
// round-to-nearest into the "dense" layout (uniform levels L[q] = q-2^(k-1),
// one fp16 scale per group = max|w|/2^(k-1)), rows in parallel.
func encodeDense(rows, cols int, p codec.Params, std float64, seed uint64) ([]byte, error) {
	size, err := codec.EncodedSize(p, rows, cols)
	if err != nil {
		return nil, err
	}
	k, gs := p.Bits, p.GroupSize
	groups := (cols + gs - 1) / gs
	rowBytes := int((int64(cols)*int64(k)+7)/8+7) &^ 7
	scOff := 0
	codeOff := (rows*groups*2 + 7) &^ 7
	if int64(codeOff)+int64(rows)*int64(rowBytes) != size {
		return nil, fmt.Errorf("layout mismatch: %d+%d·%d != %d", codeOff, rows, rowBytes, size)
	}
	out := make([]byte, size)
	const chunk = 256
	nChunks := (rows + chunk - 1) / chunk
	workers := runtime.NumCPU()
	var wg sync.WaitGroup
	next := make(chan int, nChunks)
	for c := 0; c < nChunks; c++ {
		next <- c
	}
	close(next)
	half := 1 << (k - 1)
	gauss := gaussTable(seed)
	for i := range gauss {
		gauss[i] *= float32(std)
	}
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := make([]float32, cols)
			for c := range next {
				rng := rand.NewPCG(seed, uint64(c))
				for r := c * chunk; r < min((c+1)*chunk, rows); r++ {
					for i := 0; i+4 <= len(row); i += 4 {
						u := rng.Uint64()
						row[i] = gauss[u&0xffff]
						row[i+1] = gauss[u>>16&0xffff]
						row[i+2] = gauss[u>>32&0xffff]
						row[i+3] = gauss[u>>48]
					}
					for i := len(row) &^ 3; i < len(row); i++ {
						row[i] = gauss[rng.Uint64()&0xffff]
					}
					codes := out[codeOff+r*rowBytes : codeOff+(r+1)*rowBytes]
					for g := 0; g < groups; g++ {
						c0, c1 := g*gs, min((g+1)*gs, cols)
						var amax float32
						for _, v := range row[c0:c1] {
							amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
						}
						h := tensor.F32ToF16(amax / float32(half))
						binary.LittleEndian.PutUint16(out[scOff+2*(r*groups+g):], h)
						d := tensor.F16ToF32(h)
						var inv float32
						if d != 0 {
							inv = 1 / d
						}
						const magic = 12582912 // 1.5·2^23: adding it rounds to nearest
						for j := c0; j < c1; j++ {
							q := int(int32(math.Float32bits(row[j]*inv+magic)&0x7fffff)-0x400000) + half
							q = min(max(q, 0), 2*half-1)
							pos := j * k
							v := uint32(q) << (pos & 7)
							codes[pos>>3] |= byte(v)
							if v>>8 != 0 {
								codes[pos>>3+1] |= byte(v >> 8)
							}
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}
