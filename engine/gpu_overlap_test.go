package engine

import (
	"fmt"
	"slices"
	"testing"

	"github.com/upg-ai/upg/sample"
)

// TestGPUOverlap (GPU): host overlap on the CUDA backend (tokens read back
// by an asynchronous copy, the next step's ids copied on the device into
// its tokens). Sequences that start together and stop by length run steps
// of the same sizes with and without overlap, so their tokens must be the
// same bit for bit: greedy (the argmax, overlapped) and sampled (upg_sample,
// sampled before SampleAsync returns). With stop strings a stopped
// sequence's row of the step already queued is dropped: every sequence
// then holds positions only for its tokens, and every block comes back.
func TestGPUOverlap(t *testing.T) {
	needGPU(t)
	testOverlap(t, "cuda")
}

// TestOverlapLoaded is TestGPUOverlap on the CPU through
// backend.SyncPipeline (CPUOverlapEnv).
func TestOverlapLoaded(t *testing.T) {
	t.Setenv(CPUOverlapEnv, "1")
	testOverlap(t, "cpu")
}

func testOverlap(t *testing.T, device string) {
	plain := mustLoad(t, Options{Device: device, Ctx: 256, MaxSeqs: 4, StepTokens: 64, NoOverlap: true})
	over := mustLoad(t, Options{Device: device, Ctx: 256, MaxSeqs: 4, StepTokens: 64})
	if !over.Context().Pipelines() {
		t.Fatalf("the %s context does not pipeline", device)
	}
	prompts := []string{"package main\n\nimport \"fmt\"\n\nfunc main() {", "It was a dark and stormy night", "type Reader interface {", "The old man looked at the sea and"}
	run := func(l *Loaded, o sample.Options, stops bool) ([][]int, []string) {
		var seqs []*Sequence
		for i, p := range prompts {
			r := Request{Prompt: l.EncodePrompt(p), MaxTokens: 20 + 7*i, IgnoreEOS: true, Sampling: o}
			r.Sampling.Seed += uint64(i)
			if stops && i%2 == 1 {
				r.Stop = []string{"e"}
			}
			s, err := l.NewSequence(r)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, s)
		}
		for slices.ContainsFunc(seqs, func(s *Sequence) bool { return !s.Done() }) {
			if _, err := l.Step(seqs, 0); err != nil {
				t.Fatal(err)
			}
			for i, s := range seqs {
				if n := l.Pool.Len(s.ID); n > len(s.Tokens()) {
					t.Fatalf("sequence %d holds %d positions for %d tokens", i, n, len(s.Tokens()))
				}
			}
		}
		toks, reasons := make([][]int, len(seqs)), make([]string, len(seqs))
		for i, s := range seqs {
			toks[i], reasons[i] = slices.Clone(s.Tokens()), s.Stats().StopReason
			l.Release(s)
		}
		if _, err := l.Step(nil, 0); err != nil { // collects a step still pending
			t.Fatal(err)
		}
		if l.Pool.FreeBlocks() != l.Pool.Blocks() {
			t.Errorf("%d of %d blocks still held", l.Pool.Blocks()-l.Pool.FreeBlocks(), l.Pool.Blocks())
		}
		return toks, reasons
	}
	for _, o := range []sample.Options{{}, {Temperature: 0.8, TopP: 0.95, Seed: 11}} {
		t.Run(fmt.Sprintf("temperature=%v", o.Temperature), func(t *testing.T) {
			before := over.Overlapped()
			want, _ := run(plain, o, false)
			got, _ := run(over, o, false)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("sequence %d: overlapped %v\nplain %v", i, got[i], want[i])
				}
			}
			if over.Overlapped() == before {
				t.Errorf("no step overlapped")
			}
			t.Logf("%d steps overlapped", over.Overlapped()-before)
		})
	}
	t.Run("stops", func(t *testing.T) {
		got, reasons := run(over, sample.Options{}, true)
		for i, r := range reasons {
			if want := map[bool]string{false: "length", true: "stop"}[i%2 == 1]; r != want {
				t.Errorf("sequence %d stopped by %q (%d tokens), want %q", i, r, len(got[i]), want)
			}
		}
	})
}
