package codec

import (
	"fmt"
	"math"
	"runtime"
	"sync"

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

// prepareHessian dampens H (adding damp·mean(diag H) to the diagonal, dead
// columns get diagonal 1) and computes the upper Cholesky factor of H⁻¹
// via H = M·Mᵀ with M upper (a Cholesky of the index-reversed H), U = M⁻¹.
func prepareHessian(h []float64, cols int, damp float64) (*prepared, error) {
	if damp <= 0 {
		damp = 0.01
	}
	var mean float64
	for i := 0; i < cols; i++ {
		mean += h[i*cols+i]
	}
	mean /= float64(cols)
	if !(mean > 0) || math.IsInf(mean, 0) {
		mean = 1
	}
	n := cols
	for try := 0; try < 6; try++ {
		// A = P·H·P + λI (P reverses indices), lower triangle only.
		a := make([]float64, n*n)
		imp := make([]float32, n)
		for i := 0; i < n; i++ {
			d := h[i*n+i]
			if !(d > 0) {
				d = 1
			}
			d += damp * mean
			imp[i] = float32(d)
			ri := n - 1 - i
			a[ri*n+ri] = d
			for j := 0; j < i; j++ {
				// (P H P)[n-1-i][n-1-j] = H[i][j]; store at row max(ri,rj).
				a[(n-1-j)*n+ri] = h[i*n+j]
			}
		}
		if !cholesky(a, n) {
			damp *= 10
			continue
		}
		x := invLower(a, n)
		p := &prepared{U: make([]float32, n*n), Ucc: make([]float32, n), Imp: imp}
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				p.U[i*n+j] = float32(x[(n-1-i)*n+(n-1-j)])
			}
			p.Ucc[i] = p.U[i*n+i]
		}
		return p, nil
	}
	return nil, fmt.Errorf("hessian is not positive definite even with dampening")
}

// cholesky factorises the symmetric positive definite n×n matrix whose
// lower triangle is in a, in place, into L (lower). It reports false if a
// is not positive definite. Column j's entries below the diagonal are
// computed in parallel.
func cholesky(a []float64, n int) bool {
	workers := runtime.GOMAXPROCS(0)
	for j := 0; j < n; j++ {
		lj := a[j*n : j*n+j]
		d := a[j*n+j] - tensor.Dot(lj, lj)
		if !(d > 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		inv := 1 / d
		rest := n - j - 1
		if rest < 256 || workers == 1 {
			for i := j + 1; i < n; i++ {
				a[i*n+j] = (a[i*n+j] - tensor.Dot(a[i*n:i*n+j], lj)) * inv
			}
			continue
		}
		var wg sync.WaitGroup
		chunk := (rest + workers - 1) / workers
		for s := j + 1; s < n; s += chunk {
			e := min(s+chunk, n)
			wg.Add(1)
			go func(s, e int) {
				defer wg.Done()
				for i := s; i < e; i++ {
					a[i*n+j] = (a[i*n+j] - tensor.Dot(a[i*n:i*n+j], lj)) * inv
				}
			}(s, e)
		}
		wg.Wait()
	}
	return true
}

// invLower returns X = L⁻¹ (lower triangular, row-major n×n) for the lower
// triangular L in l, solving column by column in parallel.
func invLower(l []float64, n int) []float64 {
	x := make([]float64, n*n)
	parallelFor(n, func(j int) {
		col := make([]float64, n)
		col[j] = 1 / l[j*n+j]
		for i := j + 1; i < n; i++ {
			col[i] = -tensor.Dot(l[i*n+j:i*n+i], col[j:i]) / l[i*n+i]
		}
		for i := j; i < n; i++ {
			x[i*n+j] = col[i]
		}
	})
	return x
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
// batched updates in blocks of `block` columns, rows in batches processed in
// parallel.
func runQuant(w []float32, rows, cols int, p *prepared, block int, q colQuant) {
	const batch = 16
	nb := (rows + batch - 1) / batch
	parallelFor(nb, func(b int) {
		r0, r1 := b*batch, min((b+1)*batch, rows)
		if p == nil {
			for r := r0; r < r1; r++ {
				row := w[r*cols : (r+1)*cols]
				for c := range row {
					row[c] = q.quant(r, row, c)
				}
			}
			return
		}
		errs := make([]float32, batch*block)
		for b0 := 0; b0 < cols; b0 += block {
			b1 := min(b0+block, cols)
			for r := r0; r < r1; r++ {
				row := w[r*cols : (r+1)*cols]
				e := errs[(r-r0)*block:]
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
			if b1 == cols {
				break
			}
			for k := b0; k < b1; k++ {
				u := p.U[k*cols+b1 : (k+1)*cols]
				for r := r0; r < r1; r++ {
					if d := errs[(r-r0)*block+k-b0]; d != 0 {
						axpy(w[r*cols+b1:(r+1)*cols], -d, u)
					}
				}
			}
		}
	})
}

// OutputError returns tr((W-Ŵ) H (W-Ŵ)ᵀ) for the decoded matrix wq, the
// quantity GPTQ minimises (H = h.H; plain squared error when h or h.H is
// nil; row weights are not applied).
func OutputError(w, wq []float32, rows, cols int, h *Hessian) float64 {
	if h != nil && h.H == nil {
		h = nil
	}
	var total float64
	d := make([]float64, cols)
	for r := 0; r < rows; r++ {
		for j := range d {
			d[j] = float64(w[r*cols+j]) - float64(wq[r*cols+j])
		}
		if h == nil {
			total += tensor.Dot(d, d)
			continue
		}
		for i := 0; i < cols; i++ {
			if d[i] != 0 {
				total += d[i] * tensor.Dot(h.H[i*cols:(i+1)*cols], d)
			}
		}
	}
	return total
}
