package compress

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/codec"
)

// TestTrellisLadder: the trellis family offers 2-4-bit trellis codes with
// one scale per row and per 64-256 columns (never wider than the padded
// row, no duplicates), then the scalar codec above 4 bits, smallest first.
func TestTrellisLadder(t *testing.T) {
	for _, cols := range []int{512, 1792, 100, 256} {
		l, err := Ladder("trellis", cols)
		if err != nil {
			t.Fatal(err)
		}
		row := (cols + 15) &^ 15
		seen := map[codec.Params]bool{}
		var prev int64
		nt := 0
		for _, p := range l {
			if seen[p] {
				t.Errorf("cols %d: %+v twice", cols, p)
			}
			seen[p] = true
			sz, err := codec.EncodedSize(p, 1024, cols)
			if err != nil {
				t.Fatalf("cols %d: %+v: %v", cols, p, err)
			}
			if sz < prev {
				t.Errorf("cols %d: not sorted by size at %+v", cols, p)
			}
			prev = sz
			if p.Codec == "trellis" {
				nt++
				if p.GroupSize > row {
					t.Errorf("cols %d: group %d wider than the padded row %d", cols, p.GroupSize, row)
				}
			}
		}
		if !seen[codec.Params{Codec: "trellis", Bits: 3, GroupSize: row, Rotate: 0x5eed}] {
			t.Errorf("cols %d: no one-scale-per-row candidate", cols)
		}
		if nt < 6 {
			t.Errorf("cols %d: %d trellis candidates", cols, nt)
		}
	}
}

// TestRelErrRowWeights: relErr weights each element's squared error and
// squared weight by its column's energy and, where given, its row's weight.
func TestRelErrRowWeights(t *testing.T) {
	w := []float32{1, 2, 3, 4}  // 2×2
	wq := []float32{1, 1, 3, 2} // errors 0, 1; 0, 2
	diag := []float64{1, 3}     // column energies
	rw := []float32{0.5, 2}     // row weights
	// Unweighted rows: (3·1 + 3·4) / (1 + 3·4 + 9 + 3·16) = 15/70.
	if got, want := relErr(w, wq, 2, 2, diag, nil), 15.0/70; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr without row weights = %v, want %v", got, want)
	}
	// Rows weighted 0.5 and 2: (0.5·3 + 2·12) / (0.5·13 + 2·57) = 25.5/120.5.
	if got, want := relErr(w, wq, 2, 2, diag, rw), 25.5/120.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr with row weights = %v, want %v", got, want)
	}
	// No column energies: rows weighted alone, (0.5·1 + 2·4) / (0.5·5 + 2·25).
	if got, want := relErr(w, wq, 2, 2, nil, rw), 8.5/52.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("relErr with row weights, no diag = %v, want %v", got, want)
	}
}

// TestOutputRelErr: with a diagonal H the output metric is relErr's; with
// correlated columns the cross terms count (hand-computed values).
func TestOutputRelErr(t *testing.T) {
	w := []float32{1, 2, 3, 4}  // 2×2
	wq := []float32{1, 1, 3, 2} // errors (0, 1), (0, 2)
	rw := []float32{0.5, 2}
	diagH := []float64{1, 0, 0, 3}
	if got, want := outputRelErr(w, wq, 2, 2, diagH, nil), 15.0/70; math.Abs(got-want) > 1e-12 {
		t.Errorf("diagonal H: %v, want relErr's %v", got, want)
	}
	if got, want := outputRelErr(w, wq, 2, 2, diagH, rw), 25.5/120.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("diagonal H, row weights: %v, want relErr's %v", got, want)
	}
	// H = [[1, .5], [.5, 3]]: d H dᵀ = 3 and 12; w H wᵀ = 1+2+12 = 15 and
	// 9+12+48 = 69.
	h := []float64{1, 0.5, 0.5, 3}
	if got, want := outputRelErr(w, wq, 2, 2, h, nil), 15.0/84; math.Abs(got-want) > 1e-12 {
		t.Errorf("correlated H: %v, want %v", got, want)
	}
}

// TestOutputRelErrBlocked: the four-rows-at-a-time sums equal the quadratic
// forms taken one row at a time, for row counts that are and are not
// multiples of four, with and without row weights.
func TestOutputRelErrBlocked(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for _, rows := range []int{1, 3, 4, 7, 12} {
		const cols = 13
		w, wq := make([]float32, rows*cols), make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
			wq[i] = w[i] + float32(0.1*rng.NormFloat64())
		}
		a := make([]float64, cols*cols) // H = AᵀA: symmetric, positive semi-definite
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		H := make([]float64, cols*cols)
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				for k := 0; k < cols; k++ {
					H[i*cols+j] += a[k*cols+i] * a[k*cols+j]
				}
			}
		}
		rw := make([]float32, rows)
		for i := range rw {
			rw[i] = float32(rng.Float64() + 0.5)
		}
		for _, weights := range [][]float32{nil, rw} {
			var num, den float64
			for r := 0; r < rows; r++ {
				var e, s float64
				for i := 0; i < cols; i++ {
					for j := 0; j < cols; j++ {
						di, dj := float64(w[r*cols+i])-float64(wq[r*cols+i]), float64(w[r*cols+j])-float64(wq[r*cols+j])
						e += di * H[i*cols+j] * dj
						s += float64(w[r*cols+i]) * H[i*cols+j] * float64(w[r*cols+j])
					}
				}
				f := 1.0
				if weights != nil {
					f = float64(weights[r])
				}
				num += f * e
				den += f * s
			}
			got, want := outputRelErr(w, wq, rows, cols, H, weights), num/den
			if math.Abs(got-want) > 1e-12*want {
				t.Errorf("%d rows (weights %v): %v, want %v", rows, weights != nil, got, want)
			}
		}
	}
}

// TestGPTQPlanRanking: the planner's GPTQ estimates see what error feedback
// does, which differs between tensors. Two tensors of the same weights, one
// with white inputs (H = I: feedback cannot help) and one with correlated
// inputs (most of H's energy in 8 directions: feedback moves the error
// out of them), have the same round-to-nearest error of their probe and,
// given the same KL at the probe, the same weight. With GPTQ estimates the
// correlated tensor's candidates lose much less, so a budget for one
// upgrade goes to the white one.
func TestGPTQPlanRanking(t *testing.T) {
	const rows, cols, rank, n = 32, 256, 8, 2048
	rng := rand.New(rand.NewPCG(1, 2))
	w := gaussian(rng, rows*cols)
	white := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		white[i*cols+i] = 1
	}
	b := make([]float64, rank*cols)
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	corr := make([]float64, cols*cols)
	x := make([]float64, cols)
	for range n {
		z := make([]float64, rank)
		for k := range z {
			z[k] = rng.NormFloat64()
		}
		for j := range x {
			x[j] = 0.05 * rng.NormFloat64()
			for k := range z {
				x[j] += z[k] * b[k*cols+j]
			}
		}
		for i := range x {
			for j := range x {
				corr[i*cols+j] += x[i] * x[j] / n
			}
		}
	}
	cands, err := Ladder("trellis", cols)
	if err != nil {
		t.Fatal(err)
	}
	pl := &tensorPlan{rows: rows, cols: cols, cands: cands}
	for _, cp := range cands {
		sz, _ := codec.EncodedSize(cp, rows, cols)
		pl.sizes = append(pl.sizes, sz)
	}
	probe := pl.probe()
	errsW, probeW, err := gptqPlanErrs(w, rows, cols, cands, probe, (&codec.Hessian{N: n, Cols: cols, H: white}).Memoize(), white, nil)
	if err != nil {
		t.Fatal(err)
	}
	errsC, probeC, err := gptqPlanErrs(w, rows, cols, cands, probe, (&codec.Hessian{N: n, Cols: cols, H: corr}).Memoize(), corr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe %s: white GPTQ %.4g, RTN %.4g; correlated GPTQ %.4g, RTN %.4g",
		describe(cands[probe]), errsW[probe], probeW, errsC[probe], probeC)
	// Round to nearest does not see H: its relative error is about the
	// same in both metrics (rotated weights' errors are white).
	if r := probeC / probeW; r < 0.7 || r > 1.4 {
		t.Errorf("round-to-nearest probe errors %.4g (correlated) and %.4g (white) differ by %.2fx", probeC, probeW, r)
	}
	// Feedback with H = I changes little; with correlated inputs it removes
	// most of the error.
	if r := errsW[probe] / probeW; r < 0.8 || r > 1.05 {
		t.Errorf("white inputs: GPTQ/RTN error %.3f, want about 1", r)
	}
	if r := errsC[probe] / probeC; r > 0.3 {
		t.Errorf("correlated inputs: GPTQ/RTN error %.3f, want < 0.3", r)
	}
	// More bits, less error (one scale per row, 2, 3, 4 bits).
	var last float64 = math.Inf(1)
	for bits := 2; bits <= 4; bits++ {
		for i, cp := range cands {
			if cp.Codec == "trellis" && cp.Bits == bits && cp.GroupSize == cols {
				if errsC[i] >= last {
					t.Errorf("correlated inputs: %s error %.4g not below the rate before's %.4g", describe(cp), errsC[i], last)
				}
				last = errsC[i]
			}
		}
	}
	// The same KL at the probe: weight = KL / probe's RTN error.
	mk := func(name string, errs []float64, probeErr float64) *tensorPlan {
		return &tensorPlan{name: name, rows: rows, cols: cols, cands: cands, sizes: pl.sizes, errs: errs,
			probeErr: probeErr, weight: 0.01 / probeErr}
	}
	a, c := mk("white", errsW, probeW), mk("correlated", errsC, probeC)
	step := pl.sizes[1] - pl.sizes[0]
	if _, err := allocate([]*tensorPlan{a, c}, 2*pl.sizes[0]+step); err != nil {
		t.Fatal(err)
	}
	if a.choice == 0 || c.choice != 0 {
		t.Errorf("one upgrade's budget went to white %d, correlated %d; want the white tensor's", a.choice, c.choice)
	}
}

// TestPlanSplit: a quarter of the calibration sequences, at most 8192
// tokens, measure the planner's errors; up to 16384 tokens of the rest fit.
func TestPlanSplit(t *testing.T) {
	for _, c := range []struct{ n, ctx, fit, meas int }{
		{64, 512, 32, 16}, {16, 512, 12, 4}, {200, 512, 32, 16}, {2, 512, 1, 1}, {1, 512, 1, 0}, {0, 512, 0, 0}, {8, 256, 6, 2},
	} {
		if f, m := planSplit(c.n, c.ctx); f != c.fit || m != c.meas {
			t.Errorf("planSplit(%d, %d) = %d, %d; want %d, %d", c.n, c.ctx, f, m, c.fit, c.meas)
		}
	}
}

// TestGPTQPlanHeldOut: GPTQ fitted to fewer activations than the input has
// columns fits them, not the inputs: measured on the same activations its
// error is far below what it is on others from the same distribution, which
// is what the planner measures on (planSplit).
func TestGPTQPlanHeldOut(t *testing.T) {
	const rows, cols = 32, 128
	rng := rand.New(rand.NewPCG(5, 6))
	w := gaussian(rng, rows*cols)
	hess := func(n int) []float64 {
		h := make([]float64, cols*cols)
		x := make([]float64, cols)
		for range n {
			for j := range x {
				x[j] = rng.NormFloat64()
			}
			for i := range x {
				for j := range x {
					h[i*cols+j] += x[i] * x[j] / float64(n)
				}
			}
		}
		return h
	}
	fit, other := hess(cols/2), hess(4096)
	cands := []codec.Params{{Codec: "trellis", Bits: 2, GroupSize: cols, Rotate: 0x5eed}}
	h := (&codec.Hessian{N: cols / 2, Cols: cols, H: fit}).Memoize()
	in, _, err := gptqPlanErrs(w, rows, cols, cands, 0, h, fit, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, rtn, err := gptqPlanErrs(w, rows, cols, cands, 0, h, other, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2-bit GPTQ fitted to %d activations: error %.4g on them, %.4g on others (round to nearest %.4g)", cols/2, in[0], out[0], rtn)
	if out[0] < 3*in[0] {
		t.Errorf("held-out error %.4g not well above the in-sample %.4g", out[0], in[0])
	}
	if out[0] < 0.9*rtn {
		t.Errorf("held-out error %.4g of a fit to too few activations below round to nearest's %.4g", out[0], rtn)
	}
}

// gaussian returns n standard normal weights.
func gaussian(rng *rand.Rand, n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return w
}

// outputRelErr is the planner's relative output error of an encoding,
// Σ_r rowW[r]·(w−wq)_r H (w−wq)_rᵀ / Σ_r rowW[r]·w_r H w_rᵀ.
func outputRelErr(w, wq []float32, rows, cols int, H []float64, rowW []float32) float64 {
	return relTo(codec.WeightedOutputError(w, wq, rows, cols, H, rowW), codec.WeightedOutputError(w, nil, rows, cols, H, rowW))
}
