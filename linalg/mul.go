package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Blocking of mulAdd: C is cut into mcTile×ncTile tiles, one goroutine's
// work item each; a tile's k range is taken kcBlock at a time, its slices
// of A and B packed into micro-panels (mr rows, nr columns, interleaved
// along k) that stay in L2 while the micro-kernel runs over them. Each tile
// adds its k blocks in order, so the result does not depend on the number
// of goroutines.
const (
	mr      = 4   // micro-kernel rows
	nr      = 8   // micro-kernel columns
	mcTile  = 64  // tile rows (a multiple of mr)
	ncTile  = 64  // tile columns (a multiple of nr)
	kcBlock = 256 // k values a packed block holds
)

// shape selects how mulAdd reads A and B and which tiles of C it computes.
type shape struct {
	// aT: A is given as Aᵀ, a k×m matrix (C += Aᵀ·B, "TN").
	aT bool
	// bT: B is given as Bᵀ, an n×k matrix (C += A·Bᵀ, "NT"); otherwise B
	// is k×n.
	bT bool
	// lowerC: only tiles that reach on or below C's diagonal (tile column
	// start ≤ tile row end); the tiles on the diagonal are computed whole,
	// so the strictly upper part inside them is written too.
	lowerC bool
	// upperC: only tiles that reach on or above C's diagonal, the
	// diagonal tiles whole.
	upperC bool
	// lowerB: B (k×n) is lower triangular and only its lower triangle may
	// be read: a tile of columns from j0 on takes k from j0, and entries
	// with k < j are packed as zeros.
	lowerB bool
	// lowerA: A (m×k, not transposed) is lower triangular and only its
	// lower triangle may be read: its upper part is packed as zeros.
	lowerA bool
	// serial: on the calling goroutine alone (a caller that is itself
	// one of many workers).
	serial bool
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
	tm, tn := (m+mcTile-1)/mcTile, (n+ncTile-1)/ncTile
	type tile struct{ i, j int }
	tiles := make([]tile, 0, tm*tn)
	for i := 0; i < tm; i++ {
		for j := 0; j < tn; j++ {
			if s.lowerC && j*ncTile > i*mcTile+mcTile-1 {
				break
			}
			if s.upperC && j*ncTile+ncTile-1 < i*mcTile {
				continue
			}
			if s.lowerB && j*ncTile >= k {
				break
			}
			tiles = append(tiles, tile{i, j})
		}
	}
	c64, _ := any(c).([]float64)
	workers := min(runtime.GOMAXPROCS(0), len(tiles))
	if s.serial {
		workers = 1
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ap := make([]float64, mcTile*kcBlock)
			bp := make([]float64, ncTile*kcBlock)
			var tmp [mr * nr]float64
			for {
				t := int(next.Add(1) - 1)
				if t >= len(tiles) {
					return
				}
				i0, j0 := tiles[t].i*mcTile, tiles[t].j*ncTile
				mb, nb := min(mcTile, m-i0), min(ncTile, n-j0)
				kFrom := 0
				if s.lowerB {
					kFrom = j0
				}
				for k0 := kFrom; k0 < k; k0 += kcBlock {
					kb := min(kcBlock, k-k0)
					switch {
					case s.aT:
						packAT(ap, a[k0*lda+i0:], lda, mb, kb)
					case s.lowerA:
						packALower(ap, a[i0*lda+k0:], lda, mb, kb, i0-k0)
					default:
						packA(ap, a[i0*lda+k0:], lda, mb, kb)
					}
					switch {
					case s.bT:
						packBT(bp, b[j0*ldb+k0:], ldb, nb, kb)
					case s.lowerB:
						packBLower(bp, b[k0*ldb+j0:], ldb, nb, kb, k0-j0)
					default:
						packB(bp, b[k0*ldb+j0:], ldb, nb, kb)
					}
					for jj := 0; jj < nb; jj += nr {
						bs := bp[jj*kb : (jj+nr)*kb]
						for ii := 0; ii < mb; ii += mr {
							as := ap[ii*kb : (ii+mr)*kb]
							off := (i0+ii)*ldc + j0 + jj
							if c64 != nil && ii+mr <= mb && jj+nr <= nb {
								kern(kb, as, bs, c64[off:], ldc, alpha)
								continue
							}
							// an edge or a float32 C: the kernel into tmp,
							// then the valid part
							tmp = [mr * nr]float64{}
							kern(kb, as, bs, tmp[:], nr, alpha)
							for r := 0; r < min(mr, mb-ii); r++ {
								for q := 0; q < min(nr, nb-jj); q++ {
									c[off+r*ldc+q] += TC(tmp[r*nr+q])
								}
							}
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

// packA copies the mb×kb block of A at a into micro-panels of mr rows:
// panel p holds rows mr·p.. interleaved along k (dst[p·mr·kb + kk·mr + r]),
// rows past mb as zeros.
func packA[T float32 | float64](dst []float64, a []T, lda, mb, kb int) {
	for p := 0; p*mr < mb; p++ {
		d := dst[p*mr*kb : (p+1)*mr*kb]
		for r := 0; r < mr; r++ {
			i := p*mr + r
			if i >= mb {
				for kk := 0; kk < kb; kk++ {
					d[kk*mr+r] = 0
				}
				continue
			}
			row := a[i*lda : i*lda+kb]
			for kk, v := range row {
				d[kk*mr+r] = float64(v)
			}
		}
	}
}

// packALower is packA for the block of a lower triangular A at row i0,
// column k0 of it (off = i0 − k0): entries above A's diagonal (kk > i +
// off) are packed as zeros, unread.
func packALower[T float32 | float64](dst []float64, a []T, lda, mb, kb, off int) {
	for p := 0; p*mr < mb; p++ {
		d := dst[p*mr*kb : (p+1)*mr*kb]
		for r := 0; r < mr; r++ {
			i := p*mr + r
			last := min(kb, max(0, i+off+1)) // columns < last are in the triangle
			if i >= mb {
				last = 0
			}
			for kk := 0; kk < last; kk++ {
				d[kk*mr+r] = float64(a[i*lda+kk])
			}
			for kk := last; kk < kb; kk++ {
				d[kk*mr+r] = 0
			}
		}
	}
}

// packAT is packA for A given as Aᵀ (kb rows of mb values).
func packAT[T float32 | float64](dst []float64, at []T, lda, mb, kb int) {
	for p := 0; p*mr < mb; p++ {
		d := dst[p*mr*kb : (p+1)*mr*kb]
		w := min(mr, mb-p*mr)
		for kk := 0; kk < kb; kk++ {
			row := at[kk*lda+p*mr : kk*lda+p*mr+w]
			o := d[kk*mr : kk*mr+mr]
			for r, v := range row {
				o[r] = float64(v)
			}
			for r := w; r < mr; r++ {
				o[r] = 0
			}
		}
	}
}

// packB copies the kb×nb block of B at b (rows along k) into micro-panels
// of nr columns (dst[p·nr·kb + kk·nr + q]), columns past nb as zeros.
func packB[T float32 | float64](dst []float64, b []T, ldb, nb, kb int) {
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		w := min(nr, nb-p*nr)
		for kk := 0; kk < kb; kk++ {
			row := b[kk*ldb+p*nr : kk*ldb+p*nr+w]
			o := d[kk*nr : kk*nr+nr]
			for q, v := range row {
				o[q] = float64(v)
			}
			for q := w; q < nr; q++ {
				o[q] = 0
			}
		}
	}
}

// packBLower is packB for the block of a lower triangular B at row k0,
// column j0 of it (off = k0 − j0): entries above B's diagonal (q > kk +
// off) are packed as zeros, unread.
func packBLower[T float32 | float64](dst []float64, b []T, ldb, nb, kb, off int) {
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		for kk := 0; kk < kb; kk++ {
			o := d[kk*nr : kk*nr+nr]
			last := min(nr, nb-p*nr, max(0, kk+off+1-p*nr)) // columns < last are in the triangle
			for q := 0; q < last; q++ {
				o[q] = float64(b[kk*ldb+p*nr+q])
			}
			for q := last; q < nr; q++ {
				o[q] = 0
			}
		}
	}
}

// packBT is packB for B given as Bᵀ (nb rows of kb values).
func packBT[T float32 | float64](dst []float64, bt []T, ldb, nb, kb int) {
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		for q := 0; q < nr; q++ {
			j := p*nr + q
			if j >= nb {
				for kk := 0; kk < kb; kk++ {
					d[kk*nr+q] = 0
				}
				continue
			}
			row := bt[j*ldb : j*ldb+kb]
			for kk, v := range row {
				d[kk*nr+q] = float64(v)
			}
		}
	}
}

// kernGo is the portable micro-kernel: c[r·ldc+q] += alpha·Σ_kk
// a[kk·mr+r]·b[kk·nr+q] for the mr×nr tile (the packed panels of kb values).
func kernGo(kb int, a, b, c []float64, ldc int, alpha float64) {
	var acc [mr][nr]float64
	a, b = a[:kb*mr], b[:kb*nr]
	for kk := 0; kk < kb; kk++ {
		av := a[kk*mr : kk*mr+mr]
		bv := b[kk*nr : kk*nr+nr]
		for r := 0; r < mr; r++ {
			x := av[r]
			for q := 0; q < nr; q++ {
				acc[r][q] += x * bv[q]
			}
		}
	}
	for r := 0; r < mr; r++ {
		row := c[r*ldc : r*ldc+nr]
		for q := range row {
			row[q] += alpha * acc[r][q]
		}
	}
}
