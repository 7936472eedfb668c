package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tokenizer"
)

// Request describes one generation.
type Request struct {
	Prompt    []int // already tokenized (see EncodePrompt, EncodeChat)
	MaxTokens int   // 0 = until EOS or the context is full
	Sampling  sample.Options
	Stop      []string
	// IgnoreEOS keeps generating past end-of-sequence tokens.
	IgnoreEOS bool
	// TopLogprobs < 0 (the zero value is treated as "none" unless
	// Logprobs is set): see backend.SampleRequest.
	Logprobs    bool
	TopLogprobs int
}

// Stats reports what a generation did and how fast.
type Stats struct {
	PromptTokens    int
	ReusedTokens    int // prompt tokens whose cache entries were reused
	GeneratedTokens int
	Prefill         time.Duration // until the first token was sampled
	Decode          time.Duration // from the first sampled token to the end
	StopReason      string        // "eos", "stop", "length", "context", "cancelled"
	// Drafted is how many tokens prompt lookup proposed (Config.Lookup)
	// and Accepted how many of them the model picked itself.
	Drafted, Accepted int
}

// PrefillTokS is prompt tokens per second (counting only tokens computed).
func (s Stats) PrefillTokS() float64 {
	return rate(s.PromptTokens-s.ReusedTokens, s.Prefill)
}

// DecodeTokS is generated tokens per second after the first.
func (s Stats) DecodeTokS() float64 { return rate(s.GeneratedTokens-1, s.Decode) }

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Sequence is one request in flight: its tokens (prompt, then output), its
// sampler with its own seeded state, stop matcher and UTF-8 decoder. Its
// tokens do not depend on which other sequences share its steps.
type Sequence struct {
	ID  int
	req Request

	tokens  []int // prompt, then generated tokens
	sampler *sample.Sampler
	stops   *sample.StopMatcher
	dec     *tokenizer.StreamDecoder
	done    bool
	draft   []int       // this step's draft (prompt lookup)
	drafts  DraftRecord // how its drafts fared (DraftPlanner)
	hist    []int       // the tokens, then the draft: the fed positions' sampling histories (prefixes of it)
	starts  []int       // the positions where its steps began, ascending (the conversation on a device: Engine.began)
	stats   Stats
	start   time.Time
	first   time.Time
}

// began records that a step fed s's positions from pos on, for
// Converse, the one reader: only for the conversation, and only on a
// device (whose kernels are not batch-invariant). A step whose committed
// positions were dropped again (an overlapped step that failed) is
// followed by one that begins at or below its start: the starts from
// there on go.
func (e *Engine) began(s *Sequence, pos int) {
	if !e.onDevice || s.ID != ConversationID {
		return
	}
	for len(s.starts) > 0 && s.starts[len(s.starts)-1] >= pos {
		s.starts = s.starts[:len(s.starts)-1]
	}
	s.starts = append(s.starts, pos)
}

// NewSequence makes a sequence for req with a fresh id. Its KV cache
// entries are freed by Release.
func (e *Engine) NewSequence(req Request) (*Sequence, error) {
	id := e.nextID
	e.nextID++
	return e.newSequence(id, req)
}

func (e *Engine) newSequence(id int, req Request) (*Sequence, error) {
	if len(req.Prompt) == 0 {
		return nil, errors.New("engine: empty prompt (the tokenizer adds no BOS; give some text)")
	}
	if len(req.Prompt) >= e.cfg.Ctx {
		return nil, fmt.Errorf("engine: prompt of %d tokens does not fit the context of %d tokens (raise --ctx)", len(req.Prompt), e.cfg.Ctx)
	}
	for _, t := range req.Prompt {
		if t < 0 || t >= e.Model.Config.Vocab {
			return nil, fmt.Errorf("engine: token id %d out of range [0, %d)", t, e.Model.Config.Vocab)
		}
	}
	// the frequency and presence penalties count what is generated, not
	// the prompt (OpenAI's definition)
	req.Sampling.Prompt = len(req.Prompt)
	sp, err := sample.New(req.Sampling)
	if err != nil {
		return nil, err
	}
	if !req.Logprobs {
		req.TopLogprobs = -1
	}
	return &Sequence{ID: id, req: req, tokens: append([]int(nil), req.Prompt...), sampler: sp,
		stops: sample.NewStopMatcher(req.Stop), dec: tokenizer.NewStreamDecoder(e.Tokenizer),
		stats: Stats{PromptTokens: len(req.Prompt)}}, nil
}

// Release frees the sequence's KV cache blocks.
func (e *Engine) Release(s *Sequence) {
	e.settle(s)
	e.Pool.Truncate(s.ID, 0)
}

// Preempt frees an unfinished sequence's KV cache blocks to make room for
// others; its tokens stay, and a later Step recomputes their keys and
// values (vLLM's recompute preemption). Its output does not change: a
// token's arithmetic does not depend on the step it is in. It is Release,
// named for what the caller means.
func (e *Engine) Preempt(s *Sequence) { e.Release(s) }

// CachedPrefix is the number of s's positions that AttachPrefix would
// take from the prefix cache now (0 when s holds positions already).
func (e *Engine) CachedPrefix(s *Sequence) int {
	if !e.Pool.PrefixCache() || e.Pool.SeqBlocks(s.ID) > 0 || len(s.tokens) < 2 {
		return 0
	}
	return e.Pool.MatchPrefix(s.tokens[:len(s.tokens)-1])
}

// AttachPrefix gives s, when it holds no positions, the cached KV blocks
// its tokens start with (with Config.PrefixCache; at least the last token
// is left to compute, for its logits) and returns how many positions it
// got. Step calls it; a scheduler may call it first to plan.
func (e *Engine) AttachPrefix(s *Sequence) int {
	if !e.Pool.PrefixCache() || e.Pool.SeqBlocks(s.ID) > 0 || len(s.tokens) < 2 {
		return 0
	}
	n := e.Pool.Attach(s.ID, s.tokens[:len(s.tokens)-1])
	if s.start.IsZero() {
		s.stats.ReusedTokens = n
	}
	return n
}

// Done reports whether the sequence has finished.
func (s *Sequence) Done() bool { return s.done }

// Tokens are the prompt followed by the generated tokens.
func (s *Sequence) Tokens() []int { return s.tokens }

// Stats are the sequence's counts and timings so far.
func (s *Sequence) Stats() Stats { return s.stats }

// Cancel marks the sequence finished with reason "cancelled"; its pending
// text is dropped.
func (s *Sequence) Cancel() {
	if !s.done {
		s.done = true
		s.stats.StopReason = "cancelled"
	}
}

// Output is what one step did for one sequence.
type Output struct {
	Seq *Sequence
	// Sampled is true when the step produced a token (false while the
	// prompt is still being prefilled).
	Sampled bool
	Token   int    // the sampled token (also when it is EOS)
	Text    string // text released by this token (UTF-8 complete, clear of stop strings)
	Logprob float32
	Top     []backend.TokenLogprob
	Done    bool
	Reason  string // when Done
}

type scheduled struct {
	seq   *Sequence
	from  int // first position fed
	n     int // tokens fed, not counting the draft
	out   bool
	draft []int // fed after the n tokens (prompt lookup)
}

// Step advances seqs (finished ones are skipped) by one forward pass of at
// most budget tokens (0 = the engine's StepTokens): in order, each
// sequence feeds its pending tokens (a prompt chunk, or its last sampled
// token), and those that reach their end sample a token. Sequences that do
// not fit the budget or the KV pool wait for a later step; if none fits,
// the error wraps ErrNoBlocks. Nothing of a sequence is committed unless
// the whole forward pass succeeds. With Config.Lookup, a sequence may also
// feed a draft and produce several tokens, one Output each, in order
// (lookup.go).
//
// On a backend that pipelines (model.Context.Pipelines; Config.NoOverlap
// off), a step of decoding sequences also queues the next one on the
// tokens the device sampled before reading them back, and the next call
// collects it (overlap.go): the outputs are the same, a step later in
// the GPU's time but not in the caller's. A queued step's positions are
// committed when it is queued; an error while collecting it drops them.
func (e *Engine) Step(seqs []*Sequence, budget int) ([]Output, error) {
	if budget <= 0 || budget > e.cfg.StepTokens {
		budget = e.cfg.StepTokens
	}
	if e.pending == nil {
		return e.plainStep(seqs, budget)
	}
	outs, more, err := e.advance(seqs, budget)
	if err != nil || !more {
		return outs, err
	}
	// the pipeline ended: a plain step for every sequence with work, in
	// this call (new sequences wait for no more than the one step)
	next, err := e.plainStep(seqs, budget)
	if err != nil && len(outs) > 0 && IsNoBlocks(err) {
		return outs, nil // the next call says it again
	}
	return append(outs, next...), err
}

// plainStep is Step with no step pending: it schedules, runs and samples
// one forward pass (and, when it is a decoding step that can overlap,
// queues the next one before collecting it: launchOverlapped).
func (e *Engine) plainStep(seqs []*Sequence, budget int) ([]Output, error) {
	call := budget
	st := &e.step
	st.Reset()
	e.sel = e.sel[:0]
	var outs []Output
	var noBlocks error
	for _, s := range seqs {
		if s.done || budget == 0 || len(e.sel) == e.cfg.MaxSeqs {
			continue
		}
		e.AttachPrefix(s)
		fed := e.Pool.Len(s.ID)
		if fed >= e.cfg.Ctx {
			s.finish("context")
			outs = append(outs, Output{Seq: s, Done: true, Reason: "context"})
			continue
		}
		k := min(len(s.tokens)-fed, budget)
		if err := e.Pool.Reserve(s.ID, k); err != nil {
			noBlocks = err
			continue
		}
		if s.start.IsZero() {
			s.start = time.Now()
		}
		budget -= k
		e.sel = append(e.sel, scheduled{seq: s, from: fed, n: k, out: fed+k == len(s.tokens)})
	}
	if len(e.sel) == 0 {
		if noBlocks != nil && len(outs) == 0 {
			return nil, noBlocks
		}
		return outs, nil
	}
	if e.cfg.Lookup > 0 {
		// drafts come after every sequence's own tokens, in the budget,
		// logits rows and blocks those leave
		e.addDrafts(budget, e.maxOut-len(e.sel))
	}
	for _, sc := range e.sel {
		feed := sc.seq.tokens[sc.from : sc.from+sc.n]
		if len(sc.draft) > 0 {
			e.feed = append(append(e.feed[:0], feed...), sc.draft...)
			feed = e.feed
		}
		e.Pool.AppendStep(st, sc.seq.ID, feed)
		if sc.out {
			for i := len(sc.draft); i >= 0; i-- {
				st.Out = append(st.Out, int32(len(st.Tokens)-1-i))
			}
		}
	}
	began := time.Now()
	if err := e.ctx.Forward(st, e.Pool.KV()); err != nil {
		return outs, err
	}
	e.reqs, e.res = e.reqs[:0], e.res[:0]
	for _, sc := range e.sel {
		s := sc.seq
		e.Pool.Commit(s.ID, sc.n+len(sc.draft))
		e.began(s, sc.from)
		if len(sc.draft) == 0 {
			e.Pool.Register(s.ID, s.tokens)
		}
		if !sc.out {
			continue
		}
		if len(sc.draft) == 0 {
			e.reqs = append(e.reqs, backend.SampleRequest{Sampler: s.sampler, History: s.tokens, TopLogprobs: s.req.TopLogprobs})
			continue
		}
		// the positions' histories: the tokens, then the draft tokens
		// before each (their length is the position, which keys a sampled
		// draw; the repetition penalty reads their tail)
		s.hist = append(append(s.hist[:0], s.tokens...), sc.draft...)
		for i := range len(sc.draft) + 1 {
			e.reqs = append(e.reqs, backend.SampleRequest{Sampler: s.sampler, History: s.hist[:len(s.tokens)+i], TopLogprobs: s.req.TopLogprobs})
		}
	}
	for len(e.res) < len(e.reqs) {
		e.res = append(e.res, backend.SampleResult{})
	}
	if e.overlaps(e.sel) {
		return e.launchOverlapped(outs, seqs, call)
	}
	if len(e.reqs) > 0 {
		if err := e.ctx.Sample(e.reqs, e.res[:len(e.reqs)]); err != nil {
			return outs, err
		}
	}
	r := 0
	for _, sc := range e.sel {
		switch {
		case !sc.out:
			outs = append(outs, Output{Seq: sc.seq})
		case len(sc.draft) > 0:
			outs = e.acceptDraft(outs, sc, e.res[r:r+len(sc.draft)+1])
			r += len(sc.draft) + 1
		default:
			outs = append(outs, e.accept(sc.seq, e.res[r]))
			r++
		}
	}
	if e.planner != nil && len(st.Out) == len(st.Tokens) { // a decoding step: what it cost, its drafts' bookkeeping too
		e.planner.Observe(len(st.Tokens), time.Since(began).Seconds())
	}
	return outs, nil
}

// accept appends a sampled token to s and decides whether s is finished.
func (e *Engine) accept(s *Sequence, res backend.SampleResult) Output {
	now := time.Now()
	if s.first.IsZero() {
		s.first = now
		s.stats.Prefill = now.Sub(s.start)
	}
	o := Output{Seq: s, Sampled: true, Token: res.Token, Logprob: res.Logprob, Top: append([]backend.TokenLogprob(nil), res.Top...)}
	finish := func(reason string) Output {
		if reason != "stop" {
			text, _ := s.stops.Push(s.dec.Flush())
			o.Text += text + s.stops.Flush()
		}
		s.finish(reason)
		o.Done, o.Reason = true, reason
		return o
	}
	if e.eos[res.Token] && !s.req.IgnoreEOS {
		return finish("eos")
	}
	s.tokens = append(s.tokens, res.Token)
	s.stats.GeneratedTokens++
	text, stopped := s.stops.Push(s.dec.Add(res.Token))
	o.Text = text
	if stopped {
		return finish("stop")
	}
	if s.req.MaxTokens > 0 && s.stats.GeneratedTokens >= s.req.MaxTokens {
		return finish("length")
	}
	if len(s.tokens)-1 >= e.cfg.Ctx {
		return finish("context")
	}
	return o
}

func (s *Sequence) finish(reason string) {
	s.done = true
	s.stats.StopReason = reason
	if !s.first.IsZero() {
		s.stats.Decode = time.Since(s.first)
	}
}
