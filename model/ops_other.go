//go:build !amd64

package model

func dot(a, b []float32) float32               { return dotGo(a, b) }
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x) }
