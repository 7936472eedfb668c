package compress

import (
	"sync"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/linalg"
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
func (a *hessianAcc) add(act []float32, n int) {
	a.n += n
	linalg.AddGram(a.h, a.cols, act, act, n, a.cols, true)
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
	// in 64×64 blocks, so that the mirrored writes (a column each) stay in
	// cache: element by element they cost a cache miss each at d = 17,920
	const bs = 64
	for i0 := 0; i0 < c; i0 += bs {
		for j0 := i0; j0 < c; j0 += bs {
			for i := i0; i < min(i0+bs, c); i++ {
				for j := max(j0, i); j < min(j0+bs, c); j++ {
					v := h[i*c+j] * inv
					h[i*c+j] = v
					h[j*c+i] = v
				}
			}
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
func (a *crossAcc) add(x, xq []float32, n int) {
	a.n += n
	linalg.AddGram(a.c, a.cols, x, xq, n, a.cols, false)
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
	if !linalg.Cholesky(l, n, n) {
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
