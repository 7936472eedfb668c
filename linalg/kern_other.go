//go:build !amd64

package linalg

// useAVX2 is false off amd64 (tests switch kernels through it).
var useAVX2 = false

func kern(kb int, a, b, c []float64, ldc int, alpha float64) { kernGo(kb, a, b, c, ldc, alpha) }
