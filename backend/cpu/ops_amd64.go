//go:build amd64

package cpu

import (
	"unsafe"

	"github.com/upg-ai/upg/tensor"
)

// scoresAVX512 and valuesAVX512 read float32 keys/values, or fp16 ones
// when half is 1.
//
//go:noescape
func scoresAVX512(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, group, hd int, scale float32, half int)

//go:noescape
func valuesAVX512(att, prob *float32, ps int, v unsafe.Pointer, vs, n, group, hd int, half int)

// scores4AVX512 and values4AVX512 are the same for groups of four query
// heads, reading each key or value row once for all four.
//
//go:noescape
func scores4AVX512(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)

//go:noescape
func values4AVX512(att, prob *float32, ps int, v unsafe.Pointer, vs, n, hd int, half int)

// scoresAsm runs the score kernels over the group's query heads, four at a
// time where the group divides into fours; half is 1 for fp16 keys.
func scoresAsm(prob []float32, ps int, q []float32, k unsafe.Pointer, ks, n, group, hd int, scale float32, half int) {
	if group%4 != 0 {
		scoresAVX512(&prob[0], ps, &q[0], k, ks, n, group, hd, scale, half)
		return
	}
	for g := 0; g < group; g += 4 {
		scores4AVX512(&prob[g*ps], ps, &q[g*hd], k, ks, n, hd, scale, half)
	}
}

// valuesAsm is scoresAsm for the value kernels.
func valuesAsm(att, prob []float32, ps int, v unsafe.Pointer, vs, n, group, hd int, half int) {
	if group%4 != 0 {
		valuesAVX512(&att[0], &prob[0], ps, v, vs, n, group, hd, half)
		return
	}
	for g := 0; g < group; g += 4 {
		values4AVX512(&att[g*hd], &prob[g*ps], ps, v, vs, n, hd, half)
	}
}

// scoresAVX2, scores4AVX2, valuesAVX2 and values4AVX2 are the AVX2 (FMA,
// F16C) attention kernels: one query head, or four reading each key or
// value row once; half is 1 for fp16 rows.
//
//go:noescape
func scoresAVX2(prob *float32, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)

//go:noescape
func scores4AVX2(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)

//go:noescape
func valuesAVX2(att, prob *float32, v unsafe.Pointer, vs, n, hd int, half int)

//go:noescape
func values4AVX2(att, prob *float32, ps int, v unsafe.Pointer, vs, n, hd int, half int)

// scoresAsmAVX2 is scoresAsm for LevelAVX2.
func scoresAsmAVX2(prob []float32, ps int, q []float32, k unsafe.Pointer, ks, n, group, hd int, scale float32, half int) {
	g := 0
	for ; g+4 <= group; g += 4 {
		scores4AVX2(&prob[g*ps], ps, &q[g*hd], k, ks, n, hd, scale, half)
	}
	for ; g < group; g++ {
		scoresAVX2(&prob[g*ps], &q[g*hd], k, ks, n, hd, scale, half)
	}
}

// valuesAsmAVX2 is valuesAsm for LevelAVX2.
func valuesAsmAVX2(att, prob []float32, ps int, v unsafe.Pointer, vs, n, group, hd int, half int) {
	g := 0
	for ; g+4 <= group; g += 4 {
		values4AVX2(&att[g*hd], &prob[g*ps], ps, v, vs, n, hd, half)
	}
	for ; g < group; g++ {
		valuesAVX2(&att[g*hd], &prob[g*ps], v, vs, n, hd, half)
	}
}

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(y *float32, a float32, x *float32, n int)

// dot is a float32 dot product (AVX2 for the bulk).
func dot(lv Level, a, b []float32) float32 {
	b = b[:len(a)]
	n := len(a) &^ 31
	if lv < LevelAVX2 || n == 0 {
		return tensor.Dot(a, b)
	}
	s := dotAVX2(&a[0], &b[0], n)
	if n < len(a) {
		s += tensor.Dot(a[n:], b[n:])
	}
	return s
}

// axpy adds a·x to y.
func axpy(lv Level, y []float32, a float32, x []float32) {
	x = x[:len(y)]
	n := len(y) &^ 15
	if lv < LevelAVX2 || n == 0 {
		axpyGo(y, a, x)
		return
	}
	axpyAVX2(&y[0], a, &x[0], n)
	axpyGo(y[n:], a, x[n:])
}

// attnScores writes prob[g*ps+t] = scale·(q_g · k_t) for the group's query
// heads g < group (q holds them back to back, hd floats each) and the n
// keys k_t = k[t*ks : t*ks+hd].
func attnScores(lv Level, prob []float32, ps int, q, k []float32, ks, n, group, hd int, scale float32) {
	if lv < LevelAVX2 || hd%16 != 0 || n == 0 {
		attnScoresGo(lv, prob, ps, q, k, ks, n, group, hd, scale)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = q[group*hd-1]
	_ = k[(n-1)*ks+hd-1]
	if lv < LevelAVX512 {
		scoresAsmAVX2(prob, ps, q, unsafe.Pointer(&k[0]), ks, n, group, hd, scale, 0)
		return
	}
	scoresAsm(prob, ps, q, unsafe.Pointer(&k[0]), ks, n, group, hd, scale, 0)
}

// attnValues adds Σ_t prob[g*ps+t]·v_t to each query head g's output
// att[g*hd:(g+1)*hd], v_t = v[t*vs : t*vs+hd].
func attnValues(lv Level, att, prob []float32, ps int, v []float32, vs, n, group, hd int) {
	if lv < LevelAVX2 || hd%16 != 0 || n == 0 {
		attnValuesGo(lv, att, prob, ps, v, vs, n, group, hd)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = att[group*hd-1]
	_ = v[(n-1)*vs+hd-1]
	if lv < LevelAVX512 {
		valuesAsmAVX2(att, prob, ps, unsafe.Pointer(&v[0]), vs, n, group, hd, 0)
		return
	}
	valuesAsm(att, prob, ps, unsafe.Pointer(&v[0]), vs, n, group, hd, 0)
}

// attnScoresF16 is attnScores over fp16 keys.
func attnScoresF16(lv Level, prob []float32, ps int, q []float32, k []uint16, ks, n, group, hd int, scale float32) {
	if lv < LevelAVX2 || hd%16 != 0 || n == 0 {
		attnScoresF16Go(prob, ps, q, k, ks, n, group, hd, scale)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = q[group*hd-1]
	_ = k[(n-1)*ks+hd-1]
	if lv < LevelAVX512 {
		scoresAsmAVX2(prob, ps, q, unsafe.Pointer(&k[0]), ks, n, group, hd, scale, 1)
		return
	}
	scoresAsm(prob, ps, q, unsafe.Pointer(&k[0]), ks, n, group, hd, scale, 1)
}

// attnValuesF16 is attnValues over fp16 values.
func attnValuesF16(lv Level, att, prob []float32, ps int, v []uint16, vs, n, group, hd int) {
	if lv < LevelAVX2 || hd%16 != 0 || n == 0 {
		attnValuesF16Go(att, prob, ps, v, vs, n, group, hd)
		return
	}
	_ = prob[(group-1)*ps+n-1]
	_ = att[group*hd-1]
	_ = v[(n-1)*vs+hd-1]
	if lv < LevelAVX512 {
		valuesAsmAVX2(att, prob, ps, unsafe.Pointer(&v[0]), vs, n, group, hd, 1)
		return
	}
	valuesAsm(att, prob, ps, unsafe.Pointer(&v[0]), vs, n, group, hd, 1)
}

//go:noescape
func expSumAVX512(x *float32, n int, mx float32) float32

//go:noescape
func siluMulAVX512(dst, gate, up *float32, n int)

//go:noescape
func maxAVX512(x *float32, n int) float32

// maxOf returns the largest element of a non-empty x.
func maxOf(lv Level, x []float32) float32 {
	n := len(x) &^ 15
	if lv < LevelAVX512 || n == 0 {
		return maxGo(x)
	}
	mx := maxAVX512(&x[0], n)
	if n < len(x) {
		mx = max(mx, maxGo(x[n:]))
	}
	return mx
}

// expSum sets x[i] = e^(x[i]-mx) and returns their sum (AVX-512 for the
// bulk: same algorithm as expf).
func expSum(lv Level, x []float32, mx float32) float32 {
	n := len(x) &^ 15
	if lv < LevelAVX512 || n == 0 {
		return expSumGo(x, mx)
	}
	s := expSumAVX512(&x[0], n, mx)
	return s + expSumGo(x[n:], mx)
}

//go:noescape
func siluMulAVX2(dst, gate, up *float32, n int)

// swiglu writes silu(gate) * up into dst (dst may alias gate).
func swiglu(lv Level, dst, gate, up []float32) {
	n := len(dst) &^ 15
	if lv < LevelAVX2 || n == 0 {
		swigluGo(dst, gate, up)
		return
	}
	_, _ = gate[len(dst)-1], up[len(dst)-1]
	if lv < LevelAVX512 {
		siluMulAVX2(&dst[0], &gate[0], &up[0], n)
	} else {
		siluMulAVX512(&dst[0], &gate[0], &up[0], n)
	}
	swigluGo(dst[n:], gate[n:len(dst)], up[n:len(dst)])
}

// rmsNorm is the portable loop at every level on amd64.
func rmsNorm(lv Level, dst, x, w []float32, eps float32) { rmsNormGo(dst, x, w, eps) }
