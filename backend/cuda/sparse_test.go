//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// sparseCases cover N:M with and without a partial last block, the two
// unstructured index modes (bitmap, list), 2-8-bit codes and every level
// kind the sparse codec has, at odd and even shapes.
func sparseCases() []denseCase {
	return []denseCase{
		{77, 256, codec.Params{Codec: "sparse", Bits: 3, GroupSize: 64, N: 2, M: 4}},
		{130, 1023, codec.Params{Codec: "sparse", Bits: 3, GroupSize: 128, N: 2, M: 4, Levels: "lloyd"}},
		{33, 1001, codec.Params{Codec: "sparse", Bits: 4, GroupSize: 64, N: 4, M: 8, Levels: "midrise"}},
		{40, 333, codec.Params{Codec: "sparse", Bits: 2, GroupSize: 48, N: 1, M: 16}},
		{65, 777, codec.Params{Codec: "sparse", Bits: 5, GroupSize: 128, Density: 0.5}},
		{31, 2100, codec.Params{Codec: "sparse", Bits: 8, GroupSize: 64, Density: 0.05, Levels: "lloyd"}},
		{9, 70, codec.Params{Codec: "sparse", Bits: 6, GroupSize: 7, Density: 0.9}},
	}
}

func caseName(c denseCase) string {
	kind := fmt.Sprintf("%d:%d", c.p.N, c.p.M)
	if c.p.M == 0 {
		kind = fmt.Sprintf("d%.2f", c.p.Density)
	}
	return fmt.Sprintf("%dx%d_k%d_g%d_%s_%s", c.R, c.C, c.p.Bits, c.p.GroupSize, kind, c.p.Levels)
}

// emuSparseRow decodes row r from the GPU layout as kernels/sparse.cu reads
// it: mask words in order, code i of the row for the i-th set bit, the
// group by groupMagic's multiply-high.
func emuSparseRow(mask []byte, m *codec.SparseMatrix, r int) []float32 {
	mw, k := sparseMaskWords(m.C), m.Bits
	magic := uint64(groupMagic(m.GroupSize))
	codes := m.Codes[r*m.CodeRowBytes : (r+1)*m.CodeRowBytes]
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(codes[4*i:]) }
	out := make([]float32, m.C)
	i := 0
	for w := 0; w < mw; w++ {
		mv := binary.LittleEndian.Uint32(mask[4*(r*mw+w):])
		for mv != 0 {
			b := bits.TrailingZeros32(mv)
			mv &= mv - 1
			c := 32*w + b
			o := uint(i * k)
			v := word(int(o>>5)) >> (o & 31)
			if o&31+uint(k) > 32 {
				v |= word(int(o>>5)+1) << (32 - o&31)
			}
			g := int(uint64(c) * magic >> 32)
			sc := tensor.F16ToF32(uint16(m.Scales[2*(r*m.Groups+g)]) | uint16(m.Scales[2*(r*m.Groups+g)+1])<<8)
			out[c] = sc * m.Levels[v&(1<<k-1)]
			i++
		}
	}
	return out
}

// TestSparseLayout checks the GPU layout on the CPU: the bitmap holds
// exactly the kept columns, and decoding it as the kernels do gives the
// reference decoder's rows bit for bit.
func TestSparseLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range sparseCases() {
		t.Run(caseName(c), func(t *testing.T) {
			m := encodeCase(t, rng, c).(*codec.SparseMatrix)
			if ok, why := sparseFusable(m); !ok {
				t.Fatalf("not fusable: %s", why)
			}
			mask := sparseMask(m)
			if len(mask) != 4*m.R*sparseMaskWords(m.C) {
				t.Fatalf("mask %d bytes, want %d", len(mask), 4*m.R*sparseMaskWords(m.C))
			}
			want := make([]float32, m.C)
			for r := 0; r < m.R; r++ {
				m.DecodeRows(want, r, r+1)
				got := emuSparseRow(mask, m, r)
				for j := range want {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("row %d col %d: layout decodes %v, reference %v", r, j, got[j], want[j])
					}
				}
			}
		})
	}
}

// TestGroupMagic: the multiply-high the kernels divide by the group size
// with equals c / gs for every c < C with C·gs < 2^32 (sparseFusable's bound).
func TestGroupMagic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, gs := range []int{2, 3, 7, 16, 48, 64, 100, 128, 1000, 4096, 65535, 1 << 20} {
		C := int((1<<32 - 1) / int64(gs))
		magic := uint64(groupMagic(gs))
		check := func(c int) {
			if c < 0 {
				return
			}
			if got := int(uint64(c) * magic >> 32); got != c/gs {
				t.Fatalf("gs %d c %d: %d, want %d", gs, c, got, c/gs)
			}
		}
		for c := 0; c < 1<<16 && c < C; c++ {
			check(c)
		}
		for i := 0; i < 1<<16; i++ {
			check(rng.IntN(C))
		}
		for _, q := range []int{C / gs, C/gs - 1} { // the group boundaries at the top
			check(q*gs - 1)
			check(min(q*gs, C-1))
		}
		check(C - 1)
	}
}

// TestGPUSparse checks the fused sparse kernels against the reference
// decoder on fresh random matrices and inputs (outputs poisoned first):
// one token, 3 and 8 tokens (one launch) and 11 (two), the embedding
// lookup, and that the upload takes the estimated bytes.
func TestGPUSparse(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 11))
	for _, c := range sparseCases() {
		t.Run(caseName(c), func(t *testing.T) {
			m := encodeCase(t, rng, c)
			for _, n := range []int{1, 3, 8, 11} {
				g, x, y := runDense(t, d, m, n, rng)
				if g.Fallback != "" || g.spMW == 0 {
					t.Fatalf("not the sparse kernel: fallback %q", g.Fallback)
				}
				if est := weightBytes(m); est != g.Bytes {
					t.Fatalf("estimated %d device bytes, upload took %d", est, g.Bytes)
				}
				for tok := 0; tok < n; tok++ {
					if e := relErr(y[tok*c.R:(tok+1)*c.R], refMatVec(m, x[tok*c.C:(tok+1)*c.C])); e > 1e-5 {
						t.Fatalf("n=%d token %d: relative error %.3g > 1e-5", n, tok, e)
					}
				}
				g.Free(d)
			}
			checkEmbed(t, d, m, rng)
		})
	}
}

// synthSparse makes a large N:M sparse matrix from random ranks, codes and
// scales (fast: no encoder), uniform levels.
func synthSparse(t testing.TB, rng *rand.Rand, R, C, k, gs, N, M int) *codec.SparseMatrix {
	t.Helper()
	p := codec.Params{Codec: "sparse", Bits: k, GroupSize: gs, N: N, M: M}
	size, err := codec.EncodedSize(p, R, C)
	if err != nil {
		t.Fatal(err)
	}
	combos := 0
	for mask := 0; mask < 1<<M; mask++ {
		if bits.OnesCount(uint(mask)) == N {
			combos++
		}
	}
	align8 := func(n int) int { return (n + 7) &^ 7 }
	blocks, G := (C+M-1)/M, (C+gs-1)/gs
	idxBits := bits.Len(uint(combos - 1))
	idxRow, codeRow := align8((blocks*idxBits+7)/8), align8((blocks*N*k+7)/8)
	scBytes := align8(2 * R * G)
	if int64(scBytes+R*(idxRow+codeRow)) != size {
		t.Fatalf("layout arithmetic: %d bytes, the codec says %d", scBytes+R*(idxRow+codeRow), size)
	}
	data := make([]byte, size)
	for i := 0; i < R*G; i++ {
		binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToF16(float32(0.01+0.01*rng.Float64())))
	}
	for r := 0; r < R; r++ {
		row := data[scBytes+r*idxRow : scBytes+(r+1)*idxRow]
		for j := 0; j < blocks; j++ {
			v, pos := uint32(rng.IntN(combos)), j*idxBits
			for b := 0; b < idxBits; b++ {
				row[(pos+b)>>3] |= byte(v>>b&1) << ((pos + b) & 7)
			}
		}
	}
	codes := data[scBytes+R*idxRow:]
	for i := range codes {
		codes[i] = byte(rng.Uint32())
	}
	return openAs[*codec.SparseMatrix](t, p, R, C, data)
}

// TestGPUBenchSparse (UPG_CUDA_BENCH=1) times one Phi-4-shaped layer's four
// projections as 2:4 and 4:8 sparse 3-bit matrices (group 128) on the fused
// kernel and on the fp16 fallback, for 1 and 8 tokens, and checks sampled
// rows against the reference decoder.
func TestGPUBenchSparse(t *testing.T) {
	d := benchGPU(t, "run the sparse benchmark")
	rng := rand.New(rand.NewPCG(5, 6))
	maxC := 0
	for _, s := range phi4LayerShapes {
		maxC = max(maxC, s.C)
	}
	xd, _ := d.Alloc(int64(8*maxC*4), "x")
	yd, _ := d.Alloc(int64(8*35840*4), "y")
	defer d.Free(xd)
	defer d.Free(yd)
	x := make([]float32, 8*maxC)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	_ = d.UploadF32(xd, x)
	for _, nm := range [][2]int{{2, 4}, {4, 8}} {
		var fused, f16 []*DenseGPU
		var ms []*codec.SparseMatrix
		var fusedBytes, f16Bytes int64
		for _, s := range phi4LayerShapes {
			m := synthSparse(t, rng, s.R, s.C, 3, 128, nm[0], nm[1])
			g, err := d.UploadMatrix(m)
			if err != nil {
				t.Fatal(err)
			}
			h, err := d.uploadF16(m, "benchmark")
			if err != nil {
				t.Fatal(err)
			}
			ms, fused, f16 = append(ms, m), append(fused, g), append(f16, h)
			fusedBytes += g.Bytes
			f16Bytes += h.Bytes
		}
		for _, n := range []int{1, 8} {
			for _, path := range []struct {
				name  string
				gs    []*DenseGPU
				bytes int64
			}{{"sparse", fused, fusedBytes}, {"fp16", f16, f16Bytes}} {
				var layerMS float64
				for i, s := range phi4LayerShapes {
					layerMS += float64(timeIt(t, d, 20, func() error { return d.matMul(path.gs[i], yd, xd, s.C, n, nil) }))
				}
				t.Logf("%d:%d 3-bit n=%d %s: layer %.1fus, %.1f MB = %.0f GB/s", nm[0], nm[1], n, path.name, layerMS*1e3,
					float64(path.bytes)/1e6, float64(path.bytes)/(layerMS*1e-3)/1e9)
			}
		}
		for i, s := range phi4LayerShapes {
			_ = d.Fill32(yd, poison, s.R)
			if err := d.MatMul(fused[i], yd, xd, s.C, 1, nil); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, s.R)
			_ = d.DownloadF32(y, yd)
			row := make([]float32, s.C)
			for j := 0; j < 32; j++ {
				r := rng.IntN(s.R)
				ms[i].DecodeRows(row, r, r+1)
				var want float64
				for c, v := range row {
					want += float64(v) * float64(x[c])
				}
				if math.Abs(float64(y[r])-want) > 1e-4*math.Max(1, math.Abs(want)) || math.IsNaN(float64(y[r])) {
					t.Fatalf("%d:%d %s row %d: gpu %v reference %v", nm[0], nm[1], s.name, r, y[r], want)
				}
			}
			fused[i].Free(d)
			f16[i].Free(d)
		}
	}
}
