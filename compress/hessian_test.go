package compress

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestOutputTarget: W' = W·(C+λI)·(H̃+λI)⁻¹ solves the normal equations of
// min E‖W x − W' x̃‖² + λ‖W' − W‖², so it beats W itself on the inputs it
// was fitted to; with x̃ = x it is exactly W, whatever the dampening.
func TestOutputTarget(t *testing.T) {
	const rows, cols, n = 6, 24, 400
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n*cols)
	xq := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	// x̃ = x with a fixed linear distortion and noise, as an upstream error.
	for t0 := 0; t0 < n; t0++ {
		for j := 0; j < cols; j++ {
			v := 0.9 * x[t0*cols+j]
			if j > 0 {
				v += 0.2 * x[t0*cols+j-1]
			}
			xq[t0*cols+j] = v + 0.05*float32(rng.NormFloat64())
		}
	}
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	hacc, cacc := newHessianAcc(cols), newCrossAcc(cols)
	hacc.add(xq, n)
	cacc.add(x, xq, n)
	h := hacc.hessian()
	wt := append([]float32(nil), w...)
	const damp = 1e-6
	if !outputTarget(wt, rows, cols, cacc, h, damp, 2) {
		t.Fatal("outputTarget failed")
	}
	outErr := func(wq []float32) float64 {
		var e float64
		for t0 := 0; t0 < n; t0++ {
			for r := 0; r < rows; r++ {
				var a, b float64
				for j := 0; j < cols; j++ {
					a += float64(w[r*cols+j]) * float64(x[t0*cols+j])
					b += float64(wq[r*cols+j]) * float64(xq[t0*cols+j])
				}
				e += (a - b) * (a - b)
			}
		}
		return e / n
	}
	before, after := outErr(w), outErr(wt)
	t.Logf("E‖Wx − Wx̃‖² = %.4f, E‖Wx − W'x̃‖² = %.6f", before, after)
	// What the regression of x on x̃ cannot undo is the noise: per output
	// about σ²·tr(W(AᵀA)⁻¹Wᵀ)/rows ≈ 0.0025·24·1.2 ≈ 0.07, 0.43 for the 6
	// rows; without the target the distortion costs 6.9.
	if !(after < 0.5 && after > 0.3 && before > 6) {
		t.Errorf("output error %.6f with the target, %.4f without: want about 0.4 and 6.9", after, before)
	}
	// Normal equations: W'(H̃+λI) = W(C+λI).
	var mean float64
	for i := 0; i < cols; i++ {
		mean += h.H[i*cols+i]
	}
	lambda := damp * mean / cols
	var worst float64
	for r := 0; r < rows; r++ {
		for j := 0; j < cols; j++ {
			var lhs, rhs float64
			for i := 0; i < cols; i++ {
				hij := h.H[i*cols+j]
				if i == j {
					hij += lambda
				}
				lhs += float64(wt[r*cols+i]) * hij
				cij := cacc.c[i*cols+j] / n
				if i == j {
					cij += lambda
				}
				rhs += float64(w[r*cols+i]) * cij
			}
			worst = max(worst, math.Abs(lhs-rhs))
		}
	}
	if worst > 1e-3 {
		t.Errorf("normal equations off by %.2g", worst)
	}
	// x̃ = x: the target is W (dampening 1e-6 moves it by ~1e-6 relative).
	hacc, cacc = newHessianAcc(cols), newCrossAcc(cols)
	hacc.add(x, n)
	cacc.add(x, x, n)
	ws := append([]float32(nil), w...)
	if !outputTarget(ws, rows, cols, cacc, hacc.hessian(), 0.5, 1) { // a strong ridge: still W
		t.Fatal("outputTarget failed")
	}
	for i := range w {
		if d := math.Abs(float64(ws[i] - w[i])); d > 1e-4 {
			t.Fatalf("x̃ = x: weight %d moved from %v to %v", i, w[i], ws[i])
		}
	}
}

// TestAccumulators checks the accumulators against plain sums: the
// Hessian's upper triangle (mirrored and averaged by hessian, across its
// 64-wide blocks) and the full cross product, over two calls and with zero
// activations.
func TestAccumulators(t *testing.T) {
	const cols, n = 150, 7
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 2*n*cols)
	y := make([]float32, 2*n*cols)
	for i := range x {
		x[i], y[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		if i%5 == 0 {
			x[i] = 0
		}
	}
	hacc, cacc := newHessianAcc(cols), newCrossAcc(cols)
	for k := 0; k < 2; k++ {
		hacc.add(x[k*n*cols:(k+1)*n*cols], n)
		cacc.add(x[k*n*cols:(k+1)*n*cols], y[k*n*cols:(k+1)*n*cols], n)
	}
	h := hacc.hessian()
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			var hw, cw float64
			for r := 0; r < 2*n; r++ {
				hw += float64(x[r*cols+i]) * float64(x[r*cols+j])
				cw += float64(x[r*cols+i]) * float64(y[r*cols+j])
			}
			if d := h.H[i*cols+j] - hw/(2*n); d > 1e-5 || d < -1e-5 {
				t.Fatalf("H[%d][%d] = %g, want %g", i, j, h.H[i*cols+j], hw/(2*n))
			}
			if d := cacc.c[i*cols+j] - cw; d > 1e-4 || d < -1e-4 {
				t.Fatalf("C[%d][%d] = %g, want %g", i, j, cacc.c[i*cols+j], cw)
			}
		}
	}
	if h.N != 2*n || cacc.n != 2*n {
		t.Fatalf("counts %d, %d, want %d", h.N, cacc.n, 2*n)
	}
}
