package bench

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/synth"
)

func TestMemAvailable(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if MemAvailable() <= 0 {
		t.Fatal("MemAvailable found no MemAvailable line")
	}
}

func TestRunSmallModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	opts := synth.Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 1}
	if err := synth.Write(path, opts); err != nil {
		t.Fatal(err)
	}
	r, err := Run(path, Options{Threads: 2, PromptTokens: 40, GenTokens: 8, Bandwidth: 10})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if r.ModelBytes <= 0 || r.ModelBytes >= st.Size() {
		t.Errorf("model bytes %d for a %d-byte file", r.ModelBytes, st.Size())
	}
	// Per token: everything but the embedding table (untied head).
	if r.BytesPerToken >= r.ModelBytes || r.Layers != 2 || r.PrefillTokS <= 0 || r.DecodeTokS <= 0 {
		t.Errorf("implausible result %+v", r)
	}
	if want := r.DecodeTokS * float64(r.BytesPerToken) / 1e9; r.EffectiveGBs != want || r.RooflinePct != 100*want/10 {
		t.Errorf("effective %v GB/s (%v%%), want %v", r.EffectiveGBs, r.RooflinePct, want)
	}
}

func TestCheckMemory(t *testing.T) {
	if err := CheckMemory("/nonexistent/x.upg"); err == nil {
		t.Error("no error for a missing file")
	}
}

// argmaxRef is the plain definition argmax must match.
func argmaxRef(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func TestArgmax(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := [][]float32{
		nil, {1}, {nan, 3, 2}, {1, nan, 3, 3, 2}, {-0.0, 0, 0, -1}, {-inf, -inf},
		{1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {1, 5, 2, 5, 5, 0, 5, inf, 3, inf},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		x := make([]float32, rng.IntN(40))
		for i := range x {
			x[i] = float32(rng.IntN(7)) // many ties
			if rng.IntN(10) == 0 {
				x[i] = nan
			}
		}
		cases = append(cases, x)
	}
	for _, x := range cases {
		if got, want := argmax(x), argmaxRef(x); got != want {
			t.Fatalf("argmax(%v) = %d, want %d", x, got, want)
		}
	}
}
