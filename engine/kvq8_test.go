package engine_test

import (
	"math"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/eval"
)

// TestKVQ8Generation generates greedily through the int8 KV cache and
// checks that it stays sane: every sequence runs to its length; its tokens
// are the argmax of the q8 cache's logits for its own text computed in one
// forward pass (decode one token at a time and prefill agree); and on the
// f32 cache's greedy continuations, the q8 cache's next-token
// distributions are close to the f32 cache's (mean KL divergence and top-1
// agreement over every generated position).
func TestKVQ8Generation(t *testing.T) {
	const gen = 40
	f32 := load(t, engine.Options{Ctx: 256, KVCache: backend.KVF32})
	q8 := load(t, engine.Options{Ctx: 256, KVCache: backend.KVQ8})
	if got := q8.Pool.Spec().Type; got != backend.KVQ8 {
		t.Fatalf("engine loaded with --kv-cache q8 has a %v pool", got)
	}
	V := q8.Model.Config.Vocab
	single := func(l *engine.Loaded, kv backend.KVType, toks []int, from int) []float32 {
		s, err := l.Model.NewSingle(256, kv)
		if err != nil {
			t.Fatal(err)
		}
		logits, err := s.Forward(toks, from)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(logits)
	}
	argmax := func(row []float32) int {
		best := 0
		for i, v := range row {
			if v > row[best] {
				best = i
			}
		}
		return best
	}
	var kld float64
	var agree, n, samePrefix int
	lp, lq := make([]float64, V), make([]float64, V)
	for _, p := range prompts {
		prompt := q8.EncodePrompt(p)
		req := engine.Request{Prompt: prompt, MaxTokens: gen, IgnoreEOS: true}
		got := alone(t, q8, []engine.Request{req})[0]
		if len(got) != len(prompt)+gen {
			t.Fatalf("%q: q8 generated %d tokens, want %d", p, len(got)-len(prompt), gen)
		}
		// Decoding through the paged q8 cache one token at a time gives the
		// argmax of the q8 logits of the whole text in one pass.
		logits := single(q8, backend.KVQ8, got[:len(got)-1], len(prompt)-1)
		for j := 0; j < gen; j++ {
			if a := argmax(logits[j*V : (j+1)*V]); a != got[len(prompt)+j] {
				t.Fatalf("%q: generated token %d is %d, but the q8 logits of the text pick %d", p, j, got[len(prompt)+j], a)
			}
		}
		want := alone(t, f32, []engine.Request{req})[0]
		k := 0
		for k < gen && got[len(prompt)+k] == want[len(prompt)+k] {
			k++
		}
		samePrefix += k
		// Teacher-forced on the f32 continuation: both caches' distributions.
		lf := single(f32, backend.KVF32, want[:len(want)-1], len(prompt)-1)
		lq8 := single(q8, backend.KVQ8, want[:len(want)-1], len(prompt)-1)
		for j := 0; j < gen; j++ {
			eval.LogSoftmax(lp, lf[j*V:(j+1)*V])
			eval.LogSoftmax(lq, lq8[j*V:(j+1)*V])
			var kl float64
			for v := range V {
				kl += math.Exp(lp[v]) * (lp[v] - lq[v])
			}
			kld += max(kl, 0)
			if argmax(lf[j*V:(j+1)*V]) == argmax(lq8[j*V:(j+1)*V]) {
				agree++
			}
			n++
		}
	}
	mean, top1 := kld/float64(n), float64(agree)/float64(n)
	t.Logf("q8 vs f32 cache over %d positions: mean KLD %.2e, top-1 agreement %.2f%%; greedy texts identical for %.1f of %d tokens on average",
		n, mean, 100*top1, float64(samePrefix)/float64(len(prompts)), gen)
	// A broken cache (a wrong scale, row or block) gives KLDs of 0.1-10
	// and an agreement far below.
	if mean > 0.01 || top1 < 0.9 {
		t.Errorf("q8 cache too far from f32: mean KLD %.3g, top-1 agreement %.1f%%", mean, 100*top1)
	}
}
