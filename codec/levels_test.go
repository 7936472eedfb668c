package codec

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestNearestSearch: the fixed-depth search for 2^k learned levels returns
// the bisection's code (the number of midpoints below t, a midpoint itself
// going to the lower level) for values between, on and outside the
// levels, infinities and NaN; other level counts keep the bisection.
func TestNearestSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	bisect := func(q *quantizer, v float32) uint8 {
		return uint8(sort.Search(len(q.mid), func(m int) bool { return !(v > q.mid[m]) }))
	}
	for _, n := range []int{2, 3, 4, 8, 16, 32, 64, 256} {
		L := make([]float32, n)
		for i := range L {
			L[i] = float32(rng.NormFloat64())
		}
		sort.Slice(L, func(i, j int) bool { return L[i] < L[j] })
		q := newQuantizer("lloyd", 8, L)
		vals := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0, L[0] - 1, L[n-1] + 1}
		vals = append(vals, q.mid...)
		for i := 0; i < 2000; i++ {
			vals = append(vals, float32(2*rng.NormFloat64()))
		}
		for _, v := range vals {
			if got, want := q.nearest(v), bisect(q, v); got != want {
				t.Fatalf("%d levels, t=%v: code %d, bisection %d", n, v, got, want)
			}
		}
	}
}

// BenchmarkNearest8 times nearest over 4,096 values for 8 learned levels
// (3-bit Lloyd): `go test -run X -bench Nearest8 ./codec`.
func BenchmarkNearest8(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	L := make([]float32, 8)
	for i := range L {
		L[i] = float32(rng.NormFloat64())
	}
	sort.Slice(L, func(i, j int) bool { return L[i] < L[j] })
	q := newQuantizer("lloyd", 3, L)
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	var s int
	for b.Loop() {
		for _, v := range x {
			s += int(q.nearest(v))
		}
	}
	_ = s
}
