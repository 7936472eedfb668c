package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
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
	Seed          *uint64   `json:"seed"` // absent or 0 = random
	Stop          []string  `json:"stop"`
	IgnoreEOS     bool      `json:"ignore_eos"`
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
		MinP: or(r.MinP, 0.05), RepeatPenalty: or(r.RepeatPenalty, 1), Seed: or(r.Seed, 0)}
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
	}
	for _, s := range r.Stop {
		if s == "" {
			return engine.Request{}, argErrorf("stop strings must not be empty")
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

// genObj is one generation in flight. A goroutine runs engine.Generate
// (the same loop as `upg run`) and hands text pieces over ch; the caller
// polls with next, which waits at most a timeout so that the caller's
// thread can notice Ctrl-C between calls.
type genObj struct {
	m       *modelObj
	ch      chan string   // closed when the generation has ended
	done    chan struct{} // closed before ch, once stats and err are written
	cancel  context.CancelFunc
	timer   *time.Timer
	pending string // text that did not fit the caller's buffer

	// Written by the goroutine before it closes ch.
	stats engine.Stats
	err   error
}

// genBuffer is how many pieces the generation may run ahead of the caller.
const genBuffer = 256

func (m *modelObj) startGen(r genRequest) (*genObj, error) {
	if err := m.use(); err != nil {
		return nil, err
	}
	req, err := m.request(r)
	m.life.RUnlock()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &genObj{m: m, ch: make(chan string, genBuffer), done: make(chan struct{}), cancel: cancel, timer: time.NewTimer(time.Hour)}
	g.timer.Stop()
	m.gensMu.Lock()
	defer m.gensMu.Unlock()
	if m.closing {
		cancel()
		return nil, errClosed
	}
	m.gens[g] = true
	go g.run(ctx, req)
	return g, nil
}

func (g *genObj) run(ctx context.Context, req engine.Request) {
	m := g.m
	defer func() {
		if p := recover(); p != nil {
			g.err = fmt.Errorf("internal error: %v", p)
		}
		m.gensMu.Lock()
		delete(m.gens, g)
		m.gensMu.Unlock()
		close(g.done)
		close(g.ch)
	}()
	if err := m.use(); err != nil {
		g.err = err
		return
	}
	defer m.life.RUnlock()
	m.gen.Lock()
	defer m.gen.Unlock()
	if ctx.Err() != nil {
		g.stats.StopReason = "cancelled"
		return
	}
	m.run.Lock()
	held := true
	defer func() {
		if held {
			m.run.Unlock()
		}
	}()
	// Generate calls emit between its steps, where the backend is idle.
	st, err := m.l.Generate(ctx, req, func(s string) {
		held = false
		m.run.Unlock()
		select {
		case g.ch <- s:
		case <-ctx.Done():
		}
		m.run.Lock()
		held = true
	})
	g.stats = st
	if err != nil && ctx.Err() == nil {
		g.err = err
	}
}

// next copies text produced since the last call into buf. With maxPieces
// > 0 it waits up to timeout for a first piece, then takes the pieces
// already waiting, up to maxPieces (streaming); with maxPieces 0 it
// collects pieces until the generation ends or timeout passes (one wake-up
// per timeout instead of one per token). Either way it stops when buf is
// full. finished reports that the generation has ended and all its text was
// returned; the generation's error, if any, is returned with finished.
func (g *genObj) next(timeout time.Duration, maxPieces int, buf []byte) (n int, finished bool, err error) {
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
	g.timer.Reset(timeout)
	defer g.timer.Stop()
	for {
		var s string
		var ok bool
		if n == 0 || maxPieces <= 0 {
			select {
			case s, ok = <-g.ch:
			case <-g.timer.C:
				return n, false, nil
			}
		} else {
			select {
			case s, ok = <-g.ch:
			default:
				return n, false, nil
			}
		}
		if !ok {
			return n, true, g.err
		}
		if !put(s) {
			return n, false, nil
		}
	}
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
}

// finishedStats returns the generation's statistics once it has ended.
func (g *genObj) finishedStats() (statsJSON, error) {
	select {
	case <-g.done:
	default:
		return statsJSON{}, argErrorf("the generation has not finished")
	}
	st := g.stats
	return statsJSON{PromptTokens: st.PromptTokens, ReusedTokens: st.ReusedTokens, GeneratedTokens: st.GeneratedTokens,
		PrefillSeconds: st.Prefill.Seconds(), DecodeSeconds: st.Decode.Seconds(), PrefillTokS: st.PrefillTokS(),
		DecodeTokS: st.DecodeTokS(), StopReason: st.StopReason}, nil
}

// randomSeed is a seed for requests that give none (as upg run does).
func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}
