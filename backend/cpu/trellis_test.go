package cpu

import (
	"fmt"
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
			s, sum := quantizeGroup(xq[c0:c1], xr[c0:c1])
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
						check(t, got, trellisEmulate(m, x, n, newQ8LevelsMax(m.Codebook, 6, 255)), mag, 1e-5)
						check(t, got, want, mag, 1e-2)
						return
					}
					check(t, got, want, mag, 1e-5)
				})
			}
		}
	}
}

// randomTrellis is a rows×cols trellis matrix with random codes (every
// bitstream is valid; speed does not depend on the values), scales ≈ 0.01
// and a Gaussian codebook.
func randomTrellis(rng *rand.Rand, rows, cols, bits, gs int) *codec.TrellisMatrix {
	m := &codec.TrellisMatrix{R: rows, C: cols, Bits: bits, GroupSize: gs, Groups: (cols + gs - 1) / gs,
		Bands: (rows + 15) / 16, TileCols: (cols + 15) / 16, TileBytes: 32 * bits, Codebook: make([]float32, codec.TrellisCodebookSize)}
	for i := range m.Codebook {
		m.Codebook[i] = float32(i-32) / 14
	}
	m.Scales = make([]byte, 2*16*m.Bands*m.Groups)
	for i := 0; i < len(m.Scales); i += 2 {
		m.Scales[i], m.Scales[i+1] = 0x1f, 0x21
	}
	m.Tiles = make([]byte, m.Bands*m.TileCols*m.TileBytes)
	for i := range m.Tiles {
		m.Tiles[i] = byte(rng.Uint32())
	}
	return m
}

// BenchmarkTrellisCompute is one core's decode ceiling: a 512×5120 trellis
// matrix (in cache) times one token, in weight bytes per second; n64 is a
// 64-token prefill (the tile kernel: each decode serves 8 tokens).
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
					m := randomTrellis(rng, 512, 5120, bits, 128)
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

// BenchmarkTrellisDRAM streams 16 distinct 17920×5120 3-bit trellis
// matrices (about 560 MB) through the decode kernel, one token each, as in
// decoding; compare its MB/s with `upg bench`'s read bandwidth.
func BenchmarkTrellisDRAM(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	var ms []*codec.TrellisMatrix
	var total int64
	for range 16 {
		m := randomTrellis(rng, 17920, 5120, 3, 128)
		ms = append(ms, m)
		total += int64(len(m.Tiles) + len(m.Scales))
	}
	for _, lv := range Levels() {
		if lv == LevelGeneric {
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
