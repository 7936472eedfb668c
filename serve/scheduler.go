package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/engine"
)

// event is what the scheduler tells a request's handler: a sampled token
// and the text it released, or the end (with usage counts), or a failure.
type event struct {
	sampled bool
	token   int
	text    string
	logprob float32
	top     []backend.TokenLogprob

	done       bool
	reason     string // engine stop reason: eos, stop, length, context, cancelled
	err        *apiError
	prompt     int // prompt tokens
	completion int // generated tokens
	reused     int // prompt tokens served from the prefix cache
}

// job is one request between its handler and the scheduler. The scheduler
// never blocks on a handler: events go to an unbounded mailbox (at most
// one per generated token) and a 1-slot notification channel.
type job struct {
	id      uint64 // arrival order
	ctx     context.Context
	req     engine.Request
	arrived time.Time

	// Owned by the scheduler goroutine.
	seq      *engine.Sequence
	admitted bool // has left the queue once (counted in tokens in)
	lastTok  time.Time

	mu     sync.Mutex
	events []event
	notify chan struct{}
}

func newJob(ctx context.Context, req engine.Request) *job {
	return &job{ctx: ctx, req: req, arrived: time.Now(), notify: make(chan struct{}, 1)}
}

func (j *job) push(ev event) {
	j.mu.Lock()
	j.events = append(j.events, ev)
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// take moves the pending events into buf.
func (j *job) take(buf []event) []event {
	j.mu.Lock()
	buf = append(buf[:0], j.events...)
	clear(j.events)
	j.events = j.events[:0]
	j.mu.Unlock()
	return buf
}

// Stats is a snapshot of the scheduler's state, published after every step.
type Stats struct {
	Waiting, Running int
	// KV blocks: Total in the pool, Free for new positions (including
	// Cached ones that no sequence references and can be evicted),
	// Referenced by sequences.
	BlocksTotal, BlocksFree, BlocksCached, BlocksReferenced int
	BlockSize                                               int
	Steps, Preemptions                                      int64
}

// scheduler owns the engine: one goroutine runs it, admitting queued
// requests into the running batch between steps, first come first served.
type scheduler struct {
	e        *engine.Engine
	log      *slog.Logger
	m        *metrics
	maxQueue int
	maxBatch int

	mu     sync.Mutex // guards closed and sends on in
	closed bool
	in     chan *job
	quit   chan struct{}
	done   chan struct{}
	nextID atomic.Uint64
	queued atomic.Int64 // submitted, never admitted

	waiting []*job // by arrival (id)
	running []*job
	bySeq   map[int]*job
	order   []*engine.Sequence
	jorder  []*job
	steps   int64
	preempt int64
	// overlapped is the engine's count of steps queued on device tokens
	// (host overlap) already added to the metric
	overlapped int
	snap       atomic.Pointer[Stats]
}

func newScheduler(e *engine.Engine, log *slog.Logger, m *metrics, maxQueue, maxBatch int) *scheduler {
	s := &scheduler{e: e, log: log, m: m, maxQueue: maxQueue, maxBatch: maxBatch,
		in: make(chan *job, maxQueue), quit: make(chan struct{}), done: make(chan struct{}), bySeq: map[int]*job{}}
	s.publish()
	return s
}

var (
	errQueueFull = &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: strp("queue_full"),
		Message: "the server's request queue is full; retry later", RetryAfter: 1}
	errShuttingDown = &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("shutting_down"),
		Message: "the server is shutting down", RetryAfter: 5}
)

// submit queues j, or refuses it when the queue is full or the scheduler
// has stopped.
func (s *scheduler) submit(j *job) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errShuttingDown
	}
	if s.queued.Add(1) > int64(s.maxQueue) {
		s.queued.Add(-1)
		return errQueueFull
	}
	j.id = s.nextID.Add(1)
	s.in <- j // never blocks: at most maxQueue jobs are queued
	s.m.queue.Set(float64(s.queued.Load()))
	return nil
}

// stop fails every queued and running request and ends the goroutine.
func (s *scheduler) stop() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	<-s.done
}

func (s *scheduler) run() {
	defer close(s.done)
	for {
		if len(s.running) == 0 && len(s.waiting) == 0 {
			s.publish()
			select {
			case j := <-s.in:
				s.enqueue(j)
			case <-s.quit:
				s.shutdown()
				return
			}
		}
		select {
		case <-s.quit:
			s.shutdown()
			return
		default:
		}
		s.intake()
		s.reap()
		s.admit()
		if len(s.running) > 0 {
			s.step()
		}
		s.publish()
	}
}

func (s *scheduler) intake() {
	for {
		select {
		case j := <-s.in:
			s.enqueue(j)
		default:
			return
		}
	}
}

// enqueue puts j in the waiting list in arrival order (preempted jobs go
// back ahead of newer ones).
func (s *scheduler) enqueue(j *job) {
	i, _ := slices.BinarySearchFunc(s.waiting, j.id, func(a *job, id uint64) int { return cmpU64(a.id, id) })
	s.waiting = slices.Insert(s.waiting, i, j)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *scheduler) shutdown() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.intake()
	for _, j := range s.running {
		s.end(j, event{done: true, reason: "cancelled", err: errShuttingDown})
	}
	for _, j := range s.waiting {
		s.end(j, event{done: true, reason: "cancelled", err: errShuttingDown})
	}
	s.running, s.waiting = nil, nil
	s.publish()
}

// end releases j's blocks and sends it its last event.
func (s *scheduler) end(j *job, ev event) {
	if j.seq != nil {
		j.seq.Cancel()
		s.e.Release(j.seq)
		delete(s.bySeq, j.seq.ID)
		st := j.seq.Stats()
		ev.completion, ev.reused = st.GeneratedTokens, st.ReusedTokens
		s.m.drafted.Add(float64(st.Drafted))
		s.m.accepted.Add(float64(st.Accepted))
	}
	if !j.admitted {
		s.queued.Add(-1)
		j.admitted = true
	}
	ev.prompt = len(j.req.Prompt)
	ev.done = true
	j.push(ev)
}

// reap drops requests whose client went away or whose time ran out; their
// blocks are free before the next step.
func (s *scheduler) reap() {
	keep := func(list []*job) []*job {
		out := list[:0]
		for _, j := range list {
			if err := j.ctx.Err(); err != nil {
				s.m.cancelled.Inc()
				reason := "cancelled"
				if errors.Is(err, context.DeadlineExceeded) {
					reason = "timeout"
				}
				s.log.Debug("request cancelled", "id", j.id, "reason", reason)
				s.end(j, event{reason: reason})
				continue
			}
			out = append(out, j)
		}
		clear(list[len(out):])
		return out
	}
	s.running = keep(s.running)
	s.waiting = keep(s.waiting)
}

func (s *scheduler) blocksFor(positions int) int {
	bs := s.e.Pool.BlockSize()
	return (positions + bs - 1) / bs
}

// admit moves waiting requests into the running batch, oldest first, while
// the batch has room and the KV pool can hold their prompts on top of what
// the running sequences still need. A request that does not fit waits, and
// so does everyone behind it (no starvation of long prompts).
func (s *scheduler) admit() {
	pool := s.e.Pool
	watermark := max(1, pool.Blocks()/100)
	for len(s.waiting) > 0 && len(s.running) < s.maxBatch {
		j := s.waiting[0]
		if j.seq == nil {
			seq, err := s.e.NewSequence(j.req)
			if err != nil {
				s.waiting = s.waiting[1:]
				s.end(j, event{reason: "error", err: invalid("", "%v", err)})
				continue
			}
			j.seq = seq
			s.bySeq[seq.ID] = j
		}
		if len(s.running) > 0 {
			outstanding := 0
			for _, r := range s.running {
				outstanding += max(0, s.blocksFor(len(r.seq.Tokens())+1)-pool.SeqBlocks(r.seq.ID))
			}
			reuse := s.e.CachedPrefix(j.seq) / pool.BlockSize()
			need := s.blocksFor(len(j.seq.Tokens())+1) - reuse
			if need+outstanding+watermark > pool.FreeBlocks() {
				break
			}
		}
		s.waiting = s.waiting[1:]
		if !j.admitted {
			j.admitted = true
			s.queued.Add(-1)
			s.m.promptTokens.Add(float64(len(j.req.Prompt)))
		}
		s.running = append(s.running, j)
	}
}

// plan orders the running sequences for the next step, decoding ones
// first (one token each, oldest first) and then prompts (oldest first),
// and preempts the newest sequences when the KV pool cannot hold what an
// older one needs.
func (s *scheduler) plan() []*engine.Sequence {
	pool := s.e.Pool
	budget0 := s.e.Config().StepTokens
	for {
		slices.SortFunc(s.running, func(a, b *job) int { return cmpU64(a.id, b.id) })
		s.jorder = s.jorder[:0]
		for _, j := range s.running {
			if len(j.seq.Tokens())-pool.Len(j.seq.ID) <= 1 {
				s.jorder = append(s.jorder, j)
			}
		}
		for _, j := range s.running {
			if len(j.seq.Tokens())-pool.Len(j.seq.ID) > 1 {
				s.jorder = append(s.jorder, j)
			}
		}
		free, budget := pool.FreeBlocks(), budget0
		replan := false
		for _, j := range s.jorder {
			if budget == 0 {
				break
			}
			s.e.AttachPrefix(j.seq)
			k := min(len(j.seq.Tokens())-pool.Len(j.seq.ID), budget)
			need := pool.Needed(j.seq.ID, k)
			if need <= free {
				free -= need
				budget -= k
				continue
			}
			if v := s.newestHolding(j.id); v != nil {
				s.preemptJob(v)
				replan = true
				break
			}
		}
		if !replan {
			break
		}
	}
	s.order = s.order[:0]
	for _, j := range s.jorder {
		s.order = append(s.order, j.seq)
	}
	return s.order
}

// newestHolding is the newest running job newer than id that holds KV blocks.
func (s *scheduler) newestHolding(id uint64) *job {
	for i := len(s.running) - 1; i >= 0; i-- {
		j := s.running[i]
		if j.id <= id {
			return nil
		}
		if s.e.Pool.SeqBlocks(j.seq.ID) > 0 {
			return j
		}
	}
	return nil
}

// preemptJob frees j's blocks and puts it back in the queue; it is
// recomputed when readmitted, with the same output.
func (s *scheduler) preemptJob(j *job) {
	s.e.Preempt(j.seq)
	s.running = slices.DeleteFunc(s.running, func(r *job) bool { return r == j })
	s.enqueue(j)
	s.preempt++
	s.m.preemptions.Inc()
	s.log.Debug("preempted", "id", j.id, "tokens", len(j.seq.Tokens()))
}

func (s *scheduler) step() {
	order := s.plan()
	if len(order) == 0 {
		return
	}
	outs, err := s.e.Step(order, 0)
	s.steps++
	if n := s.e.Overlapped(); n > s.overlapped {
		s.m.overlapped.Add(float64(n - s.overlapped))
		s.overlapped = n
	}
	if err != nil {
		if engine.IsNoBlocks(err) {
			// The plan should prevent this; preempt the newest holder so
			// that the oldest can go on.
			if v := s.newestHolding(s.running[0].id); v != nil {
				s.preemptJob(v)
				return
			}
			j := s.running[0]
			s.running = s.running[1:]
			s.end(j, event{reason: "error", err: invalid("", "the request does not fit the KV cache: %v", err)})
			return
		}
		s.log.Error("step failed", "err", err)
		for _, j := range s.running {
			s.end(j, event{reason: "error", err: &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: fmt.Sprintf("generation failed: %v", err)}})
		}
		s.running = s.running[:0]
		return
	}
	now := time.Now()
	finished := false
	for _, o := range outs {
		j := s.bySeq[o.Seq.ID]
		if j == nil {
			continue
		}
		if o.Sampled {
			if j.lastTok.IsZero() {
				s.m.ttft.Observe(now.Sub(j.arrived).Seconds())
			} else {
				s.m.itl.Observe(now.Sub(j.lastTok).Seconds())
			}
			j.lastTok = now
			if !o.Done || o.Reason != "eos" {
				s.m.genTokens.Inc()
			}
		}
		if o.Done {
			finished = true
			ev := event{sampled: o.Sampled && o.Reason != "eos", token: o.Token, text: o.Text, logprob: o.Logprob, top: o.Top, reason: o.Reason}
			s.m.e2e.Observe(now.Sub(j.arrived).Seconds())
			s.end(j, ev)
			continue
		}
		if o.Sampled {
			j.push(event{sampled: true, token: o.Token, text: o.Text, logprob: o.Logprob, top: o.Top})
		}
	}
	if finished {
		s.running = slices.DeleteFunc(s.running, func(j *job) bool { return j.seq.Done() })
	}
}

func (s *scheduler) publish() {
	pool := s.e.Pool
	st := &Stats{Waiting: len(s.waiting) + len(s.in), Running: len(s.running),
		BlocksTotal: pool.Blocks(), BlocksFree: pool.FreeBlocks(), BlocksCached: pool.CachedBlocks(), BlockSize: pool.BlockSize(),
		Steps: s.steps, Preemptions: s.preempt}
	st.BlocksReferenced = st.BlocksTotal - st.BlocksFree
	s.snap.Store(st)
	s.m.queue.Set(float64(st.Waiting))
	s.m.running.Set(float64(st.Running))
	s.m.kvUsed.Set(float64(st.BlocksReferenced))
	s.m.kvFree.Set(float64(st.BlocksFree))
	s.m.kvCached.Set(float64(st.BlocksCached))
}
