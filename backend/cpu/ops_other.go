//go:build !amd64 && !arm64

package cpu

import "github.com/upg-ai/upg/tensor"

func dot(lv Level, a, b []float32) float32               { return tensor.Dot(a, b) }
func axpy(lv Level, y []float32, a float32, x []float32) { axpyGo(y, a, x) }

func attnScores(lv Level, prob []float32, ps int, q, k []float32, ks, n, group, hd int, scale float32) {
	attnScoresGo(lv, prob, ps, q, k, ks, n, group, hd, scale)
}

func attnValues(lv Level, att, prob []float32, ps int, v []float32, vs, n, group, hd int) {
	attnValuesGo(lv, att, prob, ps, v, vs, n, group, hd)
}

func attnScoresF16(lv Level, prob []float32, ps int, q []float32, k []uint16, ks, n, group, hd int, scale float32) {
	attnScoresF16Go(prob, ps, q, k, ks, n, group, hd, scale)
}

func attnValuesF16(lv Level, att, prob []float32, ps int, v []uint16, vs, n, group, hd int) {
	attnValuesF16Go(att, prob, ps, v, vs, n, group, hd)
}

func expSum(lv Level, x []float32, mx float32) float32 { return expSumGo(x, mx) }

func swiglu(lv Level, dst, gate, up []float32) { swigluGo(dst, gate, up) }

func maxOf(lv Level, x []float32) float32 { return maxGo(x) }

func rmsNorm(lv Level, dst, x, w []float32, eps float32) { rmsNormGo(dst, x, w, eps) }
