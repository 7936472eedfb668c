//go:build !amd64

package model

import "github.com/upg-ai/upg/tensor"

func dot(a, b []float32) float32               { return tensor.Dot(a, b) }
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x) }
