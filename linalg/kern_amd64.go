package linalg

import "golang.org/x/sys/cpu"

// useAVX2 selects the AVX2/FMA micro-kernel (a variable so that tests run
// both kernels on one machine).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kern4x8AVX2 is kernGo in AVX2 with FMA: the 4×8 tile's sums in eight
// ymm registers, c += alpha·sums at the end (kern_amd64.s).
//
//go:noescape
func kern4x8AVX2(kb int, a, b, c *float64, ldc int, alpha float64)

func kern(kb int, a, b, c []float64, ldc int, alpha float64) {
	if useAVX2 {
		_ = a[kb*mr-1]
		_ = b[kb*nr-1]
		_ = c[(mr-1)*ldc+nr-1]
		kern4x8AVX2(kb, &a[0], &b[0], &c[0], ldc, alpha)
		return
	}
	kernGo(kb, a, b, c, ldc, alpha)
}
