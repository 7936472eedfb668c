package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

func randVec(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

func encode(t testing.TB, w []float32, rows, cols int, p codec.Params) tensor.Matrix {
	t.Helper()
	data, err := codec.Encode(w, rows, cols, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Open(p, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// oracle computes W·x for n tokens from DecodeRows in float64, and the
// magnitude Σ|w||x| per output that bounds the rounding error.
func oracle(w tensor.Matrix, x []float32, n int) (want, mag []float64) {
	R, C := w.Rows(), w.Cols()
	full := make([]float32, R*C)
	w.DecodeRows(full, 0, R)
	want = make([]float64, n*R)
	mag = make([]float64, n*R)
	for t := 0; t < n; t++ {
		for r := 0; r < R; r++ {
			var s, a float64
			for c := 0; c < C; c++ {
				p := float64(full[r*C+c]) * float64(x[t*C+c])
				s += p
				a += math.Abs(p)
			}
			want[t*R+r], mag[t*R+r] = s, a
		}
	}
	return want, mag
}

// q8Emulate computes what the Q8 kernel computes, in float64: the same int8
// activation quantization, exact integer group dots, then the scales.
func q8Emulate(m *codec.DenseMatrix, x []float32, n int, lv q8Levels) []float64 {
	out := make([]float64, n*m.R)
	gs, G := m.GroupSize, m.Groups
	xr := make([]float32, G*gs)
	xq := make([]int8, G*gs)
	codes := make([]uint8, gs)
	for t := 0; t < n; t++ {
		clear(xr)
		copy(xr, x[t*m.C:(t+1)*m.C])
		m.RotateInput(xr[:m.C])
		sx := make([]float64, G)
		sumq := make([]int, G)
		for g := 0; g < G; g++ {
			s, sum := quantizeGroup(xq[g*gs:(g+1)*gs], xr[g*gs:(g+1)*gs], BestLevel())
			sx[g], sumq[g] = float64(s), sum
		}
		for r := 0; r < m.R; r++ {
			var total float64
			for g := 0; g < G; g++ {
				c0, c1 := g*gs, min((g+1)*gs, m.C)
				m.GroupCodes(codes[:c1-c0], r, g)
				dot := 0
				for i := c0; i < c1; i++ {
					dot += lv.u(codes[i-c0]) * int(xq[i])
				}
				sw := float64(f16(m.Scales, r*G+g))
				total += sw * sx[g] * (float64(lv.alpha)*float64(dot) + float64(lv.beta)*float64(sumq[g]))
				if m.Asym {
					total += float64(f16(m.Offsets, r*G+g)) * sx[g] * float64(sumq[g])
				}
			}
			out[t*m.R+r] = total
		}
	}
	return out
}

func check(t *testing.T, got []float32, want, mag []float64, tol float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*mag[i]+1e-30) {
			if bad < 5 {
				t.Errorf("out[%d] = %g, want %g (|diff| %.3g > %.3g·Σ|wx| = %.3g)", i, got[i], want[i], d, tol, tol*mag[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d outputs differ", bad, len(want))
	}
}

type testMatrix struct {
	name string
	m    tensor.Matrix
}

func testMatrices(t testing.TB) []testMatrix {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []testMatrix
	add := func(rows, cols int, p codec.Params) {
		w := randVec(rng, rows*cols, 0.02)
		// A few salient columns, like trained weights.
		for r := 0; r < rows; r++ {
			w[r*cols+(r*7)%cols] *= 8
		}
		name := fmt.Sprintf("%dx%d/%s/k%d/g%d/%s/rot%v/n%d:%d/d%.2f/ov%.2f", rows, cols, p.Codec, p.Bits, p.GroupSize, p.Levels, p.Rotate != 0, p.N, p.M, p.Density, p.OverlayFrac)
		out = append(out, testMatrix{name, encode(t, w, rows, cols, p)})
	}
	for _, sh := range [][2]int{{37, 333}, {64, 256}, {5, 1000}} {
		rows, cols := sh[0], sh[1]
		for _, bits := range []int{2, 3, 4, 5, 8} {
			for _, lv := range []string{"uniform", "midrise", "asym", "lloyd"} {
				for _, gs := range []int{64, 128, 48} {
					add(rows, cols, codec.Params{Codec: "dense", Bits: bits, GroupSize: gs, Levels: lv})
				}
			}
		}
		add(rows, cols, codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Rotate: 7})
		add(rows, cols, codec.Params{Codec: "dense", Bits: 3, GroupSize: 256, Levels: "lloyd"}) // i8Plane3: two blocks per group
		add(rows, cols, codec.Params{Codec: "dense", Bits: 3, GroupSize: 64, Levels: "lloyd", Rotate: 9})
		add(rows, cols, codec.Params{Codec: "overlay", Bits: 3, GroupSize: 128, OverlayFrac: 0.02})
		add(rows, cols, codec.Params{Codec: "overlay", Bits: 2, GroupSize: 64, OverlayFrac: 0.01, Rotate: 3, Levels: "asym"})
		add(rows, cols, codec.Params{Codec: "sparse", Bits: 4, GroupSize: 128, N: 2, M: 4})
		add(rows, cols, codec.Params{Codec: "sparse", Bits: 3, GroupSize: 64, Density: 0.3})
		for _, dt := range []string{"f32", "f16", "bf16"} {
			add(rows, cols, codec.Params{Codec: dt})
		}
	}
	return out
}

// TestKernelsMatchOracle runs every matrix type through every dispatch level
// present on this machine, for one token and for a batch, against the
// scalar DecodeRows oracle.
func TestKernelsMatchOracle(t *testing.T) {
	mats := testMatrices(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, lv := range Levels() {
		b := NewWithLevel(2, lv)
		defer b.Close()
		for _, tm := range mats {
			for _, n := range []int{1, 3, 11} { // 11: a full and a partial token tile
				t.Run(fmt.Sprintf("%s/%s/n%d", lv, tm.name, n), func(t *testing.T) {
					R, C := tm.m.Rows(), tm.m.Cols()
					x := randVec(rng, n*C, 1)
					got := make([]float32, n*R)
					b.MatMulF32(got, x, tm.m, n)
					want, mag := oracle(tm.m, x, n)
					var dm *codec.DenseMatrix
					switch m := tm.m.(type) {
					case *codec.DenseMatrix:
						dm = m
					case *codec.OverlayMatrix:
						dm = m.Base
					}
					if dm != nil && denseKind(dm, lv).int8() {
						// Exact against the emulated int8 arithmetic (plus
						// the overlay, which is float) ...
						levels := newQ8Levels(dm.Levels, dm.Bits)
						if denseKind(dm, lv) == kindDenseI8 {
							levels = q8LevelsI8(dm.Levels, dm.Bits, b.vnni)
						}
						em := q8Emulate(dm, x, n, levels)
						if _, ok := tm.m.(*codec.OverlayMatrix); ok {
							base := make([]float32, n*R)
							b.MatMulF32(base, x, dm, n)
							for i := range got {
								em[i] += float64(got[i] - base[i])
							}
						}
						check(t, got, em, mag, 1e-5)
						// ... and close to the float oracle of the byte
						// codebook (a non-linear codebook is represented as
						// α·u + β, u a byte, each level within α/2): int8
						// activations cost at most ~1% of Σ|w·x| per output.
						if lq := levels; lq.useLut {
							bm := *dm
							bm.Levels = make([]float32, len(dm.Levels))
							for i, v := range dm.Levels {
								bm.Levels[i] = lq.alpha*float32(lq.lut[i]) + lq.beta
								if d := math.Abs(float64(bm.Levels[i] - v)); d > float64(lq.alpha)/2*(1+1e-5) {
									t.Fatalf("level %d = %g is %g from its byte form, > α/2 = %g", i, v, d, lq.alpha/2)
								}
							}
							var bw tensor.Matrix = &bm
							if ov, ok := tm.m.(*codec.OverlayMatrix); ok {
								bo := *ov
								bo.Base = &bm
								bw = &bo
							}
							want, mag = oracle(bw, x, n)
						}
						check(t, got, want, mag, 1e-2)
						return
					}
					check(t, got, want, mag, 1e-5)
				})
			}
		}
	}
}

// TestQ8Quality measures the error int8 activations add on a Phi-4-like
// row width: relative RMS error of the outputs against the float result.
func TestQ8Quality(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 VNNI on this machine")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	rows, cols := 256, 5120
	w := randVec(rng, rows*cols, 0.02)
	x := randVec(rng, cols, 1)
	for i := 0; i < cols; i += 97 {
		x[i] *= 20 // outlier features, as in real activations
	}
	b := NewWithLevel(1, LevelAVX512)
	defer b.Close()
	for _, p := range []codec.Params{
		{Codec: "dense", Bits: 3, GroupSize: 128},
		{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed},
		{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "lloyd", Rotate: 0x5eed},
		{Codec: "dense", Bits: 4, GroupSize: 256, Levels: "lloyd", Rotate: 0x5eed},
	} {
		m := encode(t, w, rows, cols, p)
		want, _ := oracle(m, x, 1)
		got := make([]float32, rows)
		b.MatMulF32(got, x, m, 1)
		var se, ss float64
		for i := range want {
			d := float64(got[i]) - want[i]
			se += d * d
			ss += want[i] * want[i]
		}
		rel := math.Sqrt(se / ss)
		t.Logf("%d-bit %s rot=%v: int8 activations (and byte codebook): relative RMS output error %.2e", p.Bits, p.Levels, p.Rotate != 0, rel)
		if rel > 0.03 {
			t.Errorf("%+v: relative RMS error %.3g > 0.03", p, rel)
		}
	}
}

func TestDecodeRow(t *testing.T) {
	b := New(1)
	defer b.Close()
	for _, tm := range testMatrices(t) {
		R, C := tm.m.Rows(), tm.m.Cols()
		full := make([]float32, R*C)
		tm.m.DecodeRows(full, 0, R)
		row := make([]float32, C)
		for _, r := range []int{0, R / 2, R - 1} {
			b.DecodeRow(row, tm.m, r)
			for c := range row {
				if d := math.Abs(float64(row[c] - full[r*C+c])); d > 1e-6*(1+math.Abs(float64(full[r*C+c]))) {
					t.Fatalf("%s: row %d col %d = %g, want %g", tm.name, r, c, row[c], full[r*C+c])
				}
			}
		}
	}
}

func TestMatMulAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := encode(t, randVec(rng, 64*512, 0.02), 64, 512, codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Rotate: 5})
	for _, lv := range Levels() {
		b := NewWithLevel(2, lv)
		x := randVec(rng, 4*512, 1)
		dst := make([]float32, 4*64)
		b.MatMulF32(dst, x, m, 4) // warm-up grows scratch
		for _, n := range []int{1, 4} {
			if a := testing.AllocsPerRun(20, func() { b.MatMulF32(dst, x, m, n) }); a != 0 {
				t.Errorf("%s: MatMul n=%d allocates %v times per call", lv, n, a)
			}
		}
		b.Close()
	}
}

func TestParallelForCovers(t *testing.T) {
	b := New(3)
	defer b.Close()
	for _, n := range []int{1, 5, 16, 17, 1000} {
		seen := make([]int, n)
		b.ParallelFor(n, 4, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("n=%d: index %d covered %d times", n, i, s)
			}
		}
	}
}

// TestRotateMatchesCodec checks the backend's input rotation (AVX-512
// Walsh–Hadamard kernel where present) against codec's RotateInput.
func TestRotateMatchesCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, cols := range []int{16, 48, 256, 1000, 5120, 17920} {
		p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 16, Rotate: 0x5eed}
		m := encode(t, randVec(rng, cols, 0.02), 1, cols, p).(*codec.DenseMatrix)
		x := randVec(rng, cols, 1)
		want := append([]float32(nil), x...)
		m.RotateInput(want)
		for _, lv := range Levels() {
			got := append([]float32(nil), x...)
			rotate(got, m, lv)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("%s cols %d: x[%d] = %g, want %g", lv, cols, i, got[i], want[i])
				}
			}
		}
	}
}

// TestQuantizeKernel checks the activation quantizers of every level
// (AVX-512, AVX2, NEON) against the portable one bit for bit, ties and
// clamping included.
func TestQuantizeKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, lv := range Levels() {
		for _, n := range []int{16, 64, 128, 256} {
			for trial := 0; trial < 50; trial++ {
				x := randVec(rng, n, 1)
				if trial%2 == 1 { // exact ties: x·127/amax = k + 0.5
					x[0] = 127
					for i := 1; i < n; i++ {
						x[i] = float32(rng.IntN(254)-127) + 0.5
					}
				}
				var amax float32
				for _, v := range x {
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				q1, q2 := make([]int8, n), make([]int8, n)
				s, sum := quantizeGroup(q1, x, lv)
				sum2 := quantizeGo(q2, x, 127/amax)
				if s != amax/127 || sum != sum2 {
					t.Fatalf("%s n %d: scale %g, sums %d vs %d", lv, n, s, sum, sum2)
				}
				for i := range q1 {
					if q1[i] != q2[i] {
						t.Fatalf("%s n %d: q[%d] = %d, portable %d (x %g)", lv, n, i, q1[i], q2[i], x[i])
					}
				}
			}
		}
	}
}

// TestKernelEnv checks that UPG_KERNEL picks New's level, capped at what
// the machine has, and that an unknown name is ignored.
func TestKernelEnv(t *testing.T) {
	for _, c := range []struct {
		env  string
		want Level
	}{{"generic", LevelGeneric}, {"avx2", capLevel(LevelAVX2)}, {"avx512", capLevel(LevelAVX512)}, {"neon", capLevel(LevelNEON)}, {"sse9", BestLevel()}, {"", BestLevel()}} {
		t.Setenv(KernelEnv, c.env)
		b := New(1)
		if b.Level() != c.want {
			t.Errorf("%s=%q: level %s, want %s", KernelEnv, c.env, b.Level(), c.want)
		}
		b.Close()
	}
}
