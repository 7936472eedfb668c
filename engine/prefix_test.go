package engine_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/engine"
)

// TestPrefixCache runs requests sharing a long prefix (a system prompt)
// with the prefix cache: later ones reuse the cached blocks, and every
// request produces exactly the tokens it produces without the cache.
func TestPrefixCache(t *testing.T) {
	opts := engine.Options{Ctx: 512, KVCache: backend.KVF32, MaxSeqs: 4, StepTokens: 64}
	plain := load(t, opts)
	opts.PrefixCache = true
	cached := load(t, opts)
	system := strings.Repeat("You are a careful Go programmer who writes small, clear functions. ", 8)
	var reqs []engine.Request
	for _, p := range prompts[:4] {
		reqs = append(reqs, engine.Request{Prompt: cached.EncodePrompt(system + p), MaxTokens: 10, IgnoreEOS: true})
	}
	want := alone(t, plain, reqs)
	bs := cached.Pool.BlockSize()
	common := 0
	for common < len(reqs[0].Prompt) && reqs[0].Prompt[common] == reqs[1].Prompt[common] {
		common++
	}
	if common < 2*bs {
		t.Fatalf("shared prefix of %d tokens is too short for the test", common)
	}
	for round := range 2 {
		for i, r := range reqs {
			s, err := cached.NewSequence(r)
			if err != nil {
				t.Fatal(err)
			}
			if c := cached.CachedPrefix(s); (i > 0 || round > 0) && c < common/bs*bs {
				t.Errorf("round %d request %d: %d positions cached, want ≥ %d", round, i, c, common/bs*bs)
			}
			for !s.Done() {
				if _, err := cached.Step([]*engine.Sequence{s}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(s.Tokens(), want[i]) {
				t.Errorf("round %d request %d: with the prefix cache %v\nwithout %v", round, i, s.Tokens()[len(r.Prompt):], want[i][len(r.Prompt):])
			}
			reused := s.Stats().ReusedTokens
			if round == 1 && reused != (len(r.Prompt)-1)/bs*bs {
				t.Errorf("round 2 request %d reused %d tokens, want its whole prompt's full blocks %d", i, reused, (len(r.Prompt)-1)/bs*bs)
			}
			cached.Release(s)
		}
	}
	if cached.Pool.FreeBlocks() != cached.Pool.Blocks() || cached.Pool.CachedBlocks() == 0 {
		t.Errorf("after release: %d of %d free, %d cached", cached.Pool.FreeBlocks(), cached.Pool.Blocks(), cached.Pool.CachedBlocks())
	}
	// Batched together, sharing blocks while they run: still the same tokens.
	var seqs []*engine.Sequence
	for _, r := range reqs {
		s, err := cached.NewSequence(r)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	for slices.ContainsFunc(seqs, func(s *engine.Sequence) bool { return !s.Done() }) {
		if _, err := cached.Step(seqs, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range seqs {
		if !slices.Equal(s.Tokens(), want[i]) {
			t.Errorf("batched request %d differs", i)
		}
		cached.Release(s)
	}
}
