package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/batch"
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
	ctx     context.Context
	arrived time.Time

	// Owned by the scheduler goroutine.
	slot     batch.Slot // arrival order (ID, set by submit), request, sequence
	admitted bool       // has left the queue once (counted in tokens in)
	lastTok  time.Time

	mu     sync.Mutex
	events []event
	notify chan struct{}
}

func newJob(ctx context.Context, req engine.Request) *job {
	return &job{ctx: ctx, slot: batch.Slot{Req: req}, arrived: time.Now(), notify: make(chan struct{}, 1)}
}

func (j *job) Slot() *batch.Slot { return &j.slot }

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
// requests into the running batch between steps, first come first served
// (package batch decides what each step carries).
type scheduler struct {
	e        *engine.Engine
	b        *batch.Batcher[*job]
	log      *slog.Logger
	m        *metrics
	maxQueue int

	mu     sync.Mutex // guards closed and sends on in
	closed bool
	in     chan *job
	quit   chan struct{}
	done   chan struct{}
	nextID atomic.Uint64
	queued atomic.Int64 // submitted, never admitted

	preempt int64
	// overlapped is the engine's count of steps queued on device tokens
	// (host overlap) already added to the metric
	overlapped int
	snap       atomic.Pointer[Stats]
}

func newScheduler(e *engine.Engine, log *slog.Logger, m *metrics, maxQueue, maxBatch int) *scheduler {
	s := &scheduler{e: e, log: log, m: m, maxQueue: maxQueue,
		in: make(chan *job, maxQueue), quit: make(chan struct{}), done: make(chan struct{})}
	s.b = batch.New(e, maxBatch, batch.Hooks[*job]{
		Admitted: func(j *job) {
			if !j.admitted {
				j.admitted = true
				s.queued.Add(-1)
				s.m.promptTokens.Add(float64(len(j.slot.Req.Prompt)))
			}
		},
		Failed: func(j *job, err error) { s.end(j, event{reason: "error", err: invalid("", "%v", err)}) },
		Preempted: func(j *job) {
			s.preempt++
			s.m.preemptions.Inc()
			s.log.Debug("preempted", "id", j.slot.ID, "tokens", len(j.slot.Seq.Tokens()))
		},
	})
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
	j.slot.ID = s.nextID.Add(1)
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
		if s.b.Idle() {
			s.publish()
			select {
			case j := <-s.in:
				s.b.Add(j)
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
		s.b.Admit()
		if len(s.b.Running()) > 0 {
			s.step()
		}
		s.publish()
	}
}

func (s *scheduler) intake() {
	for {
		select {
		case j := <-s.in:
			s.b.Add(j)
		default:
			return
		}
	}
}

func (s *scheduler) shutdown() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.intake()
	for _, j := range s.b.Take() {
		s.end(j, event{done: true, reason: "cancelled", err: errShuttingDown})
	}
	s.publish()
}

// end releases j's blocks and sends it its last event.
func (s *scheduler) end(j *job, ev event) {
	if seq := j.slot.Seq; seq != nil {
		s.b.Release(j)
		st := seq.Stats()
		ev.completion, ev.reused = st.GeneratedTokens, st.ReusedTokens
		s.m.drafted.Add(float64(st.Drafted))
		s.m.accepted.Add(float64(st.Accepted))
	}
	if !j.admitted {
		s.queued.Add(-1)
		j.admitted = true
	}
	ev.prompt = len(j.slot.Req.Prompt)
	ev.done = true
	j.push(ev)
}

// reap drops requests whose client went away or whose time ran out; their
// blocks are free before the next step.
func (s *scheduler) reap() {
	s.b.Filter(func(j *job) bool {
		err := j.ctx.Err()
		if err == nil {
			return true
		}
		s.m.cancelled.Inc()
		reason := "cancelled"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = "timeout"
		}
		s.log.Debug("request cancelled", "id", j.slot.ID, "reason", reason)
		s.end(j, event{reason: reason})
		return false
	})
}

func (s *scheduler) step() {
	outs, err := s.b.Step()
	if n := s.e.Overlapped(); n > s.overlapped {
		s.m.overlapped.Add(float64(n - s.overlapped))
		s.overlapped = n
	}
	if err != nil {
		s.log.Error("step failed", "err", err)
		for _, j := range s.b.TakeRunning() {
			s.end(j, event{reason: "error", err: &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: fmt.Sprintf("generation failed: %v", err)}})
		}
		return
	}
	now := time.Now()
	finished := false
	for _, o := range outs {
		j, ok := s.b.Owner(o.Seq)
		if !ok {
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
		s.b.Retire()
	}
}

func (s *scheduler) publish() {
	pool := s.e.Pool
	st := &Stats{Waiting: len(s.b.Waiting()) + len(s.in), Running: len(s.b.Running()),
		BlocksTotal: pool.Blocks(), BlocksFree: pool.FreeBlocks(), BlocksCached: pool.CachedBlocks(), BlockSize: pool.BlockSize(),
		Steps: s.b.Steps(), Preemptions: s.preempt}
	st.BlocksReferenced = st.BlocksTotal - st.BlocksFree
	s.snap.Store(st)
	s.m.queue.Set(float64(st.Waiting))
	s.m.running.Set(float64(st.Running))
	s.m.kvUsed.Set(float64(st.BlocksReferenced))
	s.m.kvFree.Set(float64(st.BlocksFree))
	s.m.kvCached.Set(float64(st.BlocksCached))
}
