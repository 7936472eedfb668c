package codec

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/upg-ai/upg/linalg"
	"github.com/upg-ai/upg/tensor"
)

// colQuant quantizes one row column by column for the GPTQ loop. quant is
// called for c = 0, 1, ..., cols-1 of row r in order; w holds the row's
// current values (columns > c already carry the error compensation of
// columns < c, up to the end of the current block, which is aligned to the
// quantizer's groups). It records the code and returns the value column c is
// represented by. Calls for different rows may run concurrently.
type colQuant interface {
	quant(r int, w []float32, c int) float32
}

// gptqBlock is the lazy-update block length for group size gs: a multiple
// of gs near 128, so that every group lies inside one block.
func gptqBlock(gs int) int {
	if gs >= 128 {
		return gs
	}
	return gs * (128 / gs)
}

// prepared is the factorised calibration information for GPTQ.
type prepared struct {
	U   []float32 // cols×cols upper Cholesky factor of H⁻¹ (row-major), Hinv = UᵀU
	Ucc []float32 // diagonal of U
	Imp []float32 // diag of the dampened H: per-column importance
}

// prepareHessian computes GPTQ's factor of the n×n H that fill writes
// into its argument: H dampened (damp·mean(diag H) added to the diagonal,
// dead columns given diagonal 1), then the upper Cholesky factor U of H⁻¹
// (H⁻¹ = UᵀU) via H = M·Mᵀ with M upper (a Cholesky of the index-reversed
// H), U = M⁻¹. Everything runs in place in one n×n float64 buffer; fill is
// called again, with the dampening ten times larger, when H is not
// positive definite.
func prepareHessian(n int, damp float64, fill func(a []float64)) (*prepared, error) {
	if damp <= 0 {
		damp = 0.01
	}
	a := make([]float64, n*n)
	for try := 0; try < 6; try++ {
		fill(a)
		var mean float64
		for i := 0; i < n; i++ {
			mean += a[i*n+i]
		}
		mean /= float64(n)
		if !(mean > 0) || math.IsInf(mean, 0) {
			mean = 1
		}
		imp := make([]float32, n)
		for i := 0; i < n; i++ {
			d := a[i*n+i]
			if !(d > 0) {
				d = 1
			}
			d += damp * mean
			imp[i] = float32(d)
			a[i*n+i] = d
		}
		// P·H·P (P reverses indices) is the flat array reversed:
		// element (i, j) moves to (n−1−i, n−1−j).
		slices.Reverse(a)
		if !linalg.Cholesky(a, n, n) {
			damp *= 10
			continue
		}
		linalg.InvertLower(a, n, n) // L⁻¹, lower
		p := &prepared{U: make([]float32, n*n), Ucc: make([]float32, n), Imp: imp}
		parallelFor(n, func(i int) {
			// U[i][j] = L⁻¹[n−1−i][n−1−j] for j ≥ i
			src := a[(n-1-i)*n : (n-i)*n]
			dst := p.U[i*n : (i+1)*n]
			for j := i; j < n; j++ {
				dst[j] = float32(src[n-1-j])
			}
			p.Ucc[i] = dst[i]
		})
		return p, nil
	}
	return nil, fmt.Errorf("hessian is not positive definite even with dampening")
}

// parallelFor runs f(0..n-1) on GOMAXPROCS goroutines, interleaved.
func parallelFor(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(i)
			}
		}(w)
	}
	wg.Wait()
}

// axpy computes y += s*x.
func axpy(y []float32, s float32, x []float32) {
	x = x[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		y[i] += s * x[i]
		y[i+1] += s * x[i+1]
		y[i+2] += s * x[i+2]
		y[i+3] += s * x[i+3]
	}
	for ; i < len(y); i++ {
		y[i] += s * x[i]
	}
}

// runQuant quantizes w (rows×cols, modified in place: on return row r holds
// the values it is represented by) with q. With p == nil every column is
// rounded independently; otherwise GPTQ error compensation with lazy
// batched updates in blocks of `block` columns: each block's columns are
// quantized row batch by row batch in parallel (the block's own columns
// compensated as they go), then the columns after the block get the
// block's errors in one blocked multiply over all rows.
func runQuant(w []float32, rows, cols int, p *prepared, block int, q colQuant) {
	const batch = 16
	nb := (rows + batch - 1) / batch
	if p == nil {
		parallelFor(nb, func(b int) {
			for r := b * batch; r < min((b+1)*batch, rows); r++ {
				row := w[r*cols : (r+1)*cols]
				for c := range row {
					row[c] = q.quant(r, row, c)
				}
			}
		})
		return
	}
	errs := make([]float32, rows*block) // row r's errors in the block: errs[r·block+c−b0]
	for b0 := 0; b0 < cols; b0 += block {
		b1 := min(b0+block, cols)
		parallelFor(nb, func(b int) {
			for r := b * batch; r < min((b+1)*batch, rows); r++ {
				row := w[r*cols : (r+1)*cols]
				e := errs[r*block : (r+1)*block]
				for c := b0; c < b1; c++ {
					v := row[c]
					qv := q.quant(r, row, c)
					row[c] = qv
					d := (v - qv) / p.Ucc[c]
					e[c-b0] = d
					if d != 0 {
						axpy(row[c+1:b1], -d, p.U[c*cols+c+1:c*cols+b1])
					}
				}
			}
		})
		if b1 < cols { // W[:, b1:] −= E·U[b0:b1, b1:]
			linalg.SubProduct(w[b1:], cols, errs, block, p.U[b0*cols+b1:], cols, rows, cols-b1, b1-b0)
		}
	}
}

// OutputError returns tr((W-Ŵ) H (W-Ŵ)ᵀ) for the decoded matrix wq, the
// quantity GPTQ minimises (H = h.H; plain squared error when h or h.H is
// nil; row weights are not applied).
func OutputError(w, wq []float32, rows, cols int, h *Hessian) float64 {
	if h != nil && h.H == nil {
		h = nil
	}
	var total float64
	if h == nil {
		d := make([]float64, cols)
		for r := 0; r < rows; r++ {
			for j := range d {
				d[j] = float64(w[r*cols+j]) - float64(wq[r*cols+j])
			}
			total += tensor.Dot(d, d)
		}
		return total
	}
	return WeightedOutputError(w, wq, rows, cols, h.H, nil)
}

// WeightedOutputError returns Σ_r rowW[r]·(w−wq)_r·H·(w−wq)_rᵀ for the
// rows×cols w and wq and the cols×cols H (rows unweighted where rowW is
// nil; of w itself, Σ_r rowW[r]·w_r·H·w_rᵀ, where wq is nil), the
// quadratic forms taken by linalg.QuadForms (blocked, on every core). The
// compressor's planner ranks encodings by its ratio with wq and without.
func WeightedOutputError(w, wq []float32, rows, cols int, H []float64, rowW []float32) float64 {
	d := make([]float64, rows*cols)
	for i := range d {
		d[i] = float64(w[i])
		if wq != nil {
			d[i] -= float64(wq[i])
		}
	}
	forms := make([]float64, rows)
	linalg.QuadForms(forms, d, rows, cols, H)
	var sum float64
	for r, f := range forms {
		rw := 1.0
		if rowW != nil {
			rw = float64(rowW[r])
		}
		sum += rw * f
	}
	return sum
}
