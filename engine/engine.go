// Package engine turns a loaded model into text: it tokenizes prompts,
// prefills them in blocks, samples tokens one at a time, streams valid UTF-8
// text, honours stop strings and token limits, and reports speed.
package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tokenizer"
)

// PrefillBlock is how many prompt tokens go through the model together.
const PrefillBlock = 256

// Engine generates text from one model for one conversation (sequence 0).
type Engine struct {
	Model     *model.Model
	Tokenizer tokenizer.Tokenizer
	Template  *chat.Template
	Cache     kvcache.Cache

	cached []int       // tokens whose keys/values are in Cache, in order
	batch  model.Batch // reused so that decoding allocates nothing per token
}

// New makes an engine with a contiguous cache of ctx positions.
func New(m *model.Model, tok tokenizer.Tokenizer, tmpl *chat.Template, ctx int) *Engine {
	if ctx <= 0 || (m.Config.MaxPositions > 0 && ctx > m.Config.MaxPositions) {
		ctx = m.Config.MaxPositions
	}
	if ctx <= 0 {
		ctx = 2048
	}
	return &Engine{Model: m, Tokenizer: tok, Template: tmpl,
		Cache: kvcache.NewContiguous(m.Config.Layers, m.Config.KVHeads, m.Config.HeadDim, ctx)}
}

// Request describes one generation.
type Request struct {
	Prompt    []int // already tokenized (see EncodePrompt, EncodeChat)
	MaxTokens int   // 0 = until EOS or the context is full
	Sampling  sample.Options
	Stop      []string
	// IgnoreEOS keeps generating past end-of-sequence tokens.
	IgnoreEOS bool
}

// Stats reports what a generation did and how fast.
type Stats struct {
	PromptTokens    int
	ReusedTokens    int // prompt tokens whose cache entries were reused
	GeneratedTokens int
	Prefill         time.Duration
	Decode          time.Duration
	StopReason      string // "eos", "stop", "length", "context", "cancelled"
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

// EncodePrompt tokenizes a raw completion prompt, adding BOS as the tokenizer is configured to.
func (e *Engine) EncodePrompt(text string) []int {
	return e.Tokenizer.Encode(text, true, true)
}

// EncodeChat renders messages with the chat template and tokenizes them.
func (e *Engine) EncodeChat(msgs []chat.Message) []int {
	text := e.Template.Render(msgs, true)
	return e.Tokenizer.Encode(text, !e.Template.AddsBOS(), true)
}

// Generate runs req, calling emit with each piece of text as soon as it is
// complete UTF-8 and cannot be part of a stop string. Cache entries shared
// with the previous request's tokens are reused (chat history).
func (e *Engine) Generate(ctx context.Context, req Request, emit func(string)) (Stats, error) {
	st := Stats{PromptTokens: len(req.Prompt)}
	if len(req.Prompt) == 0 {
		return st, errors.New("engine: empty prompt (the tokenizer adds no BOS; give some text)")
	}
	capacity := e.Cache.Capacity()
	if len(req.Prompt) >= capacity {
		return st, fmt.Errorf("engine: prompt of %d tokens does not fit the context of %d tokens (raise --ctx)", len(req.Prompt), capacity)
	}
	sampler, err := sample.New(req.Sampling)
	if err != nil {
		return st, err
	}
	stops := sample.NewStopMatcher(req.Stop)
	dec := tokenizer.NewStreamDecoder(e.Tokenizer)
	eos := map[int]bool{}
	for _, id := range e.Tokenizer.EOS() {
		eos[id] = true
	}
	for _, id := range e.Model.Config.EOS {
		eos[id] = true
	}

	// Reuse the longest common prefix of the cache (keep ≥ 1 token to compute).
	keep := 0
	for keep < len(e.cached) && keep < len(req.Prompt)-1 && e.cached[keep] == req.Prompt[keep] {
		keep++
	}
	e.Cache.Truncate(0, keep)
	e.cached = e.cached[:keep]
	st.ReusedTokens = keep

	start := time.Now()
	var logits []float32
	V := e.Model.Config.Vocab
	for i := keep; i < len(req.Prompt); i += PrefillBlock {
		j := min(i+PrefillBlock, len(req.Prompt))
		if logits, err = e.forward(req.Prompt[i:j], i); err != nil {
			return st, err
		}
		if ctx.Err() != nil {
			st.StopReason = "cancelled"
			return st, ctx.Err()
		}
	}
	st.Prefill = time.Since(start)

	history := append([]int(nil), req.Prompt...)
	start = time.Now()
	var firstTok time.Time
	finish := func(reason string) (Stats, error) {
		st.StopReason = reason
		if !firstTok.IsZero() {
			st.Decode = time.Since(firstTok)
		}
		if reason != "stop" {
			if s, _ := stops.Push(dec.Flush()); s != "" {
				emit(s)
			}
			if s := stops.Flush(); s != "" {
				emit(s)
			}
		}
		return st, nil
	}
	for {
		tok := sampler.Sample(logits[:V], history)
		if st.GeneratedTokens == 0 {
			firstTok = time.Now()
		}
		if eos[tok] && !req.IgnoreEOS {
			return finish("eos")
		}
		st.GeneratedTokens++
		history = append(history, tok)
		text, stopped := stops.Push(dec.Add(tok))
		if text != "" {
			emit(text)
		}
		if stopped {
			return finish("stop")
		}
		if req.MaxTokens > 0 && st.GeneratedTokens >= req.MaxTokens {
			return finish("length")
		}
		if len(e.cached) >= capacity {
			return finish("context")
		}
		if ctx.Err() != nil {
			finish("cancelled")
			return st, ctx.Err()
		}
		if logits, err = e.forward([]int{tok}, len(e.cached)); err != nil {
			return st, err
		}
	}
}

// forward runs tokens at positions pos.. of sequence 0 and returns the last logits.
func (e *Engine) forward(toks []int, pos int) ([]float32, error) {
	b := &e.batch
	b.Tokens, b.Pos, b.Seq = toks, b.Pos[:0], b.Seq[:0]
	for i := range toks {
		b.Pos = append(b.Pos, pos+i)
		b.Seq = append(b.Seq, 0)
	}
	logits, err := e.Model.Forward(b, e.Cache)
	if err != nil {
		return nil, err
	}
	e.cached = append(e.cached, toks...)
	return logits, nil
}
