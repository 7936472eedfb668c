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
// levels, ±0 (with a midpoint at 0 too), infinities and NaN; other level
// counts keep the bisection.
func TestNearestSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	bisect := func(q *quantizer, v float32) uint8 {
		return uint8(sort.Search(len(q.mid), func(m int) bool { return !(v > q.mid[m]) }))
	}
	negZero := float32(math.Copysign(0, -1))
	for _, c := range []struct {
		n   int
		sym bool // levels ±: a midpoint at 0, which ±0 must both stay below
	}{{2, false}, {3, false}, {4, false}, {8, false}, {16, false}, {32, false}, {64, false}, {256, false}, {2, true}, {8, true}, {16, true}} {
		n := c.n
		L := make([]float32, n)
		for i := range L {
			L[i] = float32(rng.NormFloat64())
			if c.sym && i >= n/2 {
				L[i] = -L[n-1-i]
			}
		}
		if c.sym {
			for i := range n / 2 {
				L[i] = -float32(math.Abs(float64(L[i])))
				L[n-1-i] = -L[i]
			}
		}
		sort.Slice(L, func(i, j int) bool { return L[i] < L[j] })
		q := newQuantizer("lloyd", 8, L)
		vals := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0, negZero, L[0] - 1, L[n-1] + 1}
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

// TestNearestLinear: the linear levels' rounding gives the code
// of the level nearest to t, ties away from zero as math.Round, clamped,
// NaN to 0, for every fixed kind at 2-8 bits.
func TestNearestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	for _, kind := range []string{"uniform", "midrise", "asym"} {
		for k := 2; k <= 8; k++ {
			q := newQuantizer(kind, k, fixedLevels(kind, k))
			n := len(q.L)
			vals := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0, float32(math.Copysign(0, -1))}
			for _, l := range q.L {
				vals = append(vals, l, l+0.5, l-0.5, l+0.49999997, l-0.49999997)
			}
			for range 2000 {
				vals = append(vals, float32(rng.NormFloat64())*float32(n))
			}
			for _, v := range vals {
				want := 0
				if r := math.Round(float64(v - q.L[0])); r == r && r > 0 {
					want = int(min(r, float64(n-1)))
				}
				if got := q.nearest(v); int(got) != want {
					t.Fatalf("%s %d bits, t=%v: code %d, want %d", kind, k, v, got, want)
				}
			}
		}
	}
}

// BenchmarkNearestLinear times nearest over 4,096 values for 3-bit uniform
// levels (the planner's): `go test -run X -bench NearestLinear ./codec`.
func BenchmarkNearestLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	q := newQuantizer("uniform", 3, fixedLevels("uniform", 3))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(3 * rng.NormFloat64())
	}
	var s int
	for b.Loop() {
		for _, v := range x {
			s += int(q.nearest(v))
		}
	}
	_ = s
}

// BenchmarkFit times the scale search of one 128-value group with column
// importances, 3-bit learned levels: `go test -run X -bench Fit ./codec`.
func BenchmarkFit(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	L := make([]float32, 8)
	for i := range L {
		L[i] = float32(rng.NormFloat64())
	}
	sort.Slice(L, func(i, j int) bool { return L[i] < L[j] })
	q := newQuantizer("lloyd", 3, L)
	x, a := make([]float32, 128), make([]float32, 128)
	for i := range x {
		x[i], a[i] = float32(rng.NormFloat64()), float32(0.5+rng.Float64())
	}
	codes := make([]uint8, 128)
	for b.Loop() {
		q.fit(x, a, codes)
	}
}
