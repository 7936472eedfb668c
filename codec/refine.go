package codec

import (
	"math"

	"github.com/upg-ai/upg/linalg"
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
// w and q are rows of ld floats (the first cols used); hf is the Hessian
// restricted to the first cols rows and columns (rotatedF32: padding
// columns meet zero inputs).
// apply(r, g, s) is called for each multiplier worth applying: finite,
// within [0.5, 2] (a wilder one means a degenerate group: keep the scale).
func refineScales(w, q []float32, hf []float32, ld, rows, cols, gs int, apply func(r, g int, s float64)) {
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

// rotatedF32 is h.H rotated with the signs of seed (0: not rotated), in
// float32: the form the refits multiply with.
func (h *Hessian) rotatedF32(seed uint64) []float32 {
	n := h.Cols
	a := make([]float64, n*n)
	fillHessian(a, n, h.H, n, seed)
	hf := make([]float32, n*n)
	parallelFor(n, func(i int) {
		for j, v := range a[i*n : (i+1)*n] {
			hf[i*n+j] = float32(v)
		}
	})
	return hf
}

// solveSPD solves the small symmetric positive definite system a x = b by
// Cholesky (a n×n, row-major; both are overwritten). It reports false when a
// is not positive definite or the solution is not finite.
func solveSPD(a, b []float64, n int) ([]float64, bool) {
	for i := 0; i < n; i++ { // a whisper of ridge for groups of near-zero codes
		a[i*n+i] *= 1 + 1e-9
	}
	if !linalg.Cholesky(a, n, n) {
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

// refitCodebook returns the codebook (n entries) that minimises the output
// error Σ_r (w_r − ŵ_r) H (w_r − ŵ_r)ᵀ given every weight's code index and
// scale, ŵ_{r,i} = scale(r, i)·c[index(r, i)]: the normal equations
// A c = b with A_kl = Σ_r Σ_{i: k, j: l} s_i H_ij s_j and b_k = Σ_r Σ_{i: k}
// s_i (H w_r)_i, with a slight pull towards the old codebook (entries no
// weight uses keep their value). Rows are sampled so that the work stays
// near 2·10⁹ multiply-adds (a codebook has few entries and a row many
// weights); with rw each sampled row's terms count rw[r] times. It reports
// false when the system cannot be solved.
func refitCodebook(w []float32, hf []float32, ld, rows, cols int, old []float32, index func(r, i int) int, scale func(r, i int) float32, rw []float32) ([]float32, bool) {
	n := len(old)
	sample := min(rows, max(8, int(2e9/float64(cols*cols))))
	type acc struct{ a, b []float64 }
	parts := make([]acc, sample)
	parallelFor(sample, func(si int) {
		r := si * rows / sample
		a, b := make([]float64, n*n), make([]float64, n)
		wr := w[r*ld : r*ld+cols]
		idx := make([]int, cols)
		s := make([]float32, cols)
		for i := range idx {
			idx[i], s[i] = index(r, i), scale(r, i)
		}
		row := make([]float64, n)
		for i := 0; i < cols; i++ {
			if s[i] == 0 {
				continue
			}
			hi := hf[i*cols : (i+1)*cols]
			b[idx[i]] += float64(s[i]) * float64(tensor.Dot(hi, wr))
			clear(row)
			for j, v := range hi {
				row[idx[j]] += float64(v * s[j])
			}
			ai := a[idx[i]*n : (idx[i]+1)*n]
			si := float64(s[i])
			for l, v := range row {
				ai[l] += si * v
			}
		}
		if rw != nil {
			f := float64(rw[r])
			for i := range a {
				a[i] *= f
			}
			for i := range b {
				b[i] *= f
			}
		}
		parts[si] = acc{a, b}
	})
	a, b := make([]float64, n*n), make([]float64, n)
	for _, p := range parts {
		for i, v := range p.a {
			a[i] += v
		}
		for i, v := range p.b {
			b[i] += v
		}
	}
	var tr float64
	for k := 0; k < n; k++ {
		tr += a[k*n+k]
	}
	lambda := 1e-6 * tr / float64(n)
	if !(lambda > 0) {
		return nil, false
	}
	for k := 0; k < n; k++ {
		a[k*n+k] += lambda
		b[k] += lambda * float64(old[k])
	}
	c, ok := solveSPD(a, b, n)
	if !ok {
		return nil, false
	}
	out := make([]float32, n)
	for k, v := range c {
		out[k] = float32(v)
	}
	return out, true
}
