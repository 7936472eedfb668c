package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/codec"
)

// trellisEmulate computes what the int8 trellis kernel computes, in
// float64: the rotated input quantized per group, exact integer dots of the
// level bytes, then the scales.
func trellisEmulate(m *codec.TrellisMatrix, x []float32, n int, lv q8Levels) []float64 {
	cp := 16 * m.TileCols
	out := make([]float64, n*m.R)
	xr := make([]float32, cp)
	xq := make([]int8, cp)
	for t := 0; t < n; t++ {
		clear(xr)
		copy(xr, x[t*m.C:(t+1)*m.C])
		m.RotateInput(xr[:m.C])
		for g := 0; g < m.Groups; g++ {
			c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, cp)
			s, sum := quantizeGroup(xq[c0:c1], xr[c0:c1], BestLevel())
			for r := 0; r < m.R; r++ {
				var dot int64
				for c := c0; c < c1; c++ {
					tile := m.Tile(r/16, c/16)
					idx := codec.TrellisIndex(codec.TrellisWindow(tile, codec.TrellisPos(r%16, c%16), m.Bits))
					dot += int64(lv.lut[idx]) * int64(xq[c])
				}
				v := (float64(lv.alpha)*float64(dot) + float64(lv.beta)*float64(sum)) * float64(s)
				out[t*m.R+r] += float64(m.Scale(r, g)) * v
			}
		}
	}
	return out
}

// TestTrellisKernels: every level's trellis kernel against the decoded
// matrix (float oracle), and the int8 kernel exactly against its emulation.
func TestTrellisKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	type shape struct{ rows, cols, bits, gs int }
	var mats []*codec.TrellisMatrix
	for _, s := range []shape{{37, 200, 3, 64}, {64, 256, 2, 128}, {48, 1000, 4, 64}, {16, 5120, 3, 128}, {20, 96, 2, 96}} {
		w := randVec(rng, s.rows*s.cols, 0.02)
		p := codec.Params{Codec: "trellis", Bits: s.bits, GroupSize: s.gs, Rotate: uint64(s.bits)}
		if s.cols%16 != 0 {
			p.Rotate = 0
		}
		mats = append(mats, encode(t, w, s.rows, s.cols, p).(*codec.TrellisMatrix))
	}
	// A random matrix with a linear codebook (L[i] = i - 32, which the
	// level tables store as u = i) and one whose columns are not a multiple
	// of 16 nor its rows of 16, both with random valid bitstreams.
	mats = append(mats, trellisRandMatrix(rng, 40, 384, 3, 128, func(i int) float32 { return float32(i - 32) }))
	mats = append(mats, trellisRandMatrix(rng, 33, 250, 4, 32, func(i int) float32 { return float32(i*i) / 256 }))
	for _, lv := range Levels() {
		b := NewWithLevel(2, lv)
		defer b.Close()
		for _, m := range mats {
			for _, n := range []int{1, 3, 11} { // 11: a full and a partial token tile
				t.Run(fmt.Sprintf("%s/%dx%d/k%d/g%d/n%d", lv, m.R, m.C, m.Bits, m.GroupSize, n), func(t *testing.T) {
					x := randVec(rng, n*m.C, 1)
					got := make([]float32, n*m.R)
					b.MatMulF32(got, x, m, n)
					want, mag := oracle(m, x, n)
					if trellisAsm(lv) {
						// The int8 kernel exactly (up to float rounding) against
						// its emulation with the level bytes it uses (≤ 255 for
						// VPDPBUSD, ≤ 127 for VPMADDUBSW and SDOT).
						check(t, got, trellisEmulate(m, x, n, trellisQ8Levels(m.Codebook, trellisUmax(lv))), mag, 1e-5)
						check(t, got, want, mag, 1e-2)
						return
					}
					check(t, got, want, mag, 1e-5)
				})
			}
		}
	}
}

// trellisRandMatrix is a random valid trellis matrix: random bitstreams,
// codebook cb(i), scales ≈ 0.01. (Speed does not depend on the values, and
// encoding a large matrix would take minutes.)
func trellisRandMatrix(rng *rand.Rand, rows, cols, bits, gs int, cb func(int) float32) *codec.TrellisMatrix {
	p := codec.Params{Codec: "trellis", Bits: bits, GroupSize: gs}
	sc, tl, sz, err := codec.TrellisSections(p, rows, cols)
	if err != nil {
		panic(err)
	}
	data := make([]byte, sz)
	for i := 0; i < 64; i++ {
		v := math.Float32bits(cb(i))
		data[4*i], data[4*i+1], data[4*i+2], data[4*i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	for i := sc; i+1 < tl; i += 2 {
		data[i], data[i+1] = 0x1f, 0x21 // fp16 ≈ 0.01
	}
	for i := tl; i < sz; i++ {
		data[i] = byte(rng.Uint32())
	}
	m, err := codec.Open(p, rows, cols, data)
	if err != nil {
		panic(err)
	}
	return m.(*codec.TrellisMatrix)
}

func trellisBenchMatrix(rng *rand.Rand, rows, cols, bits, gs int) *codec.TrellisMatrix {
	return trellisRandMatrix(rng, rows, cols, bits, gs, func(i int) float32 { return float32(i-32) / 16 })
}

// BenchmarkTrellisCompute is the single-core compute ceiling of the trellis
// kernels (as BenchmarkDenseCompute): one thread, a 512×5120 matrix (k = 3:
// 1 MB of tiles) that stays in the L2 cache, one token (decode) and 64
// (prefill; AVX-512 decodes each strip once for 8 tokens). MB/s are of
// encoded bytes.
func BenchmarkTrellisCompute(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, lv := range Levels() {
		for _, bits := range []int{2, 3, 4} {
			for _, n := range []int{1, 64} {
				name := fmt.Sprintf("%s/q%d", lv, bits)
				if n > 1 {
					name += fmt.Sprintf("/n%d", n)
				}
				b.Run(name, func(b *testing.B) {
					m := trellisBenchMatrix(rng, 512, 5120, bits, 128)
					be := NewWithLevel(1, lv)
					defer be.Close()
					x := randVec(rng, n*5120, 1)
					dst := make([]float32, n*512)
					b.SetBytes(int64(len(m.Tiles) + len(m.Scales)))
					for b.Loop() {
						be.MatMulF32(dst, x, m, n)
					}
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		}
	}
}

// BenchmarkTrellisDRAM streams 8 distinct 17920×5120 3-bit trellis matrices
// (about 280 MB) from memory with all cores, one token each, as in decoding.
func BenchmarkTrellisDRAM(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	var ms []*codec.TrellisMatrix
	var total int64
	for range 8 {
		m := trellisBenchMatrix(rng, 17920, 5120, 3, 128)
		ms = append(ms, m)
		total += int64(len(m.Tiles) + len(m.Scales))
	}
	for _, lv := range Levels() {
		if !trellisAsm(lv) {
			continue
		}
		b.Run(lv.String(), func(b *testing.B) {
			be := NewWithLevel(0, lv)
			defer be.Close()
			x := randVec(rng, 5120, 1)
			dst := make([]float32, 17920)
			b.SetBytes(total)
			for b.Loop() {
				for _, m := range ms {
					be.MatMulF32(dst, x, m, 1)
				}
			}
		})
	}
}
