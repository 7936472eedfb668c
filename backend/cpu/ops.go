package cpu

import "math"

// rmsNormGo writes x / rms(x) * w into dst (HF LlamaRMSNorm in float32);
// rmsNorm is it at a kernel level (NEON on arm64, this loop elsewhere).
func rmsNormGo(dst, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := rmsInv(ss, len(x), eps)
	for i, v := range x {
		dst[i] = w[i] * (v * inv)
	}
}

// rmsInv is 1/√(ss/n + eps).
func rmsInv(ss float32, n int, eps float32) float32 {
	return float32(1 / math.Sqrt(float64(ss/float32(n)+eps)))
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// swigluGo writes silu(gate) * up into dst (dst may alias gate).
func swigluGo(dst, gate, up []float32) {
	up = up[:len(dst)]
	for i, g := range gate[:len(dst)] {
		dst[i] = g / (1 + expf(-g)) * up[i]
	}
}

// axpyGo adds a·x to y.
func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

// expNorm sets x[i] = e^(x[i]-max(x)) (subtracting the maximum for
// stability) and returns their sum: softmax without the division, which
// attention applies to its output instead.
func expNorm(lv Level, x []float32) float32 { return expSum(lv, x, maxOf(lv, x)) }

// maxGo is the portable maxOf.
func maxGo(x []float32) float32 {
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	return mx
}

// expSumGo sets x[i] = e^(x[i]-mx) and returns their sum.
func expSumGo(x []float32, mx float32) float32 {
	var sum float32
	for i, v := range x {
		e := expf(v - mx)
		x[i] = e
		sum += e
	}
	return sum
}

// expf is e^x in float32, about 5 times faster than math.Exp through
// float64: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact
// reduction), e^r from Cephes' degree-6 minimax polynomial, and 2^n put
// into the exponent bits. Relative error ≤ 3e-7 (TestExpf); results below
// the normal range flush to 0, above it give +Inf.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	if !(x >= -87.33654) { // also NaN → 0
		if x != x {
			return x
		}
		return 0
	}
	v := x*log2e + 0.5
	n := int32(v)
	if float32(n) > v {
		n--
	}
	fn := float32(n)
	r := x - fn*ln2hi - fn*ln2lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	if n > 127 { // x close to the top of the range: 2^n is not a float32
		return y * 2 * math.Float32frombits(uint32(n+126)<<23)
	}
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// scaleVec multiplies x by s.
func scaleVec(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}
