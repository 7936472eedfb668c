// Package decodetest holds test helpers that run a model's decode step the
// way the engine does (model_test and the CPU backend's tests share them).
package decodetest

import (
	"testing"

	"github.com/upg-ai/upg/model"
)

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
