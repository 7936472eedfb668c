package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/tensor"
)

// TestAttnKernels checks the attention score and value kernels of every
// level the machine runs (AVX-512, AVX2, NEON) against the plain Go loops
// on odd shapes.
func TestAttnKernels(t *testing.T) {
	for _, lv := range Levels() {
		t.Run(lv.String(), func(t *testing.T) { testAttnKernels(t, lv) })
	}
}

func testAttnKernels(t *testing.T, lv Level) {
	rng := rand.New(rand.NewPCG(7, 9))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, hd := range []int{16, 48, 64, 80, 96, 128, 256} {
		for _, group := range []int{1, 3, 4, 8} {
			for _, n := range []int{1, 5, 17, 130} {
				ks := hd*3 + 16 // keys of three KV heads plus padding per row
				q, k := vec(group*hd), vec(n*ks)
				ps := n + 3
				want, got := make([]float32, group*ps), make([]float32, group*ps)
				attnScoresGo(LevelGeneric, want, ps, q, k, ks, n, group, hd, 0.125)
				attnScores(lv, got, ps, q, k, ks, n, group, hd, 0.125)
				for i := range want {
					if d := math.Abs(float64(want[i] - got[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("scores hd=%d group=%d n=%d: [%d] = %g, want %g", hd, group, n, i, got[i], want[i])
					}
				}
				k16 := make([]uint16, len(k))
				tensor.F32ToF16s(k16, k)
				attnScoresF16Go(want, ps, q, k16, ks, n, group, hd, 0.125)
				attnScoresF16(lv, got, ps, q, k16, ks, n, group, hd, 0.125)
				for i := range want {
					if d := math.Abs(float64(want[i] - got[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("f16 scores hd=%d group=%d n=%d: [%d] = %g, want %g", hd, group, n, i, got[i], want[i])
					}
				}
				prob := vec(group * ps)
				att0 := vec(group * hd)
				wantA, gotA := append([]float32(nil), att0...), append([]float32(nil), att0...)
				attnValuesGo(LevelGeneric, wantA, prob, ps, k, ks, n, group, hd)
				attnValues(lv, gotA, prob, ps, k, ks, n, group, hd)
				for i := range wantA {
					if d := math.Abs(float64(wantA[i] - gotA[i])); d > 1e-4*(1+math.Abs(float64(wantA[i]))) {
						t.Fatalf("values hd=%d group=%d n=%d: [%d] = %g, want %g", hd, group, n, i, gotA[i], wantA[i])
					}
				}
				copy(wantA, att0)
				copy(gotA, att0)
				attnValuesF16Go(wantA, prob, ps, k16, ks, n, group, hd)
				attnValuesF16(lv, gotA, prob, ps, k16, ks, n, group, hd)
				for i := range wantA {
					if d := math.Abs(float64(wantA[i] - gotA[i])); d > 1e-4*(1+math.Abs(float64(wantA[i]))) {
						t.Fatalf("f16 values hd=%d group=%d n=%d: [%d] = %g, want %g", hd, group, n, i, gotA[i], wantA[i])
					}
				}
			}
		}
	}
}
