// Package synth writes synthetic .upg models: real architectures' shapes
// (Phi-4 by default) with random Gaussian weights, encoded in the "dense"
// codec layout at a target bits-per-weight, for benchmarking the runtime
// without downloading or compressing a real checkpoint.
//
// Tensors are generated, encoded and written one at a time (rows in
// parallel), so memory stays bounded by the largest encoded tensor (about
// 200 MB for Phi-4's embedding) whatever the model size.
//
// The encoding is the compressor's default (compress.Ladder's "dense"
// family): k-bit codes with a per-tensor Lloyd codebook, fp16 group scales
// and the randomized Hadamard input rotation, so benchmarks measure what
// users' files contain. The codes are produced by a fast nearest-level
// encoder that writes the codec's documented "dense" byte layout;
// codec.Encode is far too slow for 14.7 billion weights. Because the
// weights are i.i.d. Gaussian, the rotated-domain matrix Ŵ' (what the
// codes store) is drawn directly: W = Ŵ'·Q is then i.i.d. Gaussian too.
// The files open and decode through the real codec (codec.Open), which the
// tests check.
package synth

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
	"github.com/upg-ai/upg/tokenizer"
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
	// Levels is the codec's levels: "lloyd" (default, with rotation, as
	// the compressor writes) or "uniform" (no rotation).
	Levels string
	// Codec is "dense" (default) or "trellis" (random valid bitstreams,
	// rotated, a Gaussian codebook).
	Codec string
	Std   float64 // weight standard deviation (default 0.02)
	// RotateResidual writes the file as `upg compress --rotate-residual`
	// would: the matrices that read the residual stream's norms (q/k/v,
	// gate/up, the head) without an input rotation, every norm gain 1.
	RotateResidual bool
	Seed           uint64
	// TokenizerPath is a tiktoken rank file to embed (cl100k_base's for
	// Phi-4); a missing or unreadable file, or one with more tokens than
	// Vocab, is an error. Empty means DefaultTokenizer where that
	// file exists, else a byte-level tokenizer (see tokenizerFiles).
	TokenizerPath string
	// Progress, if set, is called after each tensor with the weights
	// written so far, the total and the tensor's name.
	Progress func(done, total int64, name string)
}

// DefaultTokenizer is where the shared cl100k_base rank file lives.
const DefaultTokenizer = "/work/shared/tokenizers/tiktoken/cl100k_base.tiktoken"

// defaultTokenizer is what Write reads for DefaultTokenizer (tests point it
// at a missing file to take the byte-level fallback).
var defaultTokenizer = DefaultTokenizer

// tokenizerFiles returns the tokenizer files to embed. path, when set, must
// be a tiktoken rank file whose tokens fit vocab (embedded under its own
// name where that ends in .tiktoken, since the name picks the split
// pattern; else as cl100k_base.tiktoken). Otherwise def is used where it
// exists; where it does not (any machine without the project's shared
// data), a byte-level rank file is made instead — the 256 bytes as ranks
// 0-255, with cl100k's split pattern and special tokens — so that run,
// chat, serve and bench open the file anywhere, or none where its tokens do
// not fit vocab. The weights are random, so the text is noise with either.
func tokenizerFiles(path, def string, vocab int) (map[string][]byte, error) {
	name := "bytes.tiktoken"
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("synth: tokenizer: %w", err)
		}
		// the name picks the split pattern and special tokens (o200k, r50k, ...)
		if name = filepath.Base(path); !strings.HasSuffix(name, ".tiktoken") {
			name = "cl100k_base.tiktoken"
		}
	} else if d, err := os.ReadFile(def); err == nil {
		return map[string][]byte{"cl100k_base.tiktoken": d}, nil
	} else {
		var b strings.Builder
		for i := range 256 {
			fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(i)}), i)
		}
		data = []byte(b.String())
	}
	tok, err := tokenizer.FromTiktoken(data, name)
	if err != nil {
		return nil, fmt.Errorf("synth: tokenizer %s: %w", path, err)
	}
	if n := tok.VocabSize(); n > vocab {
		if path == "" {
			slog.Warn("synth: no tokenizer embedded: the vocabulary is too small for the byte-level tokenizer's special tokens; pass one with --tokenizer", "vocab", vocab, "want", n)
			return nil, nil
		}
		return nil, fmt.Errorf("synth: tokenizer %s has %d tokens, more than the model's vocabulary of %d", path, n, vocab)
	}
	if path == "" {
		slog.Info("synth: embedding a byte-level tokenizer (256 byte tokens); --tokenizer FILE embeds a rank file instead", "missing", def)
	}
	return map[string][]byte{name: data}, nil
}

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
	if o.Levels == "" {
		o.Levels = "lloyd"
	}
	if o.Codec == "" {
		o.Codec = "dense"
	}
}

// rotateSeed is the rotation seed compress.Ladder uses.
const rotateSeed = 0x5eed

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
	// readsStream: the matrix reads a norm of the residual stream (its
	// input rotation is dropped with Options.RotateResidual)
	readsStream bool
}

func specs(c *model.Config) []tensorSpec {
	d, qkv := c.Hidden, c.QDim()+2*c.KVDim()
	s := []tensorSpec{{name: "model.embed_tokens.weight", rows: c.Vocab, cols: d}}
	for i := 0; i < c.Layers; i++ {
		p := model.LayerPrefix(i)
		s = append(s,
			tensorSpec{name: p + "input_layernorm.weight", rows: 1, cols: d, vector: true},
			tensorSpec{name: p + "self_attn.qkv_proj.weight", rows: qkv, cols: d, readsStream: true},
			tensorSpec{name: p + "self_attn.o_proj.weight", rows: d, cols: c.QDim()},
			tensorSpec{name: p + "post_attention_layernorm.weight", rows: 1, cols: d, vector: true},
			tensorSpec{name: p + "mlp.gate_up_proj.weight", rows: 2 * c.FFN, cols: d, readsStream: true},
			tensorSpec{name: p + "mlp.down_proj.weight", rows: d, cols: c.FFN})
	}
	return append(s, tensorSpec{name: "model.norm.weight", rows: 1, cols: d, vector: true},
		tensorSpec{name: "lm_head.weight", rows: c.Vocab, cols: d, readsStream: true})
}

// denseCandidates are the dense settings synth may use, densest first.
func denseCandidates(levels string) []codec.Params {
	var out []codec.Params
	for _, bits := range []int{4, 3, 2} {
		for _, gs := range []int{64, 128} {
			p := codec.Params{Codec: "dense", Bits: bits, GroupSize: gs, Levels: levels}
			if levels == "lloyd" {
				p.Rotate = rotateSeed
			}
			out = append(out, p)
		}
	}
	return out
}

// trellisCandidates are the trellis settings synth may use, densest first.
func trellisCandidates() []codec.Params {
	var out []codec.Params
	for _, bits := range []int{4, 3, 2} {
		for _, gs := range []int{64, 128, 256} {
			out = append(out, codec.Params{Codec: "trellis", Bits: bits, GroupSize: gs, Rotate: rotateSeed})
		}
	}
	return out
}

// pickParams returns the densest of cands whose whole-file bits per weight
// stay within target.
func pickParams(sp []tensorSpec, target float64, cands []codec.Params) (codec.Params, float64, error) {
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
	last := cands[len(cands)-1]
	return codec.Params{}, 0, fmt.Errorf("synth: no %s setting reaches %.3g bits per weight (the smallest is %d-bit group %d)", last.Codec, target, last.Bits, last.GroupSize)
}

// Write creates the model file at path.
func Write(path string, opts Options) error {
	opts.defaults()
	cfg := Config(opts)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	sp := specs(&cfg)
	if opts.Levels != "lloyd" && opts.Levels != "uniform" {
		return fmt.Errorf("synth: levels %q (known: lloyd, uniform)", opts.Levels)
	}
	var p codec.Params
	var bpw float64
	var err error
	switch opts.Codec {
	case "dense":
		p, bpw, err = pickParams(sp, opts.TargetBPW, denseCandidates(opts.Levels))
	case "trellis":
		p, bpw, err = pickParams(sp, opts.TargetBPW, trellisCandidates())
	default:
		return fmt.Errorf("synth: codec %q (known: dense, trellis)", opts.Codec)
	}
	if err != nil {
		return err
	}
	arch, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	meta := upgfile.Metadata{Architecture: arch,
		Provenance: json.RawMessage(fmt.Sprintf(`{"synthetic":true,"seed":%d,"std":%g,"codec":"%s %d-bit group %d %s rotate=%v","rotate_residual":%v,"bpw":%.4f}`,
			opts.Seed, opts.Std, p.Codec, p.Bits, p.GroupSize, p.Levels, p.Rotate != 0, opts.RotateResidual, bpw))}
	if f := p.Requires(); f != "" {
		meta.Requires = []string{f}
	}
	if meta.Tokenizer, err = tokenizerFiles(opts.TokenizerPath, defaultTokenizer, opts.Vocab); err != nil {
		return err
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
	readerP := p
	readerP.Rotate = 0
	readerJ, _ := json.Marshal(readerP)
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
				g := float32(1 + 0.02*rng.NormFloat64())
				if opts.RotateResidual {
					g = 1 // folded into the matrices that read the norm
				}
				binary.LittleEndian.PutUint32(data[4*c:], math.Float32bits(g))
			}
			params = f32j
		} else {
			tp, tj := p, pj
			if opts.RotateResidual && t.readsStream {
				tp, tj = readerP, readerJ
			}
			if p.Codec == "trellis" {
				data, err = encodeTrellis(t.rows, t.cols, tp, opts.Std, seed)
			} else {
				data, err = encodeDense(t.rows, t.cols, tp, opts.Std, seed)
			}
			if err != nil {
				w.Abort()
				return fmt.Errorf("synth: %s: %w", t.name, err)
			}
			params = tj
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

// gaussCodebook learns the 2^k-level Lloyd codebook of absmax-normalised
// groups of gs Gaussian values (what every synthetic tensor needs: the
// weights are i.i.d., so one codebook per (k, gs) is optimal for all), from
// 4096 sample groups of the table g, ascending.
func gaussCodebook(g []float32, k, gs int) []float32 {
	var v []float32
	for i := 0; i+gs <= len(g) && len(v) < 4096*gs; i += gs {
		var amax float32
		for _, x := range g[i : i+gs] {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		for _, x := range g[i : i+gs] {
			v = append(v, x/amax)
		}
	}
	n := 1 << k
	L := make([]float32, n)
	for i := range L { // start from uniform levels
		L[i] = -1 + 2*(float32(i)+0.5)/float32(n)
	}
	sum := make([]float64, n)
	cnt := make([]int, n)
	for it := 0; it < 30; it++ {
		clear(sum)
		clear(cnt)
		for _, x := range v {
			q := nearest(L, x)
			sum[q] += float64(x)
			cnt[q]++
		}
		for i := range L {
			if cnt[i] > 0 {
				L[i] = float32(sum[i] / float64(cnt[i]))
			}
		}
	}
	return L
}

// nearest returns the index of the level of the ascending table L closest to x.
func nearest(L []float32, x float32) int {
	q := 0
	for q+1 < len(L) && x > (L[q]+L[q+1])/2 {
		q++
	}
	return q
}

// fillRow draws the next row of Gaussian weights from rng and the table.
func fillRow(row []float32, rng *rand.PCG, gauss []float32) {
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
}

// encodeDense generates a rows×cols Gaussian matrix and encodes it into the
// "dense" layout, rows in parallel: with p.Levels "uniform", round to
// nearest of L[q] = q-2^(k-1) with scale max|w|/2^(k-1); with "lloyd", the
// nearest level of gaussCodebook with scale max|w| (the drawn matrix is the
// rotated-domain Ŵ', see the package comment).
func encodeDense(rows, cols int, p codec.Params, std float64, seed uint64) ([]byte, error) {
	size, err := codec.EncodedSize(p, rows, cols)
	if err != nil {
		return nil, err
	}
	k, gs := p.Bits, p.GroupSize
	groups := (cols + gs - 1) / gs
	rowBytes := int((int64(cols)*int64(k)+7)/8+7) &^ 7
	gauss := gaussTable(seed)
	var L []float32
	scOff := 0
	if p.Levels == "lloyd" {
		L = gaussCodebook(gauss, k, gs)
		scOff = (4<<k + 7) &^ 7
	}
	codeOff := (scOff + rows*groups*2 + 7) &^ 7
	if int64(codeOff)+int64(rows)*int64(rowBytes) != size {
		return nil, fmt.Errorf("layout mismatch: %d+%d·%d != %d", codeOff, rows, rowBytes, size)
	}
	out := make([]byte, size)
	for i, v := range L {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	// thr[q] is the decision threshold between levels q and q+1.
	var thr []float32
	for q := 0; q+1 < len(L); q++ {
		thr = append(thr, (L[q]+L[q+1])/2)
	}
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
					fillRow(row, rng, gauss)
					codes := out[codeOff+r*rowBytes : codeOff+(r+1)*rowBytes]
					for g := 0; g < groups; g++ {
						c0, c1 := g*gs, min((g+1)*gs, cols)
						var amax float32
						for _, v := range row[c0:c1] {
							amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
						}
						div := float32(half)
						if L != nil {
							div = 1
						}
						h := tensor.F32ToF16(amax / div)
						binary.LittleEndian.PutUint16(out[scOff+2*(r*groups+g):], h)
						d := tensor.F16ToF32(h)
						var inv float32
						if d != 0 {
							inv = 1 / d
						}
						const magic = 12582912 // 1.5·2^23: adding it rounds to nearest
						for j := c0; j < c1; j++ {
							var q int
							if L != nil {
								x := row[j] * inv
								for q < len(thr) && x > thr[q] {
									q++
								}
							} else {
								q = int(int32(math.Float32bits(row[j]*inv+magic)&0x7fffff)-0x400000) + half
								q = min(max(q, 0), 2*half-1)
							}
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

// encodeTrellis writes a rows×cols trellis tensor with random bitstreams
// (every bitstream is valid), the Gaussian codebook of 64 quantiles and
// scales std·(1 ± 10%), so that the weights are about N(0, std²).
func encodeTrellis(rows, cols int, p codec.Params, std float64, seed uint64) ([]byte, error) {
	scOff, tileOff, size, err := codec.TrellisSections(p, rows, cols)
	if err != nil {
		return nil, err
	}
	out := make([]byte, size)
	for i := 0; i < codec.TrellisCodebookSize; i++ {
		q := (float64(i) + 0.5) / codec.TrellisCodebookSize
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(math.Sqrt2*math.Erfinv(2*q-1))))
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	for o := scOff; o < tileOff; o += 2 {
		binary.LittleEndian.PutUint16(out[o:], tensor.F32ToF16(float32(std*(0.9+0.2*rng.Float64()))))
	}
	tiles := out[tileOff:]
	const chunk = 1 << 20
	n := (len(tiles) + chunk - 1) / chunk
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := w; c < n; c += runtime.NumCPU() {
				r := rand.NewPCG(seed, uint64(c))
				b := tiles[c*chunk : min((c+1)*chunk, len(tiles))]
				for i := 0; i+8 <= len(b); i += 8 {
					binary.LittleEndian.PutUint64(b[i:], r.Uint64())
				}
			}
		}(w)
	}
	wg.Wait()
	return out, nil
}
