package cpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/upg-ai/upg/codec"
)

func TestParsePrefetch(t *testing.T) {
	good := map[string]prefetchDistances{"2048,12288": {2048, 12288}, " 0 , 64": {0, 64}, "1048576,0": {1 << 20, 0}}
	for in, want := range good {
		if d, err := parsePrefetch(in); err != nil || d != want {
			t.Errorf("parsePrefetch(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"", "2048", "2048,", "a,b", "-64,128", "100,128", "2048,1048640", "1,2,3"} {
		if d, err := parsePrefetch(in); err == nil {
			t.Errorf("parsePrefetch(%q) = %v, want an error", in, d)
		}
	}
	if err := SetPrefetch(100, 0); err == nil {
		t.Error("SetPrefetch(100, 0): want an error for a distance that is not a multiple of 64")
	}
}

// TestPrefetchDoesNotChangeResults runs the decode kernel with prefetch
// distances from none to 1 MiB (past the end of the codes: prefetches never
// fault) and checks the outputs are identical.
func TestPrefetchDoesNotChangeResults(t *testing.T) {
	if BestLevel() < LevelAVX512 {
		t.Skip("the prefetching kernel is AVX-512")
	}
	near, far := Prefetch()
	defer SetPrefetch(near, far)
	rng := rand.New(rand.NewPCG(11, 12))
	const rows, cols = 96, 1024
	m := encode(t, randVec(rng, rows*cols, 0.02), rows, cols, codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd"})
	x := randVec(rng, cols, 1)
	b := NewWithLevel(2, LevelAVX512)
	defer b.Close()
	var want []float32
	for _, d := range [][2]int{{2048, 12288}, {0, 0}, {64, 1 << 20}, {1 << 20, 1 << 20}} {
		if err := SetPrefetch(d[0], d[1]); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, rows)
		b.MatMulF32(got, x, m, 1)
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("prefetch %v changed the result", d)
		}
	}
}
