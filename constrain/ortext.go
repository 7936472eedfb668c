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

func (o orText) NewMatcher() sample.Matcher {
	return &orTextMatcher{value: schemaMatcher{s: o.s}, start: -1}
}

// orTextMatcher finds where the value began (the first token with a byte
// other than whitespace) and follows the value from there with a
// schemaMatcher started in the state after that token's bytes from its
// "{", so each step feeds only the new tokens.
type orTextMatcher struct {
	value      schemaMatcher
	start, tok int // gen[start] == tok began the value (-1: not yet)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// trimSpace is b without its leading JSON whitespace.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// Mask implements sample.Matcher.
func (m *orTextMatcher) Mask(gen []int, logits []float32) {
	s, v := m.value.s, m.value.s.v
	for t := len(v.tokens); t < len(logits); t++ {
		logits[t] = float32(math.Inf(-1)) // past the vocabulary: no token
	}
	for i, t := range gen {
		if t < 0 || t >= len(v.tokens) || v.tokens[t] == nil {
			continue // an answer does not begin with a control token
		}
		b := trimSpace(v.tokens[t])
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' {
			return // text: nothing masked
		}
		if i != m.start || t != m.tok { // (a rejected draft may change where it began)
			m.start, m.tok = i, t
			m.value.fed, m.value.states = m.value.fed[:0], append(m.value.states[:0], s.feed(0, b))
		}
		m.value.Mask(gen[i+1:], logits)
		return
	}
	// undecided: a token that begins the value must begin one s takes
	n := min(len(logits), len(v.tokens))
	for t := range n {
		if b := trimSpace(v.tokens[t]); len(b) > 0 && b[0] == '{' && s.feed(0, b) == deadState {
			logits[t] = float32(math.Inf(-1))
		}
	}
}
