// Package codec holds the weight codecs of the .upg format: passthrough
// (f32, f16, bf16), dense k-bit group quantization ("dense"), N:M and
// unstructured sparsity with quantized non-zeros ("sparse"), and a dense
// low-bit base with a sparse fp16 overlay of salient weights ("overlay").
//
// Every quantized codec can be encoded by plain importance-weighted
// round-to-nearest (no calibration) or, given the input Hessian
// H = (1/n) Σ x xᵀ, by GPTQ-style column-by-column error compensation
// (SparseGPT-style pruning for "sparse"). The dense and overlay codecs can
// optionally apply incoherence processing: a randomized Hadamard rotation
// of the input dimension (stored as a seed), so that the kernel computes
// y = Ŵ'·(Q·x) with Q = H·D orthogonal.
//
// The encoded byte layouts are bit-exact and described on each Matrix type
// (DenseMatrix, SparseMatrix, OverlayMatrix); every decoder has a scalar
// DecodeRows (the oracle) and a scalar fused MatVec/MatMul reference path.
package codec

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/upg-ai/upg/tensor"
)

// Params says how one tensor is encoded. It is stored as JSON in the .upg
// tensor directory; field names and meanings are stable.
type Params struct {
	// Codec is "f32", "f16", "bf16" (passthrough), "dense", "sparse" or "overlay".
	Codec string `json:"codec"`
	// Bits per quantized value, 2..8 (dense, sparse non-zeros, overlay base).
	Bits int `json:"bits,omitempty"`
	// GroupSize is the number of consecutive columns sharing one fp16 scale
	// (0 means DefaultGroupSize). For "sparse" it is a column span and must be
	// a multiple of M for N:M.
	GroupSize int `json:"group,omitempty"`
	// Levels picks the code → value map: "uniform" (default; L[q] = q-2^(k-1),
	// signed scale), "midrise" (L[q] = q-(2^k-1)/2), "lloyd" (a per-tensor
	// learned 2^k-entry codebook stored in the data) or "asym" (L[q] = q with a
	// per-group fp16 offset; dense/overlay only).
	Levels string `json:"levels,omitempty"`
	// N and M select N:M structured sparsity (keep N of every M columns);
	// both zero means unstructured sparsity with Density.
	N int `json:"n,omitempty"`
	M int `json:"m,omitempty"`
	// Density is the kept fraction per row for unstructured sparsity: every
	// row keeps exactly round(Density*cols) weights.
	Density float64 `json:"density,omitempty"`
	// OverlayFrac is the fraction of each row kept as fp16 overlay entries:
	// every row holds exactly round(OverlayFrac*cols) of them.
	OverlayFrac float64 `json:"overlay_frac,omitempty"`
	// Rotate, when non-zero, is the seed of the randomized Hadamard rotation of
	// the input dimension (dense and overlay only); see RotationSigns.
	Rotate uint64 `json:"rotate,omitempty"`
	// Damp is the GPTQ dampening as a fraction of mean(diag H); 0 means
	// 0.01. It does not affect the layout.
	Damp float64 `json:"damp,omitempty"`
}

// DefaultGroupSize is the group size used when Params.GroupSize is 0.
const DefaultGroupSize = 128

// Hessian is calibration information about a weight's inputs:
// H = (1/N) Σ x xᵀ over N calibration activations, Cols×Cols row-major.
// A nil *Hessian means "no calibration".
//
// RowWeights, when set (one per row, mean about 1), weight each row's error:
// the trellis encoder then minimises Σ_r RowWeights[r]·(W−Ŵ)_r H (W−Ŵ)_rᵀ,
// spending a tile's freedom on the rows that matter (the rows of an
// embedding or output head are tokens, of very unequal frequency). H may be
// nil with RowWeights set (no column calibration: H = I). Only the trellis
// codec reads RowWeights; the other codecs ignore them (and a Hessian
// without H).
type Hessian struct {
	N          int
	Cols       int
	H          []float64
	RowWeights []float32

	memo *hessianMemo // set by Memoize
}

// hessianMemo keeps what the codecs derive from one Hessian: the GPTQ
// factor of each rotation, padded width and dampening.
type hessianMemo struct {
	mu   sync.Mutex
	prep map[prepKey]*prepared
}

type prepKey struct {
	rotate uint64
	n      int
	damp   float64
}

// Memoize makes the codecs keep the GPTQ factor of H for each rotation,
// padded width and dampening they encode with, so that encoding one
// tensor's rows (or a sample of them) with several candidate parameter
// sets, as the compressor's planner does, rotates and factorises H once
// instead of once a candidate. Only the factor is kept (float32, half of
// H's bytes): the rotated H is a factorisation's scratch. h.H must not
// change afterwards. It returns h.
func (h *Hessian) Memoize() *Hessian {
	h.memo = &hessianMemo{prep: map[prepKey]*prepared{}}
	return h
}

// factor returns prepareHessian of h.H rotated with the signs of seed (0:
// not rotated), padded to n ≥ h.Cols columns (the padding independent,
// with unit energy), memoised when h is.
func (h *Hessian) factor(seed uint64, n int, damp float64) (*prepared, error) {
	fill := func(a []float64) { fillHessian(a, n, h.H, h.Cols, seed) }
	if h.memo == nil {
		return prepareHessian(n, damp, fill)
	}
	h.memo.mu.Lock()
	defer h.memo.mu.Unlock()
	k := prepKey{seed, n, damp}
	if p, ok := h.memo.prep[k]; ok {
		return p, nil
	}
	p, err := prepareHessian(n, damp, fill)
	if err == nil {
		h.memo.prep[k] = p
	}
	return p, err
}

// Codec encodes and opens one family of weight encodings.
type Codec interface {
	Name() string
	// Encode compresses w (rows×cols row-major, y = W·x). With h != nil it
	// minimises tr((W-Ŵ) H (W-Ŵ)ᵀ) by GPTQ-style error compensation. It does
	// not modify w.
	Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error)
	// Open validates data against p, rows and cols and returns a zero-copy view.
	Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error)
	// EncodedSize is the exact byte length Encode produces.
	EncodedSize(p Params, rows, cols int) (int64, error)
}

var registry = map[string]Codec{
	"f32":     passthrough{tensor.F32},
	"f16":     passthrough{tensor.F16},
	"bf16":    passthrough{tensor.BF16},
	"dense":   denseCodec{},
	"sparse":  sparseCodec{},
	"overlay": overlayCodec{},
	"trellis": trellisCodec{},
}

// Lookup returns the codec with the given name.
func Lookup(name string) (Codec, error) {
	if c, ok := registry[name]; ok {
		return c, nil
	}
	known := make([]string, 0, len(registry))
	for k := range registry {
		known = append(known, k)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("unknown codec %q (known: %s)", name, strings.Join(known, ", "))
}

// Encode looks up p.Codec and encodes w with it.
func Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error) {
	c, err := Lookup(p.Codec)
	if err != nil {
		return nil, err
	}
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		return nil, fmt.Errorf("codec %s: %d values for a %dx%d matrix", p.Codec, len(w), rows, cols)
	}
	if h != nil {
		if h.RowWeights != nil && len(h.RowWeights) != rows {
			return nil, fmt.Errorf("codec %s: %d row weights for %d rows", p.Codec, len(h.RowWeights), rows)
		}
		if h.H == nil && h.RowWeights == nil {
			h = nil
		} else if h.H != nil && (h.Cols != cols || len(h.H) != cols*cols) {
			return nil, fmt.Errorf("codec %s: hessian is %d cols with %d values, matrix has %d cols", p.Codec, h.Cols, len(h.H), cols)
		}
		if h != nil && p.Codec != "trellis" {
			if h.H == nil {
				h = nil // row weights alone: only the trellis codec uses them
			} else if h.RowWeights != nil {
				h = &Hessian{N: h.N, Cols: h.Cols, H: h.H, memo: h.memo}
			}
		}
	}
	return c.Encode(w, rows, cols, p, h)
}

// Open looks up p.Codec and opens data with it.
func Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error) {
	c, err := Lookup(p.Codec)
	if err != nil {
		return nil, err
	}
	if rows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("codec %s: bad shape %dx%d", p.Codec, rows, cols)
	}
	return c.Open(p, rows, cols, data)
}

// EncodedSize looks up p.Codec and returns its exact encoded size.
func EncodedSize(p Params, rows, cols int) (int64, error) {
	c, err := Lookup(p.Codec)
	if err != nil {
		return 0, err
	}
	if rows <= 0 || cols <= 0 {
		return 0, fmt.Errorf("codec %s: bad shape %dx%d", p.Codec, rows, cols)
	}
	return c.EncodedSize(p, rows, cols)
}

// BitsPerWeight is EncodedSize*8/(rows*cols), or NaN-free 0 on bad params.
func BitsPerWeight(p Params, rows, cols int) float64 {
	n, err := EncodedSize(p, rows, cols)
	if err != nil {
		return 0
	}
	return float64(n) * 8 / (float64(rows) * float64(cols))
}

// passthrough stores the matrix uncompressed.
type passthrough struct{ dt tensor.DType }

func (c passthrough) Name() string { return strings.ToLower(c.dt.String()) }

func (c passthrough) EncodedSize(p Params, rows, cols int) (int64, error) {
	n, ok := tensor.NumElements([]int{rows, cols})
	if !ok {
		return 0, fmt.Errorf("codec %s: shape %dx%d overflows", c.Name(), rows, cols)
	}
	return int64(n) * int64(c.dt.Size()), nil
}

func (c passthrough) Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error) {
	out := make([]byte, len(w)*c.dt.Size())
	for i, v := range w {
		switch c.dt {
		case tensor.F32:
			putF32(out[4*i:], v)
		case tensor.F16:
			putU16(out[2*i:], tensor.F32ToF16(v))
		case tensor.BF16:
			putU16(out[2*i:], tensor.F32ToBF16(v))
		}
	}
	return out, nil
}

func (c passthrough) Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error) {
	d, err := tensor.NewDense(c.dt, rows, cols, data)
	if err != nil {
		return nil, fmt.Errorf("codec %s: %v", c.Name(), err)
	}
	return d, nil
}

// Features lists the .upg "requires" features this package implements:
// files whose tensors use a codec newer than the format's first readers
// declare it, so that those readers refuse them with a clear message.
var Features = []string{"codec:trellis"}

// Requires returns the feature a file must declare to hold a tensor encoded
// with p, or "" when every reader knows p's codec.
func (p Params) Requires() string {
	if p.Codec == "trellis" {
		return "codec:trellis"
	}
	return ""
}
