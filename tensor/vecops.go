package tensor

import "math"

// Dot is the portable dot product (four independent accumulators), the
// scalar fallback that SIMD kernels are checked against; float64 for the
// compressor's Hessian algebra.
func Dot[T float32 | float64](a, b []T) T {
	b = b[:len(a)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// FWHT applies the orthonormal (scaled by 1/√n) Walsh–Hadamard transform in
// natural (Sylvester) order to each consecutive block of n values of x.
func FWHT[T float32 | float64](x []T, n int) {
	scale := T(1 / math.Sqrt(float64(n)))
	for b := 0; b+n <= len(x); b += n {
		v := x[b : b+n]
		for h := 1; h < n; h *= 2 {
			for i := 0; i < n; i += 2 * h {
				for j := i; j < i+h; j++ {
					a, c := v[j], v[j+h]
					v[j], v[j+h] = a+c, a-c
				}
			}
		}
		for i := range v {
			v[i] *= scale
		}
	}
}
