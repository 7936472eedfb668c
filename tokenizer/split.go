package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// GPT-2's reversible byte <-> printable-rune map: bytes that are printable
// map to themselves, the rest to U+0100 upwards in byte order.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	// byteToStr holds the UTF-8 string of each byteToRune entry.
	byteToStr [256]string
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteToStr[b] = string(byteToRune[b])
	}
}

// byteLevelEncode maps every byte of s to its GPT-2 rune.
func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteToStr[s[i]])
	}
	return sb.String()
}

// byteLevelDecode maps GPT-2 runes back to bytes; ok is false if s has a rune
// outside the map (then the result is meaningless).
func byteLevelDecode(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	for _, r := range s {
		c, found := runeToByte[r]
		if !found {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// Split behaviors (HF SplitDelimiterBehavior).
const (
	splitIsolated = iota
	splitRemoved
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

// regexSplitter splits text on a regular expression (regexp2 syntax, which
// like Oniguruma supports lookahead and \p{..} classes).
type regexSplitter struct {
	re       *regexp2.Regexp
	literal  string // used instead of re when non-empty
	behavior int
	invert   bool
}

func newRegexSplitter(pattern string, behavior int, invert bool) (*regexSplitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("bad split regex %q: %v", pattern, err)
	}
	return &regexSplitter{re: re, behavior: behavior, invert: invert}, nil
}

type span struct {
	start, end int
	match      bool
}

// matches returns the non-empty match spans of the splitter in s (byte
// offsets).
func (sp *regexSplitter) matches(s string) []span {
	var out []span
	if sp.literal != "" {
		for i := 0; i < len(s); {
			j := strings.Index(s[i:], sp.literal)
			if j < 0 {
				break
			}
			out = append(out, span{i + j, i + j + len(sp.literal), true})
			i += j + len(sp.literal)
		}
		return out
	}
	// regexp2 works on runes; keep the byte offset of every rune so that
	// invalid UTF-8 survives unchanged.
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		runes = append(runes, r)
		offs = append(offs, i)
		i += n
	}
	offs = append(offs, len(s))
	m, err := sp.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		if m.Length > 0 {
			out = append(out, span{offs[m.Index], offs[m.Index+m.Length], true})
		}
		m, err = sp.re.FindNextMatch(m)
	}
	return out
}

// split applies the splitter to s and returns the pieces.
func (sp *regexSplitter) split(s string) []string {
	if s == "" {
		return nil
	}
	ms := sp.matches(s)
	// Build alternating spans covering s.
	var spans []span
	pos := 0
	for _, m := range ms {
		if m.start > pos {
			spans = append(spans, span{pos, m.start, false})
		}
		spans = append(spans, m)
		pos = m.end
	}
	if pos < len(s) {
		spans = append(spans, span{pos, len(s), false})
	}
	if sp.invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var out []string
	switch sp.behavior {
	case splitIsolated:
		for _, p := range spans {
			out = append(out, s[p.start:p.end])
		}
	case splitRemoved:
		for _, p := range spans {
			if !p.match {
				out = append(out, s[p.start:p.end])
			}
		}
	case splitMergedWithPrevious:
		// A delimiter joins the piece before it (unless that piece already
		// ended with a delimiter).
		prevMatch := false
		var ps []span
		for _, p := range spans {
			if p.match && !prevMatch && len(ps) > 0 {
				ps[len(ps)-1].end = p.end
			} else {
				ps = append(ps, p)
			}
			prevMatch = p.match
		}
		for _, p := range ps {
			out = append(out, s[p.start:p.end])
		}
	case splitMergedWithNext:
		// A delimiter joins the piece after it.
		prevMatch := false
		var ps []span
		for i := len(spans) - 1; i >= 0; i-- {
			p := spans[i]
			if p.match && !prevMatch && len(ps) > 0 {
				ps[len(ps)-1].start = p.start
			} else {
				ps = append(ps, p)
			}
			prevMatch = p.match
		}
		for i := len(ps) - 1; i >= 0; i-- {
			out = append(out, s[ps[i].start:ps[i].end])
		}
	case splitContiguous:
		for i := 0; i < len(spans); {
			j := i + 1
			if spans[i].match {
				for j < len(spans) && spans[j].match {
					j++
				}
			}
			out = append(out, s[spans[i].start:spans[j-1].end])
			i = j
		}
	}
	return out
}

// splitAll applies a sequence of splitters, each to every piece produced by
// the previous one.
func splitAll(text string, splitters []*regexSplitter) []string {
	pieces := []string{text}
	if text == "" {
		return nil
	}
	for _, sp := range splitters {
		var next []string
		for _, p := range pieces {
			next = append(next, sp.split(p)...)
		}
		pieces = next
	}
	return pieces
}

// segment is a piece of input text or an already-resolved special token.
type segment struct {
	text string
	id   int // -1 for text
}

// specialToken describes a token that is split out of text before
// pre-tokenization.
type specialToken struct {
	text         string
	id           int
	lstrip       bool // absorb whitespace to the left
	rstrip       bool // absorb whitespace to the right
	singleWord   bool
	onlyIfParsed bool // matched only when parseSpecial is set
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// splitLeftmostLongest splits text on the tokens (HF AddedVocabulary
// semantics: leftmost-longest match, lstrip/rstrip absorbing whitespace).
func splitLeftmostLongest(text string, toks []specialToken, parseSpecial bool) []segment {
	if len(toks) == 0 || text == "" {
		if text == "" {
			return nil
		}
		return []segment{{text, -1}}
	}
	var out []segment
	last := 0 // start of pending text
	for i := 0; i < len(text); {
		best := -1
		for k := range toks {
			t := &toks[k]
			if t.onlyIfParsed && !parseSpecial || t.text == "" {
				continue
			}
			if strings.HasPrefix(text[i:], t.text) && (best < 0 || len(t.text) > len(toks[best].text)) {
				if t.singleWord && !isWordBoundary(text, i, i+len(t.text)) {
					continue
				}
				best = k
			}
		}
		if best < 0 {
			i++
			continue
		}
		t := toks[best]
		start, end := i, i+len(t.text)
		if t.lstrip {
			for start > last && isSpaceByte(text[start-1]) {
				start--
			}
		}
		if t.rstrip {
			for end < len(text) && isSpaceByte(text[end]) {
				end++
			}
		}
		if start > last {
			out = append(out, segment{text[last:start], -1})
		}
		out = append(out, segment{"", t.id})
		last, i = end, end
	}
	if last < len(text) {
		out = append(out, segment{text[last:], -1})
	}
	return out
}

func isWordRune(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127 && (isLetter(r) || isNumber(r))
}

// isWordBoundary reports whether text[start:end] is not glued to word
// characters on either side.
func isWordBoundary(text string, start, end int) bool {
	if start > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:start])
		if isWordRune(r) {
			return false
		}
	}
	if end < len(text) {
		r, _ := utf8.DecodeRuneInString(text[end:])
		if isWordRune(r) {
			return false
		}
	}
	return true
}
