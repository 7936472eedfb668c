package cpu

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

var (
	benchOnce sync.Map // shape key -> tensor.Matrix
)

// phiMatrix encodes (once per process) a random Phi-4-shaped matrix as
// dense 3-bit group-128 uniform codes.
func phiMatrix(b testing.TB, rows, cols int, p codec.Params) (tensor.Matrix, int64) {
	key := fmt.Sprint(rows, cols, p)
	if m, ok := benchOnce.Load(key); ok {
		sz, _ := codec.EncodedSize(p, rows, cols)
		return m.(tensor.Matrix), sz
	}
	rng := rand.New(rand.NewPCG(1, uint64(rows)))
	m := encode(b, randVec(rng, rows*cols, 0.02), rows, cols, p)
	benchOnce.Store(key, m)
	sz, _ := codec.EncodedSize(p, rows, cols)
	return m, sz
}

// BenchmarkDense reports weight bytes streamed per second (b.SetBytes) for
// one token (decode) and for 64 tokens (prefill) on Phi-4's matrix shapes,
// for 3-bit group-128 uniform codes and for the compressor's default
// encoding (3-bit group-128 lloyd codebook with the input rotation).
func BenchmarkDense(b *testing.B) {
	shapes := [][2]int{{5120, 5120}, {17920, 5120}, {5120, 17920}}
	ks := append([]benchKernel{{"generic", LevelGeneric, false}}, benchKernels()...)
	for _, kc := range ks {
		for _, sh := range shapes {
			for _, lvl := range []string{"uniform", "lloyd"} {
				for _, n := range []int{1, 4, 8, 64} {
					if n > 1 && kc.level == LevelGeneric {
						continue
					}
					p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: lvl}
					name := lvl
					if lvl == "lloyd" {
						p.Rotate, name = 0x5eed, "lloyd-rot"
					}
					b.Run(fmt.Sprintf("%s/%dx%d/%s/n%d", kc.name, sh[0], sh[1], name, n), func(b *testing.B) {
						m, sz := phiMatrix(b, sh[0], sh[1], p)
						be := kc.new(0)
						defer be.Close()
						x := randVec(rand.New(rand.NewPCG(2, 3)), n*sh[1], 1)
						dst := make([]float32, n*sh[0])
						b.SetBytes(sz)
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							be.MatMulF32(dst, x, m, n)
						}
						b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tok/s")
					})
				}
			}
		}
	}
}

// BenchmarkDenseCompute is the single-core compute ceiling of the decode
// kernels: one thread, a 512×5120 matrix (about 1 MB of codes) that stays
// in the L2 cache, so memory bandwidth does not limit it.
func BenchmarkDenseCompute(b *testing.B) {
	for _, kc := range benchKernels() {
		for _, lvl := range []string{"uniform", "lloyd"} {
			for _, bits := range []int{2, 3, 4} {
				p := codec.Params{Codec: "dense", Bits: bits, GroupSize: 128, Levels: lvl}
				b.Run(fmt.Sprintf("%s/q%d/%s", kc.name, bits, lvl), func(b *testing.B) {
					m, sz := phiMatrix(b, 512, 5120, p)
					be := kc.new(1)
					defer be.Close()
					x := randVec(rand.New(rand.NewPCG(2, 3)), 5120, 1)
					dst := make([]float32, 512)
					b.SetBytes(sz)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						be.MatMulF32(dst, x, m, 1)
					}
				})
			}
		}
	}
}

// BenchmarkTileCompute is BenchmarkDenseCompute for prefill: one thread,
// the same L2-resident 512×5120 matrix, 64 tokens per call (the tile
// kernels). Bytes per second count the codes once per call, so they are the
// prefill rate in weight bytes: 64 tokens' worth of products per byte.
func BenchmarkTileCompute(b *testing.B) {
	for _, kc := range benchKernels() {
		for _, bits := range []int{2, 3, 4} {
			p := codec.Params{Codec: "dense", Bits: bits, GroupSize: 128, Levels: "lloyd"}
			b.Run(fmt.Sprintf("%s/q%d/lloyd", kc.name, bits), func(b *testing.B) {
				const n = 64
				m, sz := phiMatrix(b, 512, 5120, p)
				be := kc.new(1)
				defer be.Close()
				x := randVec(rand.New(rand.NewPCG(2, 3)), n*5120, 1)
				dst := make([]float32, n*512)
				b.SetBytes(sz)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					be.MatMulF32(dst, x, m, n)
				}
			})
		}
	}
}

// BenchmarkDenseDRAM is the decode kernel streaming from memory: 16 distinct
// 17920×5120 matrices (3-bit codes, group 128, a non-linear codebook; about
// 570 MB, more than the last-level cache) multiplied in turn with one
// token, as in decoding. The codes are random bytes: speed does not depend
// on the values. The uniform variant (no codebook lookup, a third fewer
// shuffles) shows how much compute limits streaming. Compare its MB/s with
// `upg bench`'s read bandwidth.
func BenchmarkDenseDRAM(b *testing.B) {
	const rows, cols = 17920, 5120
	rng := rand.New(rand.NewPCG(5, 6))
	ms, total := dramMatrices(rng, rows, cols)
	lloyd := ms[0].Levels
	for _, kc := range benchKernels() {
		for _, levels := range []string{"lloyd", "uniform"} {
			b.Run(kc.name+"/"+levels, func(b *testing.B) {
				for _, m := range ms {
					m.Levels = lloyd
					if levels == "uniform" {
						m.Levels = []float32{-4, -3, -2, -1, 0, 1, 2, 3}
					}
				}
				streamMatrices(b, kc, rng, ms, total, 1)
			})
		}
	}
}

// dramMatrices are 16 distinct rows×cols 3-bit group-128 Lloyd matrices
// of random codes (beyond the L3 together) and their bytes.
func dramMatrices(rng *rand.Rand, rows, cols int) ([]*codec.DenseMatrix, int64) {
	const bits, gs, count = 3, 128, 16
	groups := cols / gs
	var ms []*codec.DenseMatrix
	var total int64
	for range count {
		m := &codec.DenseMatrix{R: rows, C: cols, Bits: bits, GroupSize: gs, Groups: groups,
			Levels: []float32{-2.1, -1.3, -0.75, -0.24, 0.25, 0.77, 1.35, 2.2}, RowBytes: cols * bits / 8,
			Scales: make([]byte, 2*rows*groups), Codes: make([]byte, rows*cols*bits/8)}
		for i := range m.Codes {
			m.Codes[i] = byte(rng.Uint32())
		}
		for i := 0; i < len(m.Scales); i += 2 {
			m.Scales[i], m.Scales[i+1] = 0x1f, 0x21 // fp16 ≈ 0.01
		}
		ms = append(ms, m)
		total += int64(len(m.Codes) + len(m.Scales))
	}
	return ms, total
}

// BenchmarkDenseDRAMTokens is BenchmarkDenseDRAM's streaming (Lloyd
// levels) for steps of n tokens: what a batched decoding step of n
// sequences, or a decoding step with n-1 prompt-lookup draft tokens,
// costs in the matrix multiplies against one token. MB/s counts the
// weights once per call.
//
//	go test ./backend/cpu -run XXX -bench DenseDRAMTokens/avx512 -benchtime 20x -count 3
func BenchmarkDenseDRAMTokens(b *testing.B) {
	const rows, cols = 17920, 5120
	rng := rand.New(rand.NewPCG(5, 6))
	ms, total := dramMatrices(rng, rows, cols)
	for _, kc := range benchKernels() {
		for _, n := range []int{1, 2, 3, 4, 8} {
			b.Run(fmt.Sprintf("%s/n%d", kc.name, n), func(b *testing.B) {
				streamMatrices(b, kc, rng, ms, total, n)
			})
		}
	}
}

// streamMatrices times multiplying n random tokens by each of ms in turn
// with kc's kernels (one warm-up pass first); total is ms's bytes.
func streamMatrices(b *testing.B, kc benchKernel, rng *rand.Rand, ms []*codec.DenseMatrix, total int64, n int) {
	be := kc.new(0)
	defer be.Close()
	x := randVec(rng, n*ms[0].C, 1)
	dst := make([]float32, n*ms[0].R)
	for _, m := range ms {
		be.MatMulF32(dst, x, m, n)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range ms {
			be.MatMulF32(dst, x, m, n)
		}
	}
}

// benchKernel is one kernel configuration of the compute benchmarks.
type benchKernel struct {
	name  string
	level Level
	vnni  bool
}

func (k benchKernel) new(threads int) *Backend {
	b := NewWithLevel(threads, k.level)
	b.vnni = b.vnni && k.vnni
	return b
}

// benchKernels are the levels above generic, and AVX2 without AVX-VNNI as
// "avx2-novnni" on a machine that has it.
func benchKernels() []benchKernel {
	var ks []benchKernel
	for _, lv := range Levels() {
		if lv == LevelGeneric {
			continue
		}
		if lv == LevelAVX2 && hasAVXVNNI {
			ks = append(ks, benchKernel{"avx2-novnni", lv, false})
		}
		ks = append(ks, benchKernel{lv.String(), lv, true})
	}
	return ks
}
