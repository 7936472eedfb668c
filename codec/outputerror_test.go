package codec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// OutputError against its definition, tr((W−Ŵ)·H·(W−Ŵ)ᵀ), summed the
// plain way, for a row count past its 64-row chunks.
func TestOutputErrorMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	rows, cols := 70, 37
	w := make([]float32, rows*cols)
	wq := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
		wq[i] = w[i] + 0.1*float32(r.NormFloat64())
	}
	g := make([]float64, cols*cols)
	for i := range g {
		g[i] = r.NormFloat64()
	}
	h := &Hessian{Cols: cols, H: make([]float64, cols*cols)}
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			for k := 0; k < cols; k++ {
				h.H[i*cols+j] += g[i*cols+k] * g[j*cols+k]
			}
		}
	}
	var want, plain float64
	for row := 0; row < rows; row++ {
		for i := 0; i < cols; i++ {
			di := float64(w[row*cols+i]) - float64(wq[row*cols+i])
			plain += di * di
			for j := 0; j < cols; j++ {
				dj := float64(w[row*cols+j]) - float64(wq[row*cols+j])
				want += di * h.H[i*cols+j] * dj
			}
		}
	}
	if got := OutputError(w, wq, rows, cols, h); math.Abs(got-want) > 1e-9*want {
		t.Errorf("with H: %v, want %v", got, want)
	}
	if got := OutputError(w, wq, rows, cols, nil); math.Abs(got-plain) > 1e-9*plain {
		t.Errorf("without H: %v, want %v", got, plain)
	}
}
