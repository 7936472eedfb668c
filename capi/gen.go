package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/sample"
)

// message is one chat message (OpenAI's shape; content is text).
type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// genRequest is upg_gen_start's JSON. Exactly one of Prompt (text,
// tokenized with BOS as the model wants), Messages (rendered with the
// model's chat template) and IDs (token ids, used as they are) is given.
// Absent options take the defaults of `upg run`.
type genRequest struct {
	Prompt        *string   `json:"prompt"`
	Messages      []message `json:"messages"`
	IDs           []int     `json:"ids"`
	MaxTokens     *int      `json:"max_tokens"` // 0 = until end of text or the context is full
	Temperature   *float32  `json:"temperature"`
	TopK          *int      `json:"top_k"`
	TopP          *float32  `json:"top_p"`
	MinP          *float32  `json:"min_p"`
	RepeatPenalty *float32  `json:"repeat_penalty"`
	// OpenAI's penalties (-2 to 2) and logit bias (-100 to 100 a token id)
	FrequencyPenalty *float32        `json:"frequency_penalty"`
	PresencePenalty  *float32        `json:"presence_penalty"`
	LogitBias        map[int]float32 `json:"logit_bias"`
	Seed             *uint64         `json:"seed"` // absent or 0 = random
	Stop             []string        `json:"stop"`
	IgnoreEOS        bool            `json:"ignore_eos"`
	// Format "json" constrains the output to one JSON object; a JSON
	// Schema (an object) to one value the schema accepts.
	Format json.RawMessage `json:"format"`
}

func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// request validates r and turns it into an engine request for m.
func (m *modelObj) request(r genRequest) (engine.Request, error) {
	o := sample.Options{Temperature: or(r.Temperature, 0.7), TopK: or(r.TopK, 40), TopP: or(r.TopP, 0.95),
		MinP: or(r.MinP, 0.05), RepeatPenalty: or(r.RepeatPenalty, 1), Seed: or(r.Seed, 0),
		FrequencyPenalty: or(r.FrequencyPenalty, 0), PresencePenalty: or(r.PresencePenalty, 0), LogitBias: r.LogitBias}
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	maxTokens := or(r.MaxTokens, 128)
	switch {
	case maxTokens < 0:
		return engine.Request{}, argErrorf("max_tokens %d must be ≥ 0", maxTokens)
	case !finite(o.Temperature) || o.Temperature < 0:
		return engine.Request{}, argErrorf("temperature %v must be a finite number ≥ 0", o.Temperature)
	case o.TopK < 0:
		return engine.Request{}, argErrorf("top_k %d must be ≥ 0", o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return engine.Request{}, argErrorf("top_p %v must be in [0, 1]", o.TopP)
	case !(o.MinP >= 0 && o.MinP <= 1):
		return engine.Request{}, argErrorf("min_p %v must be in [0, 1]", o.MinP)
	case !finite(o.RepeatPenalty) || o.RepeatPenalty <= 0:
		return engine.Request{}, argErrorf("repeat_penalty %v must be a finite number > 0", o.RepeatPenalty)
	case !(o.FrequencyPenalty >= -sample.PenaltyLimit && o.FrequencyPenalty <= sample.PenaltyLimit):
		return engine.Request{}, argErrorf("frequency_penalty %v must be in [%d, %d]", o.FrequencyPenalty, -sample.PenaltyLimit, sample.PenaltyLimit)
	case !(o.PresencePenalty >= -sample.PenaltyLimit && o.PresencePenalty <= sample.PenaltyLimit):
		return engine.Request{}, argErrorf("presence_penalty %v must be in [%d, %d]", o.PresencePenalty, -sample.PenaltyLimit, sample.PenaltyLimit)
	}
	for t, b := range o.LogitBias {
		if t < 0 || t >= m.l.Model.Config.Vocab {
			return engine.Request{}, argErrorf("logit_bias token id %d is out of range [0, %d)", t, m.l.Model.Config.Vocab)
		}
		if !(b >= -sample.BiasLimit && b <= sample.BiasLimit) {
			return engine.Request{}, argErrorf("logit_bias of token %d: %v must be in [%d, %d]", t, b, -sample.BiasLimit, sample.BiasLimit)
		}
	}
	for _, s := range r.Stop {
		if s == "" {
			return engine.Request{}, argErrorf("stop strings must not be empty")
		}
	}
	if f := bytes.TrimSpace(r.Format); len(f) > 0 && !bytes.Equal(f, []byte("null")) && !bytes.Equal(f, []byte(`""`)) {
		if r.IgnoreEOS {
			return engine.Request{}, argErrorf("format and ignore_eos do not go together: the value's end ends the text")
		}
		var name string
		switch {
		case f[0] == '{':
			c, err := m.l.Schema(f)
			if err != nil {
				return engine.Request{}, argErrorf("format: %v", err)
			}
			o.Constraint = c
		case json.Unmarshal(f, &name) == nil && name == "json":
			o.Constraint = m.l.JSON()
		default:
			return engine.Request{}, argErrorf(`format %s: the formats are "json" (one JSON object), a JSON Schema (an object) or none (free text)`, f)
		}
	}
	if o.Seed == 0 {
		o.Seed = randomSeed()
	}
	if _, err := sample.New(o); err != nil { // what the checks above missed
		return engine.Request{}, &apiError{codeArgument, err}
	}
	req := engine.Request{MaxTokens: maxTokens, Sampling: o, Stop: r.Stop, IgnoreEOS: r.IgnoreEOS}
	given := 0
	l := m.l
	if r.Prompt != nil {
		given++
		req.Prompt = l.EncodePrompt(*r.Prompt)
		if len(req.Prompt) == 0 {
			return engine.Request{}, argErrorf("empty prompt: this tokenizer adds no BOS token, so there is nothing to start from; give some text")
		}
	}
	if r.Messages != nil {
		given++
		if len(r.Messages) == 0 {
			return engine.Request{}, argErrorf("messages is empty")
		}
		msgs := make([]chat.Message, len(r.Messages))
		for i, mm := range r.Messages {
			switch mm.Role {
			case "system", "user", "assistant":
			default:
				return engine.Request{}, argErrorf("message %d: role %q is not system, user or assistant", i, mm.Role)
			}
			msgs[i] = chat.Message{Role: mm.Role, Content: mm.Content}
		}
		req.Prompt = l.EncodeChat(msgs)
		req.Stop = append(l.Template.Stops(), req.Stop...)
	}
	if r.IDs != nil {
		given++
		if len(r.IDs) == 0 {
			return engine.Request{}, argErrorf("empty list of prompt token ids")
		}
		V := l.Model.Config.Vocab
		for i, id := range r.IDs {
			if id < 0 || id >= V {
				return engine.Request{}, argErrorf("prompt token id %d at index %d is out of range [0, %d)", id, i, V)
			}
		}
		req.Prompt = append([]int(nil), r.IDs...)
	}
	if given != 1 {
		return engine.Request{}, argErrorf("give exactly one of prompt, messages and ids (%d given)", given)
	}
	if len(req.Prompt) >= l.Capacity() {
		return engine.Request{}, argErrorf("prompt of %d tokens does not fit the context of %d tokens (load the model with a larger ctx)", len(req.Prompt), l.Capacity())
	}
	return req, nil
}

// genObj is one generation. It runs on the caller's thread: each poll
// (next) steps the engine until it has text to return or its time is up,
// so no thread hands text to another, and the caller gets control back
// often enough to notice Ctrl-C. The engine's conversation belongs to one
// generation at a time (it holds m.gen from its first poll to its end);
// each step holds m.run only while it computes, so logits can run between
// steps.
type genObj struct {
	m         *modelObj
	req       engine.Request
	cancelled atomic.Bool // set from any thread; seen between steps

	mu      sync.Mutex // one poll (or release) at a time
	owner   bool       // holds m.gen
	seq     *engine.Sequence
	ended   bool // all text produced; stats and err final
	stats   engine.Stats
	err     error
	pending string // text that did not fit the caller's buffer
}

func (m *modelObj) startGen(r genRequest) (*genObj, error) {
	if err := m.use(); err != nil {
		return nil, err
	}
	req, err := m.request(r)
	m.life.RUnlock()
	if err != nil {
		return nil, err
	}
	g := &genObj{m: m, req: req}
	m.gensMu.Lock()
	defer m.gensMu.Unlock()
	if m.closing {
		return nil, errClosed
	}
	m.gens[g] = true
	return g, nil
}

// next copies the generation's next text into buf. With maxPieces > 0 it
// returns once it has that many pieces (streaming: 1); with maxPieces 0 it
// collects text until the generation ends. Either way it returns when buf
// is full or timeout has passed (after the step then running; n may be 0).
// finished reports that the generation has ended and all its text was
// returned; the generation's error, if any, comes with it.
func (g *genObj) next(timeout time.Duration, maxPieces int, buf []byte) (n int, finished bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	deadline := time.Now().Add(timeout)
	pieces := 0
	// put copies s into buf and reports whether there is room for more;
	// what does not fit waits in pending. A piece longer than the whole
	// buffer is cut at a UTF-8 boundary.
	put := func(s string) bool {
		if len(s) > len(buf)-n {
			if n > 0 {
				g.pending = s
				return false
			}
			cut := len(buf)
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			if cut == 0 { // a buffer smaller than one character
				cut = min(len(s), len(buf))
			}
			n += copy(buf, s[:cut])
			g.pending = s[cut:]
			return false
		}
		n += copy(buf[n:], s)
		pieces++
		return maxPieces <= 0 || pieces < maxPieces
	}
	if g.pending != "" {
		s := g.pending
		g.pending = ""
		if !put(s) {
			return n, false, nil
		}
	}
	if g.ended {
		return n, true, g.err
	}
	m := g.m
	if err := m.use(); err != nil {
		g.end(err)
		return n, true, err
	}
	defer m.life.RUnlock()
	if !g.owner {
		if !g.acquire(deadline) {
			return n, false, nil
		}
		if g.cancelled.Load() {
			g.end(nil)
			return n, true, nil
		}
		s, err := m.l.Converse(g.req)
		if err != nil {
			g.end(err)
			return n, true, err
		}
		g.seq = s
	}
	seqs := []*engine.Sequence{g.seq}
	for {
		if g.cancelled.Load() {
			g.seq.Cancel()
		}
		if g.seq.Done() {
			g.end(nil)
			return n, g.pending == "", nil
		}
		if time.Now().After(deadline) {
			return n, false, nil
		}
		m.run.Lock()
		outs, err := m.l.Step(seqs, 0)
		m.run.Unlock()
		if err != nil {
			g.seq.Cancel()
			g.end(err)
			if n > 0 {
				return n, false, nil // the text first, the error at the next poll
			}
			return 0, true, err
		}
		room := true
		for _, o := range outs {
			if o.Text != "" && room {
				room = put(o.Text)
			} else if o.Text != "" {
				g.pending += o.Text
			}
		}
		if !room {
			return n, false, nil
		}
	}
}

// acquire takes the engine's conversation for g, waiting until deadline.
func (g *genObj) acquire(deadline time.Time) bool {
	select {
	case g.m.gen <- struct{}{}:
	default:
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case g.m.gen <- struct{}{}:
		case <-t.C:
			return false
		}
	}
	g.owner = true
	return true
}

// end records that g has ended (err: why it failed) and gives the
// conversation back. Under g.mu.
func (g *genObj) end(err error) {
	if g.ended {
		return
	}
	g.ended, g.err = true, err
	if g.seq != nil {
		g.stats = g.seq.Stats()
	} else {
		g.stats = engine.Stats{PromptTokens: len(g.req.Prompt), StopReason: "cancelled"}
	}
	if g.owner {
		g.owner = false
		<-g.m.gen
	}
	g.m.gensMu.Lock()
	delete(g.m.gens, g)
	g.m.gensMu.Unlock()
}

// cancel asks g to stop at its next step (any thread, any time).
func (g *genObj) cancel() { g.cancelled.Store(true) }

// release cancels g, waits for a poll in progress, and ends g (its text
// not yet returned is dropped).
func (g *genObj) release() {
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seq != nil && !g.seq.Done() {
		g.seq.Cancel()
	}
	g.end(nil)
	g.pending = ""
}

// statsJSON is upg_gen_stats' JSON.
type statsJSON struct {
	PromptTokens    int     `json:"prompt_tokens"`
	ReusedTokens    int     `json:"reused_tokens"`
	GeneratedTokens int     `json:"generated_tokens"`
	PrefillSeconds  float64 `json:"prefill_s"`
	DecodeSeconds   float64 `json:"decode_s"`
	PrefillTokS     float64 `json:"prefill_tok_s"`
	DecodeTokS      float64 `json:"decode_tok_s"`
	StopReason      string  `json:"stop_reason"`
	LookupDrafted   int     `json:"lookup_drafted"`
	LookupAccepted  int     `json:"lookup_accepted"`
}

// finishedStats returns the generation's statistics once it has ended.
func (g *genObj) finishedStats() (statsJSON, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ended {
		return statsJSON{}, argErrorf("the generation has not finished")
	}
	return newStats(g.stats), nil
}

func newStats(st engine.Stats) statsJSON {
	return statsJSON{PromptTokens: st.PromptTokens, ReusedTokens: st.ReusedTokens, GeneratedTokens: st.GeneratedTokens,
		PrefillSeconds: st.Prefill.Seconds(), DecodeSeconds: st.Decode.Seconds(), PrefillTokS: st.PrefillTokS(),
		DecodeTokS: st.DecodeTokS(), StopReason: st.StopReason, LookupDrafted: st.Drafted, LookupAccepted: st.Accepted}
}

// randomSeed is a seed for requests that give none (as upg run does).
func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}
