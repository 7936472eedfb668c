package compress

import (
	"math"
	"testing"
)

// TestTokenRowWeights: the mean softmax of logits rows, and the row weights
// made of it: mean 1, the floor's share spread evenly, the rest in
// proportion to the probabilities.
func TestTokenRowWeights(t *testing.T) {
	// Two positions over 3 tokens: logits (0, ln 3, 0) → (0.2, 0.6, 0.2);
	// (ln 2, 0, ln 2) → (0.4, 0.2, 0.4).
	logits := []float32{0, float32(math.Log(3)), 0, float32(math.Log(2)), 0, float32(math.Log(2))}
	sum := make([]float64, 3)
	accumulateProbs(sum, logits, 2)
	want := []float64{0.6, 0.8, 0.6}
	for i := range sum {
		if math.Abs(sum[i]-want[i]) > 1e-6 {
			t.Fatalf("probability sums %v, want %v", sum, want)
		}
	}
	// Mean probabilities 0.3, 0.4, 0.3 with a floor of 0.1: 0.1 + 0.9·3·p.
	w := tokenRowWeights([]float64{0.3, 0.4, 0.3}, 0.1)
	for i, x := range []float64{0.91, 1.18, 0.91} {
		if math.Abs(float64(w[i])-x) > 1e-6 {
			t.Errorf("weights %v, want 0.91 1.18 0.91", w)
			break
		}
	}
	// A token never predicted keeps the floor.
	w = tokenRowWeights([]float64{0, 1, 0, 0}, 0.2)
	for i, x := range []float64{0.2, 3.4, 0.2, 0.2} {
		if math.Abs(float64(w[i])-x) > 1e-6 {
			t.Errorf("weights %v, want 0.2 3.4 0.2 0.2", w)
			break
		}
	}
}
