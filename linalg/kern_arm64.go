package linalg

// kern4x8NEON is kernGo in NEON: the 4×8 tile's sums in sixteen
// two-lane registers, c += alpha·sums at the end (kern_arm64.s).
//
//go:noescape
func kern4x8NEON(kb int, a, b, c *float64, ldc int, alpha float64)

// available lists the micro-kernels this machine can run, fastest first
// (every arm64 CPU has NEON).
func available() []microKernel {
	return []microKernel{{"neon", 4, 8, func(kb int, a, b, c []float64, ldc int, alpha float64) {
		_ = a[kb*4-1]
		_ = b[kb*8-1]
		_ = c[3*ldc+7]
		kern4x8NEON(kb, &a[0], &b[0], &c[0], ldc, alpha)
	}}, goKernel}
}
