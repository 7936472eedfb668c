package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpf checks expf against math.Exp over the range softmax and SiLU
// use, at the edges of the float32 range, and for special values.
func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x <= 88.5; x += 0.00137 {
		want := math.Exp(float64(x))
		got := float64(expf(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	t.Logf("max relative error %.3g", worst)
	if worst > 3e-7 {
		t.Errorf("expf max relative error %.3g > 3e-7", worst)
	}
	if expf(0) != 1 {
		t.Errorf("expf(0) = %g", expf(0))
	}
	if !math.IsInf(float64(expf(100)), 1) || expf(-100) != 0 || expf(float32(math.Inf(-1))) != 0 {
		t.Errorf("expf(100), expf(-100), expf(-Inf) = %g, %g, %g", expf(100), expf(-100), expf(float32(math.Inf(-1))))
	}
	if nan := expf(float32(math.NaN())); nan == nan {
		t.Errorf("expf(NaN) = %g, want NaN", nan)
	}
}

func BenchmarkExpf(b *testing.B) {
	x := float32(0)
	for i := 0; i < b.N; i++ {
		x += expf(float32(i&1023)*-0.01) * 1e-9
	}
	_ = x
}

// TestExpSumAndSwiGLU checks the vector softmax exponentials and SwiGLU
// (AVX-512 where available) against the scalar Go versions, on lengths with
// tails and on inputs spanning the clamped range.
func TestExpSumAndSwiGLU(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 100, 4099} {
		x := make([]float32, n)
		gate := make([]float32, n)
		up := make([]float32, n)
		for i := range x {
			x[i] = float32(i%97)*0.37 - 30 + float32(i%7)*13
			gate[i] = float32(i%101)*0.25 - 12
			up[i] = float32(i%13) - 6
		}
		gate[0], x[0] = -200, -200 // far outside the range
		mx := float32(60)
		want, got := append([]float32(nil), x...), append([]float32(nil), x...)
		ws, gs := expSumGo(want, mx), expSum(BestLevel(), got, mx)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 4e-7*math.Abs(float64(want[i]))+1e-37 {
				t.Fatalf("n=%d: exp[%d] = %g, want %g", n, i, got[i], want[i])
			}
		}
		if math.Abs(float64(gs-ws)) > 1e-6*math.Abs(float64(ws)) {
			t.Fatalf("n=%d: sum %g, want %g", n, gs, ws)
		}
		wd, gd := make([]float32, n), make([]float32, n)
		swigluGo(wd, gate, up)
		for _, lv := range Levels() { // every level's kernel (AVX-512, AVX2)
			swiglu(lv, gd, gate, up)
			for i := range wd {
				if math.Abs(float64(gd[i]-wd[i])) > 1e-6*(1+math.Abs(float64(wd[i]))) {
					t.Fatalf("%s n=%d: swiglu[%d] = %g, want %g (gate %g, up %g)", lv, n, i, gd[i], wd[i], gate[i], up[i])
				}
			}
		}
	}
}

// TestMaxOf checks the vector maximum against the scalar loop on lengths
// around the 16-lane width, with the maximum at every position class.
func TestMaxOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	for _, n := range []int{1, 15, 16, 17, 31, 32, 33, 100, 513} {
		for _, at := range []int{0, n / 2, n - 1} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64()) - 50
			}
			x[at] = 3.5
			if got := maxOf(BestLevel(), x); got != 3.5 || got != maxGo(x) {
				t.Fatalf("n=%d, max at %d: maxOf = %g, maxGo = %g, want 3.5", n, at, got, maxGo(x))
			}
		}
	}
}

// TestRMSNormKernel checks rmsNorm at the best level (NEON on arm64)
// against the portable loop on odd lengths.
func TestRMSNormKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 7, 16, 33, 96, 1000, 5120} {
		x, w := randVec(rng, n, 3), randVec(rng, n, 1)
		want, got := make([]float32, n), make([]float32, n)
		rmsNormGo(want, x, w, 1e-5)
		rmsNorm(BestLevel(), got, x, w, 1e-5)
		for i := range want {
			if d := math.Abs(float64(want[i] - got[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("n=%d: [%d] = %g, want %g", n, i, got[i], want[i])
			}
		}
	}
}
