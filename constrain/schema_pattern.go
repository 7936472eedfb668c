package constrain

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A schema's pattern: the ECMA-262 regular expressions JSON Schema names,
// in the part that is a regular language over characters — literals,
// escapes (\d \w \s and their negations, \t \n \r \f \v, \xHH, \uHHHH
// below 0x80, escaped punctuation), classes of ASCII characters and ranges
// (negated classes and . also take every non-ASCII character), groups,
// alternation, the quantifiers * + ? {n} {n,} {n,m} (up to
// maxPatternRepeat; lazy ones are the same language), and ^ and $ at the
// pattern's ends. As JSON Schema asks, a pattern matches anywhere in the
// string unless anchored. Each character is written as JSON spells it
// (printable ASCII as itself, " and \ escaped, control characters by their
// short escape or \u00XX, other characters as UTF-8). Backreferences,
// lookaround, word boundaries and non-ASCII class ranges are refused.

// maxPatternRepeat bounds a pattern's counted repetition.
const maxPatternRepeat = 64

// rnode is a parsed pattern: a character set ('c'), a sequence ('s'),
// alternatives ('a') or a repetition ('r', min to max, -1: no bound).
type rnode struct {
	kind     byte
	set      charSet
	subs     []*rnode
	min, max int
}

// charSet is a set of characters: ASCII ones by bit, and whether it holds
// every non-ASCII character.
type charSet struct {
	ascii    [2]uint64
	nonASCII bool
}

func (c *charSet) add(lo, hi byte) {
	for b := int(lo); b <= int(hi); b++ {
		c.ascii[b>>6] |= 1 << (b & 63)
	}
}

func (c *charSet) has(b byte) bool { return c.ascii[b>>6]&(1<<(b&63)) != 0 }

func (c *charSet) union(d charSet) {
	c.ascii[0] |= d.ascii[0]
	c.ascii[1] |= d.ascii[1]
	c.nonASCII = c.nonASCII || d.nonASCII
}

func (c charSet) negate() charSet {
	return charSet{ascii: [2]uint64{^c.ascii[0], ^c.ascii[1]}, nonASCII: !c.nonASCII}
}

// patternParser reads one pattern.
type patternParser struct {
	src string
	i   int
}

func (p *patternParser) errorf(format string, args ...any) error {
	return fmt.Errorf("pattern %q at %d: %s", p.src, p.i, fmt.Sprintf(format, args...))
}

// parsePattern returns the pattern's tree and whether it is anchored at
// its start and end.
func parsePattern(src string) (n *rnode, start, end bool, err error) {
	body := src
	if strings.HasPrefix(body, "^") {
		start, body = true, body[1:]
	}
	if strings.HasSuffix(body, "$") && !strings.HasSuffix(body, `\$`) {
		end, body = true, body[:len(body)-1]
	}
	p := &patternParser{src: body}
	n, err = p.alt()
	if err == nil && p.i < len(p.src) {
		err = p.errorf("unexpected %q", p.src[p.i])
	}
	if err != nil && body != src {
		err = fmt.Errorf("%w (in %q)", err, src)
	}
	return n, start, end, err
}

func (p *patternParser) alt() (*rnode, error) {
	var subs []*rnode
	for {
		s, err := p.seq()
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
		if p.i >= len(p.src) || p.src[p.i] != '|' {
			break
		}
		p.i++
	}
	if len(subs) == 1 {
		return subs[0], nil
	}
	return &rnode{kind: 'a', subs: subs}, nil
}

func (p *patternParser) seq() (*rnode, error) {
	n := &rnode{kind: 's'}
	for p.i < len(p.src) && p.src[p.i] != '|' && p.src[p.i] != ')' {
		atom, err := p.atom()
		if err != nil {
			return nil, err
		}
		if atom, err = p.quantified(atom); err != nil {
			return nil, err
		}
		n.subs = append(n.subs, atom)
	}
	return n, nil
}

func (p *patternParser) quantified(atom *rnode) (*rnode, error) {
	for p.i < len(p.src) {
		min, max := 0, 0
		switch p.src[p.i] {
		case '*':
			min, max = 0, -1
			p.i++
		case '+':
			min, max = 1, -1
			p.i++
		case '?':
			min, max = 0, 1
			p.i++
		case '{':
			close := strings.IndexByte(p.src[p.i:], '}')
			if close < 0 {
				return nil, p.errorf("{ without }")
			}
			spec := p.src[p.i+1 : p.i+close]
			lo, hi, comma := strings.Cut(spec, ",")
			var err error
			if min, err = strconv.Atoi(lo); err != nil || min < 0 {
				return nil, p.errorf("bad repetition {%s}", spec)
			}
			max = min
			if comma {
				max = -1
				if hi != "" {
					if max, err = strconv.Atoi(hi); err != nil || max < min {
						return nil, p.errorf("bad repetition {%s}", spec)
					}
				}
			}
			if min > maxPatternRepeat || max > maxPatternRepeat {
				return nil, p.errorf("repetition {%s} beyond %d", spec, maxPatternRepeat)
			}
			p.i += close + 1
		default:
			return atom, nil
		}
		if p.i < len(p.src) && p.src[p.i] == '?' { // lazy: the same language
			p.i++
		}
		atom = &rnode{kind: 'r', subs: []*rnode{atom}, min: min, max: max}
	}
	return atom, nil
}

func (p *patternParser) atom() (*rnode, error) {
	c := p.src[p.i]
	switch c {
	case '(':
		p.i++
		if strings.HasPrefix(p.src[p.i:], "?:") {
			p.i += 2
		} else if strings.HasPrefix(p.src[p.i:], "?<") && !strings.HasPrefix(p.src[p.i:], "?<=") && !strings.HasPrefix(p.src[p.i:], "?<!") {
			end := strings.IndexByte(p.src[p.i:], '>')
			if end < 0 {
				return nil, p.errorf("group name without >")
			}
			p.i += end + 1
		} else if strings.HasPrefix(p.src[p.i:], "?") {
			return nil, p.errorf("lookaround is not supported")
		}
		n, err := p.alt()
		if err != nil {
			return nil, err
		}
		if p.i >= len(p.src) || p.src[p.i] != ')' {
			return nil, p.errorf("( without )")
		}
		p.i++
		return n, nil
	case '[':
		return p.class()
	case '.':
		p.i++
		var nl charSet
		nl.add('\n', '\n')
		nl.add('\r', '\r')
		return &rnode{kind: 'c', set: nl.negate()}, nil
	case '\\':
		set, err := p.escape(false)
		if err != nil {
			return nil, err
		}
		return &rnode{kind: 'c', set: set}, nil
	case '^', '$':
		return nil, p.errorf("%c is supported only at the pattern's ends", c)
	case '*', '+', '?', '{':
		return nil, p.errorf("%c repeats nothing", c)
	}
	return p.literal()
}

// literal is one character of the pattern as it stands (a UTF-8 sequence
// for a non-ASCII one: a sequence of its bytes, each written as is).
func (p *patternParser) literal() (*rnode, error) {
	c := p.src[p.i]
	if c < 0x80 {
		p.i++
		var s charSet
		s.add(c, c)
		return &rnode{kind: 'c', set: s}, nil
	}
	return nil, p.errorf("non-ASCII characters in a pattern are not supported")
}

// escape reads \x at p.i: a set of characters (inClass: inside [...],
// where \b would be a backspace).
func (p *patternParser) escape(inClass bool) (charSet, error) {
	var s charSet
	if p.i+1 >= len(p.src) {
		return s, p.errorf(`\ at the end`)
	}
	c := p.src[p.i+1]
	p.i += 2
	switch c {
	case 'd', 'D':
		s.add('0', '9')
	case 'w', 'W':
		s.add('a', 'z')
		s.add('A', 'Z')
		s.add('0', '9')
		s.add('_', '_')
	case 's', 'S':
		s.add('\t', '\r')
		s.add(' ', ' ')
	case 't', 'n', 'r', 'f', 'v', '0':
		e := patternEscapes[c]
		s.add(e, e)
	case 'x', 'u':
		n := map[byte]int{'x': 2, 'u': 4}[c]
		if p.i+n > len(p.src) {
			return s, p.errorf(`\%c needs %d hex digits`, c, n)
		}
		v, err := strconv.ParseUint(p.src[p.i:p.i+n], 16, 32)
		if err != nil {
			return s, p.errorf(`\%c needs %d hex digits`, c, n)
		}
		if v >= 0x80 {
			return s, p.errorf(`\%c%s: non-ASCII characters in a pattern are not supported`, c, p.src[p.i:p.i+n])
		}
		p.i += n
		s.add(byte(v), byte(v))
	case 'b':
		if !inClass {
			return s, p.errorf(`\b (a word boundary) is not supported`)
		}
		s.add('\b', '\b')
	default:
		switch {
		case c >= '1' && c <= '9':
			return s, p.errorf(`backreferences are not supported`)
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			return s, p.errorf(`\%c is not supported`, c)
		}
		s.add(c, c) // escaped punctuation
	}
	if c == 'D' || c == 'W' || c == 'S' {
		s = s.negate()
	}
	return s, nil
}

// class reads [...] at p.i.
func (p *patternParser) class() (*rnode, error) {
	p.i++
	neg := p.i < len(p.src) && p.src[p.i] == '^'
	if neg {
		p.i++
	}
	var s charSet
	first := true
	for {
		if p.i >= len(p.src) {
			return nil, p.errorf("[ without ]")
		}
		if p.src[p.i] == ']' && !first {
			p.i++
			break
		}
		first = false
		lo, single, err := p.classChar()
		if err != nil {
			return nil, err
		}
		if single && p.i+1 < len(p.src) && p.src[p.i] == '-' && p.src[p.i+1] != ']' {
			p.i++
			hi, single2, err := p.classChar()
			if err != nil {
				return nil, err
			}
			a, b := lone(lo), lone(hi)
			if !single2 || b < a {
				return nil, p.errorf("bad range in a class")
			}
			s.add(a, b)
			continue
		}
		s.union(lo)
	}
	if neg {
		s = s.negate()
	}
	return &rnode{kind: 'c', set: s}, nil
}

// classChar reads one member of a class: a set, and whether it is one
// character (which may start a range).
func (p *patternParser) classChar() (charSet, bool, error) {
	c := p.src[p.i]
	if c == '\\' {
		s, err := p.escape(true)
		if err != nil {
			return s, false, err
		}
		n := 0
		for b := range 128 {
			if s.has(byte(b)) {
				n++
			}
		}
		return s, n == 1 && !s.nonASCII, nil
	}
	if c >= 0x80 {
		return charSet{}, false, p.errorf("non-ASCII characters in a pattern are not supported")
	}
	p.i++
	var s charSet
	s.add(c, c)
	return s, true, nil
}

// lone is the one character of a single-character set.
func lone(s charSet) byte {
	for b := range 128 {
		if s.has(byte(b)) {
			return byte(b)
		}
	}
	return 0
}

// patternString is a JSON string whose content the pattern matches.
func (a *nfa) patternString(pattern, path string) (frag, error) {
	n, start, end, err := parsePattern(pattern)
	if err != nil {
		return frag{}, fmt.Errorf("%s.pattern: %w", path, err)
	}
	parts := []frag{a.lit(`"`)}
	anyChar := charSet{nonASCII: true} // every character
	anyChar.add(0, 127)
	if !start {
		parts = append(parts, a.star(a.charIn(anyChar)))
	}
	body, err := a.pattern(n)
	if errors.Is(err, errTooLarge) {
		return frag{}, err
	} else if err != nil {
		return frag{}, fmt.Errorf("%s.pattern: %w", path, err)
	}
	parts = append(parts, body)
	if !end {
		parts = append(parts, a.star(a.charIn(anyChar)))
	}
	parts = append(parts, a.lit(`"`))
	return a.seq(parts...), nil
}

// pattern adds the pattern tree n to the NFA.
func (a *nfa) pattern(n *rnode) (frag, error) {
	if len(a.nodes) > maxNFANodes {
		return frag{}, errTooLarge
	}
	switch n.kind {
	case 'c':
		return a.charIn(n.set), nil
	case 's':
		if len(n.subs) == 0 {
			e := a.node()
			return frag{e, e}, nil
		}
		fs, err := a.patterns(n.subs)
		if err != nil {
			return frag{}, err
		}
		return a.seq(fs...), nil
	case 'a':
		fs, err := a.patterns(n.subs)
		if err != nil {
			return frag{}, err
		}
		return a.alt(fs...), nil
	}
	// 'r': min copies, then max-min optional ones (or a loop)
	var fs []frag
	for range n.min {
		f, err := a.pattern(n.subs[0])
		if err != nil {
			return frag{}, err
		}
		fs = append(fs, f)
	}
	if n.max < 0 {
		f, err := a.pattern(n.subs[0])
		if err != nil {
			return frag{}, err
		}
		fs = append(fs, a.star(f))
	} else if n.max > n.min {
		f, err := a.upTo(n.max-n.min, func() (frag, error) { return a.pattern(n.subs[0]) })
		if err != nil {
			return frag{}, err
		}
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		e := a.node()
		return frag{e, e}, nil
	}
	return a.seq(fs...), nil
}

// patterns adds each of ns to the NFA.
func (a *nfa) patterns(ns []*rnode) ([]frag, error) {
	fs := make([]frag, len(ns))
	for i, s := range ns {
		f, err := a.pattern(s)
		if err != nil {
			return nil, err
		}
		fs[i] = f
	}
	return fs, nil
}

// charIn is one character of set s as JSON writes it inside a string. The
// escapes share their prefixes (a trie after the backslash), so a point
// before the character is one NFA node: a pattern's DFA states hold a node
// for each point they may be at, not one for each way to escape there.
func (a *nfa) charIn(s charSet) frag {
	in, out := a.node(), a.node()
	var escs []string // after the backslash
	for b := range 128 {
		c := byte(b)
		if !s.has(c) {
			continue
		}
		switch {
		case c == '"' || c == '\\':
			escs = append(escs, string(c))
		case c < 0x20:
			if e, ok := shortEscape[c]; ok {
				escs = append(escs, string(e))
			}
			escs = append(escs, fmt.Sprintf(`u%04x`, c))
			if c&0xf >= 0xa { // a hex letter: its upper case too
				escs = append(escs, fmt.Sprintf(`u%04X`, c))
			}
		default:
			a.edge(in, c, c, out)
			if c == '/' {
				escs = append(escs, "/")
			}
		}
	}
	if len(escs) > 0 {
		esc := a.node()
		a.edge(in, '\\', '\\', esc)
		a.trie(esc, escs, out)
	}
	if s.nonASCII {
		a.utf8Char(in, out)
	}
	return frag{in, out}
}

// trie adds each of strs from node from to node out, the strings' common
// prefixes on shared nodes (its last byte's edge goes to out).
func (a *nfa) trie(from int32, strs []string, out int32) {
	type step struct {
		at int32
		b  byte
	}
	child := map[step]int32{}
	for _, str := range strs {
		cur := from
		for i := 0; i < len(str)-1; i++ {
			k := step{cur, str[i]}
			next, ok := child[k]
			if !ok {
				next = a.node()
				a.edge(cur, str[i], str[i], next)
				child[k] = next
			}
			cur = next
		}
		a.edge(cur, str[len(str)-1], str[len(str)-1], out)
	}
}

// patternEscapes is the control characters a pattern names by a letter.
var patternEscapes = map[byte]byte{'t': '\t', 'n': '\n', 'r': '\r', 'f': '\f', 'v': '\v', '0': 0}

// shortEscape is JSON's two-character escapes of control characters.
var shortEscape = map[byte]byte{'\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}
