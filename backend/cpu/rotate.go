package cpu

import (
	"github.com/upg-ai/upg/tensor"
	"math"

	"github.com/upg-ai/upg/codec"
)

// fwhtTable holds the constants of the in-register Hadamard stages of
// fwhtBlock: for h = 1, 2, 4, 8, the lane permutation j → j^h and the
// signs (+1 where bit h of j is 0, else -1), so that one stage is
// v ← perm_h(v) + sign_h·v. fwhtTable8 is the same for fwhtBlock8's 8-lane
// registers (h = 1, 2, 4).
var (
	fwhtTable  = func() (t [8][16]int32) { fwhtConsts(t[:], 16); return t }()
	fwhtTable8 = func() (t [6][8]int32) { fwhtConsts(t[:], 8); return t }()
)

// fwhtConsts fills t: one row per stage of lane permutations, then one row
// per stage of sign bits, for registers of lanes lanes.
func fwhtConsts[R [16]int32 | [8]int32](t []R, lanes int) {
	stages := len(t) / 2
	for s := 0; s < stages; s++ {
		h := 1 << s
		for j := 0; j < lanes; j++ {
			t[s][j] = int32(j ^ h)
			f := float32(1)
			if j&h != 0 {
				f = -1
			}
			t[stages+s][j] = int32(math.Float32bits(f))
		}
	}
}

// rotate applies the input rotation of m to x (len m.C) in place: x ← Q·x
// = H·(D·x), the same transform as m.RotateInput.
func rotate(x []float32, m *codec.DenseMatrix, lv Level) { rotateBy(x, m.Signs, m.RotBlock, lv) }

// rotateBy computes x ← H·(D·x) for the signs D and Hadamard block size n.
func rotateBy(x []float32, signs []float32, n int, lv Level) {
	if lv == LevelAVX512 && n >= 16 {
		scale := float32(1 / math.Sqrt(float64(n)))
		for b := 0; b+n <= len(x); b += n {
			fwhtBlock(&x[b], n, &signs[b], &fwhtTable[0][0], scale)
		}
		return
	}
	if lv == LevelNEON && n >= 4 && hasNEON {
		rotateNEON(x, signs, n, float32(1/math.Sqrt(float64(n))))
		return
	}
	if lv == LevelAVX2 && n >= 8 && hasAVX2 {
		scale := float32(1 / math.Sqrt(float64(n)))
		for b := 0; b+n <= len(x); b += n {
			fwhtBlock8(&x[b], n, &signs[b], &fwhtTable8[0][0], scale)
		}
		return
	}
	for i, s := range signs {
		x[i] *= s
	}
	tensor.FWHT(x, n)
}
