package cpu

import (
	"math"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/tensor"
)

// The int8 KV cache (backend.KVQ8): each row of a KV head (one position's
// key or value, hd values) is stored as hd int8 codes and an fp16 scale per
// backend.KVQ8Group values, value = scale·code. Codes and scales live in
// separate arrays laid out like the float caches ([block][KV head]
// [position in block] then the row's codes or scales), so the rows of one
// block and head are contiguous in both. Attention reads them directly: the
// kernels widen and scale the codes inside their dot products and
// multiply-adds (no dequantized copy of the cache).

// quantQ8 writes the codes and scales of a row x (len(codes) = len(x),
// len(sc) = backend.KVQ8Groups(len(x))). A group's scale is its largest
// magnitude / 127, rounded up to fp16 so that no code leaves [-127, 127];
// codes round to nearest. A group of zeros (or of non-finite values) gets
// scale 0 or codes 0, never a NaN from the quantizer itself.
func quantQ8(codes []int8, sc []uint16, x []float32) {
	codes = codes[:len(x)]
	for j := range sc {
		lo := j * backend.KVQ8Group
		hi := min(lo+backend.KVQ8Group, len(x))
		var amax float32
		for _, v := range x[lo:hi] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		h := tensor.F32ToF16(d)
		if tensor.F16ToF32(h) < d && h < 0x7c00 {
			h++ // the next fp16 up (h is positive)
		}
		df := tensor.F16ToF32(h)
		var inv float32
		if df > 0 && df <= math.MaxFloat32 {
			inv = 1 / df
		} else {
			h = 0
		}
		sc[j] = h
		for i, v := range x[lo:hi] {
			r := math.Round(float64(v * inv))
			codes[lo+i] = int8(max(-127, min(127, r)))
		}
	}
}

// dequantQ8 is quantQ8's inverse (for tests and tools): dst[i] =
// scale·code.
func dequantQ8(dst []float32, codes []int8, sc []uint16) {
	for i, c := range codes[:len(dst)] {
		dst[i] = tensor.F16ToF32(sc[i/backend.KVQ8Group]) * float32(c)
	}
}

// attnScoresQ8Go is attnScoresGo over int8 keys: n rows of hd codes back
// to back in k, their scales back to back in sc.
func attnScoresQ8Go(prob []float32, ps int, q []float32, k []int8, sc []uint16, n, group, hd int, scale float32) {
	G := backend.KVQ8Groups(hd)
	for t := 0; t < n; t++ {
		kt := k[t*hd : (t+1)*hd]
		st := sc[t*G : (t+1)*G]
		for g := 0; g < group; g++ {
			qg := q[g*hd : (g+1)*hd]
			var s float32
			for j, h := range st {
				lo := j * backend.KVQ8Group
				hi := min(lo+backend.KVQ8Group, hd)
				var p float32
				for i := lo; i < hi; i++ {
					p += qg[i] * float32(kt[i])
				}
				s += p * tensor.F16ToF32(h)
			}
			prob[g*ps+t] = s * scale
		}
	}
}

// attnValuesQ8Go is attnValuesGo over int8 values (laid out as in
// attnScoresQ8Go).
func attnValuesQ8Go(att, prob []float32, ps int, v []int8, sc []uint16, n, group, hd int) {
	G := backend.KVQ8Groups(hd)
	for t := 0; t < n; t++ {
		vt := v[t*hd : (t+1)*hd]
		st := sc[t*G : (t+1)*G]
		for g := 0; g < group; g++ {
			p, ag := prob[g*ps+t], att[g*hd:(g+1)*hd]
			for j, h := range st {
				c := p * tensor.F16ToF32(h)
				lo := j * backend.KVQ8Group
				hi := min(lo+backend.KVQ8Group, hd)
				a, x := ag[lo:hi], vt[lo:hi]
				for i := range a {
					a[i] += c * float32(x[i])
				}
			}
		}
	}
}
