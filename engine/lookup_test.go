package engine_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/upg-ai/upg/engine"
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

// TestLookupEqualsPlain: greedy decoding with prompt lookup gives exactly
// the tokens (and stop reasons and counts) of plain greedy decoding, for
// drafts of 1 to 8 tokens, one sequence and four in one batch, with and
// without the prefix cache and a repetition penalty, against max-token
// limits that end inside a draft; and on the repetitive prompts it keeps
// draft tokens.
func TestLookupEqualsPlain(t *testing.T) {
	texts := append(slices.Clone(repetitive), prompts[:2]...)
	plain := load(t, engine.Options{Ctx: 256, MaxSeqs: 4})
	mk := func(l *engine.Loaded) []engine.Request {
		reqs := make([]engine.Request, len(texts))
		for i, p := range texts {
			reqs[i] = engine.Request{Prompt: l.EncodePrompt(p), MaxTokens: 37 + 10*i, IgnoreEOS: i%2 == 0}
			if i == 1 || i == 3 { // each draft position penalizes the draft tokens before it
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
	for _, k := range []int{1, 3, 8} {
		for _, prefix := range []bool{false, true} {
			l := load(t, engine.Options{Ctx: 256, MaxSeqs: 4, Lookup: k, PrefixCache: prefix})
			for _, together := range []bool{false, true} {
				t.Run(fmt.Sprintf("lookup%d/prefix=%v/batch=%v", k, prefix, together), func(t *testing.T) {
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
					for i := range repetitive {
						if stats[i].Accepted < stats[i].GeneratedTokens/4 {
							t.Errorf("repetitive prompt %d: %d of %d drafted tokens kept, for %d generated", i, stats[i].Accepted, stats[i].Drafted, stats[i].GeneratedTokens)
						}
						t.Logf("prompt %d: %d generated, %d drafted, %d kept", i, stats[i].GeneratedTokens, stats[i].Drafted, stats[i].Accepted)
					}
				})
			}
		}
	}
}
