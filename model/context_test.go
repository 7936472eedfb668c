package model_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/upg-ai/upg/backend"
)

// TestContextsRunConcurrently runs two contexts over one model from two
// goroutines at once (run it with -race) and checks each gets what it gets
// alone.
func TestContextsRunConcurrently(t *testing.T) {
	m := openModel(t, filepath.Join(sharedModels, "TinyStories-656K"))
	prompts := [][]int{{1, 45, 496, 173, 170, 291}, {1, 311, 250, 26, 93, 289, 72, 47}}
	greedy := func(p []int) []int {
		run, err := m.NewSingle(64, backend.KVF32)
		if err != nil {
			t.Error(err)
			return nil
		}
		toks := slices.Clone(p)
		next := toks
		for len(toks) < len(p)+24 {
			lg, err := run.Forward(next, len(next)-1)
			if err != nil {
				t.Error(err)
				return nil
			}
			tok := argmax(lg[:m.Config.Vocab])
			toks = append(toks, tok)
			next = []int{tok}
		}
		return toks
	}
	want := [][]int{greedy(prompts[0]), greedy(prompts[1])}
	got := make([][]int, 2)
	var wg sync.WaitGroup
	for round := 0; round < 2; round++ {
		for i := range prompts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = greedy(prompts[i])
			}()
		}
		wg.Wait()
		for i := range prompts {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("round %d, context %d: %v concurrently, %v alone", round, i, got[i], want[i])
			}
		}
	}
}
