package batch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/batch"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/internal/enginetest"
)

// load loads the demo model on the CPU with an exact (f32) cache.
func load(t *testing.T, o engine.Options) *engine.Loaded {
	o.Device, o.KVCache = "cpu", backend.KVF32
	return enginetest.Load(t, o)
}

var prompts = enginetest.Prompts

type job struct {
	slot     batch.Slot
	admitted []int // the Batcher's running count after each admission
	err      error
	done     bool
}

func (j *job) Slot() *batch.Slot { return &j.slot }

// drive runs jobs through a Batcher to the end, as serve's scheduler and
// the C ABI do, and returns how many preemptions and the most jobs that
// ran together.
func drive(t *testing.T, l *engine.Loaded, maxBatch int, jobs []*job) (preempted, widest int) {
	t.Helper()
	var b *batch.Batcher[*job]
	b = batch.New(l.Engine, maxBatch, batch.Hooks[*job]{
		Admitted:  func(j *job) { j.admitted = append(j.admitted, len(b.Running())) },
		Failed:    func(j *job, err error) { j.err = err },
		Preempted: func(*job) { preempted++ },
	})
	for i, j := range jobs {
		j.slot.ID = uint64(i + 1)
		b.Add(j)
	}
	for steps := 0; !b.Idle(); steps++ {
		if steps > 5000 {
			t.Fatal("no progress")
		}
		b.Admit()
		widest = max(widest, len(b.Running()))
		outs, err := b.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			j, ok := b.Owner(o.Seq)
			if !ok {
				t.Fatalf("an output of sequence %d, which no job owns", o.Seq.ID)
			}
			if o.Done {
				j.done = true
				b.Release(j)
			}
		}
		b.Retire()
		if used := l.Pool.Blocks() - l.Pool.FreeBlocks(); used > l.Pool.Blocks() {
			t.Fatalf("%d blocks in use", used)
		}
	}
	return preempted, widest
}

// TestBatcherEqualsAlone runs 8 requests through a Batcher of 4 over a KV
// pool too small for all of them: they wait, join as others finish, are
// preempted and recomputed, and each still produces exactly the tokens it
// produces alone; every block is free at the end.
func TestBatcherEqualsAlone(t *testing.T) {
	ref := load(t, engine.Options{Ctx: 128})
	c := ref.Model.Config
	perBlock := int64(c.Layers * c.KVHeads * c.HeadDim * 32 * 2 * 4)
	small := load(t, engine.Options{Ctx: 128, MaxSeqs: 4, StepTokens: 64, KVBudget: 7 * perBlock})
	if small.Pool.Blocks() != 7 {
		t.Fatalf("pool of %d blocks, want 7", small.Pool.Blocks())
	}
	reqs := make([]engine.Request, len(prompts))
	jobs := make([]*job, len(prompts))
	for i, p := range prompts {
		reqs[i] = engine.Request{Prompt: ref.EncodePrompt(p), MaxTokens: 30 + 7*i, IgnoreEOS: true}
		jobs[i] = &job{slot: batch.Slot{Req: reqs[i]}}
	}
	want := enginetest.Alone(t, ref, reqs)
	preempted, widest := drive(t, small, 4, jobs)
	for i, j := range jobs {
		switch {
		case j.err != nil:
			t.Errorf("job %d failed: %v", i, j.err)
		case !j.done:
			t.Errorf("job %d did not finish", i)
		case !slices.Equal(j.slot.Seq.Tokens(), want[i]):
			t.Errorf("job %d: batched %v\nalone %v", i, j.slot.Seq.Tokens()[len(reqs[i].Prompt):], want[i][len(reqs[i].Prompt):])
		}
	}
	if small.Pool.FreeBlocks() != small.Pool.Blocks() {
		t.Errorf("%d of %d blocks free at the end", small.Pool.FreeBlocks(), small.Pool.Blocks())
	}
	if preempted == 0 || widest < 2 || widest > 4 {
		t.Errorf("%d preemptions, at most %d jobs together: want some preemptions and 2 to 4 together (the test no longer exercises the batcher)", preempted, widest)
	}
	t.Logf("%d preemptions, at most %d together", preempted, widest)
}

// TestBatcherFailures: a request the engine refuses and one that cannot
// fit the pool even alone fail with errors that say so, and the others
// still finish.
func TestBatcherFailures(t *testing.T) {
	ref := load(t, engine.Options{Ctx: 128})
	c := ref.Model.Config
	perBlock := int64(c.Layers * c.KVHeads * c.HeadDim * 32 * 2 * 4)
	l := load(t, engine.Options{Ctx: 128, MaxSeqs: 2, StepTokens: 64, KVBudget: 2 * perBlock})
	long := ref.EncodePrompt(strings.Repeat(prompts[1], 5))
	if len(long) <= 64 || len(long) >= 128 {
		t.Fatalf("the long prompt has %d tokens: want more than the pool's 64 positions and fewer than the context's 128", len(long))
	}
	jobs := []*job{
		{slot: batch.Slot{Req: engine.Request{Prompt: ref.EncodePrompt(prompts[0]), MaxTokens: 8, IgnoreEOS: true}}},
		{slot: batch.Slot{Req: engine.Request{Prompt: []int{c.Vocab}, MaxTokens: 8}}},
		{slot: batch.Slot{Req: engine.Request{Prompt: long, MaxTokens: 8}}},
		{slot: batch.Slot{Req: engine.Request{Prompt: ref.EncodePrompt(prompts[3]), MaxTokens: 8, IgnoreEOS: true}}},
	}
	drive(t, l, 0, jobs)
	for i, want := range []string{"", "out of range", "does not fit the KV cache", ""} {
		j := jobs[i]
		switch {
		case want == "" && (j.err != nil || !j.done):
			t.Errorf("job %d: done %v, error %v; want it to finish", i, j.done, j.err)
		case want != "" && (j.err == nil || !strings.Contains(j.err.Error(), want)):
			t.Errorf("job %d: error %v, want one saying %q", i, j.err, want)
		}
	}
	if l.Pool.FreeBlocks() != l.Pool.Blocks() {
		t.Errorf("%d of %d blocks free at the end", l.Pool.FreeBlocks(), l.Pool.Blocks())
	}
}
