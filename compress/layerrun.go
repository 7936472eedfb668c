package compress

import (
	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// layerRunner applies one layer at a time to the hidden states of
// calibration sequences: a model context and a KV pool of one layer. The
// compressor runs the model layer by layer (each run starts its sequences
// afresh), so the other layers' keys and values would never be read again:
// keeping them would make memory grow with the number of layers.
type layerRunner struct {
	ctx  *model.Context
	pool *kvcache.Pool
	step backend.Step
	seqs int
}

// runnerBlock is the one-layer pool's block size.
const runnerBlock = 16

// newLayerRunner sizes a runner for steps of up to maxTokens tokens in
// sequences of up to seqLen.
func newLayerRunner(m *model.Model, maxTokens, seqLen int) (*layerRunner, error) {
	c := &m.Config
	seqs := (maxTokens + seqLen - 1) / seqLen
	o := kvcache.Options{Layers: 1, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Type: backend.KVF32, BlockSize: runnerBlock}
	o.Budget = kvcache.BudgetFor(o, seqLen, seqs)
	pool, err := kvcache.New(m, o)
	if err != nil {
		return nil, err
	}
	ctx, err := m.NewContext(model.ContextOptions{MaxTokens: maxTokens, MaxOut: 1, MaxSeqs: seqs, Positions: seqLen, BlockSize: runnerBlock})
	if err != nil {
		return nil, err
	}
	return &layerRunner{ctx: ctx, pool: pool, seqs: seqs}, nil
}

// run applies layer li to x, the hidden states of ids: consecutive
// sequences of seqLen tokens (the last may be shorter), positions from 0.
// tap, when not nil, sees the layer's projection inputs.
func (r *layerRunner) run(li int, x []float32, ids []int, seqLen int, tap model.Tap) error {
	for k := range r.seqs {
		r.pool.Truncate(k, 0)
	}
	st := &r.step
	st.Reset()
	for k := 0; k*seqLen < len(ids); k++ {
		chunk := ids[k*seqLen : min((k+1)*seqLen, len(ids))]
		if err := r.pool.Reserve(k, len(chunk)); err != nil {
			return err
		}
		r.pool.AppendStep(st, k, chunk) // positions from 0: the sequence was truncated above
	}
	return r.ctx.RunLayer(li, x, st, r.pool.KV(), 0, tap)
}
