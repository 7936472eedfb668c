// Package decodetest holds test helpers that open a model and run its decode
// step the way the engine does (the model's, the engine's and the backends'
// tests share them).
package decodetest

import (
	"testing"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/model"
)

// OpenWeights opens the checkpoint at path (closed when the test ends) and
// loads its weights, failing the test on error.
func OpenWeights(t testing.TB, path string) (*checkpoint.Checkpoint, *model.Weights) {
	t.Helper()
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	w, err := model.LoadWeights(ck.Config, ck.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	return ck, w
}

// StepAllocs measures the allocations of one decode step after warm-up, as
// the engine makes it: reserve a position, forward one token with the
// step's slices reused, commit, read the logits. run is left with its
// sequence truncated and extended again on each of the measured steps.
func StepAllocs(t testing.TB, run *model.Single) float64 {
	t.Helper()
	if _, err := run.Forward([]int{1, 2, 3, 4}, 3); err != nil { // warm-up
		t.Fatal(err)
	}
	st, err := run.Pool.StepFor(0, []int{5}, false)
	if err != nil {
		t.Fatal(err)
	}
	run.Pool.Truncate(0, 4)
	return testing.AllocsPerRun(10, func() {
		pos := run.Len()
		if err := run.Pool.Reserve(0, 1); err != nil {
			t.Fatal(err)
		}
		st.Pos[0], st.Slot[0], st.Tables[0] = int32(pos), run.Pool.Slot(0, pos), run.Pool.Table(0)
		if err := run.Ctx.Forward(st, run.Pool.KV()); err != nil {
			t.Fatal(err)
		}
		run.Pool.Commit(0, 1)
		_ = run.Ctx.ReadLogits()
	})
}
