package codec

import (
	"github.com/upg-ai/upg/tensor"
)

// RotationBlock is the size of the Hadamard blocks used to rotate a vector
// of length cols: the largest power of two dividing cols. The rotation is
// block-diagonal with cols/RotationBlock(cols) blocks.
func RotationBlock(cols int) int { return cols & -cols }

// RotationSigns returns the ±1 diagonal D of the rotation for seed: with the
// splitmix64 generator (state += 0x9E3779B97F4A7C15; z = state;
// z = (z^(z>>30))*0xBF58476D1CE4E5B9; z = (z^(z>>27))*0x94D049BB133111EB;
// z ^= z>>31), the state starting at seed, word i = the i-th output; column j
// is negated when bit j%64 of word j/64 is 1.
func RotationSigns(seed uint64, cols int) []float32 {
	s := make([]float32, cols)
	state := seed
	var z uint64
	for j := range s {
		if j%64 == 0 {
			state += 0x9E3779B97F4A7C15
			z = state
			z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
			z = (z ^ z>>27) * 0x94D049BB133111EB
			z ^= z >> 31
		}
		s[j] = 1
		if z>>(j%64)&1 == 1 {
			s[j] = -1
		}
	}
	return s
}

// RotateForward computes x ← Q·x = H·(D·x) in place (what a kernel does to
// the input vector of a rotated matrix), D the ±1 signs of RotationSigns
// and H the block Hadamard of RotationBlock(len(x)).
func RotateForward(x, signs []float32) {
	for i := range x {
		x[i] *= signs[i]
	}
	tensor.FWHT(x, RotationBlock(len(x)))
}

// rotateBackward computes x ← Qᵀ·x = D·(H·x) in place.
func rotateBackward(x, signs []float32) {
	tensor.FWHT(x, RotationBlock(len(x)))
	for i := range x {
		x[i] *= signs[i]
	}
}

// fillHessian sets the n×n a to the cols×cols h rotated with the signs of
// seed (0: not rotated), Q·H·Qᵀ, padded with unit diagonal past cols. H is
// symmetric, so Q·H·Qᵀ is its rows rotated (H·Qᵀ), transposed (Q·H) and
// its rows rotated again: every pass runs along rows, in place.
func fillHessian(a []float64, n int, h []float64, cols int, seed uint64) {
	for i := 0; i < n; i++ {
		row := a[i*n : (i+1)*n]
		if i < cols {
			copy(row, h[i*cols:(i+1)*cols])
			clear(row[cols:])
			continue
		}
		clear(row)
		row[i] = 1
	}
	if seed == 0 {
		return
	}
	signs := RotationSigns(seed, cols)
	rows := func() {
		parallelFor(cols, func(r int) { rotateForward64(a[r*n:r*n+cols], signs) })
	}
	rows()
	transposeSquare(a, cols, n)
	rows()
}

// transposeSquare transposes the m×m top-left block of a (leading
// dimension ld) in place, in 64×64 tiles so that both sides of each swap
// stay in cache.
func transposeSquare(a []float64, m, ld int) {
	const bs = 64
	tiles := (m + bs - 1) / bs
	parallelFor(tiles, func(ti int) {
		i0 := ti * bs
		for j0 := i0; j0 < m; j0 += bs {
			for i := i0; i < min(i0+bs, m); i++ {
				for j := max(j0, i+1); j < min(j0+bs, m); j++ {
					a[i*ld+j], a[j*ld+i] = a[j*ld+i], a[i*ld+j]
				}
			}
		}
	})
}

func rotateForward64(x []float64, signs []float32) {
	for i := range x {
		x[i] *= float64(signs[i])
	}
	tensor.FWHT(x, RotationBlock(len(x)))
}
