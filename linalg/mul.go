package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Blocking of mulAdd (after GotoBLAS): k is taken kcBlock at a time; for
// each k block, B's rows are packed once into micro-panels of nr columns
// (interleaved along k) shared by every goroutine, then the work items —
// mcTile rows × ncChunk columns of C — are shared out: each packs its rows
// of A into micro-panels of mr rows (kept in L2) and runs the micro-kernel
// over them, one B micro-panel (in L1) against all its row panels at a
// time. Every packed value is used by a whole chunk's or a whole column's
// worth of multiply-adds. Each element of C gets its k blocks' sums in
// order, so the result does not depend on the number of goroutines.
const (
	mcTile  = 96  // rows of C a work item takes (a multiple of every kernel's mr)
	ncChunk = 512 // columns of C a work item takes (a multiple of every kernel's nr)
	kcBlock = 256 // k values a packed block holds
	maxMR   = 8   // the largest mr of any micro-kernel
	maxNR   = 16  // the largest nr
)

// microKernel adds alpha times the product of two packed micro-panels to an
// mr×nr tile of C: c[r·ldc+q] += alpha·Σ_kk a[kk·mr+r]·b[kk·nr+q], the sum
// over kk = 0..kb−1 in order.
type microKernel struct {
	name   string
	mr, nr int
	run    func(kb int, a, b, c []float64, ldc int, alpha float64)
}

// goKernel is the portable micro-kernel.
var goKernel = microKernel{"go", goMR, goNR, kernGo}

// active is the micro-kernel mulAdd runs: the first (fastest) this machine
// has (a variable so that tests run every kernel on one machine).
var active = available()[0]

// shape selects how mulAdd reads A and B and which parts of C it computes.
type shape struct {
	// aT: A is given as Aᵀ, a k×m matrix (C += Aᵀ·B, "TN").
	aT bool
	// bT: B is given as Bᵀ, an n×k matrix (C += A·Bᵀ, "NT"); otherwise B
	// is k×n.
	bT bool
	// lowerC: only the micro-tiles (mr×nr) of C that reach on or below its
	// diagonal; those on it are computed whole, so entries up to nr−1
	// columns above the diagonal are written too.
	lowerC bool
	// upperC: only the micro-tiles that reach on or above C's diagonal,
	// those on it whole (entries up to mr−1 rows below it written).
	upperC bool
	// lowerA: A (m×k, not transposed) is lower triangular and only its
	// lower triangle may be read: its upper part is packed as zeros.
	lowerA bool
	// lowerB: B (k×n, not transposed) is lower triangular and only its
	// lower triangle may be read: a k block skips the columns past its
	// end, and entries with k < j are packed as zeros.
	lowerB bool
}

// mulAdd computes C += alpha·op(A)·op(B) for m×n C, m×k op(A) and k×n
// op(B) (row-major, leading dimensions lda, ldb, ldc), on GOMAXPROCS
// goroutines. A and B may be float32: they are widened as they are packed,
// and every sum is float64; a float32 C gets each k block's sums rounded
// once.
func mulAdd[TA, TB float32 | float64, TC float32 | float64](s shape, m, n, k int, alpha float64, a []TA, lda int, b []TB, ldb int, c []TC, ldc int) {
	if m <= 0 || n <= 0 || k <= 0 {
		return
	}
	c64, _ := any(c).([]float64)
	kn := active
	mr, nr := kn.mr, kn.nr
	workers := runtime.GOMAXPROCS(0)
	type item struct{ i0, j0 int }
	var items []item
	bp := getBuf(((n + nr - 1) / nr) * nr * min(k, kcBlock))
	defer putBuf(bp)
	aps := make([]*[]float64, workers) // each goroutine's packed rows of A
	for g := range aps {
		aps[g] = getBuf(mcTile * min(k, kcBlock))
	}
	defer func() {
		for _, ap := range aps {
			putBuf(ap)
		}
	}()
	for k0 := 0; k0 < k; k0 += kcBlock {
		kb := min(kcBlock, k-k0)
		nk := n // the columns this k block reaches
		if s.lowerB {
			nk = min(n, k0+kb)
		}
		panels := (nk + nr - 1) / nr
		bpk := *bp
		parallel(min(workers, panels), panels, func(p int) {
			j0, w := p*nr, min(nr, nk-p*nr)
			d := bpk[p*nr*kb : (p+1)*nr*kb]
			switch {
			case s.bT:
				packRows(d, b[j0*ldb+k0:], ldb, w, kb, nr)
			case s.lowerB:
				packBLower(d, b[k0*ldb+j0:], ldb, w, kb, nr, k0-j0)
			default:
				packCols(d, b[k0*ldb+j0:], ldb, w, kb, nr)
			}
		})
		items = items[:0]
		for i0 := 0; i0 < m; i0 += mcTile {
			for j0 := 0; j0 < nk; j0 += ncChunk {
				if s.lowerC && j0 > i0+mcTile-1 || s.upperC && j0+ncChunk-1 < i0 {
					continue
				}
				items = append(items, item{i0, j0})
			}
		}
		var next atomic.Int64
		parallel(min(workers, len(items)), 0, func(g int) {
			ap := *aps[g]
			var tmp [maxMR * maxNR]float64
			for {
				t := int(next.Add(1) - 1)
				if t >= len(items) {
					return
				}
				i0, j0 := items[t].i0, items[t].j0
				mb, jn := min(mcTile, m-i0), min(ncChunk, nk-j0)
				switch {
				case s.aT:
					packCols(ap, a[k0*lda+i0:], lda, mb, kb, mr)
				case s.lowerA:
					packALower(ap, a[i0*lda+k0:], lda, mb, kb, mr, i0-k0)
				default:
					packRows(ap, a[i0*lda+k0:], lda, mb, kb, mr)
				}
				for jj := 0; jj < jn; jj += nr {
					j := j0 + jj
					bs := bpk[j*kb : (j+nr)*kb]
					for ii := 0; ii < mb; ii += mr {
						i := i0 + ii
						if s.lowerC && j > i+mr-1 || s.upperC && j+nr-1 < i {
							continue
						}
						as := ap[ii*kb : (ii+mr)*kb]
						off := i*ldc + j
						if c64 != nil && ii+mr <= mb && jj+nr <= jn {
							kn.run(kb, as, bs, c64[off:], ldc, alpha)
							continue
						}
						// an edge or a float32 C: the kernel into tmp,
						// then the valid part
						tmp = [maxMR * maxNR]float64{}
						kn.run(kb, as, bs, tmp[:], nr, alpha)
						for r := 0; r < min(mr, mb-ii); r++ {
							for q := 0; q < min(nr, jn-jj); q++ {
								c[off+r*ldc+q] += TC(tmp[r*nr+q])
							}
						}
					}
				}
			}
		})
	}
}

// parallel runs f on w goroutines (on the caller's alone when w ≤ 1):
// with n > 0, f(0..n−1) interleaved over them; with n = 0, f(g) on each,
// g its index (f takes its own work).
func parallel(w, n int, f func(i int)) {
	run := func(g int) {
		if n == 0 {
			f(g)
			return
		}
		for i := g; i < n; i += max(w, 1) {
			f(i)
		}
	}
	if w <= 1 {
		run(0)
		return
	}
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(g)
		}()
	}
	wg.Wait()
}

// bufs keeps packing buffers between calls: the GPTQ preparation runs
// hundreds of multiplies a matrix, and fresh buffers of tens of MB each
// cost their page faults every time.
var bufs sync.Pool

// getBuf returns a buffer of at least n values from bufs, or a new one.
func getBuf(n int) *[]float64 {
	if p, ok := bufs.Get().(*[]float64); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float64, n)
	return &b
}

func putBuf(p *[]float64) { bufs.Put(p) }

// packRows copies count rows of kb values (src, leading dimension ld)
// into micro-panels of w rows interleaved along k (panel p:
// dst[p·w·kb + kk·w + r] = row p·w + r, value kk), rows past count as
// zeros: A's rows (w = mr) or Bᵀ's (w = nr).
func packRows[T float32 | float64](dst []float64, src []T, ld, count, kb, w int) {
	for p := 0; p*w < count; p++ {
		d := dst[p*w*kb : (p+1)*w*kb]
		for r := 0; r < w; r++ {
			i := p*w + r
			if i >= count {
				for kk := 0; kk < kb; kk++ {
					d[kk*w+r] = 0
				}
				continue
			}
			for kk, v := range src[i*ld : i*ld+kb] {
				d[kk*w+r] = float64(v)
			}
		}
	}
}

// packCols is packRows for a source given the other way round: kb rows
// (along k) of count values, w of them a panel: B's columns (w = nr) or
// Aᵀ's (w = mr).
func packCols[T float32 | float64](dst []float64, src []T, ld, count, kb, w int) {
	for p := 0; p*w < count; p++ {
		d := dst[p*w*kb : (p+1)*w*kb]
		n := min(w, count-p*w)
		for kk := 0; kk < kb; kk++ {
			o := d[kk*w : kk*w+w]
			for q, v := range src[kk*ld+p*w : kk*ld+p*w+n] {
				o[q] = float64(v)
			}
			clear(o[n:])
		}
	}
}

// packALower is packRows for the block of a lower triangular A at row i0,
// column k0 of it (off = i0 − k0): entries above A's diagonal (kk > i +
// off) are packed as zeros, unread.
func packALower[T float32 | float64](dst []float64, a []T, lda, mb, kb, w, off int) {
	for p := 0; p*w < mb; p++ {
		d := dst[p*w*kb : (p+1)*w*kb]
		for r := 0; r < w; r++ {
			i := p*w + r
			last := min(kb, max(0, i+off+1)) // columns < last are in the triangle
			if i >= mb {
				last = 0
			}
			for kk := 0; kk < last; kk++ {
				d[kk*w+r] = float64(a[i*lda+kk])
			}
			for kk := last; kk < kb; kk++ {
				d[kk*w+r] = 0
			}
		}
	}
}

// packBLower is packCols for the block of a lower triangular B at row k0,
// column j0 of it (off = k0 − j0): entries above B's diagonal (q > kk +
// off) are packed as zeros, unread.
func packBLower[T float32 | float64](dst []float64, b []T, ldb, nb, kb, w, off int) {
	for p := 0; p*w < nb; p++ {
		d := dst[p*w*kb : (p+1)*w*kb]
		for kk := 0; kk < kb; kk++ {
			o := d[kk*w : kk*w+w]
			last := min(w, nb-p*w, max(0, kk+off+1-p*w)) // columns < last are in the triangle
			for q := 0; q < last; q++ {
				o[q] = float64(b[kk*ldb+p*w+q])
			}
			for q := last; q < w; q++ {
				o[q] = 0
			}
		}
	}
}

// The portable micro-kernel's tile.
const (
	goMR = 4
	goNR = 8
)

// kernGo is the portable micro-kernel (goMR×goNR).
func kernGo(kb int, a, b, c []float64, ldc int, alpha float64) {
	var acc [goMR][goNR]float64
	a, b = a[:kb*goMR], b[:kb*goNR]
	for kk := 0; kk < kb; kk++ {
		av := a[kk*goMR : kk*goMR+goMR]
		bv := b[kk*goNR : kk*goNR+goNR]
		for r := 0; r < goMR; r++ {
			x := av[r]
			for q := 0; q < goNR; q++ {
				acc[r][q] += x * bv[q]
			}
		}
	}
	for r := 0; r < goMR; r++ {
		row := c[r*ldc : r*ldc+goNR]
		for q := range row {
			row[q] += alpha * acc[r][q]
		}
	}
}
