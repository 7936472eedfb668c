// Package constrain limits generation to a formal language, token by token:
// before a token is sampled, every token whose bytes cannot continue the
// text generated so far is masked out (its logit set to -Inf). JSON is the
// language it knows (OpenAI's response_format json_object, ollama's
// format "json"): the text is one JSON object, and the end-of-text tokens
// are allowed exactly when that object is complete.
//
// A JSON constraint is built once per vocabulary (NewJSON) and shared; each
// sequence gets its own Matcher (sample.Sampler makes one), which keeps the
// parser's state after each generated token so that a step costs one token
// fed and one pass over the vocabulary.
package constrain

import (
	"math"
	"slices"

	"github.com/upg-ai/upg/sample"
)

// MaxDepth is the deepest nesting of objects and arrays JSON allows here.
const MaxDepth = 48

// MaxIndent is the most spaces and tabs after a newline between tokens.
// Whitespace between JSON's tokens is one space, or a newline and up to
// MaxIndent spaces or tabs (llama.cpp's JSON grammar's rule): enough for
// pretty-printed JSON, not for a model that would pad forever.
const MaxIndent = 20

// JSON is the JSON constraint over one vocabulary.
type JSON struct {
	tokens [][]byte // each token's bytes; nil: never allowed (control, out of the tokenizer's range)
	end    []bool   // tokens that end the text: allowed once the object is complete
	// byFirst lists the tokens that start with a byte other than
	// whitespace by that byte, so a state rejects whole groups by one
	// byte's check; afterSpace lists those that start with whitespace by
	// the first byte after it (256: whitespace only): whatever whitespace
	// a state takes leaves it in the same mode, so that byte's check
	// decides for the group too
	byFirst    [256][]int32
	afterSpace [257][]int32
	// inString: the token can only be string content (no quote, backslash
	// or control byte): inside a string it is always allowed, so the mask
	// there simulates only the others (quoted)
	inString []bool
	quoted   []int32
	// all lists every token by its first byte (Schema's masks)
	all [256][]int32
	// plainLen is the token's length when every byte is printable ASCII
	// string content (0x20-0x7f but the quote and backslash: one character
	// each), else 0 (Schema's counted strings)
	plainLen []uint8
}

// NewJSON builds the JSON constraint for a vocabulary of n tokens: bytes(t)
// is token t's text (TokenBytes), control(t) whether it is a special token,
// end the tokens that end generation (EOS, end of turn).
func NewJSON(n int, bytes func(int) []byte, control func(int) bool, end []int) *JSON {
	j := &JSON{tokens: make([][]byte, n), end: make([]bool, n), inString: make([]bool, n), plainLen: make([]uint8, n)}
	for _, t := range end {
		if t >= 0 && t < n {
			j.end[t] = true
		}
	}
	for t := range n {
		if j.end[t] || control(t) {
			continue
		}
		b := bytes(t)
		if len(b) == 0 {
			continue
		}
		j.tokens[t] = b
		j.all[b[0]] = append(j.all[b[0]], int32(t))
		w := 0
		for w < len(b) && isSpace(b[w]) {
			w++
		}
		switch {
		case w == 0:
			j.byFirst[b[0]] = append(j.byFirst[b[0]], int32(t))
		case w == len(b):
			j.afterSpace[256] = append(j.afterSpace[256], int32(t))
		default:
			j.afterSpace[b[w]] = append(j.afterSpace[b[w]], int32(t))
		}
		if len(b) <= math.MaxUint8 && !slices.ContainsFunc(b, func(c byte) bool { return c < 0x20 || c > 0x7f || c == '"' || c == '\\' }) {
			j.plainLen[t] = uint8(len(b))
		}
		j.inString[t] = true
		for _, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				j.inString[t] = false
				j.quoted = append(j.quoted, int32(t))
				break
			}
		}
	}
	return j
}

// NewMatcher implements sample.Constraint.
func (j *JSON) NewMatcher() sample.Matcher {
	return &Matcher{j: j, states: []state{{}}}
}

// Matcher follows one sequence's generated text.
type Matcher struct {
	j      *JSON
	fed    []int   // the generated tokens fed so far
	states []state // states[i]: after fed[:i]; a dead state stays dead
	allow  []bool  // scratch: the tokens Mask keeps
}

// Mask sets to -Inf every logit whose token cannot follow the generated
// tokens gen; once the object is complete only the end tokens are left.
// gen may differ from the last call's (a draft's rejected tokens): the
// common prefix's states are kept and the rest fed again. After text the
// constraint does not accept (a draft token, or text from outside) only
// the end tokens are left.
func (m *Matcher) Mask(gen []int, logits []float32) {
	k := 0
	for k < len(m.fed) && k < len(gen) && m.fed[k] == gen[k] {
		k++
	}
	m.fed, m.states = m.fed[:k], m.states[:k+1]
	for _, t := range gen[k:] {
		st := m.states[len(m.states)-1]
		if t < 0 || t >= len(m.j.tokens) || m.j.tokens[t] == nil || !st.feed(m.j.tokens[t]) {
			st.mode = dead
		}
		m.fed = append(m.fed, t)
		m.states = append(m.states, st)
	}
	m.mask(m.states[len(m.states)-1], logits)
}

// mask sets to -Inf the logits of the tokens st cannot take.
func (m *Matcher) mask(st state, logits []float32) {
	j := m.j
	n := min(len(logits), len(j.tokens))
	if cap(m.allow) < n {
		m.allow = make([]bool, n)
	}
	allow := m.allow[:n]
	clear(allow)
	switch st.mode {
	case complete, dead:
		for t := range n {
			allow[t] = j.end[t]
		}
	case str:
		copy(allow, j.inString)
		for _, t := range j.quoted {
			if int(t) < n {
				rest := st
				allow[t] = rest.feed(j.tokens[t])
			}
		}
	default:
		for b := range 256 {
			first := st
			if len(j.byFirst[b]) == 0 || !first.step(byte(b)) {
				continue
			}
			for _, t := range j.byFirst[b] {
				if int(t) < n {
					rest := first
					allow[t] = rest.feed(j.tokens[t][1:])
				}
			}
		}
		m.maskSpaced(st, allow)
	}
	ninf := float32(math.Inf(-1))
	for t := range logits {
		if t >= n || !allow[t] {
			logits[t] = ninf
		}
	}
}

// maskSpaced marks the tokens that start with whitespace which st takes.
func (m *Matcher) maskSpaced(st state, allow []bool) {
	j, n := m.j, len(allow)
	// a state past some whitespace: structural, in the same mode whichever
	// whitespace it took (none: a literal, an escape, a single space taken)
	spaced := st
	if !spaced.step(' ') {
		spaced = st
		if !spaced.step('\n') {
			return
		}
	}
	for _, t := range j.afterSpace[256] {
		if int(t) < n {
			rest := st
			allow[t] = rest.feed(j.tokens[t])
		}
	}
	for c := range 256 {
		group := j.afterSpace[c]
		if len(group) == 0 {
			continue
		}
		if probe := spaced; !probe.step(byte(c)) {
			continue
		}
		for _, t := range group {
			if int(t) < n {
				rest := st
				allow[t] = rest.feed(j.tokens[t])
			}
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// Valid reports whether text is what the constraint accepts as a whole:
// one JSON object, within MaxDepth and the whitespace rule (MaxIndent).
func Valid(text []byte) bool {
	var st state
	return st.feed(text) && st.mode == complete
}

// Prefix reports whether text can be continued into what Valid accepts
// (everything the constraint lets a sequence generate is).
func Prefix(text []byte) bool {
	var st state
	return st.feed(text)
}

// The parser's modes: what the next byte may be.
const (
	start     uint8 = iota // before the top-level object: '{'
	objOpen                // after '{': a key or '}'
	objKey                 // after ',' in an object: a key
	colon                  // after a key: ':'
	value                  // a value
	arrOpen                // after '[': a value or ']'
	after                  // after a value: ',' or the container's close
	str                    // in a string (aux: strKey for a key)
	esc                    // after '\' in a string
	hex                    // in a \u escape (aux: digits left)
	numMinus               // after '-': a digit
	numZero                // after a leading 0: '.', 'e' or the end
	numInt                 // in the integer part
	fracStart              // after '.': a digit
	frac                   // in the fraction
	expStart               // after 'e': a sign or a digit
	expSign                // after the exponent's sign: a digit
	exp                    // in the exponent
	lit                    // in true, false or null (aux: which and how far)
	complete               // the top-level object is closed: nothing more
	dead                   // not JSON: nothing more
)

const strKey = 0x80 // aux bit of a string (and its escapes) that is a key

var literals = [3]string{"true", "false", "null"}

// state is the parser's state: a pushdown automaton whose stack (one bit a
// level: 1 object, 0 array) fits a word.
type state struct {
	stack uint64
	depth uint8
	mode  uint8
	aux   uint8
	space uint8 // whitespace: 0 none yet, 1 one space, 2+k a newline and k spaces or tabs
}

// feed steps through b, reporting whether every byte was accepted.
func (s *state) feed(b []byte) bool {
	for _, c := range b {
		if !s.step(c) {
			return false
		}
	}
	return true
}

// step takes one byte, reporting whether it was accepted (s is undefined
// when not).
func (s *state) step(c byte) bool {
	switch s.mode {
	case str:
		switch {
		case c == '"':
			if s.aux&strKey != 0 {
				s.mode = colon
				return true
			}
			return s.endValue()
		case c == '\\':
			s.mode = esc
		case c < 0x20:
			return false
		}
		return true
	case esc:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.mode = str
		case 'u':
			s.mode, s.aux = hex, s.aux&strKey|4
		default:
			return false
		}
		return true
	case hex:
		if !isHex(c) {
			return false
		}
		s.aux--
		if s.aux&^strKey == 0 {
			s.mode = str
		}
		return true
	case numMinus:
		switch {
		case c == '0':
			s.mode = numZero
		case c >= '1' && c <= '9':
			s.mode = numInt
		default:
			return false
		}
		return true
	case numZero, numInt, frac, exp:
		switch {
		case c >= '0' && c <= '9' && s.mode != numZero:
			return true
		case (c == '.') && (s.mode == numZero || s.mode == numInt):
			s.mode = fracStart
			return true
		case (c == 'e' || c == 'E') && s.mode != exp:
			s.mode = expStart
			return true
		}
		// the number ends: c belongs to what follows it
		return s.endValue() && s.step(c)
	case fracStart:
		if c < '0' || c > '9' {
			return false
		}
		s.mode = frac
		return true
	case expStart, expSign:
		switch {
		case c >= '0' && c <= '9':
			s.mode = exp
		case (c == '+' || c == '-') && s.mode == expStart:
			s.mode = expSign
		default:
			return false
		}
		return true
	case lit:
		word, at := literals[s.aux>>4], s.aux&0xf
		if c != word[at] {
			return false
		}
		s.aux++
		if int(at)+1 == len(word) {
			return s.endValue()
		}
		return true
	case complete, dead:
		return false
	}
	// the structural modes: whitespace first (one space, or a newline and
	// up to MaxIndent spaces or tabs)
	switch {
	case c == ' ' && s.space == 0:
		s.space = 1
		return true
	case c == '\n' && s.space == 0:
		s.space = 2
		return true
	case (c == ' ' || c == '\t') && s.space >= 2 && s.space < 2+MaxIndent:
		s.space++
		return true
	case isSpace(c):
		return false
	}
	s.space = 0
	switch s.mode {
	case start:
		return c == '{' && s.push(true)
	case objOpen, objKey:
		switch {
		case c == '"':
			s.mode, s.aux = str, strKey
			return true
		case c == '}' && s.mode == objOpen:
			return s.pop()
		}
		return false
	case colon:
		if c != ':' {
			return false
		}
		s.mode = value
		return true
	case arrOpen:
		if c == ']' {
			return s.pop()
		}
		return s.value(c)
	case value:
		return s.value(c)
	case after:
		inObject := s.stack>>(s.depth-1)&1 == 1
		switch {
		case c == ',' && inObject:
			s.mode = objKey
		case c == ',':
			s.mode = value
		case c == '}' && inObject, c == ']' && !inObject:
			return s.pop()
		default:
			return false
		}
		return true
	}
	return false
}

// value starts a value with c.
func (s *state) value(c byte) bool {
	switch {
	case c == '{':
		return s.push(true)
	case c == '[':
		return s.push(false)
	case c == '"':
		s.mode, s.aux = str, 0
	case c == '-':
		s.mode = numMinus
	case c == '0':
		s.mode = numZero
	case c >= '1' && c <= '9':
		s.mode = numInt
	case c == 't':
		s.mode, s.aux = lit, 0<<4|1
	case c == 'f':
		s.mode, s.aux = lit, 1<<4|1
	case c == 'n':
		s.mode, s.aux = lit, 2<<4|1
	default:
		return false
	}
	return true
}

// push opens an object or an array.
func (s *state) push(object bool) bool {
	if s.depth >= MaxDepth {
		return false
	}
	if object {
		s.stack |= 1 << s.depth
		s.mode = objOpen
	} else {
		s.stack &^= 1 << s.depth
		s.mode = arrOpen
	}
	s.depth++
	return true
}

// pop closes the innermost container, which ends a value.
func (s *state) pop() bool {
	s.depth--
	if s.depth == 0 {
		s.mode = complete
		return true
	}
	s.mode = after
	return true
}

// endValue ends a value inside a container.
func (s *state) endValue() bool {
	s.mode = after
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
