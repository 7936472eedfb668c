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

// swiglu writes silu(gate) * up into dst (dst may alias gate).
func swiglu(dst, gate, up []float32) {
	up = up[:len(dst)]
	for i, g := range gate[:len(dst)] {
		dst[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// axpyGo adds a·x to y.
func axpyGo(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

// softmax normalises x in place, subtracting the maximum for stability.
func softmax(x []float32) {
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - mx)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
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
