// Package engine turns a loaded model into text for many sequences at once.
// A Sequence holds one request: its tokens, sampler, stop strings and
// streaming decoder. Step advances any set of sequences together in one
// forward pass (prompt chunks and single decode tokens mixed, within a
// token budget) and returns per-sequence results; Generate is a loop over
// Step for one conversation, reusing its cached prefix across calls.
package engine

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/constrain"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tokenizer"
)

// PrefillBlock is the default step budget: how many tokens go through the
// model together.
const PrefillBlock = 256

// Config sizes an engine.
type Config struct {
	// Ctx is the most positions one sequence may hold (prompt and output).
	Ctx int
	// StepTokens is the most tokens one step carries (0 = PrefillBlock).
	StepTokens int
	// MaxSeqs is the most sequences one step carries (0 = 1).
	MaxSeqs int
	// KVCache is the cached keys' and values' type (backend.KVF16, the
	// zero value; KVF32 is exact; KVQ8 is int8 with scales).
	KVCache backend.KVType
	// KVBudget is the KV pool's size in bytes (0 = Ctx positions for each
	// of MaxSeqs sequences).
	KVBudget int64
	// BlockSize is the KV block size in positions (0 = kvcache.DefaultBlockSize).
	BlockSize int
	// PrefixCache keeps full KV blocks after their sequences end and lets
	// new sequences that start with the same tokens reuse them (a shared
	// system prompt, an earlier chat turn); see kvcache.
	PrefixCache bool
	// Lookup > 0 turns on prompt-lookup decoding (see lookup.go): each
	// decode step also feeds up to Lookup tokens that followed the
	// sequence's last tokens where they occurred before, and keeps those
	// the model picks itself (the same text, greedy or sampled). How many
	// of a draft's tokens a step feeds is the DraftPlanner's choice, from
	// the step costs it measures and how often drafts are kept.
	Lookup int
	// LookupWhole feeds every draft whole (as far as Lookup, the step
	// and the cache allow) instead of the DraftPlanner's share of it: for
	// measurements of a fixed draft length, and tests that count drafts.
	LookupWhole bool
	// NoOverlap turns host overlap off (overlap.go): each decoding step's
	// tokens are read back before the next step is queued, as on a backend
	// that does not pipeline. For comparisons.
	NoOverlap bool
}

// MaxLookup bounds Config.Lookup: a longer draft rarely survives.
const MaxLookup = 64

// Engine runs sequences over one model, one context and one KV pool. It is
// not safe for concurrent use: one goroutine (a scheduler) drives it.
type Engine struct {
	Model     *model.Model
	Tokenizer tokenizer.Tokenizer
	Template  *chat.Template
	Pool      *kvcache.Pool

	cfg  Config
	ctx  *model.Context
	eos  map[int]bool
	step backend.Step
	sel  []scheduled
	// maxOut is the most logits rows a step returns: one per sequence and
	// the drafts (Config.Lookup) on top
	maxOut int
	feed   []int // a drafting sequence's fed tokens (its last and the draft)
	// planner chooses drafts' lengths (Lookup without LookupWhole)
	planner *DraftPlanner
	offers  []DraftOffer
	offered []int // the sel index of each offer
	plan    []int
	reqs    []backend.SampleRequest
	res     []backend.SampleResult

	conv   *Sequence // Generate's conversation (sequence ConversationID)
	nextID int
	// onDevice: some layers run on a device backend, whose one-token and
	// multi-token kernels round differently, so a token's results depend on
	// how its positions were split into steps (the CPU's do not: its
	// kernels are batch-invariant). Converse then reuses a cached prefix
	// only up to where a step of the previous conversation began.
	onDevice bool

	// pending is a decoding step queued on the device's tokens whose own
	// tokens the next Step collects (overlap.go); inP indexes its rows
	pending    *inflight
	inP        map[*Sequence]int
	overlapped int

	jsonOnce sync.Once
	json     *constrain.JSON
	schemas  schemaCache // compiled JSON schemas by their text (Schema)
}

// JSON is the constraint that keeps a sequence's output one JSON object
// (sample.Options.Constraint; OpenAI's response_format json_object) for
// this engine's vocabulary, ending with one of its end tokens. It is built
// on first use and shared; safe for concurrent use.
func (e *Engine) JSON() *constrain.JSON {
	e.jsonOnce.Do(func() {
		tok := e.Tokenizer
		end := make([]int, 0, len(e.eos))
		for id := range e.eos {
			end = append(end, id)
		}
		e.json = constrain.NewJSON(e.Model.Config.Vocab, func(t int) []byte {
			if t >= tok.VocabSize() {
				return nil
			}
			return tok.TokenBytes(t)
		}, func(t int) bool { return t < tok.VocabSize() && tok.IsControl(t) }, end)
	})
	return e.json
}

// Schema is the constraint that keeps a sequence's output one JSON value
// that schema (JSON Schema text) accepts (constrain.NewSchema; OpenAI's
// response_format json_schema), for this engine's vocabulary. Compiled
// schemas, and the errors of refused ones, are kept by their text
// (schemaCache); safe for concurrent use. The error names what the schema
// uses that is not supported.
func (e *Engine) Schema(schema []byte) (*constrain.Schema, error) {
	j := e.JSON()
	return e.schemas.get(string(schema), func() (*constrain.Schema, error) { return constrain.NewSchema(j, schema) })
}

// ConversationID is the sequence id Generate uses.
const ConversationID = 0

// New makes an engine: a model context and a KV pool on the model's backend.
func New(m *model.Model, tok tokenizer.Tokenizer, tmpl *chat.Template, cfg Config) (*Engine, error) {
	if cfg.Ctx <= 0 {
		return nil, fmt.Errorf("engine: context of %d positions", cfg.Ctx)
	}
	if cfg.StepTokens <= 0 {
		cfg.StepTokens = PrefillBlock
	}
	if cfg.MaxSeqs <= 0 {
		cfg.MaxSeqs = 1
	}
	cfg.StepTokens = max(cfg.StepTokens, cfg.MaxSeqs)
	if cfg.Lookup < 0 || cfg.Lookup > MaxLookup {
		return nil, fmt.Errorf("engine: lookup of %d tokens (want 0 to %d)", cfg.Lookup, MaxLookup)
	}
	maxOut := min(cfg.StepTokens, cfg.MaxSeqs*(1+cfg.Lookup))
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = kvcache.DefaultBlockSize
	}
	c := &m.Config
	po := kvcache.Options{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: cfg.KVCache, BlockSize: cfg.BlockSize, Budget: cfg.KVBudget,
		PrefixCache: cfg.PrefixCache}
	if po.Budget <= 0 {
		po.Budget = kvcache.BudgetFor(po, cfg.Ctx, cfg.MaxSeqs)
	}
	pool, err := kvcache.New(m, po)
	if err != nil {
		return nil, err
	}
	ctx, err := m.NewContext(model.ContextOptions{MaxTokens: cfg.StepTokens, MaxOut: maxOut, MaxSeqs: cfg.MaxSeqs,
		Positions: cfg.Ctx, BlockSize: cfg.BlockSize})
	if err != nil {
		return nil, err
	}
	e := &Engine{Model: m, Tokenizer: tok, Template: tmpl, Pool: pool, cfg: cfg, ctx: ctx, maxOut: maxOut, eos: map[int]bool{},
		nextID: ConversationID + 1, onDevice: slices.ContainsFunc(m.Stages(), func(s model.Stage) bool { return isDevice(s.Backend) })}
	if cfg.Lookup > 0 && !cfg.LookupWhole {
		e.planner = NewDraftPlanner(cfg.StepTokens)
		if !e.onDevice {
			e.planner.SetWarmUp(0) // no step graphs to set up
		}
	}
	for _, id := range tok.EOS() {
		e.eos[id] = true
	}
	for _, id := range c.EOS {
		e.eos[id] = true
	}
	return e, nil
}

// DraftPlanner is the engine's prompt-lookup planner (nil without
// Config.Lookup or with LookupWhole).
func (e *Engine) DraftPlanner() *DraftPlanner { return e.planner }

// Capacity is the most positions one sequence may hold.
func (e *Engine) Capacity() int { return e.cfg.Ctx }

// Config is the engine's configuration, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Context is the engine's model context (logits of the last step).
func (e *Engine) Context() *model.Context { return e.ctx }

// EncodePrompt tokenizes a raw completion prompt, adding BOS as the tokenizer is configured to.
func (e *Engine) EncodePrompt(text string) []int {
	return e.Tokenizer.Encode(text, true, true)
}

// EncodeChat renders messages with the chat template and tokenizes them.
func (e *Engine) EncodeChat(msgs []chat.Message) []int {
	text := e.Template.Render(msgs, true)
	return e.Tokenizer.Encode(text, !e.Template.AddsBOS(), true)
}

// ErrNoBlocks reports that a step could schedule no sequence because the
// KV pool is full (kvcache.ErrNoBlocks wrapped with the numbers).
var ErrNoBlocks = kvcache.ErrNoBlocks

// IsNoBlocks reports whether err is the pool running out of blocks.
func IsNoBlocks(err error) bool { return errors.Is(err, kvcache.ErrNoBlocks) }
