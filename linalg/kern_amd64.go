package linalg

import "golang.org/x/sys/cpu"

// kern4x8AVX2 is kernGo in AVX2 with FMA: the 4×8 tile's sums in eight
// ymm registers, c += alpha·sums at the end (kern_amd64.s).
//
//go:noescape
func kern4x8AVX2(kb int, a, b, c *float64, ldc int, alpha float64)

// kern8x16AVX512 is the same for an 8×16 tile in sixteen zmm registers.
//
//go:noescape
func kern8x16AVX512(kb int, a, b, c *float64, ldc int, alpha float64)

// available lists the micro-kernels this machine can run, fastest first.
func available() []microKernel {
	var ks []microKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, microKernel{"avx512", 8, 16, func(kb int, a, b, c []float64, ldc int, alpha float64) {
			_ = a[kb*8-1]
			_ = b[kb*16-1]
			_ = c[7*ldc+15]
			kern8x16AVX512(kb, &a[0], &b[0], &c[0], ldc, alpha)
		}})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, microKernel{"avx2", 4, 8, func(kb int, a, b, c []float64, ldc int, alpha float64) {
			_ = a[kb*4-1]
			_ = b[kb*8-1]
			_ = c[3*ldc+7]
			kern4x8AVX2(kb, &a[0], &b[0], &c[0], ldc, alpha)
		}})
	}
	return append(ks, goKernel)
}
