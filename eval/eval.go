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

	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// Result holds the measurements. JSON keys are part of the CLI contract.
type Result struct {
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
}

// Progress is called after each chunk.
type Progress func(done, total int)

// Compare scores tokens with both models. ref may be nil, in which case
// only the perplexity of m is measured.
func Compare(m, ref *model.Model, tokens []int, ctx int, progress Progress) (*Result, error) {
	if ctx < 4 {
		return nil, fmt.Errorf("eval: context %d is too small", ctx)
	}
	chunks := len(tokens) / ctx
	if chunks == 0 {
		return nil, fmt.Errorf("eval: the text has %d tokens, fewer than one context of %d (use a longer text or a smaller --ctx)", len(tokens), ctx)
	}
	if ref != nil && ref.Config.Vocab != m.Config.Vocab {
		return nil, errors.New("eval: the model and the reference have different vocabularies")
	}
	V := m.Config.Vocab
	first := ctx / 2
	var nll, refNLL float64
	var klds []float64
	agree, scored := 0, 0
	b := &model.Batch{Tokens: make([]int, ctx), Pos: make([]int, ctx), Seq: make([]int, ctx), Logits: make([]bool, ctx)}
	for i := range ctx {
		b.Pos[i] = i
		b.Logits[i] = i >= first && i < ctx-1
	}
	cacheM := kvcache.NewContiguous(m.Config.Layers, m.Config.KVDim(), ctx)
	var cacheR *kvcache.Contiguous
	var refLogits []float32
	if ref != nil {
		cacheR = kvcache.NewContiguous(ref.Config.Layers, ref.Config.KVDim(), ctx)
	}
	lp := make([]float64, V)
	lq := make([]float64, V)
	for c := 0; c < chunks; c++ {
		copy(b.Tokens, tokens[c*ctx:(c+1)*ctx])
		cacheM.Truncate(0, 0)
		logits, err := m.Forward(b, cacheM)
		if err != nil {
			return nil, err
		}
		if ref != nil {
			cacheR.Truncate(0, 0)
			rl, err := ref.Forward(b, cacheR)
			if err != nil {
				return nil, err
			}
			refLogits = append(refLogits[:0], rl...)
		}
		for j := first; j < ctx-1; j++ {
			row := logits[(j-first)*V : (j-first+1)*V]
			next := b.Tokens[j+1]
			logSoftmax(lq, row)
			nll -= lq[next]
			if ref != nil {
				rrow := refLogits[(j-first)*V : (j-first+1)*V]
				logSoftmax(lp, rrow)
				refNLL -= lp[next]
				var kl float64
				for v := range V {
					if p := math.Exp(lp[v]); p > 0 {
						kl += p * (lp[v] - lq[v])
					}
				}
				klds = append(klds, max(kl, 0))
				if argmax(row) == argmax(rrow) {
					agree++
				}
			}
			scored++
		}
		if progress != nil {
			progress(c+1, chunks)
		}
	}
	r := &Result{Tokens: scored, Chunks: chunks, Ctx: ctx, PPL: math.Exp(nll / float64(scored))}
	if ref != nil {
		r.RefPPL = math.Exp(refNLL / float64(scored))
		r.PPLRatio = r.PPL / r.RefPPL
		var sum float64
		for _, k := range klds {
			sum += k
		}
		r.KLDMean = sum / float64(len(klds))
		sort.Float64s(klds)
		r.KLDP99 = klds[min(len(klds)-1, int(math.Ceil(0.99*float64(len(klds))))-1)]
		r.Top1 = float64(agree) / float64(scored)
	}
	return r, nil
}

// logSoftmax writes log(softmax(x)) in float64.
func logSoftmax(dst []float64, x []float32) {
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
