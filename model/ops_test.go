package model

import (
	"math"
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
