//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/sample"
)

// TestGPUSampleAsync: SampleAsync gives Sample's tokens (and log-
// probabilities) for greedy rows (the argmax, read back asynchronously) and
// sampled ones, with two samples in flight before either is waited for;
// and a step set with PrevTokens after it holds, on the device, the tokens
// the last one sampled.
func TestGPUSampleAsync(t *testing.T) {
	b := gpuBackend(t)
	const V, R = 3001, 9
	rng := rand.New(rand.NewPCG(5, 6))
	all := make([]float32, R*V)
	for i := range all {
		all[i] = float32(rng.NormFloat64() * 3)
	}
	buf, err := b.NewBuffer(R * V)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(buf, 0, all)
	sb, err := b.NewStep(backend.StepLimits{Tokens: 16, Seqs: 1, BlocksPerSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	hist := []int{3, 1, 4, 1, 5}
	for _, c := range []struct {
		o        sample.Options
		logprobs int
	}{{sample.Options{}, -1}, {sample.Options{Temperature: 0.8, TopP: 0.9}, 0}, {sample.Options{Temperature: 1.1, TopK: 20}, -1}} {
		t.Run(fmt.Sprintf("temperature=%v", c.o.Temperature), func(t *testing.T) {
			reqs := make([]backend.SampleRequest, R)
			for r := range reqs {
				o := c.o
				o.Seed = uint64(r + 1)
				s, err := sample.New(o)
				if err != nil {
					t.Fatal(err)
				}
				reqs[r] = backend.SampleRequest{Sampler: s, History: hist, TopLogprobs: c.logprobs}
			}
			want := make([]backend.SampleResult, R)
			if err := b.Sample(buf, V, reqs, want); err != nil {
				t.Fatal(err)
			}
			w1, err := b.SampleAsync(buf, V, reqs)
			if err != nil {
				t.Fatal(err)
			}
			w2, err := b.SampleAsync(buf, V, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range []backend.SampleWait{w1, w2} {
				got := make([]backend.SampleResult, R)
				if err := w(got); err != nil {
					t.Fatal(err)
				}
				for r := range R {
					if got[r].Token != want[r].Token || got[r].Logprob != want[r].Logprob {
						t.Errorf("sample %d, row %d: token %d (log-probability %v), Sample's %d (%v)", i, r, got[r].Token, got[r].Logprob, want[r].Token, want[r].Logprob)
					}
				}
			}
			// a step on the last sample's tokens
			st := &backend.Step{Tokens: make([]int32, R), Pos: make([]int32, R), Slot: make([]int32, R), Seq: make([]int32, R),
				Tables: [][]int32{{0}}, PrevTokens: true}
			if err := b.SetStep(sb, st); err != nil {
				t.Fatal(err)
			}
			b.mu.Lock()
			b.flush()
			b.mu.Unlock()
			raw := make([]byte, 4*R)
			if err := b.d.Download(raw, stepOf(sb).tokens); err != nil {
				t.Fatal(err)
			}
			var toks, wantToks []int
			for r := range R {
				toks = append(toks, int(int32(binary.LittleEndian.Uint32(raw[4*r:]))))
				wantToks = append(wantToks, want[r].Token)
			}
			if !slices.Equal(toks, wantToks) {
				t.Errorf("the PrevTokens step's tokens on the device: %v, want %v", toks, wantToks)
			}
		})
	}
	// a PrevTokens step longer than the last sample is refused
	st := &backend.Step{Tokens: make([]int32, R+1), Pos: make([]int32, R+1), Slot: make([]int32, R+1), Seq: make([]int32, R+1),
		Tables: [][]int32{{0}}, PrevTokens: true}
	if err := b.SetStep(sb, st); err == nil {
		t.Errorf("a step of %d tokens on a sample of %d rows was accepted", R+1, R)
	}
}
