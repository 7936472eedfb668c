package engine

import (
	"slices"
	"sort"
	"testing"

	"github.com/upg-ai/upg/sample"
)

// TestGPULookup (GPU): prompt lookup on the CUDA backend. Greedy: the
// tokens of the GPU's plain greedy decoding, up to a near-tie of its top
// two logits (the multi-token kernels round differently from the
// one-token ones), with drafts kept on a prompt that repeats itself (whole
// drafts; the DraftPlanner's, whose lengths follow the step times, for the
// text only).
// Sampled (every position sampled by upg_sample, keyed by the seed and
// its position): a seed fixes the text. Every block is freed.
func TestGPULookup(t *testing.T) {
	needGPU(t)
	const ctx, steps = 256, 48
	prompt := "func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n\nfunc mul(a, b int) int {\n\treturn"
	plain := mustLoad(t, Options{Device: "cuda", Ctx: ctx})
	want := greedy(t, plain.Engine, prompt, steps)
	for _, whole := range []bool{true, false} {
		l := mustLoad(t, Options{Device: "cuda", Ctx: ctx, Lookup: 4, LookupWhole: whole})
		lookupGPU(t, l, prompt, steps, want, whole)
	}
}

// lookupGPU decodes prompt greedy and sampled with l (Lookup set) and
// checks it against want, plain greedy decoding (TestGPULookup); whole:
// drafts fed whole, so the repetitive prompt must keep some.
func lookupGPU(t *testing.T, l *Loaded, prompt string, steps int, want greedyRun, whole bool) {
	t.Helper()
	run := func(o sample.Options) ([]int, Stats) {
		s, err := l.NewSequence(Request{Prompt: l.EncodePrompt(prompt), MaxTokens: steps, IgnoreEOS: true, Sampling: o})
		if err != nil {
			t.Fatal(err)
		}
		for !s.Done() {
			if _, err := l.Step([]*Sequence{s}, 0); err != nil {
				t.Fatal(err)
			}
		}
		defer l.Release(s)
		return slices.Clone(s.Tokens()[len(s.Tokens())-s.Stats().GeneratedTokens:]), s.Stats()
	}
	got, st := run(sample.Options{})
	if len(got) != len(want.tokens) {
		t.Fatalf("%d tokens with lookup, %d without", len(got), len(want.tokens))
	}
	for i := range got {
		if got[i] != want.tokens[i] {
			lg := slices.Clone(want.logits[i])
			sort.Slice(lg, func(a, b int) bool { return lg[a] > lg[b] })
			if lg[0]-lg[1] > 1e-2 {
				t.Errorf("token %d: %d with lookup, %d without, whose top two logits are %.3g apart", i, got[i], want.tokens[i], lg[0]-lg[1])
			}
			break
		}
	}
	if st.Accepted > st.Drafted || whole && st.Accepted == 0 {
		t.Errorf("greedy: %d of %d drafted tokens kept", st.Accepted, st.Drafted)
	}
	t.Logf("whole=%v greedy: %d generated, %d drafted, %d kept", whole, st.GeneratedTokens, st.Drafted, st.Accepted)
	o := sample.Options{Temperature: 0.7, TopP: 0.95, Seed: 11}
	a, sa := run(o)
	b, _ := run(o)
	if !slices.Equal(a, b) {
		t.Errorf("sampled with one seed: %v, then %v", a, b)
	}
	t.Logf("whole=%v sampled: %d generated, %d drafted, %d kept", whole, sa.GeneratedTokens, sa.Drafted, sa.Accepted)
	if l.Pool.FreeBlocks() != l.Pool.Blocks() {
		t.Errorf("%d of %d blocks still held", l.Pool.Blocks()-l.Pool.FreeBlocks(), l.Pool.Blocks())
	}
}
