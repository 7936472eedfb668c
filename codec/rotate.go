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

// rotateHessian returns Q·H·Qᵀ for a cols×cols matrix H.
func rotateHessian(h []float64, cols int, signs []float32) []float64 {
	out := make([]float64, len(h))
	// Work in float64 for accuracy.
	row := make([]float64, cols)
	for r := 0; r < cols; r++ {
		copy(row, h[r*cols:(r+1)*cols])
		rotateForward64(row, signs)
		copy(out[r*cols:], row)
	}
	col := make([]float64, cols)
	for c := 0; c < cols; c++ {
		for r := 0; r < cols; r++ {
			col[r] = out[r*cols+c]
		}
		rotateForward64(col, signs)
		for r := 0; r < cols; r++ {
			out[r*cols+c] = col[r]
		}
	}
	return out
}

func rotateForward64(x []float64, signs []float32) {
	for i := range x {
		x[i] *= float64(signs[i])
	}
	tensor.FWHT(x, RotationBlock(len(x)))
}
