package linalg

import "github.com/upg-ai/upg/tensor"

// AddGram adds Σ_t x_t·y_tᵀ to the c×c matrix dst (leading dimension ldd)
// for the n rows x_t, y_t of x and y (n×c each, row-major; x and y may be
// the same slice): dst[i][j] += Σ_t x[t][i]·y[t][j], summed in float64.
// With upper, only the upper triangle (j ≥ i) is promised: blocks wholly
// below the diagonal are skipped, and entries up to 7 rows below it (the tallest micro-tile) may be
// written.
func AddGram(dst []float64, ldd int, x, y []float32, n, c int, upper bool) {
	mulAdd(shape{aT: true, upperC: upper}, c, c, n, 1, x, c, y, c, dst, ldd)
}

// SubProduct computes C −= A·B for the float32 m×n C (leading dimension
// ldc), m×k A and k×n B (lda, ldb), on GOMAXPROCS goroutines: the GPTQ
// encoder's lazy update of the columns after a block by the block's
// errors. The sums are float64, rounded into C once a 256-long stretch of
// k.
func SubProduct(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, m, n, k int) {
	mulAdd(shape{}, m, n, k, -1, a, lda, b, ldb, c, ldc)
}

// MulAdd computes C += alpha·A·B for the float64 m×n C, m×k A and k×n B
// (row-major, leading dimensions lda, ldb, ldc) on GOMAXPROCS goroutines.
func MulAdd(m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	mulAdd(shape{}, m, n, k, alpha, a, lda, b, ldb, c, ldc)
}

// QuadForms sets dst[r] = a_r·H·a_rᵀ for the m rows a_r of a (n values
// each, row-major) and the n×n H: Y = A·H by MulAdd, 256 rows at a time,
// then each row's dot product with its Y row. Each MulAdd packs all of H:
// with 64-row chunks that packing took a third as long as the multiply.
func QuadForms(dst, a []float64, m, n int, h []float64) {
	const chunk = 256
	y := make([]float64, min(m, chunk)*n)
	for r0 := 0; r0 < m; r0 += chunk {
		mb := min(chunk, m-r0)
		ys := y[:mb*n]
		clear(ys)
		MulAdd(mb, n, n, 1, a[r0*n:], n, h, n, ys, n)
		for r := 0; r < mb; r++ {
			dst[r0+r] = tensor.Dot(a[(r0+r)*n:(r0+r+1)*n], ys[r*n:(r+1)*n])
		}
	}
}
