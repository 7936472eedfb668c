package engine

import (
	"slices"

	"github.com/upg-ai/upg/backend"
)

// Prompt-lookup decoding (Saxena's "prompt lookup decoding"; llama.cpp's
// lookup and vLLM's n-gram speculation are the same idea): text that
// quotes, edits or repeats its context — code under change, extraction,
// a summary that cites — often continues with tokens that already occur
// in it. A decoding step then feeds, besides the sequence's last token, a
// draft: the tokens that followed the most recent earlier occurrence of
// its last few tokens. One forward pass gives the logits after every fed
// token, so the step keeps each draft token the model picks itself, plus
// the model's own token after the last kept one, and forgets the
// positions of the rest (kvcache.Pool.Truncate). A decoding step reads
// every weight once whether it feeds one token or a few, so where the
// weights' bytes bound the step, each kept draft token is a token for
// (nearly) nothing; a rejected one costs its share of the step's
// arithmetic.
//
// Drafts change nothing about what is generated. Each position of the
// step is sampled as it would be without the draft (greedy: the model's
// pick; sampled: a draw keyed by the seed and the position,
// sample.Sampler.Key), and a draft token is kept when that token is the
// draft. So the text is plain decoding's, greedy or sampled — on the CPU
// bit for bit, since a token's arithmetic does not depend on the step it
// is in; on a GPU the multi-token kernels round differently from the
// one-token ones, so a near-tie (greedy) or a draw near the boundary
// between two tokens (sampled) may go the other way, as between the GPU's
// batch sizes. (For a sampled position this is speculative sampling's rule
// for a draft that proposes one token for certain: the draft is kept with
// its probability p(draft), and otherwise the token is a draw from the
// rest, renormalized.)

// lookupLongest and lookupShortest bound the length of the suffix matched:
// the longest first, and no single-token matches (too often a coincidence
// whose rejected draft costs arithmetic for nothing).
const (
	lookupLongest  = 4
	lookupShortest = 2
)

// LookupDraft appends to dst[:0] at most k tokens that followed the most
// recent earlier occurrence of tokens' last n tokens, for the largest n in
// [2, 4] that has one, and returns it (empty when none has): the draft a
// sequence with these tokens feeds (tools/lookup-replay replays it on
// generated text).
func LookupDraft(dst, tokens []int, k int) []int {
	dst = dst[:0]
	L := len(tokens)
	if k <= 0 {
		return dst
	}
	for n := min(lookupLongest, L-1); n >= lookupShortest; n-- {
		suffix := tokens[L-n:]
		// i+n ≤ L-1: the occurrence is followed by at least one token
		for i := L - n - 1; i >= 0; i-- {
			if tokens[i] == suffix[0] && slices.Equal(tokens[i:i+n], suffix) {
				return append(dst, tokens[i+n:min(i+n+k, L)]...)
			}
		}
	}
	return dst
}

// draftFor is the draft sc's sequence could feed after its last token in this step
// (nil when it has none): only a sequence with just its last token to feed
// drafts, at most Config.Lookup tokens, limit (the step's budget and
// logits rows), context room and requested tokens allow.
func (e *Engine) draftFor(sc scheduled, limit int) []int {
	s := sc.seq
	if !sc.out || sc.n != 1 {
		return nil
	}
	k := min(e.cfg.Lookup, limit, e.cfg.Ctx-sc.from-1)
	if s.req.MaxTokens > 0 {
		k = min(k, s.req.MaxTokens-s.stats.GeneratedTokens-1)
	}
	s.draft = LookupDraft(s.draft, s.tokens, k)
	if len(s.draft) == 0 {
		return nil
	}
	return s.draft
}

// addDrafts gives the step's decoding sequences their drafts: the
// DraftPlanner's share of each (all of them, in order, with LookupWhole),
// at most limit tokens in all, each where the KV pool has the blocks.
func (e *Engine) addDrafts(budget, rows int) {
	limit := min(budget, rows)
	e.offers, e.offered = e.offers[:0], e.offered[:0]
	base := 0
	for i, sc := range e.sel {
		base += sc.n
		if d := e.draftFor(sc, limit); len(d) > 0 {
			e.offers = append(e.offers, DraftOffer{Max: len(d), Record: sc.seq.drafts})
			e.offered = append(e.offered, i)
		}
	}
	if len(e.offers) == 0 {
		return
	}
	if e.planner != nil {
		e.plan = e.planner.Plan(e.plan, base, e.offers, limit)
	} else {
		e.plan = e.plan[:0]
		left := limit
		for _, o := range e.offers {
			d := min(o.Max, left)
			e.plan = append(e.plan, d)
			left -= d
		}
	}
	for j, i := range e.offered {
		sc, d := &e.sel[i], e.plan[j]
		s := sc.seq
		if d == 0 || e.Pool.Needed(s.ID, sc.n+d) > e.Pool.FreeBlocks() || e.Pool.Reserve(s.ID, sc.n+d) != nil {
			continue // the blocks go to sequences' own tokens first
		}
		sc.draft = s.draft[:d]
	}
}

// acceptDraft turns the results of a drafting sequence's step (res: one
// per fed token, the last token's first) into outputs: each draft token
// the sampler kept is kept, and the sampler's other token at the first
// position it did not keep (or its token after the whole draft) ends it,
// or the sequence finishing does. It forgets the positions of
// the draft tokens not kept and registers the sequence's full blocks.
func (e *Engine) acceptDraft(outs []Output, sc scheduled, res []backend.SampleResult) []Output {
	s := sc.seq
	kept := 0
	for j, r := range res {
		o := e.accept(s, r)
		outs = append(outs, o)
		if o.Done || j == len(sc.draft) || r.Token != sc.draft[j] {
			break
		}
		kept++
	}
	s.stats.Drafted += len(sc.draft)
	s.stats.Accepted += kept
	// the planner's record counts the draft tokens the model picked, also
	// past a token that finished the sequence
	picked := 0
	for picked < len(sc.draft) && res[picked].Token == sc.draft[picked] {
		picked++
	}
	s.drafts.Add(len(sc.draft), picked)
	if e.planner != nil {
		e.planner.Record(len(sc.draft), picked)
	}
	e.Pool.Truncate(s.ID, sc.from+sc.n+kept)
	e.Pool.Register(s.ID, s.tokens)
	return outs
}
