package engine_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
)

// repetitive prompts: text whose continuation repeats what it holds (code
// under change), where prompt lookup finds drafts the model keeps.
var repetitive = []string{
	"func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n\nfunc mul(a, b int) int {\n\treturn",
	"package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"one\")\n\tfmt.Println(\"two\")\n\tfmt.Println(\"three\")\n\tfmt.Println(",
}

// decode runs reqs together in one engine until all are done and returns
// their generated tokens, stop reasons and stats.
func decode(t *testing.T, l *engine.Loaded, reqs []engine.Request) ([][]int, []engine.Stats) {
	t.Helper()
	seqs := make([]*engine.Sequence, len(reqs))
	for i, r := range reqs {
		s, err := l.NewSequence(r)
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = s
	}
	for slices.ContainsFunc(seqs, func(s *engine.Sequence) bool { return !s.Done() }) {
		if _, err := l.Step(seqs, 0); err != nil {
			t.Fatal(err)
		}
	}
	toks := make([][]int, len(seqs))
	stats := make([]engine.Stats, len(seqs))
	for i, s := range seqs {
		toks[i] = slices.Clone(s.Tokens()[len(reqs[i].Prompt):])
		stats[i] = s.Stats()
		l.Release(s)
	}
	if l.Pool.FreeBlocks() != l.Pool.Blocks() {
		t.Errorf("%d of %d blocks still held after every sequence was released", l.Pool.Blocks()-l.Pool.FreeBlocks(), l.Pool.Blocks())
	}
	return toks, stats
}

// TestLookupEqualsPlain: decoding with prompt lookup gives exactly the
// tokens (and stop reasons and counts) of plain decoding, greedy and
// sampled (a sampled token's draw is keyed by its position, so the draws
// of rejected draft positions change nothing), for drafts of 1 to 8
// tokens, one sequence and six in one batch, with and without the prefix
// cache and a repetition penalty, against max-token limits that end inside
// a draft, whole drafts (LookupWhole) and the DraftPlanner's; and on the
// repetitive prompts whole drafts are kept.
func TestLookupEqualsPlain(t *testing.T) {
	texts := append(append(slices.Clone(repetitive), prompts[:2]...), repetitive...)
	plain := load(t, engine.Options{Ctx: 256, MaxSeqs: 6})
	mk := func(l *engine.Loaded) []engine.Request {
		reqs := make([]engine.Request, len(texts))
		for i, p := range texts {
			reqs[i] = engine.Request{Prompt: l.EncodePrompt(p), MaxTokens: 37 + 10*i, IgnoreEOS: i%2 == 0}
			if i >= 4 { // the repetitive prompts again, sampled
				reqs[i].Sampling = sample.Options{Temperature: 0.8, TopP: 0.95, Seed: uint64(7 + i)}
			}
			if i == 1 || i == 3 || i == 5 { // each draft position penalizes the draft tokens before it
				reqs[i].Sampling.RepeatPenalty, reqs[i].Sampling.RepeatWindow = 1.2, 6
			}
		}
		return reqs
	}
	var want [][]int
	var wantStats []engine.Stats
	for _, r := range mk(plain) {
		w, st := decode(t, plain, []engine.Request{r})
		want = append(want, w[0])
		wantStats = append(wantStats, st[0])
	}
	type variant struct {
		k             int
		prefix, whole bool
	}
	var variants []variant
	for _, k := range []int{1, 3, 8} {
		for _, prefix := range []bool{false, true} {
			variants = append(variants, variant{k, prefix, true})
		}
	}
	// the DraftPlanner's lengths, which follow the machine's step times
	variants = append(variants, variant{8, false, false}, variant{8, true, false})
	for _, v := range variants {
		k, prefix := v.k, v.prefix
		l := load(t, engine.Options{Ctx: 256, MaxSeqs: 6, Lookup: k, PrefixCache: prefix, LookupWhole: v.whole})
		for _, together := range []bool{false, true} {
			t.Run(fmt.Sprintf("lookup%d/prefix=%v/whole=%v/batch=%v", k, prefix, v.whole, together), func(t *testing.T) {
				reqs := mk(l)
				var got [][]int
				var stats []engine.Stats
				if together {
					got, stats = decode(t, l, reqs)
				} else {
					for _, r := range reqs {
						g, st := decode(t, l, []engine.Request{r})
						got, stats = append(got, g[0]), append(stats, st[0])
					}
				}
				for i := range reqs {
					if !slices.Equal(got[i], want[i]) {
						t.Errorf("prompt %d: with lookup %v\nplain %v", i, got[i], want[i])
					}
					if stats[i].StopReason != wantStats[i].StopReason || stats[i].GeneratedTokens != wantStats[i].GeneratedTokens {
						t.Errorf("prompt %d: %s after %d tokens, plain %s after %d", i, stats[i].StopReason, stats[i].GeneratedTokens,
							wantStats[i].StopReason, wantStats[i].GeneratedTokens)
					}
					if stats[i].Accepted > stats[i].Drafted {
						t.Errorf("prompt %d: %d of %d drafted tokens accepted", i, stats[i].Accepted, stats[i].Drafted)
					}
				}
				for _, i := range []int{0, 1, 4, 5} { // the repetitive prompts, greedy and sampled
					if v.whole && stats[i].Accepted < stats[i].GeneratedTokens/4 {
						t.Errorf("repetitive prompt %d: %d of %d drafted tokens kept, for %d generated", i, stats[i].Accepted, stats[i].Drafted, stats[i].GeneratedTokens)
					}
					t.Logf("prompt %d: %d generated, %d drafted, %d kept", i, stats[i].GeneratedTokens, stats[i].Drafted, stats[i].Accepted)
				}
			})
		}
	}
}

// BenchmarkVerifyStep: what a step that feeds n tokens of one sequence
// with logits for each (a prompt-lookup step with n-1 draft tokens) costs
// against a one-token decoding step, after a 64-token prompt. The model is
// $UPG_BENCH_MODEL (default the demo model), the device
// $UPG_BENCH_DEVICE (default cpu); ms/step is the figure.
//
//	UPG_BENCH_MODEL=/tmp/phi4.upg go test ./engine -run XXX -bench VerifyStep -benchtime 8x -count 2
func BenchmarkVerifyStep(b *testing.B) {
	path := os.Getenv("UPG_BENCH_MODEL")
	if path == "" {
		path = demo
	}
	device := os.Getenv("UPG_BENCH_DEVICE")
	if device == "" {
		device = "cpu"
	}
	l, err := engine.Load(path, engine.Options{Ctx: 512, Device: device, Lookup: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const seq = 1
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = 1000 + 7*i
	}
	st, err := l.Pool.StepFor(seq, prompt, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Context().Forward(st, l.Pool.KV()); err != nil {
		b.Fatal(err)
	}
	l.Pool.Commit(seq, len(prompt))
	for _, n := range []int{1, 2, 3, 5, 9} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			feed := prompt[:n]
			for b.Loop() {
				st, err := l.Pool.StepFor(seq, feed, true)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Context().Forward(st, l.Pool.KV()); err != nil {
					b.Fatal(err)
				}
				l.Pool.Commit(seq, n)
				l.Pool.Truncate(seq, len(prompt))
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
		})
	}
}

// BenchmarkLookupCorpus: greedy decoding of 128 tokens after each of 12
// excerpts of the evaluation text (Go sources and prose), one after
// another (seqs=1) or all 12 in one batch (seqs=12), with prompt lookup
// drafts of up to 0 (off), 2, 4 and 8 tokens fed whole (LookupWhole) or as
// the DraftPlanner chooses (plan): tokens per second of decoding (the
// generated tokens over the time the sequences took) and the share of
// drafted tokens kept. $UPG_BENCH_DEVICE picks the device (default cpu),
// $UPG_BENCH_TEXT the text (default the evaluation corpus).
//
//	go test ./engine -run XXX -bench LookupCorpus -benchtime 2x -count 3
func BenchmarkLookupCorpus(b *testing.B) {
	path := os.Getenv("UPG_BENCH_TEXT")
	if path == "" {
		path = "../../shared/corpus/miniphi_eval_250k.txt"
	}
	text, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	device := os.Getenv("UPG_BENCH_DEVICE")
	if device == "" {
		device = "cpu"
	}
	type variant struct {
		k     int
		whole bool
	}
	for _, seqs := range []int{1, 12} {
		for _, v := range []variant{{0, true}, {2, true}, {4, true}, {8, true}, {8, false}, {16, false}} {
			name := fmt.Sprintf("seqs=%d/lookup=%d", seqs, v.k)
			if !v.whole {
				name += "/plan"
			}
			b.Run(name, func(b *testing.B) {
				l, err := engine.Load(demo, engine.Options{Ctx: 1024, Device: device, MaxSeqs: seqs, Lookup: v.k, LookupWhole: v.whole})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				var gen, drafted, kept int
				var spent time.Duration
				for b.Loop() {
					for first := 0; first < 12; first += seqs {
						var batch []*engine.Sequence
						for i := first; i < first+seqs; i++ {
							chunk := string(text[i*20000 : i*20000+1500])
							s, err := l.NewSequence(engine.Request{Prompt: l.EncodePrompt(chunk), MaxTokens: 128, IgnoreEOS: true})
							if err != nil {
								b.Fatal(err)
							}
							batch = append(batch, s)
						}
						// prefill first (not timed), then decode together
						for slices.ContainsFunc(batch, func(s *engine.Sequence) bool { return s.Stats().GeneratedTokens == 0 }) {
							if _, err := l.Step(batch, 0); err != nil {
								b.Fatal(err)
							}
						}
						start := time.Now()
						for slices.ContainsFunc(batch, func(s *engine.Sequence) bool { return !s.Done() }) {
							if _, err := l.Step(batch, 0); err != nil {
								b.Fatal(err)
							}
						}
						spent += time.Since(start)
						for _, s := range batch {
							st := s.Stats()
							gen += st.GeneratedTokens - 1
							drafted += st.Drafted
							kept += st.Accepted
							l.Release(s)
						}
					}
				}
				b.ReportMetric(float64(gen)/spent.Seconds(), "decode_tok/s")
				if p := l.DraftPlanner(); p != nil {
					b.Logf("planner: %v", p)
				}
				if g, ok := l.Model.Backend().(cuda.GraphReporter); ok {
					st := g.GraphStats()
					b.Logf("%v", st)
					b.ReportMetric(float64(st.Eager+st.Captured), "setup_steps")
				}
				if drafted > 0 {
					b.ReportMetric(float64(kept)/float64(drafted), "kept/drafted")
					b.ReportMetric(float64(kept)/float64(gen), "kept/token")
				}
			})
		}
	}
}

// TestLookupGrowingBatch: a server's batch grows from one sequence, whose
// steps taught the planner small sizes only, to 20 drafting sequences;
// every text is plain greedy decoding's. (A planner that indexed an empty
// estimate for a base past its reach panicked here.)
func TestLookupGrowingBatch(t *testing.T) {
	plain := load(t, engine.Options{Ctx: 256, MaxSeqs: 20, StepTokens: 256})
	l := load(t, engine.Options{Ctx: 256, MaxSeqs: 20, StepTokens: 256, Lookup: 8})
	mk := func(l *engine.Loaded, n int) []engine.Request {
		reqs := make([]engine.Request, n)
		for i := range reqs {
			reqs[i] = engine.Request{Prompt: l.EncodePrompt(repetitive[i%len(repetitive)]), MaxTokens: 12 + i%5, IgnoreEOS: true}
		}
		return reqs
	}
	if _, st := decode(t, l, mk(l, 1)); st[0].Drafted == 0 {
		t.Fatal("one repetitive sequence drafted nothing")
	}
	want, _ := decode(t, plain, mk(plain, 20))
	got, stats := decode(t, l, mk(l, 20))
	drafted := 0
	for i := range got {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("sequence %d: with lookup %v\nplain %v", i, got[i], want[i])
		}
		drafted += stats[i].Drafted
	}
	t.Logf("20 together: %d tokens drafted; planner %v", drafted, l.DraftPlanner())
}
