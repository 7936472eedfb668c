// Package eval measures how much a compressed model's predictions differ
// from its reference: perplexity of both, mean and 99th-percentile KL
// divergence of the next-token distributions, and top-1 agreement. Scoring
// follows llama.cpp's perplexity tool, so the numbers compare: the text is
// cut into non-overlapping chunks of ctx tokens, each chunk is a fresh
// context, and only its second half is scored.
package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/model"
)

// Result holds the measurements. JSON keys are part of the CLI contract.
type Result struct {
	Model     string  `json:"model,omitempty"`
	PPL       float64 `json:"ppl"`
	RefPPL    float64 `json:"ref_ppl"`
	PPLRatio  float64 `json:"ppl_ratio"`
	KLDMean   float64 `json:"kld_mean"`
	KLDP99    float64 `json:"kld_p99"`
	Top1      float64 `json:"top1_agreement"`
	BPW       float64 `json:"bpw"`
	FileBytes int64   `json:"file_bytes"`
	Tokens    int     `json:"scored_tokens"`
	Chunks    int     `json:"chunks"`
	Ctx       int     `json:"ctx"`
	KVCache   string  `json:"kv_cache"` // the scored model's KV cache type (the reference's is f32)
}

// Progress is called after each chunk.
type Progress func(done, total int)

// Compare scores tokens with both models, through float32 KV caches. ref
// may be nil, in which case only the perplexity of m is measured.
func Compare(m, ref *model.Model, tokens []int, ctx int, progress Progress) (*Result, error) {
	rs, err := CompareMany([]*model.Model{m}, ref, tokens, ctx, backend.KVF32, progress)
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// scorer accumulates one model's measurements.
type scorer struct {
	run      *model.Single
	nll      float64
	klds     []float64
	agree, n int
}

// CompareMany scores tokens with several models against one reference,
// running the reference once per chunk. The models keep their keys and
// values in a cache of type kv (backend.KVF32 measures the weights alone;
// KVF16 or KVQ8 adds the cache's rounding); the reference's is always
// float32.
func CompareMany(ms []*model.Model, ref *model.Model, tokens []int, ctx int, kv backend.KVType, progress Progress) ([]*Result, error) {
	if ctx < 4 {
		return nil, fmt.Errorf("eval: context %d is too small", ctx)
	}
	chunks := len(tokens) / ctx
	if chunks == 0 {
		return nil, fmt.Errorf("eval: the text has %d tokens, fewer than one context of %d (use a longer text or a smaller --ctx)", len(tokens), ctx)
	}
	V := ms[0].Config.Vocab
	for _, m := range ms {
		if m.Config.Vocab != V || (ref != nil && ref.Config.Vocab != V) {
			return nil, errors.New("eval: the models have different vocabularies")
		}
	}
	first := ctx / 2
	toks := make([]int, ctx)
	scorers := make([]*scorer, len(ms))
	for i, m := range ms {
		run, err := m.NewSingle(ctx, kv)
		if err != nil {
			return nil, err
		}
		scorers[i] = &scorer{run: run}
	}
	var runR *model.Single
	var refLP []float64 // log-probabilities of the scored positions
	var refArg []int
	var refNLL float64
	nScored := ctx - 1 - first
	if ref != nil {
		var err error
		if runR, err = ref.NewSingle(ctx, backend.KVF32); err != nil {
			return nil, err
		}
		refLP = make([]float64, nScored*V)
		refArg = make([]int, nScored)
	}
	lq := make([]float64, V)
	for c := 0; c < chunks; c++ {
		copy(toks, tokens[c*ctx:(c+1)*ctx])
		if ref != nil {
			runR.Reset()
			rl, err := runR.Forward(toks, first)
			if err != nil {
				return nil, err
			}
			for j := 0; j < nScored; j++ {
				row := rl[j*V : (j+1)*V]
				LogSoftmax(refLP[j*V:(j+1)*V], row)
				refArg[j] = argmax(row)
				refNLL -= refLP[j*V+toks[first+j+1]]
			}
		}
		for _, s := range scorers {
			s.run.Reset()
			logits, err := s.run.Forward(toks, first)
			if err != nil {
				return nil, err
			}
			for j := 0; j < nScored; j++ {
				row := logits[j*V : (j+1)*V]
				LogSoftmax(lq, row)
				s.nll -= lq[toks[first+j+1]]
				s.n++
				if ref == nil {
					continue
				}
				lp := refLP[j*V : (j+1)*V]
				var kl float64
				for v := range V {
					kl += math.Exp(lp[v]) * (lp[v] - lq[v])
				}
				s.klds = append(s.klds, max(kl, 0))
				if argmax(row) == refArg[j] {
					s.agree++
				}
			}
		}
		if progress != nil {
			progress(c+1, chunks)
		}
	}
	out := make([]*Result, len(scorers))
	for i, s := range scorers {
		r := &Result{Tokens: s.n, Chunks: chunks, Ctx: ctx, KVCache: kv.String(), PPL: math.Exp(s.nll / float64(s.n))}
		if ref != nil {
			r.RefPPL = math.Exp(refNLL / float64(s.n))
			r.PPLRatio = r.PPL / r.RefPPL
			var sum float64
			for _, k := range s.klds {
				sum += k
			}
			r.KLDMean = sum / float64(len(s.klds))
			sort.Float64s(s.klds)
			r.KLDP99 = s.klds[min(len(s.klds)-1, int(math.Ceil(0.99*float64(len(s.klds))))-1)]
			r.Top1 = float64(s.agree) / float64(s.n)
		}
		out[i] = r
	}
	return out, nil
}

// LogSoftmax writes log(softmax(x)) in float64 (numerically stable).
func LogSoftmax(dst []float64, x []float32) {
	mx := float64(x[0])
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	for i, v := range x {
		dst[i] = float64(v) - lse
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
