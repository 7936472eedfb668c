//go:build !amd64

package linalg

func kern(kb int, a, b, c []float64, ldc int, alpha float64) { kernGo(kb, a, b, c, ldc, alpha) }
