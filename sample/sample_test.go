package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func mustNew(t testing.TB, o Options) *Sampler {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomLogits(r *rand.Rand, n int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

func refArgmax(l []float32) int {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return best
}

func TestGreedyIsArgmax(t *testing.T) {
	s := mustNew(t, Options{})
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		l := randomLogits(r, 1000)
		if got, want := s.Sample(l, nil), refArgmax(l); got != want {
			t.Fatalf("greedy picked %d, argmax is %d", got, want)
		}
	}
	// Ties go to the lowest id.
	if got := s.Sample([]float32{1, 3, 2, 3, 3}, nil); got != 1 {
		t.Errorf("tie: got %d, want 1", got)
	}
}

func TestTopK1IsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, temp := range []float32{0.1, 1, 5, 100} {
		s := mustNew(t, Options{Temperature: temp, TopK: 1, Seed: 9})
		for range 20 {
			l := randomLogits(r, 5000)
			if got, want := s.Sample(l, nil), refArgmax(l); got != want {
				t.Fatalf("T=%v top-k=1 picked %d, argmax is %d", temp, got, want)
			}
		}
	}
}

func TestSeedReproduces(t *testing.T) {
	o := Options{Temperature: 1.3, TopK: 50, TopP: 0.95, MinP: 0.01, RepeatPenalty: 1.1, Seed: 12345}
	r := rand.New(rand.NewPCG(5, 6))
	seq := make([][]float32, 200)
	for i := range seq {
		seq[i] = randomLogits(r, 3000)
	}
	run := func(o Options) []int {
		s := mustNew(t, o)
		var hist []int
		for _, l := range seq {
			hist = append(hist, s.Sample(l, hist))
		}
		return hist
	}
	a, b := run(o), run(o)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different tokens")
	}
	o.Seed++
	if c := run(o); slices.Equal(a, c) {
		t.Fatal("different seeds gave identical 200-token sequences")
	}
}

// frequencies samples logits at positions 0 to n-1 (histories of n ids
// outside the vocabulary, which only set the position) and returns the
// observed frequencies.
func frequencies(t *testing.T, o Options, logits []float32, n int) []float64 {
	s := mustNew(t, o)
	f := make([]float64, len(logits))
	hist := make([]int, n)
	for i := range hist {
		hist[i] = -1
	}
	for i := range n {
		f[s.Sample(logits, hist[:i])]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

func checkFreq(t *testing.T, name string, got, want []float64) {
	t.Helper()
	// 100k draws: the standard error is at most 0.0016; allow ~6 sigma.
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.01 {
			t.Errorf("%s: token %d frequency %.4f, want %.4f", name, i, got[i], want[i])
		}
	}
}

func TestDistribution(t *testing.T) {
	l := []float32{float32(math.Log(.5)), float32(math.Log(.3)), float32(math.Log(.2))}
	const n = 100000
	checkFreq(t, "T=1", frequencies(t, Options{Temperature: 1, Seed: 1}, l, n), []float64{.5, .3, .2})
	// T=0.5 squares the probabilities: .25, .09, .04 normalized.
	checkFreq(t, "T=0.5", frequencies(t, Options{Temperature: 0.5, Seed: 2}, l, n),
		[]float64{.25 / .38, .09 / .38, .04 / .38})
	// Top-p 0.7 keeps {0, 1} (mass .8), renormalized.
	checkFreq(t, "top-p .7", frequencies(t, Options{Temperature: 1, TopP: 0.7, Seed: 3}, l, n),
		[]float64{.5 / .8, .3 / .8, 0})
	// Top-k 2 keeps the same pair.
	checkFreq(t, "top-k 2", frequencies(t, Options{Temperature: 1, TopK: 2, Seed: 4}, l, n),
		[]float64{.5 / .8, .3 / .8, 0})
	// Min-p 0.5 keeps p >= .25: {0, 1}.
	checkFreq(t, "min-p .5", frequencies(t, Options{Temperature: 1, MinP: 0.5, Seed: 5}, l, n),
		[]float64{.5 / .8, .3 / .8, 0})
}

// TestDrawKeyedByPosition: a token's draw depends on the seed and its
// position (the history's length) only — the same at a position whatever
// was sampled before, or in what order — and draws at different positions
// or with different seeds differ.
func TestDrawKeyedByPosition(t *testing.T) {
	l := []float32{0, 0, 0, 0, 0, 0, 0, 0} // 8 equally likely tokens
	o := Options{Temperature: 1, Seed: 77}
	hist := make([]int, 64)
	at := func(s *Sampler, pos int) int { return s.Sample(l, hist[:pos]) }
	a, b := mustNew(t, o), mustNew(t, o)
	var fwd []int
	for pos := range 64 {
		fwd = append(fwd, at(a, pos))
	}
	for pos := 63; pos >= 0; pos-- { // the other order, with repeats in between
		if got := at(b, pos); got != fwd[pos] || at(b, 63-pos) != fwd[63-pos] {
			t.Fatalf("position %d: %d after other draws, %d in order", pos, got, fwd[pos])
		}
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(fwd)))); n < 6 {
		t.Fatalf("64 positions drew %d distinct tokens of 8 equally likely: %v", n, fwd)
	}
	o.Seed++
	c := mustNew(t, o)
	same := 0
	for pos := range 64 {
		if at(c, pos) == fwd[pos] {
			same++
		}
	}
	if same > 24 { // 8 expected
		t.Fatalf("another seed drew the same token at %d of 64 positions", same)
	}
	if a.Key(5) != b.Key(5) || a.Key(5) == a.Key(6) || a.Key(5) == c.Key(5) {
		t.Fatalf("Key: seed 77 position 5 %x and %x, position 6 %x; seed 78 position 5 %x", a.Key(5), b.Key(5), a.Key(6), c.Key(5))
	}
}

func sortedIDs(c []int32) []int {
	out := make([]int, len(c))
	for i, v := range c {
		out[i] = int(v)
	}
	slices.Sort(out)
	return out
}

func TestTopPKeepsExactSet(t *testing.T) {
	// Probabilities .4 .25 .15 .1 .05 .03 .02 (sum 1), shuffled over ids.
	probs := map[int]float64{3: .4, 0: .25, 6: .15, 1: .1, 5: .05, 2: .03, 4: .02}
	l := make([]float32, 7)
	for id, p := range probs {
		l[id] = float32(math.Log(p))
	}
	cases := []struct {
		p    float32
		want []int
	}{
		{0.3, []int{3}},              // .4 >= .3
		{0.5, []int{0, 3}},           // .65
		{0.7, []int{0, 3, 6}},        // .8
		{0.85, []int{0, 1, 3, 6}},    // .9
		{0.92, []int{0, 1, 3, 5, 6}}, // .95
		{0.99, []int{0, 1, 2, 3, 4, 5, 6}},
	}
	for _, c := range cases {
		for _, k := range []int{0, 7, 6} { // heap path, and the sorted top-k path
			s := mustNew(t, Options{Temperature: 1, TopP: c.p, TopK: k})
			got := sortedIDs(s.candidates(l, nil))
			want := c.want
			if k == 6 && len(want) == 7 {
				want = []int{0, 1, 2, 3, 5, 6} // top-k 6 dropped id 4 first
			}
			if !slices.Equal(got, want) {
				t.Errorf("top-p %v top-k %d: kept %v, want %v", c.p, k, got, want)
			}
		}
	}
}

func TestTopPLargeVocabMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	l := randomLogits(r, 100000)
	const p = 0.9
	// Reference: full sort, softmax in float64, cumulative sum.
	order := make([]int, len(l))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if l[a] != l[b] {
			if l[a] > l[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	var total float64
	for _, v := range l {
		total += math.Exp(float64(v) - float64(l[order[0]]))
	}
	var acc float64
	var want []int
	for _, id := range order {
		acc += math.Exp(float64(l[id]) - float64(l[order[0]]))
		want = append(want, id)
		if acc >= p*total {
			break
		}
	}
	slices.Sort(want)
	s := mustNew(t, Options{Temperature: 1, TopP: p})
	got := sortedIDs(s.candidates(l, nil))
	if !slices.Equal(got, want) {
		t.Fatalf("top-p kept %d tokens, reference %d", len(got), len(want))
	}
	if len(want) < 100 {
		t.Fatalf("test is too easy: only %d tokens kept", len(want))
	}
}

func TestTopKSelectsBest(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	l := randomLogits(r, 100000)
	l[500], l[70000] = 100, 100 // a tie at the top
	s := mustNew(t, Options{Temperature: 1, TopK: 40})
	got := s.candidates(l, nil)
	ref := make([]int, len(l))
	for i := range ref {
		ref[i] = i
	}
	slices.SortStableFunc(ref, func(a, b int) int {
		switch {
		case l[a] > l[b]:
			return -1
		case l[a] < l[b]:
			return 1
		}
		return 0
	})
	for i, id := range got {
		if int(id) != ref[i] {
			t.Fatalf("top-k position %d: got id %d, want %d", i, id, ref[i])
		}
	}
	if len(got) != 40 || got[0] != 500 || got[1] != 70000 {
		t.Fatalf("got %d candidates starting %v", len(got), got[:2])
	}
}

func TestMinPKeepsExactSet(t *testing.T) {
	// p_max = .4; min-p .3 => keep p >= .12: ids with .4 .25 .15.
	probs := []float64{.25, .1, .03, .4, .02, .05, .15}
	l := make([]float32, len(probs))
	for i, p := range probs {
		l[i] = float32(math.Log(p))
	}
	for _, c := range []struct {
		minP float32
		want []int
	}{
		{0.3, []int{0, 3, 6}},
		{0.2, []int{0, 1, 3, 6}},    // >= .08
		{0.1, []int{0, 1, 3, 5, 6}}, // >= .04
		{0.9, []int{3}},
	} {
		s := mustNew(t, Options{Temperature: 1, MinP: c.minP})
		if got := sortedIDs(s.candidates(l, nil)); !slices.Equal(got, c.want) {
			t.Errorf("min-p %v: kept %v, want %v", c.minP, got, c.want)
		}
	}
	// Temperature sharpens the ratio: at T=0.5 the ratio is squared, so min-p
	// .3 keeps p^2 >= .3*.16 = .048: .4 and .25 only.
	s := mustNew(t, Options{Temperature: 0.5, MinP: 0.3})
	if got := sortedIDs(s.candidates(l, nil)); !slices.Equal(got, []int{0, 3}) {
		t.Errorf("min-p at T=0.5: kept %v", got)
	}
}

func TestRepeatPenalty(t *testing.T) {
	s := mustNew(t, Options{Temperature: 1, RepeatPenalty: 2, RepeatWindow: 5})
	logits := []float32{4, -2, 1, 6, 0, 3}
	orig := slices.Clone(logits)
	// Window of 5 = {3, 1, 3, 99, -1}: token 3 appears twice (penalized
	// once), token 1 once; 99 and -1 are out of range; token 5 is outside
	// the window.
	hist := []int{5, 3, 1, 3, 99, -1}
	s.candidates(logits, hist)
	want := []float32{4, -4, 1, 3, 0, 3}
	if !slices.Equal(s.logit[:6], want) {
		t.Errorf("penalized logits %v, want %v", s.logit[:6], want)
	}
	// 0 is penalized as a non-positive logit: 0*R = 0.
	s.candidates(logits, []int{4, 0})
	if want := []float32{2, -2, 1, 6, 0, 3}; !slices.Equal(s.logit[:6], want) {
		t.Errorf("penalized logits %v, want %v", s.logit[:6], want)
	}
	if !slices.Equal(logits, orig) {
		t.Error("Sample modified the caller's logits")
	}
	// Greedy with a penalty: token 3 (6 -> 3) loses to token 0 (4).
	g := mustNew(t, Options{RepeatPenalty: 2})
	if got := g.Sample(logits, []int{3}); got != 0 {
		t.Errorf("greedy with penalty picked %d, want 0", got)
	}
	if got := g.Sample(logits, nil); got != 3 {
		t.Errorf("greedy without history picked %d, want 3", got)
	}
	// The default window is 64 tokens (filler token 2: 1 -> 0.5).
	filler := func(n int) []int { return slices.Repeat([]int{2}, n) }
	if got := g.Sample(logits, append([]int{3}, filler(64)...)); got != 3 {
		t.Errorf("token outside the default window was penalized")
	}
	if got := g.Sample(logits, append([]int{3}, filler(63)...)); got != 0 {
		t.Errorf("token inside the default window was not penalized")
	}
}

func TestValidation(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		o     Options
		field string
	}{
		{Options{Temperature: -0.1}, "Temperature"},
		{Options{Temperature: nan}, "Temperature"},
		{Options{Temperature: float32(math.Inf(1))}, "Temperature"},
		{Options{TopK: -1}, "TopK"},
		{Options{TopP: 1.5}, "TopP"},
		{Options{TopP: -0.5}, "TopP"},
		{Options{TopP: nan}, "TopP"},
		{Options{MinP: 2}, "MinP"},
		{Options{MinP: -1}, "MinP"},
		{Options{RepeatPenalty: -1}, "RepeatPenalty"},
		{Options{RepeatWindow: -5}, "RepeatWindow"},
		{Options{FrequencyPenalty: nan}, "FrequencyPenalty"},
		{Options{PresencePenalty: float32(math.Inf(-1))}, "PresencePenalty"},
		{Options{Prompt: -1}, "Prompt"},
		{Options{LogitBias: map[int]float32{-3: 1}}, "LogitBias"},
		{Options{LogitBias: map[int]float32{3: nan}}, "LogitBias"},
	}
	for _, c := range cases {
		_, err := New(c.o)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: error %v, want one naming %s", c.o, err, c.field)
		}
	}
	s, err := New(Options{Temperature: 0.8, TopK: 40, TopP: 1, MinP: 0.05, RepeatPenalty: 1.1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Options().RepeatWindow != DefaultRepeatWindow {
		t.Errorf("default window %d", s.Options().RepeatWindow)
	}
}

func TestOddLogits(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	s := mustNew(t, Options{Temperature: 1, Seed: 1})
	if got := s.Sample(nil, nil); got != -1 {
		t.Errorf("empty logits: got %d", got)
	}
	if got := s.Sample([]float32{0, inf, 1, inf}, nil); got != 1 {
		t.Errorf("+Inf logit: got %d, want 1", got)
	}
	for _, o := range []Options{{Temperature: 1}, {}, {RepeatPenalty: 2}, {Temperature: 1, TopK: 2}} {
		s := mustNew(t, o)
		if got := s.Sample([]float32{nan, -inf, nan, -inf}, []int{1}); got != 0 {
			t.Errorf("%+v all -Inf/NaN: got %d, want 0", o, got)
		}
		if got := s.Sample([]float32{nan, 2, inf, nan, inf}, []int{1}); got != 2 {
			t.Errorf("%+v +Inf: got %d, want 2", o, got)
		}
	}
	for range 100 {
		if got := s.Sample([]float32{nan, 0, -inf, nan, 0}, nil); got != 1 && got != 4 {
			t.Fatalf("NaN/-Inf token drawn: %d", got)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	l := randomLogits(r, 100000)
	hist := make([]int, 100)
	for i := range hist {
		hist[i] = r.IntN(len(l))
	}
	for _, o := range []Options{
		{},
		{Temperature: 0.8, Seed: 1},
		{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, RepeatPenalty: 1.1, Seed: 1},
		{Temperature: 0.8, TopP: 0.9, RepeatPenalty: 1.1, Seed: 1},
		{Temperature: 0.8, MinP: 0.1, Seed: 1},
		{Temperature: 0.8, TopK: 40, FrequencyPenalty: 0.5, PresencePenalty: 0.3, LogitBias: map[int]float32{5: 2}, Prompt: 10, Seed: 1},
		{FrequencyPenalty: 1},
	} {
		s := mustNew(t, o)
		s.Sample(l, hist) // warm-up sizes the scratch buffers
		if a := testing.AllocsPerRun(10, func() { s.Sample(l, hist) }); a != 0 {
			t.Errorf("%+v: %v allocations per Sample", o, a)
		}
	}
}

// FuzzSample checks that arbitrary logits and options never panic and always
// give an id in range.
func FuzzSample(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, float32(1), 2, float32(0.9), float32(0.1), float32(1.2), uint64(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0x80, 0x7f}, float32(0), 0, float32(0), float32(0), float32(0), uint64(2))
	f.Fuzz(func(t *testing.T, raw []byte, temp float32, k int, p, minP, rep float32, seed uint64) {
		s, err := New(Options{Temperature: temp, TopK: k, TopP: p, MinP: minP, RepeatPenalty: rep, Seed: seed})
		if err != nil {
			return
		}
		l := make([]float32, len(raw)/4)
		for i := range l {
			u := uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24
			l[i] = math.Float32frombits(u)
		}
		hist := []int{0, 1, -3, 1 << 40}
		got := s.Sample(l, hist)
		if len(l) == 0 && got != -1 || len(l) > 0 && (got < 0 || got >= len(l)) {
			t.Fatalf("Sample returned %d for %d logits", got, len(l))
		}
	})
}

func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	l := randomLogits(r, 100000)
	hist := make([]int, 64)
	for i := range hist {
		hist[i] = r.IntN(len(l))
	}
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"greedy", Options{}},
		{"temp", Options{Temperature: 0.8}},
		{"topk40-topp-minp-rep", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1}},
		{"topp0.9", Options{Temperature: 0.8, TopP: 0.9}},
		{"topk40-freq-presence-2k", Options{Temperature: 0.8, TopK: 40, FrequencyPenalty: 0.5, PresencePenalty: 0.5}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustNew(b, c.o)
			h := hist
			if c.o.Counts() { // 2,048 generated tokens
				h = make([]int, 2048)
				for i := range h {
					h[i] = r.IntN(len(l))
				}
			}
			for b.Loop() {
				s.Sample(l, h)
			}
		})
	}
}

// TestPenalized checks the penalized set: distinct ids of the window only,
// ascending, out-of-range ids dropped, nothing with the penalty off.
func TestPenalized(t *testing.T) {
	s := mustNew(t, Options{Temperature: 1, RepeatPenalty: 1.3, RepeatWindow: 5})
	hist := []int{7, 1, 9, 3, 9, -1, 3, 100, 2}
	got := s.Penalized([]int32{42}, hist, 50)
	if want := []int32{42, 2, 3, 9}; !slices.Equal(got, want) {
		t.Fatalf("Penalized = %v, want %v", got, want)
	}
	off := mustNew(t, Options{Temperature: 1})
	if got := off.Penalized(nil, hist, 50); len(got) != 0 {
		t.Fatalf("Penalized without a penalty = %v, want none", got)
	}
}

// TestArgmaxLanes checks the four-lane argmax against the plain
// definition on rows full of ties, NaNs and infinities.
func TestArgmaxLanes(t *testing.T) {
	ref := func(x []float32) int {
		best, bv := 0, float32(math.Inf(-1))
		for i, v := range x {
			if v > bv {
				best, bv = i, v
			}
		}
		return best
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := [][]float32{
		nil, {1}, {nan, 3, 2}, {1, nan, 3, 3, 2}, {-0.0, 0, 0, -1}, {-inf, -inf}, {nan, nan, nan, nan, nan},
		{1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {1, 5, 2, 5, 5, 0, 5, inf, 3, inf},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		x := make([]float32, rng.IntN(40))
		for i := range x {
			x[i] = float32(rng.IntN(7)) // many ties
			if rng.IntN(10) == 0 {
				x[i] = nan
			}
			if rng.IntN(20) == 0 {
				x[i] = -inf
			}
		}
		cases = append(cases, x)
	}
	for _, x := range cases {
		if got, want := argmax(x), ref(x); got != want {
			t.Fatalf("argmax(%v) = %d, want %d", x, got, want)
		}
	}
}

// TestOptionPredicates: what the backends branch on.
func TestOptionPredicates(t *testing.T) {
	for _, c := range []struct {
		o                                          Options
		greedy, penalizes, adds, readsHist, argmax bool
	}{
		{Options{}, true, false, false, false, true},
		{Options{Temperature: 0.7, TopK: 1}, true, false, false, false, true},
		{Options{Temperature: 0.7, TopK: 40}, false, false, false, false, false},
		{Options{RepeatPenalty: 1}, true, false, false, false, true},
		{Options{Temperature: 1, RepeatPenalty: 1.1}, false, true, false, true, false},
		{Options{RepeatPenalty: 1.1}, true, true, false, true, false},
		{Options{FrequencyPenalty: 0.1}, true, false, true, true, false},
		{Options{PresencePenalty: -0.1}, true, false, true, true, false},
		{Options{LogitBias: map[int]float32{5: 1}}, true, false, true, false, false},
		{Options{LogitBias: map[int]float32{5: 0}}, true, false, false, false, true},
	} {
		o := c.o
		if o.Greedy() != c.greedy || o.Penalizes() != c.penalizes || o.Adds() != c.adds || o.ReadsHistory() != c.readsHist || o.Argmax() != c.argmax {
			t.Errorf("%+v: Greedy %v Penalizes %v Adds %v ReadsHistory %v Argmax %v, want %v %v %v %v %v", o, o.Greedy(), o.Penalizes(),
				o.Adds(), o.ReadsHistory(), o.Argmax(), c.greedy, c.penalizes, c.adds, c.readsHist, c.argmax)
		}
	}
}

// TestAdditive: logit bias, frequency and presence penalties change the
// logits by the amounts OpenAI defines, counting only the tokens past the
// prompt, after the repetition penalty; the caller's logits are unchanged.
func TestAdditive(t *testing.T) {
	logits := []float32{4, -2, 1, 6, 0, 3}
	orig := slices.Clone(logits)
	// prompt {3, 3}; generated 3, 0, 3, 99 (out of range), 3, -1
	hist := []int{3, 3, 3, 0, 3, 99, 3, -1}
	s := mustNew(t, Options{Temperature: 1, FrequencyPenalty: 0.5, PresencePenalty: 0.25, Prompt: 2,
		LogitBias: map[int]float32{1: 10, 5: -100, 7: 50}})
	s.candidates(logits, hist)
	// 3: three generated, 6 − 3·0.5 − 0.25; 0: one, 4 − 0.5 − 0.25; 1 and 5
	// biased; 7 is outside the vocabulary
	want := []float32{3.25, 8, 1, 4.25, 0, -97}
	if !slices.Equal(s.logit[:6], want) {
		t.Errorf("adjusted logits %v, want %v", s.logit[:6], want)
	}
	if !slices.Equal(logits, orig) {
		t.Error("Sample modified the caller's logits")
	}
	// the order of history does not matter; the prompt never counts
	s.candidates(logits, []int{3, 3, 3, 3, -1, 99, 0, 3})
	if !slices.Equal(s.logit[:6], want) {
		t.Errorf("reordered history: %v, want %v", s.logit[:6], want)
	}
	p := mustNew(t, Options{Temperature: 1, FrequencyPenalty: 0.5, Prompt: 8})
	p.candidates(logits, hist)
	if !slices.Equal(p.logit[:6], logits) {
		t.Errorf("prompt tokens penalized: %v", p.logit[:6])
	}
	// after the repetition penalty (6 → 3 once), then the frequency penalty
	r := mustNew(t, Options{Temperature: 1, RepeatPenalty: 2, FrequencyPenalty: 1, Prompt: 1})
	r.candidates(logits, []int{5, 3, 3})
	if want := []float32{4, -2, 1, 1, 0, 1.5}; !slices.Equal(r.logit[:6], want) {
		t.Errorf("repetition then frequency: %v, want %v", r.logit[:6], want)
	}

	// greedy choices they change
	for _, c := range []struct {
		o    Options
		hist []int
		want int
	}{
		{Options{}, []int{3, 3}, 3},
		{Options{FrequencyPenalty: 0.9}, []int{3, 3}, 3},            // 6 − 1.8 = 4.2 > 4
		{Options{FrequencyPenalty: 1.1}, []int{3, 3}, 0},            // 3.8 < 4
		{Options{FrequencyPenalty: 1.1, Prompt: 1}, []int{3, 3}, 3}, // one counted: 4.9
		{Options{PresencePenalty: 2.5}, []int{3, 3}, 0},             // once: 3.5
		{Options{PresencePenalty: 1.5}, []int{3, 3, 3, 3}, 3},       // still once: 4.5
		{Options{FrequencyPenalty: -2}, []int{0}, 0},                // negative encourages: 4 + 2 ties 6, the lower id wins
		{Options{LogitBias: map[int]float32{4: 6.5}}, nil, 4},
		{Options{LogitBias: map[int]float32{3: -100}}, nil, 0},
	} {
		if got := mustNew(t, c.o).Sample(logits, c.hist); got != c.want {
			t.Errorf("%+v after %v: %d, want %d", c.o, c.hist, got, c.want)
		}
	}

	// drawn with the adjusted logits' probabilities: biases log 3 and log 2
	// on equal logits give 3/6, 2/6, 1/6
	b := map[int]float32{0: float32(math.Log(3)), 1: float32(math.Log(2))}
	checkFreq(t, "logit bias", frequencies(t, Options{Temperature: 1, Seed: 7, LogitBias: b}, []float32{0, 0, 0}, 100000),
		[]float64{3. / 6, 2. / 6, 1. / 6})
}
