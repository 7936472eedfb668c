package compress

import (
	"math"

	"github.com/upg-ai/upg/tensor"
)

// Quality is the compressor's own measurement of what compression cost,
// on a held-out sequence: the calibration text's tokens right after those
// used for calibration (never seen by the statistics, the bit allocation
// or GPTQ). Scoring follows `upg eval` (and llama.cpp's perplexity tool):
// the sequence's second half is scored, each position's next-token
// distribution of the compressed model against the original's.
type Quality struct {
	HeldOutTokens int     `json:"held_out_tokens"`
	ScoredTokens  int     `json:"scored_tokens"`
	PPL           float64 `json:"ppl"`
	RefPPL        float64 `json:"ref_ppl"`
	PPLRatio      float64 `json:"ppl_ratio"`
	KLDMean       float64 `json:"kld_mean"`
	Top1Agreement float64 `json:"top1_agreement"`
}

// heldOut is the state of the quality measurement during a run.
type heldOut struct {
	ids    []int
	x      []float32 // hidden states after the layers processed so far
	refLP  []float32 // original model's log-probabilities at the scored positions
	refTop []int     // and their argmax
	refNLL float64
}

// scored returns the first scored position (the second half of the sequence
// is scored, minus its last token, which has no next token).
func (h *heldOut) scored() (first, n int) {
	first = len(h.ids) / 2
	return first, len(h.ids) - 1 - first
}

// finalLogProbs runs the final norm and head of m on the scored positions
// of x and returns their log-probabilities (n × vocab) and argmaxes.
func finalLogProbs(cp *compressor, head tensor.Matrix, h *heldOut) ([]float32, []int) {
	c := &cp.m.Config
	d, V := c.Hidden, c.Vocab
	first, n := h.scored()
	hn := make([]float32, n*d)
	cp.lr.ctx.FinalNorm(hn, h.x[first*d:(first+n)*d], n)
	logits := make([]float32, n*V)
	cp.be.MatMulF32(logits, hn, head, n)
	top := make([]int, n)
	for t := 0; t < n; t++ {
		row := logits[t*V : (t+1)*V]
		mx, arg := row[0], 0
		for i, v := range row {
			if v > mx {
				mx, arg = v, i
			}
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - mx))
		}
		lse := float64(mx) + math.Log(sum)
		for i, v := range row {
			row[i] = float32(float64(v) - lse)
		}
		top[t] = arg
	}
	return logits, top
}

// reference records the original model's predictions for the held-out
// sequence (h.x holds its hidden states after all original layers).
func (h *heldOut) reference(c *compressor) {
	m := c.m
	h.refLP, h.refTop = finalLogProbs(c, m.Weights.Output, h)
	first, n := h.scored()
	V := m.Config.Vocab
	for t := 0; t < n; t++ {
		h.refNLL -= float64(h.refLP[t*V+h.ids[first+t+1]])
	}
}

// measure compares the compressed model's predictions (h.x after all
// compressed layers, head the compressed output matrix) with the reference.
func (h *heldOut) measure(c *compressor, head tensor.Matrix) *Quality {
	m := c.m
	lp, top := finalLogProbs(c, head, h)
	first, n := h.scored()
	V := m.Config.Vocab
	var nll, kld float64
	agree := 0
	for t := 0; t < n; t++ {
		nll -= float64(lp[t*V+h.ids[first+t+1]])
		r, q := h.refLP[t*V:(t+1)*V], lp[t*V:(t+1)*V]
		for i := range r {
			if p := math.Exp(float64(r[i])); p > 0 {
				kld += p * (float64(r[i]) - float64(q[i]))
			}
		}
		if top[t] == h.refTop[t] {
			agree++
		}
	}
	q := &Quality{HeldOutTokens: len(h.ids), ScoredTokens: n,
		PPL: math.Exp(nll / float64(n)), RefPPL: math.Exp(h.refNLL / float64(n)),
		KLDMean: kld / float64(n), Top1Agreement: float64(agree) / float64(n)}
	q.PPLRatio = q.PPL / q.RefPPL
	return q
}
