package engine_test

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/upg-ai/upg/engine"
)

// measure records steps of n tokens at seconds each until the size is
// measured (its first two are not).
func measure(p *engine.DraftPlanner, n int, seconds float64) {
	for range 3 {
		p.Observe(n, seconds)
	}
}

// observeAll measures steps of n..1 tokens at cost(n) each (the smallest,
// a base size, last: measured recently, so that Plan does not measure it
// afresh first).
func observeAll(p *engine.DraftPlanner, n int, cost func(int) float64) {
	for i := n; i >= 1; i-- {
		measure(p, i, cost(i))
	}
}

// TestDraftPlanner: drafts follow the step costs and the acceptance: none
// before a step is measured, whole drafts where a step of more tokens
// costs about the same (a GPU), none where each token costs its share
// (arithmetic-bound), the likelier sequence's tokens first when a batch
// leaves room for only some, and unmeasured larger steps tried a few
// tokens at a time.
func TestDraftPlanner(t *testing.T) {
	keen := engine.DraftRecord{Tried: [2]int{20, 60}, Kept: [2]int{18, 57}} // a sequence whose drafts are kept
	cold := engine.DraftRecord{Tried: [2]int{200, 2}, Kept: [2]int{5, 1}}   // one whose drafts fail

	p := engine.NewDraftPlanner(64)
	if got := p.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: keen}}, 8); !slices.Equal(got, []int{0}) {
		t.Errorf("nothing measured: plan %v, want [0]", got)
	}
	// larger steps are tried a few tokens at a time (each up to three
	// times: its first two steps are not measured): where they cost about
	// the same the drafts grow to whole within a few steps, where each
	// token costs its share they stop once the sizes tried say so
	explore := func(cost func(int) float64, r engine.DraftRecord) (sizes []int) {
		p := engine.NewDraftPlanner(64)
		measure(p, 1, cost(1))
		for range 12 {
			d := p.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: r}}, 8)[0]
			sizes = append(sizes, 1+d)
			p.Observe(1+d, cost(1+d))
		}
		return sizes
	}
	flat := explore(func(n int) float64 { return 1 + 0.01*float64(n) }, engine.DraftRecord{})
	if i := slices.Index(flat, 9); i < 0 || i > 6 || flat[len(flat)-1] != 9 {
		t.Errorf("flat costs: step sizes %v, want 9 (the whole draft) by the seventh step and after", flat)
	}
	prop := explore(func(n int) float64 { return float64(n) }, keen)
	for i, n := range prop {
		tries := 0
		for _, m := range prop[:i+1] {
			if m == n {
				tries++
			}
		}
		if n > 1 && tries > 3 || i >= 4 && n != 1 {
			t.Errorf("costs in proportion to tokens: step sizes %v, want each size tried at most three times (its first two steps are not measured) and no drafts from the fifth step", prop)
			break
		}
	}
	measure(p, 1, 1)
	if got := p.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: keen}}, 1); !slices.Equal(got, []int{1}) {
		t.Errorf("limit 1: plan %v, want [1]", got)
	}

	gpu := engine.NewDraftPlanner(64) // 1.43x for 2 tokens, ~1.7x for 3-9, then each token 0.01
	observeAll(gpu, 40, func(n int) float64 {
		switch {
		case n == 1:
			return 1
		case n == 2:
			return 1.43
		}
		return 1.6 + 0.01*float64(n)
	})
	if got := gpu.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: keen}}, 8); !slices.Equal(got, []int{8}) {
		t.Errorf("GPU-like costs, drafts kept: plan %v, want [8]", got)
	}
	if got := gpu.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: cold}}, 8); !slices.Equal(got, []int{0}) {
		t.Errorf("GPU-like costs, drafts that fail: plan %v, want [0]", got)
	}

	linear := engine.NewDraftPlanner(64) // every token costs its share
	observeAll(linear, 40, func(n int) float64 { return float64(n) })
	if got := linear.Plan(nil, 1, []engine.DraftOffer{{Max: 8, Record: keen}}, 8); !slices.Equal(got, []int{0}) {
		t.Errorf("costs in proportion to tokens: plan %v, want [0]", got)
	}

	// a batch of 4 whose steps cost the same up to 8 tokens, then in
	// proportion: 4 draft tokens, the keen sequence's first
	batch := engine.NewDraftPlanner(64)
	observeAll(batch, 40, func(n int) float64 { return math.Max(8, float64(n)) })
	measure(batch, 4, 8) // the base, recently
	offers := []engine.DraftOffer{{Max: 3, Record: cold}, {Max: 6, Record: keen}, {Max: 2}}
	got := batch.Plan(nil, 4, offers, 20)
	if got[1] < got[0] || got[1] < got[2] || got[0]+got[1]+got[2] != 4 {
		t.Errorf("batch of 4, free up to 8 tokens: plan %v, want 4 tokens, most for the keen offer", got)
	}
	for i, d := range got {
		if d > offers[i].Max {
			t.Errorf("offer %d: %d tokens of a %d-token draft", i, d, offers[i].Max)
		}
	}
}

// TestDraftPlannerEstimates: an unmeasured size between measured ones
// costs their linear interpolation (seen through the break-even draft);
// nonsense times are ignored.
func TestDraftPlannerEstimates(t *testing.T) {
	p := engine.NewDraftPlanner(16)
	p.Observe(2, 100) // the first two steps of a size are not measured
	p.Observe(2, 100)
	measure(p, 1, 1)
	measure(p, 9, 3) // 2 tokens interpolate to 1.25
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		p.Observe(2, bad)
	}
	p.Observe(100, 1) // past the planner's steps
	// one draft token kept with chance a1 pays when (1+a1)/1.25 > 1: a1 >
	// 0.25; a record of 1 in 10 first tokens kept (a1 ≈ 0.5 after the
	// blend and the standard error) drafts, 0 in 40 does not
	one := func(r engine.DraftRecord) []int { return p.Plan(nil, 1, []engine.DraftOffer{{Max: 1, Record: r}}, 1) }
	if got := one(engine.DraftRecord{Tried: [2]int{10, 0}, Kept: [2]int{1, 0}}); !slices.Equal(got, []int{1}) {
		a1, _ := p.Rates(engine.DraftOffer{Record: engine.DraftRecord{Tried: [2]int{10, 0}, Kept: [2]int{1, 0}}})
		t.Errorf("a1 %.3f against an interpolated 1.25: plan %v, want [1]", a1, got)
	}
	if got := one(engine.DraftRecord{Tried: [2]int{40, 0}}); !slices.Equal(got, []int{0}) {
		t.Errorf("no first token kept in 40: plan %v, want [0]", got)
	}
	// the engine-wide record moves a new sequence's rates
	before, _ := p.Rates(engine.DraftOffer{})
	for range 50 {
		p.Record(4, 4)
	}
	after, later := p.Rates(engine.DraftOffer{})
	if !(after > before && later > 0.9) {
		t.Errorf("after 50 drafts kept whole: rates %.3f (first, was %.3f), %.3f (later)", after, before, later)
	}
}

// TestDraftRecord: a draft's first token and its later ones are counted
// apart, later ones only where the first was kept.
func TestDraftRecord(t *testing.T) {
	var r engine.DraftRecord
	r.Add(4, 0) // first rejected
	r.Add(4, 2) // two kept, the third rejected
	r.Add(3, 3) // all kept
	r.Add(0, 0) // no draft
	want := engine.DraftRecord{Tried: [2]int{3, 2 + 2}, Kept: [2]int{2, 1 + 2}}
	if r != want {
		t.Errorf("record %+v, want %+v", r, want)
	}
}

// TestDraftPlannerOutliers: slow steps — each size's first two (the CUDA
// backend runs a new queue op by op, then captures its graph), and every
// seventh step of any size (a pause) at 10x — do not stop whole drafts
// where steps cost about the same.
func TestDraftPlannerOutliers(t *testing.T) {
	p := engine.NewDraftPlanner(64)
	runs := map[int]int{}
	var sizes []int
	for step := range 80 {
		d := p.Plan(nil, 1, []engine.DraftOffer{{Max: 8}}, 8)[0]
		n := 1 + d
		cost := 1 + 0.01*float64(n)
		if runs[n] < 2 || step%7 == 6 {
			cost *= 10
		}
		runs[n]++
		p.Observe(n, cost)
		sizes = append(sizes, n)
	}
	refreshes := 0
	for _, n := range sizes[60:] {
		if n == 1 {
			refreshes++ // the base size measured afresh (refreshAfter)
		}
		if n != 9 && n != 1 || refreshes > 1 {
			t.Fatalf("step sizes %v: want whole drafts (9) over the last 20 steps but one step without", sizes)
		}
	}
}

// TestDraftPlannerForgets: a size measured in a slow spell (the machine
// five times as slow while it ran) and then avoided is measured again once
// forgotten, and drafting resumes.
func TestDraftPlannerForgets(t *testing.T) {
	p := engine.NewDraftPlanner(64)
	cost := func(n int) float64 { return 1 + 0.01*float64(n) }
	measure(p, 1, cost(1))
	for n := 2; n <= 9; n++ {
		measure(p, n, 5*cost(n)) // the slow spell
	}
	offer := []engine.DraftOffer{{Max: 8}}
	if d := p.Plan(nil, 1, offer, 8)[0]; d != 0 {
		t.Fatalf("after the slow spell: a %d-token draft, want none", d)
	}
	var last int
	for range 1200 {
		last = p.Plan(nil, 1, offer, 8)[0]
		p.Observe(1+last, cost(1+last))
	}
	if last != 8 {
		t.Errorf("after 1,200 steps: a %d-token draft, want 8 (the slow spell's costs forgotten)", last)
	}
}

// TestDraftPlannerStepSizes: with drafts, a step takes a size on the
// ladder (any up to 16 tokens, then multiples of 8), so that a batch of
// drafting sequences sets up a few sizes, not a new one nearly every step.
// Twelve sequences with drafts of 0-8 tokens whose chances vary step to
// step, over GPU-like costs (a step of up to 64 tokens about one token's):
// before the ladder the run made 40+ sizes.
func TestDraftPlannerStepSizes(t *testing.T) {
	for n, want := range map[int]bool{1: true, 9: true, 16: true, 17: false, 23: false, 24: true, 100: false, 104: true} {
		if got := engine.StepSize(n); got != want {
			t.Errorf("StepSize(%d) = %v, want %v", n, got, want)
		}
	}
	p := engine.NewDraftPlanner(256)
	cost := func(n int) float64 { return 1 + 0.004*float64(n) }
	measure(p, 12, cost(12))
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := map[int]bool{}
	var offers []engine.DraftOffer
	for range 200 {
		offers = offers[:0]
		for range 12 {
			kept := rng.IntN(20)
			offers = append(offers, engine.DraftOffer{Max: rng.IntN(9), Record: engine.DraftRecord{Tried: [2]int{20, 40}, Kept: [2]int{kept, 2 * kept}}})
		}
		plan := p.Plan(nil, 12, offers, 96)
		n := 12
		for i, d := range plan {
			if d > offers[i].Max {
				t.Fatalf("offer %d: %d tokens of a %d-token draft", i, d, offers[i].Max)
			}
			n += d
		}
		if n != 12 && !engine.StepSize(n) {
			t.Fatalf("plan %v: a step of %d tokens, off the ladder", plan, n)
		}
		sizes[n] = true
		p.Observe(n, cost(n))
	}
	if len(sizes) > 12 || len(sizes) < 3 {
		t.Errorf("200 steps of 12 drafting sequences took %d sizes %v, want 3-12", len(sizes), slices.Sorted(maps.Keys(sizes)))
	}
}

// TestDraftPlannerStaleBase: a base size measured once in a slow spell
// (2.5x its cost) makes drafting look cheap; while the planner drafts every
// step the base is not measured, so every refreshAfter steps one step goes
// without drafts and its time replaces the base's cost. Twelve sequences
// whose steps cost in proportion to their tokens (a CPU) then stop
// drafting; before the refresh they drafted every step until the cost was
// forgotten (512 steps).
func TestDraftPlannerStaleBase(t *testing.T) {
	keen := engine.DraftRecord{Tried: [2]int{20, 60}, Kept: [2]int{18, 57}}
	p := engine.NewDraftPlanner(128)
	measure(p, 12, 30)
	var offers []engine.DraftOffer
	for range 12 {
		offers = append(offers, engine.DraftOffer{Max: 4, Record: keen})
	}
	var sizes []int
	for range 160 {
		n := 12
		for _, d := range p.Plan(nil, 12, offers, 48) {
			n += d
		}
		p.Observe(n, float64(n))
		sizes = append(sizes, n)
	}
	plain := 0
	for _, n := range sizes[80:] {
		if n == 12 {
			plain++
		}
	}
	if plain < 76 {
		t.Errorf("step sizes %v: want the last 80 steps (nearly) without drafts once the base is measured again", sizes)
	}
}

// TestDraftPlannerReach: a batch of 12 whose steps cost in proportion to
// their tokens (a CPU) tries no step larger than twice the largest size
// measured, so it does not try sizes of 40-72 tokens before it knows the
// 24-token step's cost, and stops drafting by the seventh step.
func TestDraftPlannerReach(t *testing.T) {
	keen := engine.DraftRecord{Tried: [2]int{20, 60}, Kept: [2]int{15, 54}}
	p := engine.NewDraftPlanner(128)
	measure(p, 1, 1)
	measure(p, 12, 6)
	var offers []engine.DraftOffer
	for range 12 {
		offers = append(offers, engine.DraftOffer{Max: 8, Record: keen})
	}
	var sizes []int
	largest := 12
	for range 40 {
		n := 12
		for _, d := range p.Plan(nil, 12, offers, 96) {
			n += d
		}
		if n > 2*largest {
			t.Fatalf("step sizes %v, then %d: more than twice the largest measured (%d)", sizes, n, largest)
		}
		p.Observe(n, 0.5*float64(n))
		sizes = append(sizes, n)
		if len(sizes) >= 3 && sizes[len(sizes)-3] == n && sizes[len(sizes)-2] == n {
			largest = max(largest, n) // measured once its two warm-up steps have run
		}
	}
	for _, n := range sizes[6:] {
		if n != 12 {
			t.Fatalf("step sizes %v: want no drafts from the seventh step", sizes)
		}
	}
}

// TestDraftPlannerBaseAboveReach: a base size past the reach of the sizes
// measured (20 sequences, only one-token steps measured) drafts nothing
// and does not fail.
func TestDraftPlannerBaseAboveReach(t *testing.T) {
	p := engine.NewDraftPlanner(64)
	measure(p, 1, 1)
	offers := make([]engine.DraftOffer, 20)
	for i := range offers {
		offers[i] = engine.DraftOffer{Max: 4}
	}
	if got := p.Plan(nil, 20, offers, 40); slices.ContainsFunc(got, func(d int) bool { return d != 0 }) {
		t.Errorf("plan %v, want no drafts", got)
	}
}

// TestDraftPlannerRandom: random bases (growing and shrinking batches),
// offers, limits and step times, nonsense times included: Plan never
// fails, never feeds more of a draft than it has, keeps within the limit
// and the planner's steps, and drafting steps take ladder sizes.
func TestDraftPlannerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const maxTokens = 96
	p := engine.NewDraftPlanner(maxTokens)
	var offers []engine.DraftOffer
	for i := range 20000 {
		base := 1 + rng.IntN(40)
		offers = offers[:0]
		for range rng.IntN(min(base, 16) + 1) {
			tried := rng.IntN(50)
			offers = append(offers, engine.DraftOffer{Max: rng.IntN(10),
				Record: engine.DraftRecord{Tried: [2]int{tried, 2 * tried}, Kept: [2]int{rng.IntN(tried + 1), rng.IntN(2*tried + 1)}}})
		}
		limit := rng.IntN(100)
		plan := p.Plan(nil, base, offers, limit)
		if len(plan) != len(offers) {
			t.Fatalf("step %d: plan %v for %d offers", i, plan, len(offers))
		}
		d := 0
		for j, k := range plan {
			if k < 0 || k > offers[j].Max {
				t.Fatalf("step %d: plan %v, offer %d has %d tokens", i, plan, j, offers[j].Max)
			}
			d += k
		}
		if d > 0 && (d > limit || base+d > maxTokens || !engine.StepSize(base+d)) {
			t.Fatalf("step %d: base %d, %d draft tokens (limit %d, steps of at most %d)", i, base, d, limit, maxTokens)
		}
		secs := float64(base+d) * (1 + rng.Float64())
		switch rng.IntN(50) {
		case 0:
			secs = 0
		case 1:
			secs = math.NaN()
		case 2:
			secs *= 100
		}
		p.Observe(base+d, secs)
		if rng.IntN(8) == 0 {
			n := rng.IntN(9)
			p.Record(n, rng.IntN(n+1))
		}
	}
}

// TestDraftPlannerWarmUp: by default a size's first two steps are not
// measured (a GPU sets each new step size up); with SetWarmUp(0), as the
// engine sets on a CPU, the first one is.
func TestDraftPlannerWarmUp(t *testing.T) {
	keen := engine.DraftRecord{Tried: [2]int{20, 60}, Kept: [2]int{18, 57}}
	plan := func(p *engine.DraftPlanner) int {
		return p.Plan(nil, 1, []engine.DraftOffer{{Max: 4, Record: keen}}, 4)[0]
	}
	gpu, cpu := engine.NewDraftPlanner(16), engine.NewDraftPlanner(16)
	cpu.SetWarmUp(0)
	gpu.Observe(1, 1)
	cpu.Observe(1, 1)
	if d := plan(gpu); d != 0 {
		t.Errorf("default warm-up: one step of 1 token seen, plan %d draft tokens, want 0 (nothing measured yet)", d)
	}
	if d := plan(cpu); d == 0 {
		t.Error("no warm-up: one step of 1 token measured, plan no drafts, want some (larger sizes are tried)")
	}
}
