package model

import (
	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/kvcache"
)

// Single runs one sequence at a time through a context and a KV pool of
// its own: for the evaluator, the compressor and tests. The engine runs
// many sequences with its own scheduling.
type Single struct {
	Ctx  *Context
	Pool *kvcache.Pool
}

// singleBlock is Single's KV block size.
const singleBlock = 16

// NewSingle sizes a context and a pool for one sequence of up to positions
// positions, its keys and values stored as kv (backend.KVF32 is exact).
func (m *Model) NewSingle(positions int, kv backend.KVType) (*Single, error) {
	c := &m.Config
	o := kvcache.Options{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: kv, BlockSize: singleBlock}
	o.Budget = kvcache.BudgetFor(o, positions, 1)
	pool, err := kvcache.New(m, o)
	if err != nil {
		return nil, err
	}
	ctx, err := m.NewContext(ContextOptions{MaxTokens: positions, Positions: positions, BlockSize: singleBlock})
	if err != nil {
		return nil, err
	}
	return &Single{Ctx: ctx, Pool: pool}, nil
}

// Reset forgets the sequence.
func (s *Single) Reset() { s.Pool.Truncate(0, 0) }

// Len is the number of positions the sequence holds.
func (s *Single) Len() int { return s.Pool.Len(0) }

// Forward feeds tokens after the sequence's stored positions and returns
// the logits of tokens[from:] (one row of Config.Vocab values each; from =
// len(tokens)-1 for the last only). The slice is reused by the next call.
func (s *Single) Forward(tokens []int, from int) ([]float32, error) {
	st, err := s.Pool.StepFor(0, tokens, true)
	if err != nil {
		return nil, err
	}
	st.Out = st.Out[from:]
	if err := s.Ctx.Forward(st, s.Pool.KV()); err != nil {
		return nil, err
	}
	s.Pool.Commit(0, len(tokens))
	return s.Ctx.ReadLogits(), nil
}
