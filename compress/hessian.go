package compress

import (
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

// add accumulates the n×cols activations act, splitting rows of H across
// threads. Each call's rows are summed in float32 (callers pass one
// calibration sequence at a time), then folded into the float64 total.
func (a *hessianAcc) add(act []float32, n, threads int) {
	c := a.cols
	a.n += n
	if threads < 1 {
		threads = 1
	}
	var wg sync.WaitGroup
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			acc := make([]float32, c)
			// Interleave rows so each thread gets a similar share of the triangle.
			for i := w; i < c; i += threads {
				clear(acc[i:])
				for t := 0; t < n; t++ {
					x := act[t*c : (t+1)*c]
					xi := x[i]
					if xi == 0 {
						continue
					}
					row := acc[i:]
					xs := x[i:]
					for j := range row {
						row[j] += xi * xs[j]
					}
				}
				dst := a.h[i*c+i : (i+1)*c]
				for j, v := range acc[i:] {
					dst[j] += float64(v)
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
