//go:build amd64

package model

import (
	"github.com/upg-ai/upg/tensor"
	"golang.org/x/sys/cpu"
)

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(y *float32, a float32, x *float32, n int)

// dot is a float32 dot product (AVX2 for the bulk).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	n := len(a) &^ 31
	if !useAVX2 || n == 0 {
		return tensor.Dot(a, b)
	}
	s := dotAVX2(&a[0], &b[0], n)
	if n < len(a) {
		s += tensor.Dot(a[n:], b[n:])
	}
	return s
}

// axpy adds a·x to y.
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ 15
	if !useAVX2 || n == 0 {
		axpyGo(y, a, x)
		return
	}
	axpyAVX2(&y[0], a, &x[0], n)
	axpyGo(y[n:], a, x[n:])
}
