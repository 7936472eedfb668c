//go:build arm64

package cpu

// fwhtNEON is fwhtBlock in 4-lane NEON registers (rotate_arm64.s); tbl is
// fwhtTable4, n a power of two ≥ 4.
//
//go:noescape
func fwhtNEON(x *float32, n int, signs *float32, tbl *float32, scale float32)

// fwhtTable4 holds fwhtNEON's in-register signs: for h = 1 and 2, +1 where
// bit h of the lane is 0, else −1.
var fwhtTable4 = [2][4]float32{{1, -1, 1, -1}, {1, 1, -1, -1}}

// rotateNEON computes x ← H·(D·x)·scale block by block (n a power of two ≥ 4).
func rotateNEON(x, signs []float32, n int, scale float32) {
	for b := 0; b+n <= len(x); b += n {
		fwhtNEON(&x[b], n, &signs[b], &fwhtTable4[0][0], scale)
	}
}
