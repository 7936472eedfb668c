//go:build !amd64

package cpu

func attnScoresQ8(lv Level, prob []float32, ps int, q []float32, k []int8, sc []uint16, n, group, hd int, scale float32) {
	attnScoresQ8Go(prob, ps, q, k, sc, n, group, hd, scale)
}

func attnValuesQ8(lv Level, att, prob []float32, ps int, v []int8, sc []uint16, n, group, hd int) {
	attnValuesQ8Go(att, prob, ps, v, sc, n, group, hd)
}
