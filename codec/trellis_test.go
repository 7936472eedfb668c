package codec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestTrellisTileRoundTrip: the stream the search writes decodes, window by
// window (tail-biting included), to exactly the values the search chose, and
// those values are close to the targets: on unit Gaussians the mean squared
// error at 2, 3 and 4 bits is far below the best scalar quantizer's
// (Lloyd-Max: 0.1175, 0.03454, 0.009497).
func TestTrellisTileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bars := map[int]float64{2: 0.075, 3: 0.021, 4: 0.0075}
	for k := 2; k <= 4; k++ {
		ts := newTrellisSearch(k)
		cb := trellisInitCodebook()
		var x, wt [trellisTileW]float32
		tile := make([]byte, 32*k)
		var se float64
		const tiles = 24
		for n := 0; n < tiles; n++ {
			for i := range x {
				x[i], wt[i] = float32(rng.NormFloat64()), 1
			}
			ts.encodeTile(x[:], wt[:], cb, tile)
			for p := range x {
				got := cb[TrellisIndex(TrellisWindow(tile, p, k))]
				if got != ts.decoded[p] {
					t.Fatalf("k=%d tile %d position %d: stream decodes to %v, search chose %v", k, n, p, got, ts.decoded[p])
				}
				d := float64(x[p] - got)
				se += d * d
			}
		}
		mse := se / (tiles * trellisTileW)
		t.Logf("k=%d: MSE %.5f on unit Gaussians", k, mse)
		if mse > bars[k] {
			t.Errorf("k=%d: MSE %.5f, want ≤ %.4f", k, mse, bars[k])
		}
	}
}

// TestTrellisEncodeDecode: a whole matrix (shape not a multiple of 16,
// several groups, rotated, with and without a Hessian) decodes close to the
// original, the fused reference product equals decode-then-multiply, and
// Open rejects truncated data.
func TestTrellisEncodeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows, cols := 37, 200
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * (1 + float32(i%cols)/100)
	}
	// A Hessian with correlated inputs.
	n := 400
	xs := make([]float32, n*cols)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
		if i%cols > 0 {
			xs[i] = 0.6*xs[i-1] + 0.8*xs[i]
		}
	}
	h := &Hessian{N: n, Cols: cols, H: make([]float64, cols*cols)}
	for s := 0; s < n; s++ {
		x := xs[s*cols : (s+1)*cols]
		for i := range x {
			for j := range x {
				h.H[i*cols+j] += float64(x[i]) * float64(x[j]) / float64(n)
			}
		}
	}
	for _, tc := range []struct {
		name string
		p    Params
		h    *Hessian
	}{
		{"q3 g64 rot", Params{Codec: "trellis", Bits: 3, GroupSize: 64, Rotate: 7}, nil},
		{"q2 g208 gptq", Params{Codec: "trellis", Bits: 2, GroupSize: 208}, h},
		{"q4 g32 rot gptq", Params{Codec: "trellis", Bits: 4, GroupSize: 32, Rotate: 9}, h},
	} {
		data, err := Encode(w, rows, cols, tc.p, tc.h)
		if err != nil {
			t.Fatal(err)
		}
		if sz, _ := EncodedSize(tc.p, rows, cols); int64(len(data)) != sz {
			t.Fatalf("%s: %d bytes, EncodedSize %d", tc.name, len(data), sz)
		}
		m, err := Open(tc.p, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		dec := make([]float32, rows*cols)
		m.DecodeRows(dec, 0, rows)
		var se, ss float64
		for i := range w {
			d := float64(w[i] - dec[i])
			se += d * d
			ss += float64(w[i]) * float64(w[i])
		}
		rel := se / ss
		bar := map[int]float64{2: 0.09, 3: 0.03, 4: 0.01}[tc.p.Bits]
		if tc.h != nil {
			bar *= 1.5 // feedback trades weight error for output error
		}
		t.Logf("%s: relative squared error %.4f, output error %.4g", tc.name, rel, OutputError(w, dec, rows, cols, tc.h))
		if rel > bar || math.IsNaN(rel) {
			t.Errorf("%s: relative squared error %.4f, want ≤ %.3f", tc.name, rel, bar)
		}
		x := make([]float32, 2*cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		got := make([]float32, 2*rows)
		m.(*TrellisMatrix).MatMul(got, x, 2)
		for i := 0; i < 2; i++ {
			for r := 0; r < rows; r++ {
				var want float64
				for c := 0; c < cols; c++ {
					want += float64(dec[r*cols+c]) * float64(x[i*cols+c])
				}
				if math.Abs(float64(got[i*rows+r])-want) > 1e-3*(1+math.Abs(want)) {
					t.Fatalf("%s: MatMul[%d][%d] = %v, decoded product %v", tc.name, i, r, got[i*rows+r], want)
				}
			}
		}
		if _, err := Open(tc.p, rows, cols, data[:len(data)-1]); err == nil {
			t.Errorf("%s: truncated data opened", tc.name)
		}
	}
}

// TestTrellisGPTQHelps: with correlated inputs, error feedback lowers the
// output error tr(E H Eᵀ) against plain tile-by-tile search.
func TestTrellisGPTQHelps(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	rows, cols := 32, 128
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	h := arHessian(rng, cols, 512, 0.9, 0.44, func(int) float64 { return 1 })
	p := Params{Codec: "trellis", Bits: 2, GroupSize: 128}
	plain, fb := encodedOutputError(t, w, rows, cols, p, nil, h), encodedOutputError(t, w, rows, cols, p, h, h)
	t.Logf("output error: plain %.4g, with feedback %.4g", plain, fb)
	if fb > 0.8*plain {
		t.Errorf("feedback output error %.4g not clearly below plain %.4g", fb, plain)
	}
}

func TestTrellisBadParams(t *testing.T) {
	for _, p := range []Params{
		{Codec: "trellis", Bits: 5},
		{Codec: "trellis", Bits: 1},
		{Codec: "trellis", Bits: 3, GroupSize: 24},
		{Codec: "trellis", Bits: 3, Levels: "lloyd"},
	} {
		if _, err := EncodedSize(p, 16, 16); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// BenchmarkTrellisTile measures the encoder's tile search (weights/s).
func BenchmarkTrellisTile(b *testing.B) {
	for _, k := range []int{2, 3, 4} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			ts := newTrellisSearch(k)
			cb := trellisInitCodebook()
			var x, wt [trellisTileW]float32
			for i := range x {
				x[i], wt[i] = float32(rng.NormFloat64()), 1
			}
			tile := make([]byte, 32*k)
			b.SetBytes(trellisTileW)
			for b.Loop() {
				ts.encodeTile(x[:], wt[:], cb, tile)
			}
		})
	}
}

// TestTrellisStepKernel: the selected step kernel equals the Go reference
// bit for bit (costs, minima and back pointers), for every k.
func TestTrellisStepKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for k := 2; k <= 4; k++ {
		u := 1 << (TrellisStateBits - k)
		cost := make([]float32, trellisStates)
		for i := range cost {
			cost[i] = float32(rng.IntN(50)) // ties on purpose
		}
		var d [TrellisCodebookSize]float32
		for i := range d {
			d[i] = float32(rng.Float64())
		}
		idx := trellisIdxT[k]
		n1, m1, mt1, bp1 := make([]float32, trellisStates), make([]float32, u), make([]float32, u), make([]uint8, u)
		n2, m2, mt2, bp2 := make([]float32, trellisStates), make([]float32, u), make([]float32, u), make([]uint8, u)
		trellisStepGo(k, cost, n1, m1, mt1, bp1, idx, &d)
		trellisStep(k, cost, n2, m2, mt2, bp2, idx, &d)
		for i := range n1 {
			if n1[i] != n2[i] {
				t.Fatalf("k=%d: next[%d] = %v, reference %v", k, i, n2[i], n1[i])
			}
		}
		for v := range m1 {
			if m1[v] != m2[v] || bp1[v] != bp2[v] || mt1[v] != mt2[v] {
				t.Fatalf("k=%d: v=%d: m %v/%v bp %d/%d mt %v/%v", k, v, m2[v], m1[v], bp2[v], bp1[v], mt2[v], mt1[v])
			}
		}
	}
}

// TestTrellisRefineScales: refitting each row's group scales to its codes
// (refineScales) lowers the output error tr((W−Ŵ) H (W−Ŵ)ᵀ) of the
// feedback encoding, for one scale per row and for several groups, with and
// without the rotation, and never raises it.
func TestTrellisRefineScales(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	rows, cols := 48, 256
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	h := arHessian(rng, cols, 1024, 0.8, 0.6, func(i int) float64 { return 1 + float64(i%7) }) // uneven column energy
	defer func() { refineTrellisScales, refitTrellisCodebook = true, true }()
	for _, p := range []Params{
		{Codec: "trellis", Bits: 2, GroupSize: 256},
		{Codec: "trellis", Bits: 2, GroupSize: 64, Rotate: 3},
		{Codec: "trellis", Bits: 3, GroupSize: 128, Rotate: 0x5eed},
	} {
		errOf := func(refine, codebook bool) float64 {
			refineTrellisScales, refitTrellisCodebook = refine, codebook
			return encodedOutputError(t, w, rows, cols, p, h, h)
		}
		before, scalesOnly, after := errOf(false, false), errOf(true, false), errOf(true, true)
		t.Logf("%d bits, group %d, rotate %v: output error %.5g, scales refit %.5g (%.2f%%), codebook and scales %.5g (%.2f%%)",
			p.Bits, p.GroupSize, p.Rotate != 0, before, scalesOnly, 100*(scalesOnly/before-1), after, 100*(after/before-1))
		if scalesOnly > before*1.0001 || after > before*1.0001 {
			t.Errorf("%+v: a refit raised the output error: %.5g, scales %.5g, codebook and scales %.5g", p, before, scalesOnly, after)
		}
	}
}

// arHessian is the Hessian E[x xᵀ] of n samples of correlated inputs:
// x_i = a·x_{i−1} + b·energy(i)·N(0, 1).
func arHessian(rng *rand.Rand, cols, n int, a, b float64, energy func(int) float64) *Hessian {
	h := &Hessian{N: n, Cols: cols, H: make([]float64, cols*cols)}
	x := make([]float64, cols)
	for s := 0; s < n; s++ {
		for i := range x {
			x[i] = rng.NormFloat64() * energy(i)
			if i > 0 {
				x[i] = a*x[i-1] + b*x[i]
			}
		}
		for i := range x {
			for j := range x {
				h.H[i*cols+j] += x[i] * x[j] / float64(n)
			}
		}
	}
	return h
}

// encodedOutputError encodes w with p (feedback from h, or none when nil)
// and returns the output error tr((W−Ŵ) score (W−Ŵ)ᵀ) of the decoded matrix.
func encodedOutputError(t *testing.T, w []float32, rows, cols int, p Params, h, score *Hessian) float64 {
	t.Helper()
	return OutputError(w, encodeDecode(t, w, rows, cols, p, h), rows, cols, score)
}

// encodeDecode encodes w with p (feedback from h) and returns it decoded.
func encodeDecode(t *testing.T, w []float32, rows, cols int, p Params, h *Hessian) []float32 {
	t.Helper()
	data, err := Encode(w, rows, cols, p, h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(p, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	dec := make([]float32, rows*cols)
	m.DecodeRows(dec, 0, rows)
	return dec
}

// TestTrellisRowWeights: with row weights (Zipf-distributed, shuffled over
// the rows, as token frequencies are over an embedding's or a head's rows)
// the search moves a tile's freedom to the heavy rows, so the row-weighted
// squared error falls well below that of the unweighted encoding, with and
// without a Hessian, and the other codecs ignore the weights.
func TestTrellisRowWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	rows, cols := 256, 256
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	rw := make([]float32, rows)
	var sum float64
	for i, r := range rng.Perm(rows) {
		rw[r] = float32(1 / float64(i+1))
		sum += float64(rw[r])
	}
	for i := range rw {
		rw[i] *= float32(float64(rows) / sum)
	}
	weighted := func(p Params, h *Hessian) float64 {
		dec := encodeDecode(t, w, rows, cols, p, h)
		var e float64
		for r := 0; r < rows; r++ {
			var hh *Hessian
			if h != nil && h.H != nil {
				hh = &Hessian{N: h.N, Cols: cols, H: h.H}
			}
			e += float64(rw[r]) * OutputError(w[r*cols:(r+1)*cols], dec[r*cols:(r+1)*cols], 1, cols, hh)
		}
		return e / float64(rows*cols)
	}
	hc := arHessian(rng, cols, 1024, 0.8, 0.6, func(i int) float64 { return 1 + float64(i%5) })
	for _, tc := range []struct {
		p    Params
		h    *Hessian
		gain float64 // the least relative drop required
	}{
		{Params{Codec: "trellis", Bits: 2, GroupSize: 256, Rotate: 7}, nil, 0.2},
		{Params{Codec: "trellis", Bits: 3, GroupSize: 256, Rotate: 7}, nil, 0.2},
		{Params{Codec: "trellis", Bits: 2, GroupSize: 64, Rotate: 7}, hc, 0.1},
	} {
		var plain *Hessian
		if tc.h != nil {
			plain = &Hessian{N: tc.h.N, Cols: cols, H: tc.h.H}
		}
		withW := &Hessian{Cols: cols, RowWeights: rw}
		if tc.h != nil {
			withW = &Hessian{N: tc.h.N, Cols: cols, H: tc.h.H, RowWeights: rw}
		}
		before, after := weighted(tc.p, plain), weighted(tc.p, withW)
		t.Logf("%d bits, group %d, hessian %v: row-weighted error %.5g unweighted search, %.5g weighted (%.1f%%)",
			tc.p.Bits, tc.p.GroupSize, tc.h != nil, before, after, 100*(after/before-1))
		if after > before*(1-tc.gain) {
			t.Errorf("%+v: row weights lowered the weighted error only from %.5g to %.5g", tc.p, before, after)
		}
	}
	// The dense codec ignores row weights (with or without H).
	p := Params{Codec: "dense", Bits: 3, GroupSize: 64}
	a, err := Encode(w, rows, cols, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(w, rows, cols, p, &Hessian{Cols: cols, RowWeights: rw})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("dense: row weights alone changed the encoding")
	}
	if _, err := Encode(w, rows, cols, p, &Hessian{Cols: cols, RowWeights: rw[:3]}); err == nil {
		t.Error("3 row weights for 256 rows were accepted")
	}
}
