//go:build amd64

package cpu

import "github.com/upg-ai/upg/backend"

// The AVX-512 and AVX2 kernels of the int8 KV cache (kvq8_amd64.s) take n rows of
// hd codes back to back (k, v) and their fp16 scales back to back (sc);
// hd is a multiple of 32 (backend.KVQ8Group).

//go:noescape
func scoresQ8AVX512(prob *float32, q *float32, k *int8, sc *uint16, n, hd int, scale float32)

//go:noescape
func scores4Q8AVX512(prob *float32, ps int, q *float32, k *int8, sc *uint16, n, hd int, scale float32)

//go:noescape
func valuesQ8AVX512(att, prob *float32, v *int8, sc *uint16, n, hd int)

//go:noescape
func values4Q8AVX512(att, prob *float32, ps int, v *int8, sc *uint16, n, hd int)

// scoresQ8AVX2 and valuesQ8AVX2 are scoresQ8AVX512 and valuesQ8AVX512
// in 8-lane registers (LevelAVX2: AVX2, FMA, F16C).
//
//go:noescape
func scoresQ8AVX2(prob *float32, q *float32, k *int8, sc *uint16, n, hd int, scale float32)

//go:noescape
func valuesQ8AVX2(att, prob *float32, v *int8, sc *uint16, n, hd int)

// attnScoresQ8 is attnScores over int8 keys: n rows of hd codes back to
// back in k, their scales (backend.KVQ8Groups(hd) per row) in sc.
func attnScoresQ8(lv Level, prob []float32, ps int, q []float32, k []int8, sc []uint16, n, group, hd int, scale float32) {
	if lv < LevelAVX2 || hd%backend.KVQ8Group != 0 || n == 0 {
		attnScoresQ8Go(prob, ps, q, k, sc, n, group, hd, scale)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = q[group*hd-1]
	_ = k[n*hd-1]
	_ = sc[n*hd/backend.KVQ8Group-1]
	if lv < LevelAVX512 {
		for g := 0; g < group; g++ {
			scoresQ8AVX2(&prob[g*ps], &q[g*hd], &k[0], &sc[0], n, hd, scale)
		}
		return
	}
	if group%4 == 0 {
		for g := 0; g < group; g += 4 {
			scores4Q8AVX512(&prob[g*ps], ps, &q[g*hd], &k[0], &sc[0], n, hd, scale)
		}
		return
	}
	for g := 0; g < group; g++ {
		scoresQ8AVX512(&prob[g*ps], &q[g*hd], &k[0], &sc[0], n, hd, scale)
	}
}

// attnValuesQ8 is attnValues over int8 values (laid out as in
// attnScoresQ8).
func attnValuesQ8(lv Level, att, prob []float32, ps int, v []int8, sc []uint16, n, group, hd int) {
	if lv < LevelAVX2 || hd%backend.KVQ8Group != 0 || n == 0 {
		attnValuesQ8Go(att, prob, ps, v, sc, n, group, hd)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = att[group*hd-1]
	_ = v[n*hd-1]
	_ = sc[n*hd/backend.KVQ8Group-1]
	if lv < LevelAVX512 {
		for g := 0; g < group; g++ {
			valuesQ8AVX2(&att[g*hd], &prob[g*ps], &v[0], &sc[0], n, hd)
		}
		return
	}
	if group%4 == 0 {
		for g := 0; g < group; g += 4 {
			values4Q8AVX512(&att[g*hd], &prob[g*ps], ps, &v[0], &sc[0], n, hd)
		}
		return
	}
	for g := 0; g < group; g++ {
		valuesQ8AVX512(&att[g*hd], &prob[g*ps], &v[0], &sc[0], n, hd)
	}
}
