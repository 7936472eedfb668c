//go:build linux && (amd64 || arm64)

package cuda

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/sample"
)

// refCandidates is package sample's chain written plainly (sort, then
// filters) in float64: the tokens a sampler may draw and their
// probabilities.
func refCandidates(l []float32, hist []int, o sample.Options) ([]int, []float64) {
	v := make([]float64, len(l))
	for i, x := range l {
		v[i] = float64(x)
		if x != x {
			v[i] = math.Inf(-1)
		}
	}
	if o.RepeatPenalty != 0 && o.RepeatPenalty != 1 {
		w := o.RepeatWindow
		if w == 0 {
			w = sample.DefaultRepeatWindow
		}
		if len(hist) > w {
			hist = hist[len(hist)-w:]
		}
		for _, t := range hist {
			if t >= 0 && t < len(l) && l[t] == l[t] {
				if l[t] > 0 {
					v[t] = float64(l[t] / o.RepeatPenalty)
				} else {
					v[t] = float64(l[t] * o.RepeatPenalty)
				}
			}
		}
	}
	ids := make([]int, len(l))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case v[a] > v[b]:
			return -1
		case v[a] < v[b]:
			return 1
		}
		return 0
	})
	if o.TopK > 0 && o.TopK < len(ids) {
		ids = ids[:o.TopK]
	}
	w := make([]float64, len(ids))
	var tot float64
	for i, id := range ids {
		w[i] = math.Exp((v[id] - v[ids[0]]) / float64(o.Temperature))
		tot += w[i]
	}
	if o.TopP > 0 && o.TopP < 1 {
		acc := 0.0
		for i := range w {
			acc += w[i]
			if acc >= float64(o.TopP)*tot {
				ids, w = ids[:i+1], w[:i+1]
				break
			}
		}
	}
	if o.MinP > 0 {
		k := 0
		for i := range w {
			if w[i] >= float64(o.MinP) {
				ids[k], w[k] = ids[i], w[i]
				k++
			}
		}
		ids, w = ids[:k], w[:k]
	}
	tot = 0
	for _, x := range w {
		tot += x
	}
	for i := range w {
		w[i] /= tot
	}
	return ids, w
}

func gpuBackend(t *testing.T) *Backend {
	gpu(t) // skips without a GPU
	b, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestGPUSample checks upg_sample through Backend.Sample against the
// sampler's chain: for each option set, R rows of the same logits with R
// seeds; every token must be a candidate of the reference chain, the
// counts must fit its probabilities (a chi-square bound far outside
// chance), the log-probability must be the raw row's, and the logits must
// leave the kernel unchanged (the penalty is undone).
func TestGPUSample(t *testing.T) {
	b := gpuBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		name  string
		vocab int
		rows  int
		o     sample.Options
	}{
		{"temp", 3000, 4096, sample.Options{Temperature: 0.7}},
		{"topk", 3000, 4096, sample.Options{Temperature: 1, TopK: 7}},
		{"topp", 3000, 4096, sample.Options{Temperature: 1.2, TopP: 0.8}},
		{"minp", 3000, 4096, sample.Options{Temperature: 0.9, MinP: 0.1}},
		{"chain", 3000, 4096, sample.Options{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.02, RepeatPenalty: 1.3}},
		{"tail", 3000, 4096, sample.Options{Temperature: 0.5, TopK: 50, TopP: 0.99}},
		{"odd-vocab", 3001, 4096, sample.Options{Temperature: 0.9, TopK: 30, TopP: 0.9, RepeatPenalty: 1.2}}, // rows not 16-byte aligned: smp_each's scalar loop
		{"phi4-vocab", 100352, 256, sample.Options{Temperature: 0.8, TopK: 50, TopP: 0.95, RepeatPenalty: 1.1}},
		{"phi4-vocab-topp", 100352, 256, sample.Options{Temperature: 1, TopP: 0.5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			V, R := c.vocab, c.rows
			l := make([]float32, V)
			for i := range l {
				l[i] = float32(rng.NormFloat64() * 2.5)
				if c.name == "tail" { // 20 logits near 20, the rest where z = (l−max)/T < −32
					l[i] = float32(rng.NormFloat64())
					if i%150 == 0 {
						l[i] = 20 + float32(rng.NormFloat64())
					}
				}
			}
			hist := make([]int, 80)
			for i := range hist {
				hist[i] = rng.IntN(V)
			}
			hist[70] = slices.Index(l, slices.Max(l)) // penalize the best token
			buf, all := repeatedRows(t, b, l, R)
			reqs := make([]backend.SampleRequest, R)
			for r := range reqs {
				o := c.o
				o.Seed = uint64(r)
				s, err := sample.New(o)
				if err != nil {
					t.Fatal(err)
				}
				reqs[r] = backend.SampleRequest{Sampler: s, History: hist, TopLogprobs: 0}
			}
			res := make([]backend.SampleResult, R)
			if err := b.Sample(buf, V, reqs, res); err != nil {
				t.Fatal(err)
			}
			ids, p := refCandidates(l, hist, reqs[0].Sampler.Options())
			prob := map[int]float64{}
			for i, id := range ids {
				prob[id] = p[i]
			}
			lse := lseOf(l)
			count := map[int]int{}
			for r, x := range res {
				if _, ok := prob[x.Token]; !ok {
					t.Fatalf("row %d drew token %d (logit %g), not among the %d candidates", r, x.Token, l[x.Token], len(ids))
				}
				count[x.Token]++
				if want := float64(l[x.Token]) - lse; math.Abs(float64(x.Logprob)-want) > 1e-4 {
					t.Fatalf("row %d: logprob %g, want %g", r, x.Logprob, want)
				}
			}
			chi, dof := 0.0, -1
			for i, id := range ids {
				e := p[i] * float64(R)
				if e < 5 {
					continue
				}
				d := float64(count[id]) - e
				chi += d * d / e
				dof++
			}
			if dof > 0 && chi > float64(dof)+8*math.Sqrt(2*float64(dof))+10 {
				t.Fatalf("chi-square %.1f for %d degrees of freedom: the draws do not follow the candidates' probabilities", chi, dof)
			}
			t.Logf("%d candidates, %d drawn, chi-square %.1f for %d dof", len(ids), len(count), chi, dof)
			back := make([]float32, R*V)
			b.Read(back, buf, 0)
			for i := range back {
				if math.Float32bits(back[i]) != math.Float32bits(all[i]) {
					t.Fatalf("logit %d changed: %g, was %g", i, back[i], all[i])
				}
			}
			// The same seeds draw the same tokens.
			again := make([]backend.SampleResult, R)
			for r := range reqs {
				o := c.o
				o.Seed = uint64(r)
				reqs[r].Sampler, _ = sample.New(o)
			}
			if err := b.Sample(buf, V, reqs, again); err != nil {
				t.Fatal(err)
			}
			for r := range res {
				if res[r].Token != again[r].Token {
					t.Fatalf("row %d: seed %d drew %d, then %d", r, r, res[r].Token, again[r].Token)
				}
			}
		})
	}
}

// repeatedRows uploads R copies of the logits row l into a new buffer and
// returns it with the rows as uploaded.
func repeatedRows(t *testing.T, b *Backend, l []float32, R int) (backend.Buffer, []float32) {
	t.Helper()
	V := len(l)
	all := make([]float32, R*V)
	for r := range R {
		copy(all[r*V:], l)
	}
	buf, err := b.NewBuffer(R * V)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(buf, 0, all)
	return buf, all
}

func lseOf(l []float32) float64 {
	m := math.Inf(-1)
	for _, v := range l {
		m = max(m, float64(v))
	}
	s := 0.0
	for _, v := range l {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// TestGPUSampleGreedyAndEdges checks the rows that need no draw: greedy
// with a repetition penalty (the host sampler's token exactly), top-k 1,
// rows of NaN and −inf, a +inf logit, and top log-probabilities, mixed in
// one call with a sampled row.
func TestGPUSampleGreedyAndEdges(t *testing.T) {
	b := gpuBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const V = 5000
	rows := 6
	all := make([]float32, rows*V)
	for i := range all {
		all[i] = float32(rng.NormFloat64())
	}
	best := func(r int) int { return slices.Index(all[r*V:(r+1)*V], slices.Max(all[r*V:(r+1)*V])) }
	hist0 := []int{best(0), 3, best(0), 9}
	for i := range V { // row 2: all −inf but NaNs
		all[2*V+i] = float32(math.Inf(-1))
		if i%7 == 0 {
			all[2*V+i] = float32(math.NaN())
		}
	}
	all[3*V+1234] = float32(math.Inf(1))
	buf, err := b.NewBuffer(rows * V)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(buf, 0, all)
	opts := []sample.Options{
		{RepeatPenalty: 1.5},           // greedy after the penalty
		{Temperature: 0.8, TopK: 1},    // greedy
		{Temperature: 1},               // nothing to draw from
		{Temperature: 1},               // +inf wins
		{Temperature: 0.5, TopP: 0.9},  // a draw with top log-probabilities
		{Temperature: 2, MinP: 0.9999}, // only the best survives
	}
	reqs := make([]backend.SampleRequest, rows)
	for r, o := range opts {
		s, err := sample.New(o)
		if err != nil {
			t.Fatal(err)
		}
		reqs[r] = backend.SampleRequest{Sampler: s, TopLogprobs: -1}
	}
	reqs[0].History = hist0
	reqs[4].TopLogprobs = 3
	res := make([]backend.SampleResult, rows)
	if err := b.Sample(buf, V, reqs, res); err != nil {
		t.Fatal(err)
	}
	host, _ := sample.New(opts[0])
	want := []int{host.Sample(all[:V], hist0), best(1), 0, 1234, -1, best(5)}
	if want[0] == best(0) {
		t.Fatalf("test setup: the penalty should move the greedy token off %d", best(0))
	}
	for r, w := range want {
		if w >= 0 && res[r].Token != w {
			t.Errorf("row %d (%+v): token %d, want %d", r, opts[r], res[r].Token, w)
		}
	}
	row4 := all[4*V : 5*V]
	lp, top := backend.Logprobs(row4, res[4].Token, 3, nil)
	if res[4].Logprob != lp || !slices.Equal(res[4].Top, top) {
		t.Errorf("row 4: logprob %g top %v, want %g %v", res[4].Logprob, res[4].Top, lp, top)
	}
}

// TestGPUBenchSample (UPG_CUDA_BENCH=1) times upg_sample alone over rows of
// Phi-4's vocabulary: greedy with a penalty, temperature only, and run's
// default chain (top-k 40, top-p 0.95, min-p 0.05), for 1 and 32 rows.
func TestGPUBenchSample(t *testing.T) {
	d := benchGPU(t, "time the sampling kernel")
	rng := rand.New(rand.NewPCG(7, 8))
	const V, maxRows = 100352, 32
	l := make([]float32, V*maxRows)
	for i := range l {
		l[i] = float32(rng.NormFloat64() * 3)
	}
	lp := devF32(t, d, l)
	hist := make([]int32, 64*maxRows)
	for i := range hist {
		hist[i] = int32(rng.IntN(V))
	}
	hp := devI32(t, d, hist)
	save := devPoisoned(t, d, len(hist))
	out := devPoisoned(t, d, 2*maxRows)
	for _, c := range []struct {
		name string
		o    sample.Options
	}{
		{"greedy+penalty", sample.Options{RepeatPenalty: 1.1}},
		{"temp1", sample.Options{Temperature: 1}},
		{"run-default", sample.Options{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1}},
		{"topp0.9", sample.Options{Temperature: 0.8, TopP: 0.9}},
	} {
		for _, n := range []int{1, maxRows} {
			rows := make([]byte, sampleRowBytes*n)
			for r := range n {
				putSampleRow(rows[r*sampleRowBytes:], c.o, 64*r, 64, uint64(r+1))
			}
			rp, err := d.Alloc(int64(len(rows)), "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Upload(rp, rows); err != nil {
				t.Fatal(err)
			}
			ms := timeIt(t, d, 20, func() error { return d.sample(lp, V, rp, hp, save, out, out+DevPtr(4*maxRows), n) })
			t.Logf("%-15s %2d rows: %6.1f µs", c.name, n, 1000*ms)
			d.Free(rp)
		}
	}
	for _, p := range []DevPtr{lp, hp, save, out} {
		d.Free(p)
	}
}

// TestGPUSampleAdditive: rows whose options add to the logits (logit bias,
// frequency and presence penalties, which upg_sample does not apply) are
// sampled on the host in a step beside device-sampled rows: each such
// row's token is its sampler's on the raw row, with the raw row's
// log-probability, and the other rows draw what they draw in a step
// without them.
func TestGPUSampleAdditive(t *testing.T) {
	b := gpuBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const V = 5000
	l := make([]float32, V)
	for i := range l {
		l[i] = float32(rng.NormFloat64() * 2.5)
	}
	best := slices.Index(l, slices.Max(l))
	hist := []int{best, best, 7, best, 9, 11} // prompt {best, best}, then generated
	opts := []sample.Options{
		{},                                    // device: argmax
		{Temperature: 0.8, TopK: 40, Seed: 1}, // device: upg_sample
		{LogitBias: map[int]float32{3: 40}},   // host: token 3
		{Temperature: 0.9, FrequencyPenalty: 1.5, PresencePenalty: 0.5, Prompt: 2, Seed: 2},
		{PresencePenalty: 100, Prompt: 2}, // host: best was generated, so not it
		{Temperature: 1.1, TopP: 0.9, RepeatPenalty: 1.2, Seed: 3},
	}
	R := len(opts)
	buf, _ := repeatedRows(t, b, l, R)
	reqs := func(rows []int) []backend.SampleRequest {
		out := make([]backend.SampleRequest, len(rows))
		for i, r := range rows {
			s, err := sample.New(opts[r])
			if err != nil {
				t.Fatal(err)
			}
			out[i] = backend.SampleRequest{Sampler: s, History: hist, TopLogprobs: 0}
		}
		return out
	}
	res := make([]backend.SampleResult, R)
	if err := b.Sample(buf, V, reqs([]int{0, 1, 2, 3, 4, 5}), res); err != nil {
		t.Fatal(err)
	}
	lse := lseOf(l)
	for r, o := range opts {
		if want := float64(l[res[r].Token]) - lse; math.Abs(float64(res[r].Logprob)-want) > 1e-4 {
			t.Errorf("row %d: logprob %g, want the raw row's %g", r, res[r].Logprob, want)
		}
		if !o.Adds() {
			continue
		}
		s, _ := sample.New(o)
		if want := s.Sample(l, hist); res[r].Token != want {
			t.Errorf("row %d (%+v): token %d, the host sampler's %d", r, o, res[r].Token, want)
		}
	}
	if res[2].Token != 3 || res[4].Token == best || res[0].Token != best {
		t.Errorf("tokens %v: want 3 at row 2, not %d at row 4, %d at row 0", res, best, best)
	}
	// the device's rows alone (rows 0, 1 and 5 of the same logits)
	alone := make([]backend.SampleResult, 3)
	if err := b.Sample(buf, V, reqs([]int{0, 1, 5}), alone); err != nil {
		t.Fatal(err)
	}
	for i, r := range []int{0, 1, 5} {
		if alone[i].Token != res[r].Token {
			t.Errorf("row %d: %d beside the host's rows, %d without them", r, res[r].Token, alone[i].Token)
		}
	}
}
