package engine

// Host overlap. A GPU finishes a decoding step, the host reads its tokens
// back, checks them for stops, builds the next step and queues it: the GPU
// idles for all of that (~100-200 µs a step for Phi-4 on an H200, 3-5% of
// the step). When every sequence of a step decodes one token, the engine
// instead queues the next step right after it, on the tokens the device
// sampled (backend.Step.PrevTokens), and only then reads the first step's
// tokens: the host's work runs while the GPU computes. Measured on the H200
// (docs/benchmarks.md, "Host overlap"): 165 → 37 µs from a step's argmax to
// the next step's first kernel, +1.5-3% at batch 1 and +1.5-2.2% at 32.
//
// The next step is a guess that every sequence goes on. A sequence that
// stops at the first step (EOS, a stop string) wasted its row of the
// second: the row's result is dropped and its position, which holds a token
// the sequence never got, is truncated (the GPU writes that slot before
// any later step can reuse it: the stream keeps the order). Sequences that
// would stop by length or context, new sequences waiting to start, and any
// change to the set the caller steps end the pipeline: the pending step is
// collected and a plain step follows in the same call.
//
// Positions are committed when a step is queued. Between Step calls a
// pending step's fed token is always known (it was the last collected
// token), so Pool.Len(s) = len(s.tokens) for its sequences.

import (
	"os"
	"slices"

	"github.com/upg-ai/upg/backend"
)

// CPUOverlapEnv, set to 1, runs a CPU engine (Load) through
// backend.SyncPipeline, so that its decoding steps take the overlapped
// path: the CPU gains nothing by it (its sampling is synchronous), but the
// engine's, the server's and the C ABI's tests then check the overlap's
// bookkeeping against the same expected tokens (scripts/test.sh runs them
// so).
const CPUOverlapEnv = "UPG_CPU_OVERLAP"

func cpuOverlap() bool { return os.Getenv(CPUOverlapEnv) == "1" }

// SetOverlap turns host overlap on or off (Config.NoOverlap) and returns
// whether it was on. A pending step is collected by the next Step either
// way. With overlap, the context's logits after a Step may be the pending
// step's: a caller that reads them (Context().ReadLogits) turns it off.
func (e *Engine) SetOverlap(on bool) (was bool) {
	was = !e.cfg.NoOverlap
	e.cfg.NoOverlap = !on
	return was
}

// Overlapped is how many steps were queued on the device's tokens (host
// overlap) so far.
func (e *Engine) Overlapped() int { return e.overlapped }

// inflight is a queued decoding step whose tokens are not yet collected.
type inflight struct {
	rows []flightRow
	wait backend.SampleWait
}

type flightRow struct {
	seq  *Sequence
	drop bool // released, preempted or stopped before the step's token: its result is not used
}

// overlaps reports whether a step of sel can be followed by one queued on
// its device tokens: every sequence decodes one token with no draft, and no
// sampler reads the tokens' values (a repetition, frequency or presence
// penalty would need the token the host has not seen yet).
func (e *Engine) overlaps(sel []scheduled) bool {
	if e.cfg.NoOverlap || e.cfg.Lookup > 0 || len(sel) == 0 || !e.ctx.Pipelines() {
		return false
	}
	for _, sc := range sel {
		if sc.n != 1 || !sc.out || len(sc.draft) > 0 || sc.seq.sampler.Options().ReadsHistory() {
			return false
		}
	}
	return true
}

// launchOverlapped samples the plain step just run (e.sel, e.reqs)
// without waiting, queues the next step when the sequences go on, and
// collects the first.
func (e *Engine) launchOverlapped(outs []Output, seqs []*Sequence, budget int) ([]Output, error) {
	wait, err := e.ctx.SampleAsync(e.reqs)
	if err != nil {
		return outs, err
	}
	p := &inflight{wait: wait}
	for _, sc := range e.sel {
		p.rows = append(p.rows, flightRow{seq: sc.seq})
	}
	return e.turn(outs, p, seqs, budget)
}

// advance collects the pending step, queueing the one after it first when
// the sequences go on; more reports that the pipeline ended (a plain step
// should follow).
func (e *Engine) advance(seqs []*Sequence, budget int) (outs []Output, more bool, err error) {
	p := e.pending
	e.pending = nil
	outs, err = e.turn(nil, p, seqs, budget)
	return outs, err == nil && e.pending == nil, err
}

// turn queues the step after p when the caller's sequences are p's and go
// on, then collects p.
func (e *Engine) turn(outs []Output, p *inflight, seqs []*Sequence, budget int) ([]Output, error) {
	var next *inflight
	if e.continues(p, seqs, budget) {
		var err error
		if next, err = e.launchNext(p); err != nil {
			got, _ := e.collect(p, nil)
			return append(outs, got...), err
		}
	}
	got, err := e.collect(p, next)
	outs = append(outs, got...)
	if err != nil {
		e.abandon(next)
		return outs, err
	}
	e.pending = next
	return outs, nil
}

// continues reports whether the step a plain Step would run now is p's
// sequences decoding one more token each: none stopped, cancelled or
// released, none stops by length or context at p, and no other sequence
// of seqs would take a place in the step.
func (e *Engine) continues(p *inflight, seqs []*Sequence, budget int) bool {
	if e.cfg.NoOverlap {
		return false
	}
	if e.inP == nil {
		e.inP = map[*Sequence]int{}
	}
	clear(e.inP)
	for i, r := range p.rows {
		s := r.seq
		if r.drop || s.done { // (samplers do not change: overlaps checked them)
			return false
		}
		if s.req.MaxTokens > 0 && s.stats.GeneratedTokens+1 >= s.req.MaxTokens {
			return false // p's token is its last
		}
		if e.Pool.Len(s.ID) >= e.cfg.Ctx {
			return false // p's token fills the context (accept): no next position
		}
		e.inP[s] = i
	}
	taken := 0
	for _, s := range seqs {
		if s.done {
			continue
		}
		if taken == e.cfg.MaxSeqs || budget == 0 {
			break
		}
		if _, ok := e.inP[s]; !ok {
			return false // a sequence with work the step would take
		}
		taken++
		budget--
	}
	return taken == len(p.rows)
}

// launchNext queues the step that feeds each row of p the token p sampled
// for it, and samples it without waiting. nil, nil: the pool has no room
// for a row (the plain step after collecting p says so).
func (e *Engine) launchNext(p *inflight) (*inflight, error) {
	for _, r := range p.rows {
		if err := e.Pool.Reserve(r.seq.ID, 1); err != nil {
			return nil, nil
		}
	}
	st := &e.step
	st.Reset()
	placeholder := [1]int{}
	for i, r := range p.rows {
		e.Pool.AppendStep(st, r.seq.ID, placeholder[:])
		st.Out = append(st.Out, int32(i))
	}
	st.PrevTokens = true
	if err := e.ctx.Forward(st, e.Pool.KV()); err != nil {
		return nil, err
	}
	e.reqs = e.reqs[:0]
	for _, r := range p.rows {
		s := r.seq
		// the history holds p's token too, not yet known: only its length
		// (the position, which keys a sampled draw) is read, as no sampler
		// here reads the tokens (overlaps: Options.ReadsHistory)
		if len(s.tokens) == cap(s.tokens) {
			s.tokens = slices.Grow(s.tokens, 1)
		}
		e.reqs = append(e.reqs, backend.SampleRequest{Sampler: s.sampler, History: s.tokens[:len(s.tokens)+1], TopLogprobs: s.req.TopLogprobs})
	}
	wait, err := e.ctx.SampleAsync(e.reqs)
	if err != nil {
		return nil, err
	}
	e.overlapped++
	next := &inflight{wait: wait, rows: make([]flightRow, len(p.rows))}
	for i, r := range p.rows {
		e.began(r.seq, e.Pool.Len(r.seq.ID))
		e.Pool.Commit(r.seq.ID, 1)
		next.rows[i].seq = r.seq
	}
	return next, nil
}

// collect waits for p's tokens and accepts them; a sequence that is done
// (before or by its token) leaves next, whose row for it fed a token it
// never got (next, when not nil, is launchNext(p): its rows are p's).
func (e *Engine) collect(p *inflight, next *inflight) ([]Output, error) {
	n := len(p.rows)
	for len(e.res) < n {
		e.res = append(e.res, backend.SampleResult{})
	}
	res := e.res[:n]
	if err := p.wait(res); err != nil {
		return nil, err
	}
	var outs []Output
	for i, r := range p.rows {
		s := r.seq
		if r.drop || s.done {
			e.leave(next, i)
			continue
		}
		o := e.accept(s, res[i])
		outs = append(outs, o)
		if o.Done {
			e.leave(next, i)
		}
		e.Pool.Register(s.ID, s.tokens)
	}
	return outs, nil
}

// leave drops row i of next (the step queued after the one being
// collected, whose rows are that step's, in order: launchNext) and
// truncates the position it took.
func (e *Engine) leave(next *inflight, i int) {
	if next == nil || next.rows[i].drop {
		return
	}
	next.rows[i].drop = true
	id := next.rows[i].seq.ID
	e.Pool.Truncate(id, e.Pool.Len(id)-1)
}

// abandon drops every row of a queued step whose predecessor failed: the
// positions it took hold tokens nobody knows.
func (e *Engine) abandon(next *inflight) {
	if next == nil {
		return
	}
	for i := range next.rows {
		e.leave(next, i)
	}
}

// settle marks s's row of the pending step dropped (s is being released or
// preempted): its token is not wanted. Its position needs no truncation:
// between Step calls a pending step's fed token is known.
func (e *Engine) settle(s *Sequence) {
	if e.pending == nil {
		return
	}
	for i := range e.pending.rows {
		if r := &e.pending.rows[i]; r.seq == s {
			r.drop = true
		}
	}
}
