// Package batch decides which sequences an engine steps together
// (continuous batching): requests wait in arrival order and join the
// running batch while it has room and the KV pool can hold their prompts
// on top of what the running sequences still need; each step feeds the
// decoding sequences first (one token each, oldest first) and then
// prompts; when the pool runs short, the newest sequences holding cache
// blocks are preempted and recomputed later, with the same output.
//
// The server's scheduler (package serve) and the C ABI's batch generation
// both run their requests through a Batcher. A Batcher and its jobs belong
// to one goroutine, the one that drives the engine.
package batch

import (
	"fmt"
	"slices"

	"github.com/upg-ai/upg/engine"
)

// Slot is what a Batcher keeps of a job.
type Slot struct {
	ID  uint64         // arrival order: lower IDs are admitted and stepped first
	Req engine.Request // the request, made into Seq at its first admission
	Seq *engine.Sequence
}

// Job is a caller's request with its slot.
type Job interface{ Slot() *Slot }

// Hooks tell the caller what the Batcher did with a job. Any may be nil.
type Hooks[J Job] struct {
	// Admitted: j joined the running batch (again, after a preemption).
	Admitted func(j J)
	// Failed: j cannot run (its request is invalid, or it does not fit
	// the KV cache even alone); it has left the Batcher, its cache
	// entries are freed, and the caller ends it.
	Failed func(j J, err error)
	// Preempted: j's cache entries were freed to make room for an older
	// job and j is waiting again.
	Preempted func(j J)
}

// Batcher holds the waiting and running jobs of one engine.
type Batcher[J Job] struct {
	e        *engine.Engine
	maxBatch int
	hooks    Hooks[J]

	waiting []J // by ID
	running []J
	bySeq   map[int]J
	jorder  []J
	order   []*engine.Sequence
	steps   int64
}

// New makes a Batcher that runs at most maxBatch jobs together (at most
// the engine's Config.MaxSeqs; ≤ 0 means that).
func New[J Job](e *engine.Engine, maxBatch int, h Hooks[J]) *Batcher[J] {
	if n := e.Config().MaxSeqs; maxBatch <= 0 || maxBatch > n {
		maxBatch = n
	}
	return &Batcher[J]{e: e, maxBatch: maxBatch, hooks: h, bySeq: map[int]J{}}
}

// Add queues j in ID order (a preempted job goes back ahead of newer ones).
func (b *Batcher[J]) Add(j J) {
	id := j.Slot().ID
	i, _ := slices.BinarySearchFunc(b.waiting, id, func(a J, id uint64) int { return cmp(a.Slot().ID, id) })
	b.waiting = slices.Insert(b.waiting, i, j)
}

func cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Waiting are the queued jobs, oldest first; Running the jobs in the
// batch. The slices are the Batcher's: read them before its next call.
func (b *Batcher[J]) Waiting() []J { return b.waiting }
func (b *Batcher[J]) Running() []J { return b.running }

// Idle reports that no job waits or runs.
func (b *Batcher[J]) Idle() bool { return len(b.waiting) == 0 && len(b.running) == 0 }

// Owner is the job of an engine output's sequence.
func (b *Batcher[J]) Owner(s *engine.Sequence) (J, bool) {
	j, ok := b.bySeq[s.ID]
	return j, ok
}

// Filter keeps the waiting and running jobs for which keep is true; keep
// ends the others (calling Release for them).
func (b *Batcher[J]) Filter(keep func(J) bool) {
	b.running = filter(b.running, keep)
	b.waiting = filter(b.waiting, keep)
}

func filter[J Job](list []J, keep func(J) bool) []J {
	out := list[:0]
	for _, j := range list {
		if keep(j) {
			out = append(out, j)
		}
	}
	clear(list[len(out):])
	return out
}

// Take removes every job, running ones first, and returns them; the
// caller ends each (calling Release).
func (b *Batcher[J]) Take() []J {
	all := append(b.TakeRunning(), b.waiting...)
	b.waiting = nil
	return all
}

// TakeRunning removes the running jobs and returns them; the caller ends
// each (calling Release).
func (b *Batcher[J]) TakeRunning() []J {
	r := b.running
	b.running = nil
	return r
}

// Steps is the number of engine steps run so far.
func (b *Batcher[J]) Steps() int64 { return b.steps }

// Release cancels j's sequence and frees its cache entries, for a job that
// has ended or is being dropped. Its stats stay readable.
func (b *Batcher[J]) Release(j J) {
	sl := j.Slot()
	if sl.Seq == nil {
		return
	}
	sl.Seq.Cancel()
	b.e.Release(sl.Seq)
	delete(b.bySeq, sl.Seq.ID)
}

// Retire drops the finished jobs from the running batch (after their
// last outputs were handled and Release called).
func (b *Batcher[J]) Retire() {
	b.running = slices.DeleteFunc(b.running, func(j J) bool { return j.Slot().Seq.Done() })
}

func (b *Batcher[J]) blocksFor(positions int) int {
	bs := b.e.Pool.BlockSize()
	return (positions + bs - 1) / bs
}

// Admit moves waiting jobs into the running batch, oldest first, while the
// batch has room and the KV pool can hold their prompts on top of what the
// running sequences still need. A job that does not fit waits, and so does
// everyone behind it (no starvation of long prompts). An empty batch always
// takes the oldest job.
func (b *Batcher[J]) Admit() {
	pool := b.e.Pool
	watermark := max(1, pool.Blocks()/100)
	for len(b.waiting) > 0 && len(b.running) < b.maxBatch {
		j := b.waiting[0]
		sl := j.Slot()
		if sl.Seq == nil {
			seq, err := b.e.NewSequence(sl.Req)
			if err != nil {
				b.waiting = b.waiting[1:]
				b.fail(j, err)
				continue
			}
			sl.Seq = seq
			b.bySeq[seq.ID] = j
		}
		if len(b.running) > 0 {
			outstanding := 0
			for _, r := range b.running {
				rs := r.Slot().Seq
				outstanding += max(0, b.blocksFor(len(rs.Tokens())+1)-pool.SeqBlocks(rs.ID))
			}
			reuse := b.e.CachedPrefix(sl.Seq) / pool.BlockSize()
			need := b.blocksFor(len(sl.Seq.Tokens())+1) - reuse
			if need+outstanding+watermark > pool.FreeBlocks() {
				break
			}
		}
		b.waiting = b.waiting[1:]
		b.running = append(b.running, j)
		if b.hooks.Admitted != nil {
			b.hooks.Admitted(j)
		}
	}
}

func (b *Batcher[J]) fail(j J, err error) {
	b.Release(j)
	if b.hooks.Failed != nil {
		b.hooks.Failed(j, err)
	}
}

// plan orders the running sequences for the next step, decoding ones
// first and then prompts (each oldest first), and preempts the newest
// sequences when the KV pool cannot hold what an older one needs.
func (b *Batcher[J]) plan() []*engine.Sequence {
	pool := b.e.Pool
	budget0 := b.e.Config().StepTokens
	pending := func(j J) int { s := j.Slot().Seq; return len(s.Tokens()) - pool.Len(s.ID) }
	for {
		slices.SortFunc(b.running, func(x, y J) int { return cmp(x.Slot().ID, y.Slot().ID) })
		b.jorder = b.jorder[:0]
		for _, j := range b.running {
			if pending(j) <= 1 {
				b.jorder = append(b.jorder, j)
			}
		}
		for _, j := range b.running {
			if pending(j) > 1 {
				b.jorder = append(b.jorder, j)
			}
		}
		free, budget := pool.FreeBlocks(), budget0
		replan := false
		for _, j := range b.jorder {
			if budget == 0 {
				break
			}
			s := j.Slot().Seq
			b.e.AttachPrefix(s)
			k := min(pending(j), budget)
			need := pool.Needed(s.ID, k)
			if need <= free {
				free -= need
				budget -= k
				continue
			}
			if v, ok := b.newestHolding(j.Slot().ID); ok {
				b.preempt(v)
				replan = true
				break
			}
		}
		if !replan {
			break
		}
	}
	b.order = b.order[:0]
	for _, j := range b.jorder {
		b.order = append(b.order, j.Slot().Seq)
	}
	return b.order
}

// newestHolding is the newest running job newer than id that holds KV
// blocks.
func (b *Batcher[J]) newestHolding(id uint64) (J, bool) {
	for i := len(b.running) - 1; i >= 0; i-- {
		j := b.running[i]
		sl := j.Slot()
		if sl.ID <= id {
			break
		}
		if b.e.Pool.SeqBlocks(sl.Seq.ID) > 0 {
			return j, true
		}
	}
	var none J
	return none, false
}

// preempt frees j's blocks and queues it again; it is recomputed when
// readmitted, with the same output.
func (b *Batcher[J]) preempt(j J) {
	b.e.Preempt(j.Slot().Seq)
	b.running = slices.DeleteFunc(b.running, func(r J) bool { return r.Slot() == j.Slot() })
	b.Add(j)
	if b.hooks.Preempted != nil {
		b.hooks.Preempted(j)
	}
}

// Step runs one engine step over the running batch and returns its
// outputs (Owner maps them to jobs). When the pool runs out of blocks
// despite the plan, the newest holder is preempted, or, when there is
// none, the oldest job fails as too large for the cache; Step then returns
// no outputs and no error. Any other engine error is returned with the
// batch unchanged: the caller ends the running jobs (Take, Release).
func (b *Batcher[J]) Step() ([]engine.Output, error) {
	order := b.plan()
	if len(order) == 0 {
		return nil, nil
	}
	outs, err := b.e.Step(order, 0)
	b.steps++
	if err == nil {
		return outs, nil
	}
	if !engine.IsNoBlocks(err) {
		return nil, err
	}
	if v, ok := b.newestHolding(b.running[0].Slot().ID); ok {
		b.preempt(v)
		return nil, nil
	}
	j := b.running[0]
	b.running = b.running[1:]
	b.fail(j, fmt.Errorf("the request does not fit the KV cache: %w", err))
	return nil, nil
}
