package cpu

import "math"

// The integer kernels for machines without AVX-512 VNNI (kindDenseI8): the
// same int8 activations as the AVX-512 path, multiplied with code bytes
// ≤ i8MaxLevel (q8LevelsI8) so that AVX2's VPMADDUBSW pair sums of two
// chunks add in int16 without overflow and ARM's SDOT (signed × signed)
// sees them as non-negative. Each architecture's
// kernels unpack a chunk of codes in their own order (i8Tables.perm); the
// activations are stored in that order. kernels_i8_amd64.go (AVX2) and
// kernels_i8_arm64.go (NEON) hold the kernels and their tables.

// q8LevelsI8 are the level bytes of the integer kernels: ≤ i8MaxLevel, the
// bound of the architecture's kernels without AVX-VNNI (64 on amd64, so that
// two VPMADDUBSW pair sums add in int16 without overflow; 127 on arm64, so
// that SDOT reads them as non-negative); with AVX-VNNI (vnni), whose
// VPDPBUSD sums unsigned × signed byte products straight into int32, ≤ 255
// like the AVX-512 path.
func q8LevelsI8(L []float32, k int, vnni bool) q8Levels {
	if vnni {
		return newQ8LevelsMax(L, k, 255)
	}
	if i8MaxLevel < 127 {
		return newQ8LevelsFit(L, k, i8MaxLevel)
	}
	return newQ8LevelsMax(L, k, i8MaxLevel)
}

// newQ8LevelsFit is newQ8LevelsMax with the grid fitted to the codebook
// instead of spanning it: of the steps alpha between (hi−lo)/umax and
// (hi−lo)/(umax−4) and offsets beta within one step below lo, the pair
// whose bytes u ≤ umax give the least Σ (L − beta − alpha·u)², then alpha
// and beta refitted by least squares to those bytes. With 65 steps (amd64
// without AVX-VNNI) the min–max grid's rounding error is twice that of
// 128 steps; the fit recovers part of it. Linear levels stay exact.
func newQ8LevelsFit(L []float32, k, umax int) q8Levels {
	q := newQ8LevelsMax(L, k, umax)
	if !q.useLut || q.alpha <= 0 {
		return q
	}
	n := 1 << k
	lo, hi := float64(L[0]), float64(L[0])
	for _, v := range L[:n] {
		lo, hi = min(lo, float64(v)), max(hi, float64(v))
	}
	bytesFor := func(a, b float64, u []int) bool {
		for i, v := range L[:n] {
			r := math.Round((float64(v) - b) / a)
			if r < 0 || r > float64(umax) {
				return false
			}
			u[i] = int(r)
		}
		return true
	}
	sse := func(a, b float64, u []int) float64 {
		e := 0.0
		for i, v := range L[:n] {
			d := float64(v) - b - a*float64(u[i])
			e += d * d
		}
		return e
	}
	u := make([]int, n)
	best := make([]int, n)
	bytesFor(float64(q.alpha), lo, best)
	bestA, bestB := float64(q.alpha), lo
	bestE := sse(bestA, bestB, best)
	const steps = 64
	for i := 0; i <= steps; i++ {
		a := (hi - lo) / (float64(umax) - 4*float64(i)/steps)
		for j := 0; j <= steps; j++ {
			b := lo - a*float64(j)/steps
			if !bytesFor(a, b, u) {
				continue
			}
			// Least squares of L on u: the best a, b for these bytes.
			var su, sl, suu, sul float64
			for c, v := range L[:n] {
				x := float64(u[c])
				su, sl, suu, sul = su+x, sl+float64(v), suu+x*x, sul+x*float64(v)
			}
			fn := float64(n)
			det := fn*suu - su*su
			if det <= 0 {
				continue
			}
			a2 := (fn*sul - su*sl) / det
			b2 := (sl - a2*su) / fn
			if e := sse(a2, b2, u); e < bestE && a2 > 0 {
				bestE, bestA, bestB = e, a2, b2
				copy(best, u)
			}
		}
	}
	q.alpha, q.beta = float32(bestA), float32(bestB)
	for i := range q.lut {
		q.lut[i] = byte(best[i&(n-1)])
	}
	return q
}

// permuteChunks reorders q (whole chunks of len(perm) columns) into a
// kernel's slot order: q'[nc + s] = q[nc + perm[s]].
func permuteChunks(q []int8, perm []uint8) {
	var tmp [64]int8
	n := len(perm)
	for c := 0; c+n <= len(q); c += n {
		copy(tmp[:n], q[c:c+n])
		d := q[c : c+n : c+n]
		for s, p := range perm {
			d[s] = tmp[p]
		}
	}
}

// i8Lut builds the 32-byte VPSHUFB table of level bytes (16 entries,
// replicated over both lanes and over the bits above the code).
func i8Lut(q *q8Levels, k int) (t [32]byte) {
	for i := range t {
		c := uint8(i & 15 & (1<<k - 1))
		t[i] = byte(q.u(c))
	}
	return t
}
