package codec

import (
	"fmt"
	"math"
	"runtime"
	"sort"
)

// quantizer maps real values to k-bit codes for one tensor: value = d*L[q]
// (+ m for asym), where d (and m) are per-group fp16 values.
type quantizer struct {
	k      int
	asym   bool
	linear bool      // L[q] = L[0] + q
	L      []float32 // 2^k levels, ascending
	mid    []float32 // midpoints between consecutive levels
	midKey []int32   // orderKey of each midpoint
}

// orderKey maps a float32 that is not NaN to an int32 of the same order
// (−0 just below +0): nearest's search compares these by the sign of a
// difference, without the branches that float compares are and that a
// quantizer's random inputs mispredict.
func orderKey(f float32) int32 {
	b := int32(math.Float32bits(f))
	return b ^ (b >> 31 & 0x7fffffff)
}

// levelsKind normalises Params.Levels.
func levelsKind(p Params) (string, error) {
	switch p.Levels {
	case "", "uniform":
		return "uniform", nil
	case "midrise", "lloyd", "asym":
		return p.Levels, nil
	}
	return "", fmt.Errorf("unknown levels %q (known: uniform, midrise, lloyd, asym)", p.Levels)
}

// fixedLevels returns the level table of a non-learned kind.
func fixedLevels(kind string, k int) []float32 {
	n := 1 << k
	L := make([]float32, n)
	for q := range L {
		switch kind {
		case "uniform":
			L[q] = float32(q - n/2)
		case "midrise":
			L[q] = float32(q) - float32(n-1)/2
		case "asym":
			L[q] = float32(q)
		}
	}
	return L
}

func newQuantizer(kind string, k int, L []float32) *quantizer {
	q := &quantizer{k: k, asym: kind == "asym", linear: kind != "lloyd", L: L}
	q.mid = make([]float32, len(L)-1)
	q.midKey = make([]int32, len(q.mid))
	for i := range q.mid {
		q.mid[i] = (L[i] + L[i+1]) / 2
		// +0 for a −0 midpoint: t > mid must hold for no t = ±0, as
		// with float compares
		q.midKey[i] = orderKey(q.mid[i] + 0)
	}
	return q
}

// nearest returns the code whose level is closest to t.
func (q *quantizer) nearest(t float32) uint8 {
	if q.linear {
		r := math.Round(float64(t - q.L[0]))
		if r < 0 || r != r {
			return 0
		}
		if r > float64(len(q.L)-1) {
			return uint8(len(q.L) - 1)
		}
		return uint8(r)
	}
	if n := len(q.L); n&(n-1) == 0 {
		// 2^k levels: a fixed-depth search, one compare per bit and no
		// loop-exit test on the data, on orderKeys so that no step is a
		// branch the data decides (NaN, which every float compare puts
		// below the midpoints, goes to code 0)
		if t != t {
			return 0
		}
		tk := orderKey(t)
		lo := 0
		for step := n / 2; step > 0; step >>= 1 {
			// step where tk > the midpoint (their difference's sign)
			lo += step & int((int64(q.midKey[lo+step-1])-int64(tk))>>63)
		}
		return uint8(lo)
	}
	lo, hi := 0, len(q.mid)
	for lo < hi {
		m := (lo + hi) / 2
		if t > q.mid[m] {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return uint8(lo)
}

// fit chooses the fp16 scale d (and offset m for asym) of one group
// minimising Σ a_i (x_i - d L[q_i] - m)², writing the codes. a may be nil
// (all ones). Entries with a_i == 0 do not influence the fit.
func (q *quantizer) fit(x, a []float32, codes []uint8) (d, m float32) {
	if q.asym {
		return q.fitAsym(x, a, codes)
	}
	var xm float32
	for i, v := range x {
		if a != nil && a[i] == 0 {
			continue
		}
		if abs32(v) > abs32(xm) {
			xm = v
		}
	}
	if xm == 0 {
		c := q.nearest(0)
		for i := range codes {
			codes[i] = c
		}
		return 0, 0
	}
	best, bestD := math.Inf(1), float32(0)
	var sxx float64 // Σ a x², the same for every scale tried
	for i, v := range x {
		w := float64(1)
		if a != nil {
			w = float64(a[i])
		}
		sxx += w * float64(v) * float64(v)
	}
	try := func(d float32) {
		if d == 0 || math.IsInf(float64(d), 0) || d != d {
			return
		}
		var sxl, sll float64
		inv := 1 / d
		if a == nil { // the weights' loop with w = 1: the same sums
			for _, v := range x {
				l := float64(q.L[q.nearest(v*inv)])
				sxl += float64(v) * l
				sll += l * l
			}
		} else {
			for i, v := range x {
				w := float64(a[i])
				l := float64(q.L[q.nearest(v*inv)])
				sxl += w * float64(v) * l
				sll += w * l * l
			}
		}
		if sll == 0 {
			return
		}
		if e := sxx - sxl*sxl/sll; e < best {
			best, bestD = e, float32(sxl/sll)
		}
	}
	for _, e := range [2]float32{q.L[0], q.L[len(q.L)-1]} {
		if e == 0 {
			continue
		}
		for s := 0; s <= 16; s++ {
			try(xm / e * (0.72 + 0.025*float32(s)))
		}
	}
	// The least-squares scale of the best candidate, rounded to fp16; then
	// one more assignment/refit round evaluated exactly.
	d = q.fitRound(x, a, codes, bestD)
	return d, 0
}

// fitRound rounds d to fp16, assigns codes, refits d by least squares and
// keeps whichever fp16 scale has the lower exact error.
func (q *quantizer) fitRound(x, a []float32, codes []uint8, d float32) float32 {
	d0 := roundF16(d)
	e0, sxl, sll := q.assign(x, a, codes, d0)
	if sll == 0 {
		return d0
	}
	d1 := roundF16(float32(sxl / sll))
	if d1 == d0 || d1 == 0 {
		q.assign(x, a, codes, d0)
		return d0
	}
	tmp := make([]uint8, len(codes))
	e1, _, _ := q.assign(x, a, tmp, d1)
	if e1 < e0 {
		copy(codes, tmp)
		return d1
	}
	return d0
}

// assign writes nearest codes for scale d and returns the weighted error
// and the least-squares statistics Σ a x L, Σ a L².
func (q *quantizer) assign(x, a []float32, codes []uint8, d float32) (err, sxl, sll float64) {
	var inv float32
	if d != 0 {
		inv = 1 / d
	}
	for i, v := range x {
		c := q.nearest(v * inv)
		codes[i] = c
		w := float64(1)
		if a != nil {
			w = float64(a[i])
		}
		l := float64(q.L[c])
		r := float64(v) - float64(d)*l
		err += w * r * r
		sxl += w * float64(v) * l
		sll += w * l * l
	}
	return err, sxl, sll
}

// fitAsym fits value = d*q + m, q in [0, 2^k-1], by a grid over the
// stretch of the min..max range followed by weighted least squares.
func (q *quantizer) fitAsym(x, a []float32, codes []uint8) (d, m float32) {
	nmax := float32(len(q.L) - 1)
	mn, mx := float32(math.Inf(1)), float32(math.Inf(-1))
	for i, v := range x {
		if a != nil && a[i] == 0 {
			continue
		}
		mn, mx = min(mn, v), max(mx, v)
	}
	if mn > mx || mx == mn {
		if mn > mx {
			mn = 0
		}
		m = roundF16(mn)
		for i := range codes {
			codes[i] = 0
		}
		return 0, m
	}
	best := math.Inf(1)
	bd, bm := (mx-mn)/nmax, mn
	for s := -4; s <= 10; s++ {
		iscale := (nmax + 0.1*float32(s)) / (mx - mn)
		var sw, sl, sll, sx, sxl float64
		for i, v := range x {
			w := float64(1)
			if a != nil {
				w = float64(a[i])
			}
			l := float64(min(max(float32(math.Round(float64(iscale*(v-mn)))), 0), nmax))
			sw += w
			sl += w * l
			sll += w * l * l
			sx += w * float64(v)
			sxl += w * float64(v) * l
		}
		det := sw*sll - sl*sl
		if det <= 0 {
			continue
		}
		dd := (sw*sxl - sl*sx) / det
		mm := (sll*sx - sl*sxl) / det
		var e float64
		for i, v := range x {
			w := float64(1)
			if a != nil {
				w = float64(a[i])
			}
			l := float64(min(max(float32(math.Round(float64(iscale*(v-mn)))), 0), nmax))
			r := float64(v) - dd*l - mm
			e += w * r * r
		}
		if e < best {
			best, bd, bm = e, float32(dd), float32(mm)
		}
	}
	d, m = roundF16(bd), roundF16(bm)
	var inv float32
	if d != 0 {
		inv = 1 / d
	}
	for i, v := range x {
		codes[i] = q.nearest((v - m) * inv)
	}
	return d, m
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// learnCodebook learns a 2^k-level codebook (ascending, max |L| = 1) for
// groups of gs consecutive values of each row of w, weighting column j by
// imp[j] (nil = uniform): Lloyd iterations alternating per-group scale fits
// and centroid updates, started from Gaussian quantiles.
func learnCodebook(w []float32, rows, cols, gs, k int, imp []float32) []float32 {
	n := 1 << k
	L := make([]float32, n)
	for i := range L {
		L[i] = float32(math.Sqrt2 * math.Erfinv(2*(float64(i)+0.5)/float64(n)-1))
	}
	normalizeCodebook(L)
	groups := (cols + gs - 1) / gs
	total := rows * groups
	stride := 1
	if total > 2048 {
		stride = total / 2048
	}
	var sample []int
	for g := 0; g < total; g += stride {
		sample = append(sample, g)
	}
	workers := runtime.GOMAXPROCS(0)
	num := make([]float64, n*workers)
	den := make([]float64, n*workers)
	for it := 0; it < 8; it++ {
		q := newQuantizer("lloyd", k, L)
		clear(num)
		clear(den)
		parallelFor(workers, func(wk int) {
			codes := make([]uint8, gs)
			nm, dn := num[wk*n:(wk+1)*n], den[wk*n:(wk+1)*n]
			for s := wk; s < len(sample); s += workers {
				g := sample[s]
				r, c0 := g/groups, (g%groups)*gs
				c1 := min(c0+gs, cols)
				x := w[r*cols+c0 : r*cols+c1]
				var a []float32
				if imp != nil {
					a = imp[c0:c1]
				}
				d, _ := q.fit(x, a, codes[:c1-c0])
				if d == 0 {
					continue
				}
				for i, v := range x {
					wt := 1.0
					if a != nil {
						wt = float64(a[i])
					}
					nm[codes[i]] += wt * float64(d) * float64(v)
					dn[codes[i]] += wt * float64(d) * float64(d)
				}
			}
		})
		for wk := 1; wk < workers; wk++ {
			for i := 0; i < n; i++ {
				num[i] += num[wk*n+i]
				den[i] += den[wk*n+i]
			}
		}
		next := make([]float32, n)
		for i := range next {
			next[i] = L[i]
			if den[i] > 0 {
				next[i] = float32(num[i] / den[i])
			}
		}
		sort.Slice(next, func(i, j int) bool { return next[i] < next[j] })
		normalizeCodebook(next)
		L = next
	}
	return L
}

// normalizeCodebook scales L to max |L| = 1 and separates equal levels.
func normalizeCodebook(L []float32) {
	var m float32
	for _, v := range L {
		m = max(m, abs32(v))
	}
	if m == 0 {
		m = 1
	}
	for i := range L {
		L[i] /= m
		if i > 0 && L[i] <= L[i-1] {
			L[i] = L[i-1] + 1e-3
		}
	}
}
