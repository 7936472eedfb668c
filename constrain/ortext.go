package constrain

import (
	"math"

	"github.com/upg-ai/upg/sample"
)

// OrText is a constraint for an answer that may be a value of s or text:
// whitespace first is free, and an answer whose first other byte is "{"
// must go on as a value of s, while one that begins with anything else is
// not constrained at all. A server offering tools with tool_choice "auto"
// uses it with the schema of a call: the model decides whether to call,
// and a call it begins is well formed (llama.cpp's lazy grammars trigger
// the same way).
func (s *Schema) OrText() sample.Constraint { return orText{s} }

type orText struct{ s *Schema }

func (o orText) NewMatcher() sample.Matcher { return &orTextMatcher{value: schemaMatcher{s: o.s}} }

// orTextMatcher recomputes its state from the generated tokens at each
// step: a value's bytes from its "{" (answers that are values are short).
type orTextMatcher struct {
	value schemaMatcher
	buf   []byte
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Mask implements sample.Matcher.
func (m *orTextMatcher) Mask(gen []int, logits []float32) {
	s, v := m.value.s, m.value.s.v
	for t := len(v.tokens); t < len(logits); t++ {
		logits[t] = float32(math.Inf(-1)) // past the vocabulary: no token
	}
	m.buf = m.buf[:0]
	started := false
	for _, t := range gen {
		if t < 0 || t >= len(v.tokens) || v.tokens[t] == nil {
			if started {
				m.value.mask(deadState, logits)
				return
			}
			continue
		}
		b := v.tokens[t]
		if !started {
			for len(b) > 0 && isJSONSpace(b[0]) {
				b = b[1:]
			}
			if len(b) == 0 {
				continue
			}
			if b[0] != '{' {
				return // text: nothing masked
			}
			started = true
		}
		m.buf = append(m.buf, b...)
	}
	if started {
		m.value.mask(s.feed(0, m.buf), logits)
		return
	}
	// undecided: a token that begins the value must begin one s takes
	n := min(len(logits), len(v.tokens))
	for t := range n {
		b := v.tokens[t]
		for len(b) > 0 && isJSONSpace(b[0]) {
			b = b[1:]
		}
		if len(b) > 0 && b[0] == '{' && s.feed(0, b) == deadState {
			logits[t] = float32(math.Inf(-1))
		}
	}
}
