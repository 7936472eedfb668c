package engine_test

import (
	"fmt"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/model"
)

// nullBackend is the CPU backend with the forward pass's arithmetic left
// out and a token sampled by a rule: what a step costs the host around a
// backend that takes no time (the engine's scheduling and bookkeeping, the
// model's calls, the detokenizer).
type nullBackend struct {
	backend.Backend
	vocab int
}

func (nullBackend) Embed(backend.Buffer, backend.Weight, backend.StepBuf)                          {}
func (nullBackend) RMSNorm(_, _ backend.Buffer, _ backend.Weight, _ float32, _ int)                {}
func (nullBackend) RMSNormOut(_, _ backend.Buffer, _ backend.Weight, _ float32, _ backend.StepBuf) {}
func (nullBackend) MatMul(_, _ backend.Buffer, _ backend.Weight, _ int)                            {}
func (nullBackend) AddBias(backend.Buffer, backend.Weight, int)                                    {}
func (nullBackend) Add(_, _ backend.Buffer, _ int)                                                 {}
func (nullBackend) Rope(backend.View, int, int, backend.Rope, backend.StepBuf)                     {}
func (nullBackend) StoreKV(backend.KV, int, backend.View, backend.View, backend.StepBuf)           {}
func (nullBackend) Attention(backend.Buffer, backend.View, int, float32, backend.KV, int, backend.StepBuf) {
}
func (nullBackend) SwiGLU(backend.Buffer, backend.View, backend.View, int, int) {}
func (b nullBackend) Sample(_ backend.Buffer, _ int, reqs []backend.SampleRequest, res []backend.SampleResult) error {
	for i, r := range reqs {
		res[i] = backend.SampleResult{Token: 100 + (len(r.History)*37)%(b.vocab-200)}
	}
	return nil
}

// BenchmarkStepHost: one decoding step of 1, 8 or 32 sequences of the demo
// model's shape on a backend that does no arithmetic — the host's share
// of a step, which a GPU waits on between steps (backend/cuda's step
// trace: "engine") unless the step overlaps; "/overlap" adds the overlap's
// bookkeeping (backend.SyncPipeline; 2026-12-02 on this VM: +0.3 µs a step
// for one sequence, +2.2 µs for 32).
//
//	go test ./engine -run XXX -bench StepHost -benchmem
func BenchmarkStepHost(b *testing.B) {
	ck, tok, w := openDemo(b)
	for _, c := range []struct {
		seqs    int
		overlap bool
	}{{1, false}, {8, false}, {32, false}, {1, true}, {32, true}} {
		seqs := c.seqs
		name := fmt.Sprintf("seqs=%d", seqs)
		if c.overlap {
			name += "/overlap" // backend.SyncPipeline: the overlap's bookkeeping, nothing overlapped
		}
		b.Run(name, func(b *testing.B) {
			cb := cpu.New(1)
			defer cb.Close()
			var be backend.Backend = nullBackend{Backend: cb, vocab: ck.Config.Vocab}
			if c.overlap {
				be = backend.SyncPipeline(be)
			}
			m, err := model.New(ck.Config, w, be)
			if err != nil {
				b.Fatal(err)
			}
			e, err := engine.New(m, tok, ck.Template(tok), engine.Config{Ctx: 4096, MaxSeqs: seqs})
			if err != nil {
				b.Fatal(err)
			}
			var batch []*engine.Sequence
			newBatch := func() {
				for _, s := range batch {
					e.Release(s)
				}
				batch = batch[:0]
				for i := range seqs {
					s, err := e.NewSequence(engine.Request{Prompt: e.EncodePrompt(fmt.Sprintf("sequence %d: once upon a time", i)), MaxTokens: 4000, IgnoreEOS: true})
					if err != nil {
						b.Fatal(err)
					}
					batch = append(batch, s)
				}
				for range 2 { // the prompts, then one token each
					if _, err := e.Step(batch, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
			newBatch()
			steps := 0
			b.ReportAllocs()
			for b.Loop() {
				if steps == 3000 {
					b.StopTimer()
					newBatch()
					steps = 0
					b.StartTimer()
				}
				if _, err := e.Step(batch, 0); err != nil {
					b.Fatal(err)
				}
				steps++
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(seqs), "µs/token")
		})
	}
}
