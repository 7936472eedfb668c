package model_test

import (
	"math"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/model"
)

// TestCompressedDecodeEveryLevel runs the demo model's compressed codes
// (3-, 4- and 5-bit Lloyd groups of 64-256, rotated) through every CPU
// kernel level this machine has — prefill, then one-token decode steps fed
// the same tokens — and checks each step's logits against the portable Go
// level's (float activations, exact levels). The int8 levels differ from it
// by their activation rounding (≤ ~0.2 here); a broken decode kernel puts
// them off by whole units (an AVX2 decode layout once gave 14).
func TestCompressedDecodeEveryLevel(t *testing.T) {
	const path = "../models/miniphi-29m.upg"
	testutil.NeedData(t, path)
	ck, w := decodetest.OpenWeights(t, path)
	prompt := []int{1, 450, 3600, 338, 263, 6501, 322, 1428, 4646, 2989}
	const steps = 12
	V := ck.Config.Vocab
	// run returns the logits of the prompt's last position and of each
	// decode step, feeding feed[i] at step i (nil: the generic path's own
	// greedy tokens, returned).
	run := func(be backend.Backend, feed []int) ([][]float32, []int) {
		m, err := model.New(ck.Config, w, be)
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.NewSingle(len(prompt)+steps+1, backend.KVF32)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := s.Forward(prompt, len(prompt)-1)
		if err != nil {
			t.Fatal(err)
		}
		out := [][]float32{append([]float32(nil), lg[:V]...)}
		var toks []int
		for i := 0; i < steps; i++ {
			tok := argmax(out[len(out)-1])
			if feed != nil {
				tok = feed[i]
			}
			toks = append(toks, tok)
			lg, err := s.Forward([]int{tok}, 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, append([]float32(nil), lg[:V]...))
		}
		return out, toks
	}
	ref := cpu.NewWithLevel(1, cpu.LevelGeneric)
	want, feed := run(ref, nil)
	ref.Close()
	seen := map[string]bool{ref.Name(): true}
	for _, k := range []string{"avx2-novnni", "avx2", "avx512", "neon"} {
		t.Setenv(cpu.KernelEnv, k)
		be := cpu.New(2)
		name := be.Name()
		if seen[name] {
			be.Close()
			continue
		}
		seen[name] = true
		got, _ := run(be, feed)
		be.Close()
		worst, at := 0.0, 0
		for i := range want {
			for j, v := range want[i] {
				if d := math.Abs(float64(got[i][j] - v)); d > worst || math.IsNaN(d) {
					worst, at = d, i
				}
			}
		}
		t.Logf("%s: max |logit − generic| %.3g (step %d of %d)", name, worst, at, steps)
		if !(worst <= 0.5) {
			t.Errorf("%s: logits differ from the generic level's by %.3g at step %d (prefill is step 0)", name, worst, at)
		}
	}
}
