package compress

import (
	"math"
	"sync"

	"github.com/upg-ai/upg/codec"
)

// hessianAcc accumulates H = (1/N) Σ x xᵀ over activation rows x (cols wide).
// Only the upper triangle is accumulated; Hessian mirrors it.
type hessianAcc struct {
	cols int
	n    int
	h    []float64
}

func newHessianAcc(cols int) *hessianAcc {
	return &hessianAcc{cols: cols, h: make([]float64, cols*cols)}
}

// add accumulates the n×cols activations act; only the upper triangle.
func (a *hessianAcc) add(act []float32, n, threads int) {
	a.n += n
	addOuter(a.h, act, act, n, a.cols, threads, true)
}

// addOuter adds Σ_t x_t y_tᵀ (x, y: n rows of c values) to dst (c×c, row
// major), only the upper triangle (j ≥ i) when upper. Rows of dst are
// interleaved across threads so each gets a similar share of a triangle;
// each call's sums are kept in float32 (callers pass one calibration
// sequence at a time), then folded into the float64 total.
func addOuter(dst []float64, x, y []float32, n, c, threads int, upper bool) {
	threads = max(threads, 1)
	var wg sync.WaitGroup
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			acc := make([]float32, c)
			for i := w; i < c; i += threads {
				j0 := 0
				if upper {
					j0 = i
				}
				row := acc[j0:]
				clear(row)
				for t := 0; t < n; t++ {
					xi := x[t*c+i]
					if xi == 0 {
						continue
					}
					ys := y[t*c+j0 : (t+1)*c]
					for j := range row {
						row[j] += xi * ys[j]
					}
				}
				out := dst[i*c+j0 : (i+1)*c]
				for j, v := range row {
					out[j] += float64(v)
				}
			}
		}(w)
	}
	wg.Wait()
}

// hessian returns the averaged, symmetric matrix. It reuses the
// accumulator's memory (mirroring the upper triangle into the lower one), so
// the accumulator must not be used afterwards: for an FFN input of width
// 17920 each float64 copy is 2.5 GB.
func (a *hessianAcc) hessian() *codec.Hessian {
	c := a.cols
	h := a.h
	a.h = nil
	inv := 1 / float64(max(a.n, 1))
	for i := 0; i < c; i++ {
		for j := i; j < c; j++ {
			v := h[i*c+j] * inv
			h[i*c+j] = v
			h[j*c+i] = v
		}
	}
	return &codec.Hessian{N: a.n, Cols: c, H: h}
}

// crossAcc accumulates C = (1/N) Σ x x̃ᵀ over pairs of activation rows: x
// from the original model, x̃ from the compressed one at the same place.
type crossAcc struct {
	cols int
	n    int
	c    []float64
}

func newCrossAcc(cols int) *crossAcc {
	return &crossAcc{cols: cols, c: make([]float64, cols*cols)}
}

// add accumulates n pairs of rows (x, xq: n×cols each).
func (a *crossAcc) add(x, xq []float32, n, threads int) {
	a.n += n
	addOuter(a.c, x, xq, n, a.cols, threads, false)
}

// outputTarget returns the weights the compressed layer should approximate
// when its inputs are the compressed model's, x̃, instead of the original's,
// x: the minimiser over W' of E‖W x − W' x̃‖² + λ‖W' − W‖², which is
// W' = W·(C + λI)·(H̃ + λI)⁻¹ (C = E[x x̃ᵀ], H̃ = E[x̃ x̃ᵀ], λ = damp·mean(diag
// H̃) as GPTQ dampens: the ridge pulls W' towards W, not towards 0, where
// the inputs have little energy). Since E‖W x − Ŵ x̃‖² = E‖(W' − Ŵ) x̃‖² +
// const (λ aside), encoding W' with the Hessian H̃ makes the layer undo, as
// far as a linear map can, the error that reaches it from the layers before
// (GPTAQ's asymmetric calibration, in closed form). w is rows×cols and is
// overwritten. It reports false (w untouched) when H̃ cannot be factorised.
func outputTarget(w []float32, rows, cols int, c *crossAcc, hq *codec.Hessian, damp float64, threads int) bool {
	if c.n == 0 || hq.N == 0 || c.n != hq.N {
		return false
	}
	n := cols
	var mean float64
	for i := 0; i < n; i++ {
		mean += hq.H[i*n+i]
	}
	mean /= float64(n)
	if !(mean > 0) {
		return false
	}
	// L Lᵀ = H̃ + λI (lower triangle, float64).
	lambda := damp * mean
	l := make([]float64, n*n)
	for i := 0; i < n; i++ {
		copy(l[i*n:i*n+i+1], hq.H[i*n:i*n+i+1])
		l[i*n+i] += lambda
	}
	if !choleskyLower(l, n) {
		return false
	}
	// M = (C + λI)·(H̃ + λI)⁻¹ row by row: (H̃ + λI) mᵢ = cᵢ + λeᵢ (H̃
	// symmetric), C scaled like H̃.
	inv := 1 / float64(c.n)
	m := make([]float64, n*n)
	parallelRows(n, threads, func(i int) {
		x := m[i*n : (i+1)*n]
		for j := range x {
			x[j] = c.c[i*n+j] * inv
		}
		x[i] += lambda
		for j := 0; j < n; j++ { // L y = c
			s := x[j]
			lj := l[j*n : j*n+j]
			for k, v := range lj {
				s -= v * x[k]
			}
			x[j] = s / l[j*n+j]
		}
		for j := n - 1; j >= 0; j-- { // Lᵀ m = y
			s := x[j]
			for k := j + 1; k < n; k++ {
				s -= l[k*n+j] * x[k]
			}
			x[j] = s / l[j*n+j]
		}
	})
	mf := make([]float32, n*n)
	for i, v := range m {
		mf[i] = float32(v)
	}
	parallelRows(rows, threads, func(r int) {
		src := w[r*cols : (r+1)*cols]
		out := make([]float32, cols)
		for i, v := range src {
			if v == 0 {
				continue
			}
			row := mf[i*n : (i+1)*n]
			for j := range out {
				out[j] += v * row[j]
			}
		}
		copy(src, out)
	})
	return true
}

// choleskyLower factorises the symmetric positive definite matrix whose
// lower triangle is in a (n×n, row-major) in place into L, L·Lᵀ = A.
func choleskyLower(a []float64, n int) bool {
	for j := 0; j < n; j++ {
		d := a[j*n+j]
		for k := 0; k < j; k++ {
			d -= a[j*n+k] * a[j*n+k]
		}
		if !(d > 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			ri, rj := a[i*n:i*n+j], a[j*n:j*n+j]
			for k, v := range rj {
				s -= ri[k] * v
			}
			a[i*n+j] = s / d
		}
	}
	return true
}

// parallelRows runs f(0..n-1) on threads goroutines, interleaved.
func parallelRows(n, threads int, f func(i int)) {
	threads = max(1, min(threads, n))
	var wg sync.WaitGroup
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += threads {
				f(i)
			}
		}(w)
	}
	wg.Wait()
}
