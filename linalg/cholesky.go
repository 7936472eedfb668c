package linalg

import (
	"math"
	"runtime"

	"github.com/upg-ai/upg/tensor"
)

// panel is the block width of Cholesky: the k of its trailing updates. 96
// keeps its unblocked parts (the diagonal blocks, the panel's substitution,
// ~n²·96/4 scalar multiply-adds) small while the updates still run at the
// micro-kernel's speed.
const panel = 96

// invPanel is InvertLower's block height, the m of its multiplies: every
// packed value of B serves invPanel rows (the unblocked inversions of the
// diagonal blocks cost only ~n·invPanel²/6).
const invPanel = 256

// Cholesky factorises the symmetric positive definite n×n matrix whose
// lower triangle (diagonal included) is in a (leading dimension lda) in
// place into L, lower triangular with A = L·Lᵀ. It reads only the lower
// triangle; entries up to 15 columns above the diagonal (the widest micro-tile) are used as
// scratch (the multiplies' micro-tiles on the diagonal). It reports false,
// leaving a partly overwritten, if A is not positive definite (a pivot
// ≤ 0, infinite or NaN).
//
// Blocked right-looking: a panel of columns is factorised (its diagonal
// block unblocked, the rows below by substitution), then the trailing
// lower triangle is updated by one multiply, A₂₂ −= P·Pᵀ.
func Cholesky(a []float64, n, lda int) bool {
	for j0 := 0; j0 < n; j0 += panel {
		jb := min(panel, n-j0)
		if !cholUnblocked(a[j0*lda+j0:], jb, lda) {
			return false
		}
		rest := n - j0 - jb
		if rest == 0 {
			break
		}
		// rows below the diagonal block: solve X·L_JJᵀ = A_IJ row by row
		parallel(min(runtime.GOMAXPROCS(0), rest), rest, func(r int) {
			i := j0 + jb + r
			row := a[i*lda+j0 : i*lda+j0+jb]
			for c := 0; c < jb; c++ {
				lc := a[(j0+c)*lda+j0 : (j0+c)*lda+j0+c+1]
				row[c] = (row[c] - tensor.Dot(row[:c], lc[:c])) / lc[c]
			}
		})
		p := a[(j0+jb)*lda+j0:]
		mulAdd(shape{bT: true, lowerC: true}, rest, rest, jb, -1, p, lda, p, lda, a[(j0+jb)*lda+j0+jb:], lda)
	}
	return true
}

// cholUnblocked factorises the n×n block at a in place (column by column).
func cholUnblocked(a []float64, n, lda int) bool {
	for j := 0; j < n; j++ {
		lj := a[j*lda : j*lda+j]
		d := a[j*lda+j] - tensor.Dot(lj, lj)
		if !(d > 0) || math.IsInf(d, 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j*lda+j] = d
		for i := j + 1; i < n; i++ {
			a[i*lda+j] = (a[i*lda+j] - tensor.Dot(a[i*lda:i*lda+j], lj)) / d
		}
	}
	return true
}

// InvertLower replaces the n×n lower triangular L in a (leading dimension
// lda; nonzero diagonal) by X = L⁻¹, in place; only the lower triangle is
// read or written.
//
// Blocked by rows, top to bottom: for block row I, T = L_I,<I · X_<I,<I
// (one multiply, skipping X's upper zeros, into scratch), then X_II =
// L_II⁻¹ in place and X_I,<I = −X_II·T (a second multiply into the block
// row, whose L values T no longer needs).
func InvertLower(a []float64, n, lda int) {
	var t []float64
	for i0 := 0; i0 < n; i0 += invPanel {
		ib := min(invPanel, n-i0)
		if i0 > 0 {
			if cap(t) < ib*i0 {
				t = make([]float64, ib*(n-ib))
			}
			t = t[:ib*i0]
			clear(t)
			mulAdd(shape{lowerB: true}, ib, i0, i0, 1, a[i0*lda:], lda, a, lda, t, i0)
		}
		invUnblocked(a[i0*lda+i0:], ib, lda)
		if i0 > 0 {
			for i := i0; i < i0+ib; i++ {
				clear(a[i*lda : i*lda+i0])
			}
			mulAdd(shape{lowerA: true}, ib, i0, ib, -1, a[i0*lda+i0:], lda, t, i0, a[i0*lda:], lda)
		}
	}
}

// invUnblocked inverts the n×n lower triangular block at a in place,
// column by column from the left (column j of the inverse needs L's
// columns ≥ j and the inverse's rows above in column j).
func invUnblocked(a []float64, n, lda int) {
	for j := 0; j < n; j++ {
		a[j*lda+j] = 1 / a[j*lda+j]
		for i := j + 1; i < n; i++ {
			var s float64
			for k := j; k < i; k++ {
				s += a[i*lda+k] * a[k*lda+j]
			}
			a[i*lda+j] = -s / a[i*lda+i]
		}
	}
}
