//go:build !amd64

package model

import "github.com/upg-ai/upg/tensor"

func dot(a, b []float32) float32               { return tensor.Dot(a, b) }
func axpy(y []float32, a float32, x []float32) { axpyGo(y, a, x) }

func attnScores(prob []float32, ps int, q, k []float32, ks, n, group, hd int, scale float32) {
	attnScoresGo(prob, ps, q, k, ks, n, group, hd, scale)
}

func attnValues(att, prob []float32, ps int, v []float32, vs, n, group, hd int) {
	attnValuesGo(att, prob, ps, v, vs, n, group, hd)
}

func attnScoresF16(prob []float32, ps int, q []float32, k []uint16, ks, n, group, hd int, scale float32) {
	attnScoresF16Go(prob, ps, q, k, ks, n, group, hd, scale)
}

func attnValuesF16(att, prob []float32, ps int, v []uint16, vs, n, group, hd int) {
	attnValuesF16Go(att, prob, ps, v, vs, n, group, hd)
}

func expSum(x []float32, mx float32) float32 { return expSumGo(x, mx) }

func swiglu(dst, gate, up []float32) { swigluGo(dst, gate, up) }

func maxOf(x []float32) float32 { return maxGo(x) }
