package model

import "math"

// rmsNorm writes x / rms(x) * w into dst (HF LlamaRMSNorm in float32).
func rmsNorm(dst, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
	for i, v := range x {
		dst[i] = w[i] * (v * inv)
	}
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
func expNorm(x []float32) float32 { return expSum(x, maxOf(x)) }

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

// ropeTable holds cos/sin of every position × frequency, grown on demand.
type ropeTable struct {
	dim, half  int
	interleave bool
	invFreq    []float64
	posScale   float64
	cos, sin   []float32 // [pos][half]
	n          int       // positions computed
}

func (r *ropeTable) init(c *Config) {
	r.dim = c.RopeDim
	r.half = c.RopeDim / 2
	r.interleave = c.RopeInterleave
	r.posScale = 1
	r.invFreq = make([]float64, r.half)
	for i := range r.invFreq {
		// HF computes base ** (arange(0, dim, 2) / dim) in float32.
		r.invFreq[i] = float64(float32(1 / math.Pow(c.RopeTheta, float64(2*i)/float64(r.dim))))
	}
	if s := c.RopeScaling; s != nil {
		switch s.Type {
		case "linear":
			if s.Factor > 0 {
				r.posScale = 1 / s.Factor
			}
		case "llama3":
			lowWave := float64(s.OriginalMaxPositions) / s.LowFreqFactor
			highWave := float64(s.OriginalMaxPositions) / s.HighFreqFactor
			for i, f := range r.invFreq {
				wave := 2 * math.Pi / f
				switch {
				case wave > lowWave:
					r.invFreq[i] = f / s.Factor
				case wave >= highWave:
					smooth := (float64(s.OriginalMaxPositions)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
					r.invFreq[i] = (1-smooth)*f/s.Factor + smooth*f
				}
			}
		}
	}
}

func (r *ropeTable) ensure(n int) {
	if n <= r.n {
		return
	}
	cos := make([]float32, n*r.half)
	sin := make([]float32, n*r.half)
	for p := 0; p < n; p++ {
		for i, f := range r.invFreq {
			a := float64(float32(float64(p)*r.posScale) * float32(f))
			cos[p*r.half+i] = float32(math.Cos(a))
			sin[p*r.half+i] = float32(math.Sin(a))
		}
	}
	r.cos, r.sin, r.n = cos, sin, n
}

// apply rotates the first dim values of each of heads head vectors in x.
func (r *ropeTable) apply(x []float32, heads, pos int) {
	hd := len(x) / heads
	cs := r.cos[pos*r.half : (pos+1)*r.half]
	sn := r.sin[pos*r.half : (pos+1)*r.half]
	for h := 0; h < heads; h++ {
		v := x[h*hd : h*hd+r.dim]
		if r.interleave {
			for i := 0; i < r.half; i++ {
				a, b := v[2*i], v[2*i+1]
				v[2*i] = a*cs[i] - b*sn[i]
				v[2*i+1] = b*cs[i] + a*sn[i]
			}
		} else {
			for i := 0; i < r.half; i++ {
				a, b := v[i], v[i+r.half]
				v[i] = a*cs[i] - b*sn[i]
				v[i+r.half] = b*cs[i] + a*sn[i]
			}
		}
	}
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
