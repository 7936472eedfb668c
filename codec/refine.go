package codec

import (
	"math"

	"github.com/upg-ai/upg/tensor"
)

// refineScales finds, for each row of a quantized matrix, the multipliers
// s_g of its column groups' scales that minimise the layer's output error
// given the codes:
//
//	(w − Σ_g s_g·q_g) H (w − Σ_g s_g·q_g)ᵀ,
//
// q_g being the row's quantized values in group g (with the current
// scales). That is a G×G least-squares problem per row (A s = b with
// A_gh = q_g H q_hᵀ, b_g = q_g H wᵀ). GPTQ's feedback fixes each scale before
// the columns after it are quantized, so the optimum moves once all the
// codes are known; this step is the exact minimiser over the scales alone.
// w and q are rows of ld floats (the first cols used), h is ld×ld (its
// first cols rows and columns used: padding columns meet zero inputs).
// apply(r, g, s) is called for each multiplier worth applying: finite,
// within [0.5, 2] (a wilder one means a degenerate group: keep the scale).
func refineScales(w, q []float32, h []float64, ld, rows, cols, gs int, apply func(r, g int, s float64)) {
	hf := make([]float32, cols*cols)
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			hf[i*cols+j] = float32(h[i*ld+j])
		}
	}
	G := (cols + gs - 1) / gs
	parallelFor(rows, func(r int) {
		wr, qr := w[r*ld:r*ld+cols], q[r*ld:r*ld+cols]
		a := make([]float64, G*G)
		b := make([]float64, G)
		for i := 0; i < cols; i++ {
			qi := float64(qr[i])
			if qi == 0 {
				continue
			}
			hi := hf[i*cols : (i+1)*cols]
			gi := i / gs
			b[gi] += qi * float64(tensor.Dot(hi, wr))
			for g := 0; g < G; g++ {
				j0, j1 := g*gs, min((g+1)*gs, cols)
				a[gi*G+g] += qi * float64(tensor.Dot(hi[j0:j1], qr[j0:j1]))
			}
		}
		s, ok := solveSPD(a, b, G)
		if !ok {
			return
		}
		for g, v := range s {
			if v >= 0.5 && v <= 2 && v != 1 {
				apply(r, g, v)
			}
		}
	})
}

// solveSPD solves the small symmetric positive definite system a x = b by
// Cholesky (a n×n, row-major; both are overwritten). It reports false when a
// is not positive definite or the solution is not finite.
func solveSPD(a, b []float64, n int) ([]float64, bool) {
	for i := 0; i < n; i++ { // a whisper of ridge for groups of near-zero codes
		a[i*n+i] *= 1 + 1e-9
	}
	if !cholesky(a, n) {
		return nil, false
	}
	x := b
	for i := 0; i < n; i++ { // L y = b
		s := x[i]
		for k := 0; k < i; k++ {
			s -= a[i*n+k] * x[k]
		}
		x[i] = s / a[i*n+i]
	}
	for i := n - 1; i >= 0; i-- { // Lᵀ x = y
		s := x[i]
		for k := i + 1; k < n; k++ {
			s -= a[k*n+i] * x[k]
		}
		x[i] = s / a[i*n+i]
	}
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
	}
	return x, true
}
