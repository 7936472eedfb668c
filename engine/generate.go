package engine

import (
	"context"
	"log/slog"
	"slices"

	"github.com/upg-ai/upg/backend/cuda"
)

// Generate runs req as the engine's conversation, calling emit with each
// piece of text as soon as it is complete UTF-8 and cannot be part of a
// stop string. Cache entries shared with the previous call's tokens are
// reused (chat history). It is a loop over Step.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(string)) (Stats, error) {
	s, err := e.Converse(req)
	if err != nil {
		return Stats{PromptTokens: len(req.Prompt)}, err
	}
	seqs := []*Sequence{s}
	for !s.done {
		if ctx.Err() != nil {
			s.Cancel()
			return s.stats, ctx.Err()
		}
		outs, err := e.Step(seqs, 0)
		if err != nil {
			return s.stats, err
		}
		for _, o := range outs {
			if o.Text != "" {
				emit(o.Text)
			}
		}
	}
	if slog.Default().Enabled(ctx, slog.LevelDebug) {
		if e.planner != nil {
			slog.Debug("prompt lookup", "drafted", s.stats.Drafted, "kept", s.stats.Accepted, "planner", e.planner.String())
		}
		if g, ok := e.ctx.Model().Backend().(cuda.GraphReporter); ok {
			slog.Debug("cuda", "step", g.GraphStats().String(), "overlapped_steps", e.overlapped)
		}
	}
	return s.stats, nil
}

// Converse makes req the engine's conversation, the sequence Generate
// runs, for callers that drive it with Step themselves (the C ABI steps it
// from the caller's thread): the cache entries it shares with the previous
// conversation's tokens are kept, the rest is dropped.
func (e *Engine) Converse(req Request) (*Sequence, error) {
	// Reuse the longest common prefix of the cached conversation (keep ≥ 1
	// prompt token to compute, so that there are logits to sample from).
	keep := 0
	var starts []int // how the kept positions were fed (on a device)
	if e.conv != nil {
		// the previous conversation's row of a pending step (overlap.go)
		// is not wanted: the id is about to be reused
		e.settle(e.conv)
		cached := e.conv.tokens[:e.Pool.Len(ConversationID)]
		for keep < len(cached) && keep < len(req.Prompt)-1 && cached[keep] == req.Prompt[keep] {
			keep++
		}
		if e.onDevice {
			// feed the rest from where a step began, so that a request
			// that repeats the last one's prompt (or extends it) feeds
			// the positions after keep as that request did, and a seed
			// gives the same text again
			i, _ := slices.BinarySearch(e.conv.starts, keep+1)
			keep = 0
			if i > 0 {
				keep = e.conv.starts[i-1]
			}
		}
		i, _ := slices.BinarySearch(e.conv.starts, keep)
		starts = e.conv.starts[:i]
	}
	e.Pool.Truncate(ConversationID, keep)
	s, err := e.newSequence(ConversationID, req)
	if err != nil {
		e.conv = nil
		e.Pool.Truncate(ConversationID, 0)
		return nil, err
	}
	e.conv = s
	s.starts = append(s.starts[:0], starts...)
	s.stats.ReusedTokens = keep
	return s, nil
}

// EndConversation frees the conversation's cache entries, so that other
// sequences can have the whole pool; the next Converse starts afresh.
func (e *Engine) EndConversation() {
	if e.conv != nil {
		e.Release(e.conv)
		e.conv = nil
	}
}
