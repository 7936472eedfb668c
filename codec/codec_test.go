package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/upg-ai/upg/tensor"
)

// randMatrix returns rows×cols weights: Gaussian, or heavy-tailed (Student-t
// with 3 degrees of freedom plus 0.5% outliers of 20σ).
func randMatrix(rng *rand.Rand, rows, cols int, heavy bool) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		if !heavy {
			w[i] = float32(rng.NormFloat64() * 0.02)
			continue
		}
		z := rng.NormFloat64()
		var chi float64
		for k := 0; k < 3; k++ {
			g := rng.NormFloat64()
			chi += g * g
		}
		w[i] = float32(0.02 * z / math.Sqrt(chi/3))
		if rng.Float64() < 0.005 {
			w[i] = float32(0.4 * (rng.Float64() - 0.5) * 2)
		}
	}
	return w
}

// corrHessian builds H = XᵀX/n from n correlated inputs x = A·z with a few
// high-variance channels, like real activations.
func corrHessian(rng *rand.Rand, cols, n int) *Hessian {
	a := make([]float64, cols*cols)
	for i := range a {
		a[i] = rng.NormFloat64() / math.Sqrt(float64(cols))
	}
	for i := 0; i < cols; i++ {
		a[i*cols+i] += 1
	}
	chScale := make([]float64, cols)
	for i := range chScale {
		chScale[i] = math.Exp(rng.NormFloat64() * 0.7)
		if rng.Float64() < 0.03 {
			chScale[i] *= 8
		}
	}
	h := make([]float64, cols*cols)
	x := make([]float64, cols)
	z := make([]float64, cols)
	for s := 0; s < n; s++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for i := 0; i < cols; i++ {
			var v float64
			for j := 0; j < cols; j++ {
				v += a[i*cols+j] * z[j]
			}
			x[i] = v * chScale[i]
		}
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				h[i*cols+j] += x[i] * x[j]
			}
		}
	}
	for i := range h {
		h[i] /= float64(n)
	}
	return &Hessian{N: n, Cols: cols, H: h}
}

var shapes = [][2]int{{7, 13}, {33, 100}, {64, 257}, {16, 64}, {24, 256}}

func encodeOpen(t *testing.T, w []float32, rows, cols int, p Params, h *Hessian) (tensor.Matrix, []float32) {
	t.Helper()
	data, err := Encode(w, rows, cols, p, h)
	if err != nil {
		t.Fatalf("%+v %dx%d: encode: %v", p, rows, cols, err)
	}
	sz, err := EncodedSize(p, rows, cols)
	if err != nil || sz != int64(len(data)) {
		t.Fatalf("%+v %dx%d: EncodedSize %d (%v), Encode gave %d bytes", p, rows, cols, sz, err, len(data))
	}
	m, err := Open(p, rows, cols, data)
	if err != nil {
		t.Fatalf("%+v %dx%d: open: %v", p, rows, cols, err)
	}
	if m.Rows() != rows || m.Cols() != cols {
		t.Fatalf("open gave %dx%d", m.Rows(), m.Cols())
	}
	dec := make([]float32, rows*cols)
	m.DecodeRows(dec, 0, rows)
	// Decoding a sub-range must agree with decoding everything.
	if rows > 2 {
		part := make([]float32, cols)
		m.DecodeRows(part, rows/2, rows/2+1)
		for c := range part {
			if part[c] != dec[(rows/2)*cols+c] {
				t.Fatalf("DecodeRows of one row differs at col %d", c)
			}
		}
	}
	checkMatVec(t, m, dec, rows, cols)
	return m, dec
}

// checkMatVec compares the fused MatVec/MatMul paths with DecodeRows·x.
func checkMatVec(t *testing.T, m tensor.Matrix, dec []float32, rows, cols int) {
	t.Helper()
	type mv interface {
		MatVec(dst, x []float32)
		MatMul(dst, x []float32, n int)
	}
	f, ok := m.(mv)
	if !ok {
		return
	}
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 2
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, n*rows)
	f.MatMul(y, x, n)
	y1 := make([]float32, rows)
	f.MatVec(y1, x[cols:])
	for i := 0; i < n; i++ {
		for r := 0; r < rows; r++ {
			var want, mag float64
			for c := 0; c < cols; c++ {
				p := float64(dec[r*cols+c]) * float64(x[i*cols+c])
				want += p
				mag += math.Abs(p)
			}
			if d := math.Abs(float64(y[i*rows+r]) - want); d > 1e-4*mag+1e-9 {
				t.Fatalf("MatMul[%d][%d] = %v, DecodeRows·x = %v", i, r, y[i*rows+r], want)
			}
			if i == 1 && math.Abs(float64(y1[r])-want) > 1e-4*mag+1e-9 {
				t.Fatalf("MatVec[%d] = %v, DecodeRows·x = %v", r, y1[r], want)
			}
		}
	}
}

func relErr(w, q []float32) float64 {
	var num, den float64
	for i := range w {
		d := float64(w[i]) - float64(q[i])
		num += d * d
		den += float64(w[i]) * float64(w[i])
	}
	return math.Sqrt(num / den)
}

func TestPassthrough(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := randMatrix(rng, 7, 13, true)
	for _, name := range []string{"f32", "f16", "bf16"} {
		_, dec := encodeOpen(t, w, 7, 13, Params{Codec: name}, nil)
		for i, v := range w {
			want := v
			switch name {
			case "f16":
				want = tensor.F16ToF32(tensor.F32ToF16(v))
			case "bf16":
				want = tensor.BF16ToF32(tensor.F32ToBF16(v))
			}
			if dec[i] != want {
				t.Fatalf("%s: element %d = %v, want %v", name, i, dec[i], want)
			}
		}
	}
	if bpw := BitsPerWeight(Params{Codec: "bf16"}, 10, 10); bpw != 16 {
		t.Fatalf("bf16 bpw = %v", bpw)
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("q9")
	if err == nil || !strings.Contains(err.Error(), `unknown codec "q9" (known: bf16, dense, f16, f32, overlay, sparse, trellis)`) {
		t.Fatalf("err = %v", err)
	}
}

// TestDenseLayoutSize checks the documented sizes: 512 columns at 3 bits,
// group 128 = 4 fp16 scales (8 bytes) + 192 code bytes per row = 3.125 bpw;
// 13 columns at 3 bits group 8: 2 scales per row, code rows of 8 bytes.
func TestDenseLayoutSize(t *testing.T) {
	if bpw := BitsPerWeight(Params{Codec: "dense", Bits: 3, GroupSize: 128}, 8192, 512); bpw != 3.125 {
		t.Fatalf("bpw = %v, want 3.125", bpw)
	}
	n, err := EncodedSize(Params{Codec: "dense", Bits: 3, GroupSize: 8}, 7, 13)
	if want := int64(align8(7*2*2) + 7*8); err != nil || n != want {
		t.Fatalf("size = %d (%v), want %d", n, err, want)
	}
	n, _ = EncodedSize(Params{Codec: "dense", Bits: 3, GroupSize: 8, Levels: "lloyd"}, 7, 13)
	if want := int64(32 + align8(7*2*2) + 7*8); n != want {
		t.Fatalf("lloyd size = %d, want %d", n, want)
	}
}

// TestDenseRoundTrip: for plain round-to-nearest (no rotation, no
// calibration) every decoded value is the representable value d·L[q]+m
// nearest to w for its group's stored scale (so |w-ŵ| ≤ |d|/2·step inside the
// level range), and the relative RMS error is below 2.5/2^bits (Gaussian)
// or 5/2^bits (heavy-tailed). With rotation only the RMS bound is checked.
func TestDenseRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range shapes {
		rows, cols := sh[0], sh[1]
		for _, heavy := range []bool{false, true} {
			w := randMatrix(rng, rows, cols, heavy)
			for bits := 2; bits <= 8; bits++ {
				for _, lv := range []string{"uniform", "midrise", "asym", "lloyd"} {
					for _, gs := range []int{8, 32, 128} {
						for _, rot := range []uint64{0, 99} {
							// All levels and bits; group sizes and rotation in full for 3 bits.
							if bits != 3 && (gs != 32) == (rot == 0) {
								continue
							}
							p := Params{Codec: "dense", Bits: bits, GroupSize: gs, Levels: lv, Rotate: rot}
							m, dec := encodeOpen(t, w, rows, cols, p, nil)
							bound := 2.5 / float64(int(1)<<bits)
							if heavy {
								bound = 5 / float64(int(1)<<bits)
							}
							if e := relErr(w, dec); e > bound {
								t.Errorf("%+v %dx%d heavy=%v: rel err %.4f > %.4f", p, rows, cols, heavy, e, bound)
							}
							if rot == 0 {
								checkNearest(t, m.(*DenseMatrix), w, dec, p)
							}
						}
					}
				}
			}
		}
	}
}

// checkNearest asserts that each decoded value is the level nearest to w.
func checkNearest(t *testing.T, m *DenseMatrix, w, dec []float32, p Params) {
	t.Helper()
	for r := 0; r < m.R; r++ {
		for c := 0; c < m.C; c++ {
			g := r*m.Groups + c/m.GroupSize
			d := f16At(m.Scales, g)
			var off float32
			if m.Asym {
				off = f16At(m.Offsets, g)
			}
			v := w[r*m.C+c]
			best := math.Inf(1)
			for _, l := range m.Levels {
				best = math.Min(best, math.Abs(float64(v)-float64(d*l+off)))
			}
			got := math.Abs(float64(v) - float64(dec[r*m.C+c]))
			if got > best+1e-6*math.Abs(float64(v))+1e-12 {
				t.Fatalf("%+v: [%d][%d] w=%v decoded %v, a level at distance %v exists", p, r, c, v, dec[r*m.C+c], best)
			}
		}
	}
}

// TestGPTQBeatsRTN: with a correlated Hessian, GPTQ's tr(ΔW H ΔWᵀ) must be
// strictly (by ≥ 10%) lower than round-to-nearest's for every codec.
func TestGPTQBeatsRTN(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows, cols := 48, 160
	h := corrHessian(rng, cols, 2*cols)
	w := randMatrix(rng, rows, cols, true)
	for _, p := range []Params{
		{Codec: "dense", Bits: 3, GroupSize: 32},
		{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "asym"},
		{Codec: "dense", Bits: 3, GroupSize: 32, Levels: "lloyd", Rotate: 5},
		{Codec: "dense", Bits: 4, GroupSize: 16, Levels: "midrise", Rotate: 1},
		{Codec: "sparse", Bits: 4, GroupSize: 32, N: 2, M: 4},
		{Codec: "sparse", Bits: 4, GroupSize: 32, Density: 0.3, Levels: "lloyd"},
		{Codec: "overlay", Bits: 3, GroupSize: 32, OverlayFrac: 0.02},
	} {
		_, rtn := encodeOpen(t, w, rows, cols, p, nil)
		_, gq := encodeOpen(t, w, rows, cols, p, h)
		eR := OutputError(w, rtn, rows, cols, h)
		eG := OutputError(w, gq, rows, cols, h)
		t.Logf("%+v: RTN %.4g GPTQ %.4g (ratio %.3f)", p, eR, eG, eG/eR)
		if !(eG < 0.9*eR) {
			t.Errorf("%+v: GPTQ output error %.4g not below 0.9 × RTN %.4g", p, eG, eR)
		}
	}
}

// TestRotationIsOrthogonal: Q·Qᵀ = I and rotating x then a rotated matrix
// row gives the same dot product as the original.
func TestRotationIsOrthogonal(t *testing.T) {
	for _, cols := range []int{13, 96, 256} {
		s := RotationSigns(42, cols)
		rng := rand.New(rand.NewPCG(1, uint64(cols)))
		x := make([]float32, cols)
		w := make([]float32, cols)
		for i := range x {
			x[i], w[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		want := tensor.Dot(w, x)
		xr := append([]float32(nil), x...)
		wr := append([]float32(nil), w...)
		RotateForward(xr, s)
		RotateForward(wr, s)
		if got := tensor.Dot(wr, xr); math.Abs(float64(got-want)) > 1e-4 {
			t.Fatalf("cols %d: rotated dot %v, want %v", cols, got, want)
		}
		rotateBackward(wr, s)
		for i := range w {
			if math.Abs(float64(wr[i]-w[i])) > 1e-5 {
				t.Fatalf("cols %d: backward(forward(w)) differs at %d", cols, i)
			}
		}
	}
	// The first signs of seed 1 are fixed by the documented splitmix64.
	s := RotationSigns(1, 8)
	z := uint64(1) + 0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	z ^= z >> 31
	for j := range s {
		if (s[j] < 0) != (z>>j&1 == 1) {
			t.Fatalf("sign %d does not follow splitmix64", j)
		}
	}
}

// TestSparse checks the N:M structure, the exact per-row counts, that RTN
// keeps the largest magnitudes and that kept values are within half a
// quantization step (midrise levels, no clipping beyond the bound).
func TestSparse(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, sh := range shapes {
		rows, cols := sh[0], sh[1]
		w := randMatrix(rng, rows, cols, true)
		for _, p := range []Params{
			{Codec: "sparse", Bits: 4, GroupSize: 32, N: 2, M: 4},
			{Codec: "sparse", Bits: 3, GroupSize: 64, N: 4, M: 8, Levels: "midrise"},
			{Codec: "sparse", Bits: 4, GroupSize: 16, Density: 0.5},
			{Codec: "sparse", Bits: 3, GroupSize: 128, Density: 0.05, Levels: "lloyd"},
			{Codec: "sparse", Bits: 8, GroupSize: 32, Density: 0.2},
		} {
			m, dec := encodeOpen(t, w, rows, cols, p, nil)
			sm := m.(*SparseMatrix)
			if p.Density > 0 && sm.Bitmap != (sm.K*max(1, bitsLen(p.GroupSize-1)) >= cols) {
				t.Errorf("%+v: bitmap mode %v", p, sm.Bitmap)
			}
			for r := 0; r < rows; r++ {
				row, orig := dec[r*cols:(r+1)*cols], w[r*cols:(r+1)*cols]
				if p.M > 0 {
					for b := 0; b < cols; b += p.M {
						nz := 0
						minKept, maxDropped := math.Inf(1), 0.0
						for c := b; c < min(b+p.M, cols); c++ {
							if row[c] != 0 {
								nz++
							}
						}
						// Kept set = the N largest |w| of the block.
						cs := make([]int32, sm.K)
						vs := make([]float32, sm.K)
						sm.RowEntries(r, cs, vs)
						kept := map[int]bool{}
						for _, c := range cs {
							kept[int(c)] = true
						}
						for c := b; c < min(b+p.M, cols); c++ {
							a := math.Abs(float64(orig[c]))
							if kept[c] {
								minKept = math.Min(minKept, a)
							} else {
								maxDropped = math.Max(maxDropped, a)
							}
						}
						if nz > p.N || maxDropped > minKept {
							t.Fatalf("%+v row %d block %d: %d non-zeros, dropped %v > kept %v", p, r, b, nz, maxDropped, minKept)
						}
					}
				} else {
					nz := 0
					for _, v := range row {
						if v != 0 {
							nz++
						}
					}
					if nz > sm.K || sm.K != int(p.Density*float64(cols)+0.5) {
						t.Fatalf("%+v row %d: %d non-zeros, K = %d", p, r, nz, sm.K)
					}
				}
			}
			// Kept values: relative error over kept entries.
			var num, den float64
			for i := range w {
				if dec[i] != 0 {
					d := float64(w[i] - dec[i])
					num += d * d
					den += float64(w[i]) * float64(w[i])
				}
			}
			if e := math.Sqrt(num / den); e > 4/float64(int(1)<<p.Bits) {
				t.Errorf("%+v %dx%d: kept-value rel err %.4f", p, rows, cols, e)
			}
		}
	}
}

// TestOverlay: the K most salient weights of each row are reproduced to
// fp16 precision and the overlay lowers the error versus the bare base.
func TestOverlay(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	for _, sh := range shapes {
		rows, cols := sh[0], sh[1]
		w := randMatrix(rng, rows, cols, true)
		p := Params{Codec: "overlay", Bits: 3, GroupSize: 32, OverlayFrac: 0.05}
		m, dec := encodeOpen(t, w, rows, cols, p, nil)
		om := m.(*OverlayMatrix)
		for r := 0; r < rows; r++ {
			for i := 0; i < om.K; i++ {
				c, _ := om.entry(r, i)
				v := w[r*cols+c]
				if math.Abs(float64(dec[r*cols+c]-v)) > 1e-3*math.Abs(float64(v))+1e-6 {
					t.Fatalf("row %d overlay col %d: %v decoded as %v", r, c, v, dec[r*cols+c])
				}
			}
		}
		_, base := encodeOpen(t, w, rows, cols, Params{Codec: "dense", Bits: 3, GroupSize: 32}, nil)
		if om.K > 0 && !(relErr(w, dec) < relErr(w, base)) {
			t.Errorf("%dx%d: overlay err %.4f not below base %.4f", rows, cols, relErr(w, dec), relErr(w, base))
		}
		pr := Params{Codec: "overlay", Bits: 3, GroupSize: 64, OverlayFrac: 0.01, Rotate: 3, Levels: "lloyd"}
		_, decR := encodeOpen(t, w, rows, cols, pr, nil)
		if e := relErr(w, decR); e > 0.5 {
			t.Errorf("%+v %dx%d: rel err %.4f", pr, rows, cols, e)
		}
	}
}

// TestOpenCorrupt: short, long or corrupted data is an error, not a panic.
func TestOpenCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	rows, cols := 9, 40
	w := randMatrix(rng, rows, cols, false)
	for _, p := range []Params{
		{Codec: "f16"},
		{Codec: "dense", Bits: 3, GroupSize: 16},
		{Codec: "dense", Bits: 4, GroupSize: 16, Levels: "lloyd"},
		{Codec: "sparse", Bits: 4, GroupSize: 16, N: 2, M: 4},
		{Codec: "sparse", Bits: 4, GroupSize: 16, Density: 0.1},
		{Codec: "overlay", Bits: 3, GroupSize: 16, OverlayFrac: 0.1},
	} {
		data, err := Encode(w, rows, cols, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(p, rows, cols, data[:len(data)-1]); err == nil {
			t.Errorf("%+v: truncated data accepted", p)
		}
		if _, err := Open(p, rows, cols, append(data, 0)); err == nil {
			t.Errorf("%+v: overlong data accepted", p)
		}
		if _, err := Open(p, rows+1, cols, data); err == nil {
			t.Errorf("%+v: wrong shape accepted", p)
		}
	}
	// Non-finite scale.
	p := Params{Codec: "dense", Bits: 3, GroupSize: 16}
	data, _ := Encode(w, rows, cols, p, nil)
	bad := append([]byte(nil), data...)
	bad[1] = 0x7c
	if _, err := Open(p, rows, cols, bad); err == nil || !strings.Contains(err.Error(), "scale 0 is not finite") {
		t.Errorf("NaN scale: err = %v", err)
	}
	// N:M rank out of range: 2:4 has 6 masks in 3 bits; 7 is invalid.
	p = Params{Codec: "sparse", Bits: 4, GroupSize: 16, N: 2, M: 4}
	data, _ = Encode(w, rows, cols, p, nil)
	l, _ := newSparseLayout(p, rows, cols)
	bad = append([]byte(nil), data...)
	bad[l.idxOff] |= 7
	if _, err := Open(p, rows, cols, bad); err == nil || !strings.Contains(err.Error(), "rank 7") {
		t.Errorf("bad rank: err = %v", err)
	}
	// Overlay indices out of order.
	p = Params{Codec: "overlay", Bits: 3, GroupSize: 16, OverlayFrac: 0.1}
	data, _ = Encode(w, rows, cols, p, nil)
	_, _, idxOff, _, _, _ := overlayLayout(p, rows, cols)
	bad = append([]byte(nil), data...)
	bad[idxOff], bad[idxOff+1] = 0xff, 0xff
	if _, err := Open(p, rows, cols, bad); err == nil || !strings.Contains(err.Error(), "not ascending") {
		t.Errorf("bad overlay index: err = %v", err)
	}
	// Bad params.
	for _, p := range []Params{
		{Codec: "dense", Bits: 1}, {Codec: "dense", Bits: 9}, {Codec: "dense", Bits: 3, Levels: "nf9"},
		{Codec: "sparse", Bits: 4, N: 3, M: 2}, {Codec: "sparse", Bits: 4, GroupSize: 30, N: 2, M: 4},
		{Codec: "sparse", Bits: 4, Density: 1.5}, {Codec: "overlay", Bits: 3, OverlayFrac: 1},
		{Codec: "sparse", Bits: 4, Density: 0.5, Rotate: 3},
	} {
		if _, err := EncodedSize(p, rows, cols); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func FuzzOpen(f *testing.F) {
	params := []Params{
		{Codec: "dense", Bits: 3, GroupSize: 8},
		{Codec: "dense", Bits: 5, GroupSize: 8, Levels: "lloyd", Rotate: 3},
		{Codec: "dense", Bits: 2, GroupSize: 8, Levels: "asym"},
		{Codec: "sparse", Bits: 4, GroupSize: 8, N: 2, M: 4},
		{Codec: "sparse", Bits: 3, GroupSize: 8, Density: 0.5},
		{Codec: "sparse", Bits: 3, GroupSize: 16, Density: 0.1},
		{Codec: "overlay", Bits: 3, GroupSize: 8, OverlayFrac: 0.2},
		{Codec: "bf16"},
		{Codec: "trellis", Bits: 3, GroupSize: 16, Rotate: 0},
		{Codec: "trellis", Bits: 2, GroupSize: 32},
	}
	rng := rand.New(rand.NewPCG(14, 15))
	w := randMatrix(rng, 3, 13, true)
	for i, p := range params {
		data, err := Encode(w, 3, 13, p, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data)
		f.Add(uint8(i), data[:len(data)/2])
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		p := params[int(which)%len(params)]
		m, err := Open(p, 3, 13, data)
		if err != nil {
			return
		}
		dst := make([]float32, 3*13)
		m.DecodeRows(dst, 0, 3)
		if mv, ok := m.(interface{ MatVec(dst, x []float32) }); ok {
			x := make([]float32, 13)
			mv.MatVec(dst[:3], x)
		}
	})
}

func bitsLen(x int) int {
	n := 0
	for ; x > 0; x >>= 1 {
		n++
	}
	return n
}

// TestMemoizedHessian: a memoised Hessian (its factors kept
// across calls) encodes every codec to the same bytes as a fresh one, for
// several parameter sets in a row and with row weights.
func TestMemoizedHessian(t *testing.T) {
	const rows, cols = 16, 64
	rng := rand.New(rand.NewPCG(3, 4))
	w := randMatrix(rng, rows, cols, false)
	h := make([]float64, cols*cols)
	x := make([]float64, cols)
	for range 256 {
		for j := range x {
			x[j] = rng.NormFloat64() + 0.5*x[(j+cols-1)%cols]
		}
		for i := range x {
			for j := range x {
				h[i*cols+j] += x[i] * x[j] / 256
			}
		}
	}
	rw := make([]float32, rows)
	for i := range rw {
		rw[i] = float32(0.5 + rng.Float64())
	}
	memo := (&Hessian{N: 256, Cols: cols, H: h}).Memoize()
	for _, p := range []Params{
		{Codec: "trellis", Bits: 2, GroupSize: 64, Rotate: 7},
		{Codec: "dense", Bits: 3, GroupSize: 64, Levels: "lloyd", Rotate: 7},
		{Codec: "trellis", Bits: 3, GroupSize: 32, Rotate: 7},
		{Codec: "dense", Bits: 4, GroupSize: 32},
		{Codec: "trellis", Bits: 3, GroupSize: 64, Rotate: 7, Damp: 0.1},
	} {
		for _, weights := range [][]float32{nil, rw} {
			fresh := &Hessian{N: 256, Cols: cols, H: h, RowWeights: weights}
			m := *memo
			m.RowWeights = weights
			a, err := Encode(w, rows, cols, p, fresh)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Encode(w, rows, cols, p, &m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%+v (row weights %v): memoised Hessian encodes differently", p, weights != nil)
			}
		}
	}
	if len(memo.memo.prep) != 3 {
		t.Errorf("%d factors kept, want 3 (rotated, not rotated, rotated with more dampening)", len(memo.memo.prep))
	}
}
