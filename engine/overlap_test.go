package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tokenizer"
)

// overlapEngine is an engine on the CPU backend made a Pipeliner
// (backend.SyncPipeline), so that its decoding steps take the overlapped
// path, with overlap on or off.
func overlapEngine(t *testing.T, cfg engine.Config, on bool) *engine.Engine {
	t.Helper()
	ck, tok, w := openDemo(t)
	cb := cpu.New(2)
	t.Cleanup(cb.Close)
	m, err := model.New(ck.Config, w, backend.SyncPipeline(cb))
	if err != nil {
		t.Fatal(err)
	}
	cfg.NoOverlap = !on
	e, err := engine.New(m, tok, ck.Template(tok), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// openDemo opens the demo model: its checkpoint (closed at the test's end),
// tokenizer and weights.
func openDemo(tb testing.TB) (*checkpoint.Checkpoint, tokenizer.Tokenizer, *model.Weights) {
	tb.Helper()
	ck, err := checkpoint.Open(demo)
	if err != nil {
		tb.Fatalf("demo model: %v", err)
	}
	tb.Cleanup(func() { ck.Close() })
	tok, err := ck.Tokenizer()
	if err != nil {
		tb.Fatal(err)
	}
	w, err := model.LoadWeights(ck.Config, ck.Tensors)
	if err != nil {
		tb.Fatal(err)
	}
	return ck, tok, w
}

// overlapRun is what a scripted batch did: each sequence's tokens, stop
// reason and the text its outputs carried.
type overlapRun struct {
	tokens  [][]int
	reasons []string
	texts   []string
	outputs int
}

// runScript steps reqs as a server would: sequence i joins at step 2i,
// sequence cancel (when ≥ 0) is cancelled once it has 8 tokens and
// sequence release is released (not finished) once it has 11; finished
// sequences are released when they finish.
func runScript(t *testing.T, e *engine.Engine, reqs []engine.Request, cancel, release int) overlapRun {
	t.Helper()
	r := overlapRun{tokens: make([][]int, len(reqs)), reasons: make([]string, len(reqs)), texts: make([]string, len(reqs))}
	var seqs []*engine.Sequence
	index := map[*engine.Sequence]int{}
	released := map[int]bool{}
	finish := func(i int, s *engine.Sequence) {
		if released[i] {
			return
		}
		released[i] = true
		r.tokens[i] = slices.Clone(s.Tokens())
		r.reasons[i] = s.Stats().StopReason
		e.Release(s)
	}
	joined := 0
	generated := func(s *engine.Sequence) int { return s.Stats().GeneratedTokens }
	for step := 0; step < 400; step++ {
		if joined < len(reqs) && step >= 2*joined {
			s, err := e.NewSequence(reqs[joined])
			if err != nil {
				t.Fatal(err)
			}
			index[s] = joined
			seqs = append(seqs, s)
			joined++
		}
		for _, s := range slices.Clone(seqs) {
			switch i := index[s]; {
			case i == cancel && !s.Done() && generated(s) >= 8:
				s.Cancel()
			case i == release && !s.Done() && generated(s) >= 11:
				finish(i, s)
				seqs = slices.DeleteFunc(seqs, func(x *engine.Sequence) bool { return x == s }) // out of the batch
			}
		}
		if joined == len(reqs) && !slices.ContainsFunc(seqs, func(s *engine.Sequence) bool { return !s.Done() }) {
			break
		}
		outs, err := e.Step(seqs, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.outputs += len(outs)
		for _, o := range outs {
			r.texts[index[o.Seq]] += o.Text
		}
		for _, s := range seqs {
			// a sequence holds positions for its tokens only (a pending
			// step's is its last token's)
			if n := e.Pool.Len(s.ID); n > len(s.Tokens()) || s.Done() && n > len(s.Tokens())-1 && s.Stats().StopReason != "eos" && s.Stats().StopReason != "cancelled" {
				t.Fatalf("step %d: sequence %d (%q) holds %d positions for %d tokens", step, index[s], s.Stats().StopReason, n, len(s.Tokens()))
			}
		}
		for _, s := range seqs {
			if s.Done() {
				finish(index[s], s)
			}
		}
	}
	return r
}

// TestOverlapEqualsPlain: batches decoded with host overlap give each
// sequence the tokens, stop reasons and text they get without it, through
// sequences joining while others decode, stops by EOS, by a stop string
// and by length, a cancel and a release in the middle of the pipeline, a
// sampled sequence and one with a repetition penalty (which the pipeline
// leaves out); every KV block comes back.
func TestOverlapEqualsPlain(t *testing.T) {
	cfg := engine.Config{Ctx: 160, MaxSeqs: 6, StepTokens: 64}
	plain, over := overlapEngine(t, cfg, false), overlapEngine(t, cfg, true)
	prompt := func(i int) []int { return plain.EncodePrompt(prompts[i%len(prompts)]) }
	cases := []struct {
		name            string
		reqs            []engine.Request
		cancel, release int
	}{
		{name: "greedy", reqs: []engine.Request{
			{Prompt: prompt(0), MaxTokens: 30, IgnoreEOS: true},
			{Prompt: prompt(1), MaxTokens: 24, IgnoreEOS: true},
			{Prompt: prompt(2), MaxTokens: 40, IgnoreEOS: true},
		}, cancel: -1, release: -1},
		{name: "stops", reqs: []engine.Request{
			{Prompt: prompt(3), MaxTokens: 60},
			{Prompt: prompt(4), MaxTokens: 60, Stop: []string{"\n"}},
			{Prompt: prompt(5), MaxTokens: 60, Stop: []string{" the"}},
			{Prompt: prompt(6), MaxTokens: 7},
		}, cancel: -1, release: -1},
		{name: "sampled", reqs: []engine.Request{
			{Prompt: prompt(7), MaxTokens: 33, IgnoreEOS: true, Sampling: sample.Options{Temperature: 0.9, TopP: 0.95, Seed: 7}},
			{Prompt: prompt(0), MaxTokens: 20, IgnoreEOS: true, Sampling: sample.Options{Temperature: 0.7, TopK: 40, Seed: 8}},
			{Prompt: prompt(1), MaxTokens: 20, IgnoreEOS: true, Sampling: sample.Options{Temperature: 0.8, RepeatPenalty: 1.3, Seed: 9}},
		}, cancel: -1, release: -1},
		{name: "adjusted", reqs: []engine.Request{
			{Prompt: prompt(5), MaxTokens: 30, IgnoreEOS: true, Sampling: sample.Options{LogitBias: map[int]float32{15: 3, 224: -2}}},
			{Prompt: prompt(6), MaxTokens: 24, IgnoreEOS: true, Sampling: sample.Options{Temperature: 0.8, LogitBias: map[int]float32{20: 1}, Seed: 3}},
			{Prompt: prompt(7), MaxTokens: 8, IgnoreEOS: true, Sampling: sample.Options{FrequencyPenalty: 1, PresencePenalty: 0.5}},
		}, cancel: -1, release: -1},
		{name: "cancel-release", reqs: []engine.Request{
			{Prompt: prompt(2), MaxTokens: 50, IgnoreEOS: true},
			{Prompt: prompt(3), MaxTokens: 50, IgnoreEOS: true},
			{Prompt: prompt(4), MaxTokens: 50, IgnoreEOS: true},
		}, cancel: 0, release: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := over.Overlapped()
			want := runScript(t, plain, c.reqs, c.cancel, c.release)
			got := runScript(t, over, c.reqs, c.cancel, c.release)
			for i := range c.reqs {
				if i == c.cancel || i == c.release {
					// stopped from outside once it had some tokens: a call
					// that ends the pipeline may bring two, so the count may
					// differ by one; the tokens may not
					n := min(len(got.tokens[i]), len(want.tokens[i]))
					if !slices.Equal(got.tokens[i][:n], want.tokens[i][:n]) || got.reasons[i] != want.reasons[i] || len(got.tokens[i])-len(want.tokens[i]) > 1 ||
						len(want.tokens[i])-len(got.tokens[i]) > 1 {
						t.Errorf("sequence %d (stopped from outside): overlapped %q %v, plain %q %v", i, got.reasons[i], got.tokens[i], want.reasons[i], want.tokens[i])
					}
					continue
				}
				if !slices.Equal(got.tokens[i], want.tokens[i]) || got.reasons[i] != want.reasons[i] || got.texts[i] != want.texts[i] {
					t.Errorf("sequence %d: overlapped %q %v %q\nplain %q %v %q", i, got.reasons[i], got.tokens[i][len(c.reqs[i].Prompt):], got.texts[i],
						want.reasons[i], want.tokens[i][len(c.reqs[i].Prompt):], want.texts[i])
				}
			}
			// the penalized sequence keeps its batch's steps plain while it runs
			if n := over.Overlapped() - before; n < 5 {
				t.Errorf("%d steps queued on the device's tokens, want the batch's decoding steps", n)
			}
			if plain.Overlapped() != 0 {
				t.Errorf("overlap off: %d steps overlapped", plain.Overlapped())
			}
			// one more step collects a step still pending for released sequences
			if _, err := over.Step(nil, 0); err != nil {
				t.Fatal(err)
			}
			if over.Pool.FreeBlocks() != over.Pool.Blocks() {
				t.Errorf("%d of %d blocks still held after every sequence was released", over.Pool.Blocks()-over.Pool.FreeBlocks(), over.Pool.Blocks())
			}
			t.Logf("%s: %d outputs, %d steps overlapped, reasons %v", c.name, got.outputs, over.Overlapped()-before, got.reasons)
		})
	}
}

// TestOverlapConversation: chat turns through Generate with overlap (a
// turn stopped by EOS or cut short, the next reusing the cache) give the
// text they give without it.
func TestOverlapConversation(t *testing.T) {
	cfg := engine.Config{Ctx: 256}
	plain, over := overlapEngine(t, cfg, false), overlapEngine(t, cfg, true)
	turn := func(e *engine.Engine, text string, maxTokens int, cancelAt int) string {
		var b strings.Builder
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		_, err := e.Generate(ctx, engine.Request{Prompt: e.EncodePrompt(text), MaxTokens: maxTokens}, func(s string) {
			b.WriteString(s)
			if n++; n == cancelAt {
				cancel()
			}
		})
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		return b.String()
	}
	history := "The ship sailed out of the harbour"
	historyO := history
	for i, c := range []struct{ max, cancelAt int }{{16, 0}, {12, 5}, {20, 0}, {40, 0}} {
		a := turn(plain, history, c.max, c.cancelAt)
		b := turn(over, historyO, c.max, c.cancelAt)
		if a != b {
			t.Errorf("turn %d: overlapped %q, plain %q", i, b, a)
		}
		history += a + fmt.Sprintf(" and %d", i)
		historyO += b + fmt.Sprintf(" and %d", i)
	}
	if over.Overlapped() == 0 {
		t.Errorf("no step overlapped")
	}
}

// TestOverlapAbandonedConversation: a conversation left mid-generation
// (Converse again without a cancel, as the C ABI may) while a step of it is
// pending: the new conversation reuses its id, so the old one's token must
// not land in it or in the prefix cache. A later sequence that starts with
// the old conversation's tokens gets what it gets without overlap.
func TestOverlapAbandonedConversation(t *testing.T) {
	cfg := engine.Config{Ctx: 256, MaxSeqs: 2, PrefixCache: true, BlockSize: 16}
	var outs [2][]int
	for i, on := range []bool{false, true} {
		e := overlapEngine(t, cfg, on)
		first := e.EncodePrompt(strings.Repeat("The ship sailed out of the harbour. ", 3))
		old, err := e.Converse(engine.Request{Prompt: first, MaxTokens: 100, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if _, err := e.Step([]*engine.Sequence{old}, 0); err != nil {
				t.Fatal(err)
			}
		}
		oldTokens := slices.Clone(old.Tokens())
		// a new conversation, sharing only the first block's tokens
		conv, err := e.Converse(engine.Request{Prompt: append(slices.Clone(first[:20]), e.EncodePrompt(" and then the storm came")...), MaxTokens: 30, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		for !conv.Done() {
			if _, err := e.Step([]*engine.Sequence{conv}, 0); err != nil {
				t.Fatal(err)
			}
		}
		if got := old.Tokens(); !slices.Equal(got, oldTokens) {
			t.Errorf("overlap %v: the abandoned conversation got %d more tokens", on, len(got)-len(oldTokens))
		}
		s, err := e.NewSequence(engine.Request{Prompt: oldTokens, MaxTokens: 12, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		for !s.Done() {
			if _, err := e.Step([]*engine.Sequence{s}, 0); err != nil {
				t.Fatal(err)
			}
		}
		outs[i] = slices.Clone(s.Tokens()[len(oldTokens):])
		if on && e.Overlapped() == 0 {
			t.Errorf("no step overlapped")
		}
	}
	if !slices.Equal(outs[1], outs[0]) {
		t.Errorf("after the abandoned conversation: overlapped %v, plain %v", outs[1], outs[0])
	}
}

// failingPipe is a Pipeliner whose failAt-th SampleAsync's wait fails (as a
// GPU fault would surface while a step is pending).
type failingPipe struct {
	backend.Backend // backend.SyncPipeline's
	failAt, calls   int
}

func (f *failingPipe) SampleAsync(logits backend.Buffer, vocab int, reqs []backend.SampleRequest) (backend.SampleWait, error) {
	wait, err := f.Backend.(backend.Pipeliner).SampleAsync(logits, vocab, reqs)
	if f.calls++; err == nil && f.calls == f.failAt {
		return func([]backend.SampleResult) error { return errors.New("injected: the device failed") }, nil
	}
	return wait, err
}

func (f *failingPipe) DeviceTokens(w backend.Weight) bool {
	return f.Backend.(backend.Pipeliner).DeviceTokens(w)
}

// TestOverlapWaitFails: when a pending step's tokens cannot be read, Step
// returns the error, the step queued after it gives back the positions it
// took, every block returns once the sequences are released, and the engine
// then decodes as before.
func TestOverlapWaitFails(t *testing.T) {
	ck, tok, w := openDemo(t)
	cb := cpu.New(2)
	t.Cleanup(cb.Close)
	fp := &failingPipe{Backend: backend.SyncPipeline(cb), failAt: 6}
	m, err := model.New(ck.Config, w, fp)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(m, tok, ck.Template(tok), engine.Config{Ctx: 160, MaxSeqs: 3})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []*engine.Sequence
	for i := range 3 {
		s, err := e.NewSequence(engine.Request{Prompt: e.EncodePrompt(prompts[i]), MaxTokens: 30, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	var failed error
	for range 20 {
		if _, err := e.Step(seqs, 0); err != nil {
			failed = err
			break
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "injected") {
		t.Fatalf("Step after the failed wait: %v, want the injected error", failed)
	}
	for _, s := range seqs {
		if n := e.Pool.Len(s.ID); n > len(s.Tokens()) {
			t.Errorf("sequence %d holds %d positions for %d tokens after the failure", s.ID, n, len(s.Tokens()))
		}
		e.Release(s)
	}
	if _, err := e.Step(nil, 0); err != nil {
		t.Fatal(err)
	}
	if e.Pool.FreeBlocks() != e.Pool.Blocks() {
		t.Errorf("%d of %d blocks held after the failure and the releases", e.Pool.Blocks()-e.Pool.FreeBlocks(), e.Pool.Blocks())
	}
	// the engine goes on: a fresh sequence decodes what a plain engine does
	plain := overlapEngine(t, engine.Config{Ctx: 160, MaxSeqs: 3}, false)
	run := func(e *engine.Engine) []int {
		s, err := e.NewSequence(engine.Request{Prompt: e.EncodePrompt(prompts[3]), MaxTokens: 12, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		for !s.Done() {
			if _, err := e.Step([]*engine.Sequence{s}, 0); err != nil {
				t.Fatal(err)
			}
		}
		return slices.Clone(s.Tokens())
	}
	if got, want := run(e), run(plain); !slices.Equal(got, want) {
		t.Errorf("after the failure: %v, plain %v", got, want)
	}
}
