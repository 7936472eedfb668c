package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/upg-ai/upg/sample"
)

// Schema is a JSON Schema constraint (OpenAI's response_format
// json_schema, ollama's format with a schema): the text is one JSON value
// that the schema accepts, its objects' properties all present and in the
// schema's order (what OpenAI's strict mode asks of a schema, so any
// schema it takes gives the same shape here).
//
// A schema without references is a regular language, so it is compiled
// once into a deterministic automaton over bytes; a sequence's state is
// one of its states, and a step costs one table lookup a byte. The
// keywords it takes: type (one or a list), properties, required,
// additionalProperties (true or false: no other properties are written;
// or a schema, for an object of any keys without properties: a map),
// items, prefixItems (a tuple, with items false or a schema after it),
// minItems and maxItems (up to MaxItemsBound), minLength and
// maxLength (up to MaxLengthBound characters), minimum, maximum,
// exclusiveMinimum and exclusiveMaximum (whole numbers for a number, any
// for an integer; bounded numbers are written without an exponent:
// schema_range.go), format (date, time,
// date-time, uuid and ipv4 are written as RFC 3339 and RFC 4122 spell
// them; other formats annotate, as JSON Schema's default vocabulary has
// them), pattern (schema_pattern.go), enum, const, anyOf, $ref to a
// subschema of the same document
// ("#/$defs/Name", as pydantic writes nested models; "#" for the root) with
// $defs and definitions holding them, and the annotations (title,
// description, default, examples, $schema, $id, $comment). Any other
// keyword is refused by name, as are recursive references, objects without
// properties and arrays without items (their values could nest without
// bound: not a regular language).
type Schema struct {
	v *JSON // the vocabulary's tables (NewJSON)
	// trans[st·ncls + cls[c]]: the row of the state after byte c from st
	// (that state · ncls, so a walk adds and loads without a multiply; −1
	// dead). Bytes that no edge of the NFA tells apart share a class (a
	// JSON automaton has a few dozen, not 256), so a row is ncls entries.
	cls    [256]uint8
	ncls   int
	trans  []int32
	accept []bool
	free   []bool // the state loops on every byte of a string's plain content
	// run: every run of up to run[st] printable ASCII string bytes (JSON's
	// plainLen) is taken from st, each byte as any other (a counted
	// string's characters); runEnd: a longer run is refused
	run    []int32
	runEnd []bool
}

// MaxSchemaStates bounds the automaton a schema compiles to (a schema of
// seven properties takes ~1,400; a string of up to 64 characters ~1,500).
const MaxSchemaStates = 1 << 16

// MaxSchemaTable bounds the bytes of a schema's transition table (4 bytes
// for each of a state's byte classes): with fewer states than
// MaxSchemaStates where a schema has more than 64 classes.
const MaxSchemaTable = 16 << 20

// MaxSchemaWork bounds the steps determinizing a schema takes (NFA nodes
// visited by the closures of its DFA states and by their moves on each byte
// class): the time a schema may take to compile, whatever its state count
// — about a second on one core (~15 ns a step). Ordinary schemas take well
// under 1% of it.
const MaxSchemaWork = 1 << 26

// maxSchemaSets bounds the NFA nodes a schema's determinization keeps (its
// DFA states' sets, and the moves they were taken of; 4 bytes each, twice):
// its memory.
const maxSchemaSets = 1 << 23

// tooComplex is the error of a schema past MaxSchemaWork or maxSchemaSets.
var tooComplex = fmt.Errorf("schema: too complex (building its automaton passes %d steps or %d NFA nodes kept; a pattern or bound that leaves many choices open at once costs most)", MaxSchemaWork, maxSchemaSets)

// MaxItemsBound is the largest minItems or maxItems a schema may set.
const MaxItemsBound = 64

// MaxLengthBound is the largest minLength or maxLength a schema may set
// (each character counted is a few states of the automaton).
const MaxLengthBound = 256

// maxSchemaDepth bounds the nesting of a schema's subschemas.
const maxSchemaDepth = 32

const deadState = -1

// NewSchema compiles a JSON Schema (its JSON text) for the vocabulary of v.
// The error names the keyword or value it cannot take.
func NewSchema(v *JSON, schema []byte) (*Schema, error) {
	root, err := parseOrdered(schema)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	a := nfa{root: root}
	f, err := a.compile(root, "schema", 0)
	if err != nil {
		return nil, err
	}
	s := &Schema{v: v}
	if err := s.determinize(&a, f); err != nil {
		return nil, err
	}
	return s, nil
}

// For is the schema's automaton with the vocabulary of v: the automaton
// reads bytes and does not depend on the vocabulary, so a schema checked
// before a model is loaded (compiled with NewJSON(0, nil, nil, nil)) need
// not be compiled again for it.
func (s *Schema) For(v *JSON) *Schema {
	c := *s
	c.v = v
	return &c
}

// States is the size of the schema's automaton.
func (s *Schema) States() int { return len(s.accept) }

// TableBytes is the size of the automaton's transition table.
func (s *Schema) TableBytes() int { return 4 * len(s.trans) }

// next is the state after byte c from st (st not dead).
func (s *Schema) next(st int32, c byte) int32 {
	if r := s.trans[int(st)*s.ncls+int(s.cls[c])]; r != deadState {
		return r / int32(s.ncls)
	}
	return deadState
}

// NewMatcher implements sample.Constraint.
func (s *Schema) NewMatcher() sample.Matcher {
	return &schemaMatcher{s: s, states: []int32{0}}
}

// Valid reports whether text is one whole value the schema accepts, as the
// constraint lets it be written.
func (s *Schema) Valid(text []byte) bool {
	st := s.feed(0, text)
	return st != deadState && s.accept[st]
}

// Prefix reports whether text can be continued into what Valid accepts.
func (s *Schema) Prefix(text []byte) bool { return s.feed(0, text) != deadState }

func (s *Schema) feed(st int32, b []byte) int32 { return s.feedRow(st*int32(s.ncls), b) }

// feedRow is feed from the state whose row is r, walking rows.
func (s *Schema) feedRow(r int32, b []byte) int32 {
	trans, cls := s.trans, &s.cls
	for _, c := range b {
		if r = trans[int(r)+int(cls[c])]; r == deadState {
			return deadState
		}
	}
	return r / int32(s.ncls)
}

// schemaMatcher follows one sequence (as Matcher does for JSON).
type schemaMatcher struct {
	s      *Schema
	fed    []int
	states []int32 // states[i]: after fed[:i]
	allow  []bool
}

// Mask implements sample.Matcher: Matcher.Mask's rules with the schema's
// automaton.
func (m *schemaMatcher) Mask(gen []int, logits []float32) {
	k := 0
	for k < len(m.fed) && k < len(gen) && m.fed[k] == gen[k] {
		k++
	}
	m.fed, m.states = m.fed[:k], m.states[:k+1]
	v := m.s.v
	for _, t := range gen[k:] {
		st := m.states[len(m.states)-1]
		if t < 0 || t >= len(v.tokens) || v.tokens[t] == nil || st == deadState {
			st = deadState
		} else {
			st = m.s.feed(st, v.tokens[t])
		}
		m.fed = append(m.fed, t)
		m.states = append(m.states, st)
	}
	m.mask(m.states[len(m.states)-1], logits)
}

func (m *schemaMatcher) mask(st int32, logits []float32) {
	s, v := m.s, m.s.v
	n := min(len(logits), len(v.tokens))
	if cap(m.allow) < n {
		m.allow = make([]bool, n)
	}
	allow := m.allow[:n]
	clear(allow)
	if st == deadState || s.accept[st] {
		for t := range n {
			allow[t] = v.end[t]
		}
	}
	switch {
	case st == deadState:
	case s.free[st]:
		// plain string content keeps the state: only the tokens with a
		// quote, backslash or control byte are walked
		for t := range n {
			allow[t] = allow[t] || v.inString[t]
		}
		for _, t := range v.quoted {
			if int(t) < n {
				allow[t] = s.feed(st, v.tokens[t]) != deadState
			}
		}
	default:
		// a token of plain ASCII content no longer than the state's run is
		// taken, and a longer one refused where the run ends in refusal:
		// neither is walked (a counted string's characters)
		r, refused := int(s.run[st]), s.runEnd[st]
		row := s.trans[int(st)*s.ncls : (int(st)+1)*s.ncls]
		for b := range 256 {
			next := row[s.cls[b]] // the next state's row
			if next == deadState {
				continue
			}
			for _, t := range v.all[b] {
				if int(t) >= n {
					continue
				}
				if l := int(v.plainLen[t]); l > 0 && r > 0 {
					if l <= r {
						allow[t] = true
						continue
					}
					if refused {
						continue
					}
				}
				allow[t] = s.feedRow(next, v.tokens[t][1:]) != deadState
			}
		}
	}
	ninf := float32(math.Inf(-1))
	for t := range logits {
		if t >= n || !allow[t] {
			logits[t] = ninf
		}
	}
}

// The schema's automaton is built as an NFA of byte-range edges and
// ε-moves, one fragment per subschema (Thompson's construction), then
// made deterministic by subsets.

type nfa struct {
	nodes []nnode
	root  *onode   // the schema document ($ref's pointers start there)
	refs  []string // the references being compiled (a cycle is refused)
}

type nnode struct {
	edges []edge
	eps   []int32
}

type edge struct {
	lo, hi byte
	to     int32
}

// frag is a piece of the NFA: entered at in, left at out.
type frag struct{ in, out int32 }

func (a *nfa) node() int32 {
	a.nodes = append(a.nodes, nnode{})
	return int32(len(a.nodes) - 1)
}

func (a *nfa) edge(from int32, lo, hi byte, to int32) {
	a.nodes[from].edges = append(a.nodes[from].edges, edge{lo, hi, to})
}

func (a *nfa) eps(from, to int32) { a.nodes[from].eps = append(a.nodes[from].eps, to) }

// lit is the bytes of s in order.
func (a *nfa) lit(s string) frag {
	in := a.node()
	cur := in
	for i := 0; i < len(s); i++ {
		next := a.node()
		a.edge(cur, s[i], s[i], next)
		cur = next
	}
	return frag{in, cur}
}

// seq joins fragments end to start.
func (a *nfa) seq(fs ...frag) frag {
	for i := 1; i < len(fs); i++ {
		a.eps(fs[i-1].out, fs[i].in)
	}
	return frag{fs[0].in, fs[len(fs)-1].out}
}

// alt is any one of fs.
func (a *nfa) alt(fs ...frag) frag {
	in, out := a.node(), a.node()
	for _, f := range fs {
		a.eps(in, f.in)
		a.eps(f.out, out)
	}
	return frag{in, out}
}

// ws is the whitespace JSON's constraint takes between tokens: none, one
// space, or a newline and up to MaxIndent spaces or tabs.
func (a *nfa) ws() frag {
	in, out := a.node(), a.node()
	a.eps(in, out)
	a.edge(in, ' ', ' ', out)
	nl := a.node()
	a.edge(in, '\n', '\n', nl)
	a.eps(nl, out)
	cur := nl
	for range MaxIndent {
		next := a.node()
		a.edge(cur, ' ', ' ', next)
		a.edge(cur, '\t', '\t', next)
		a.eps(next, out)
		cur = next
	}
	return frag{in, out}
}

// str is any JSON string.
func (a *nfa) str() frag {
	in, body, esc, out := a.node(), a.node(), a.node(), a.node()
	a.edge(in, '"', '"', body)
	a.edge(body, 0x20, '"'-1, body)
	a.edge(body, '"'+1, '\\'-1, body)
	a.edge(body, '\\'+1, 0xff, body)
	a.edge(body, '\\', '\\', esc)
	a.edge(body, '"', '"', out)
	for _, c := range []byte(`"\/bfnrt`) {
		a.edge(esc, c, c, body)
	}
	cur := a.node()
	a.edge(esc, 'u', 'u', cur)
	for i := range 4 {
		next := body
		if i < 3 {
			next = a.node()
		}
		a.edge(cur, '0', '9', next)
		a.edge(cur, 'a', 'f', next)
		a.edge(cur, 'A', 'F', next)
		cur = next
	}
	return frag{in, out}
}

// stringOf is a string with the schema's format and length keywords:
// a format the constraint writes (stringFormats) or any string, of
// minLength to maxLength characters (code points: a plain byte, a UTF-8
// sequence, an escape, or a surrogate pair's two escapes).
func (a *nfa) stringOf(kw map[string]*onode, path string) (frag, error) {
	lo, hi, err := counts(kw, path, "minLength", "maxLength", MaxLengthBound)
	if err != nil {
		return frag{}, err
	}
	if pat := kw["pattern"]; pat != nil {
		if pat.kind != 's' {
			return frag{}, fmt.Errorf("%s.pattern: want a string", path)
		}
		if lo > 0 || hi >= 0 || kw["format"] != nil {
			return frag{}, fmt.Errorf("%s: pattern with minLength, maxLength or format is not supported", path)
		}
		return a.patternString(pat.str, path)
	}
	if f := kw["format"]; f != nil {
		if f.kind != 's' {
			return frag{}, fmt.Errorf("%s.format: want a string", path)
		}
		if body := stringFormats[f.str]; body != nil {
			if lo > 0 || hi >= 0 {
				return frag{}, fmt.Errorf("%s: format %q with minLength or maxLength is not supported", path, f.str)
			}
			return a.seq(a.lit(`"`), body(a), a.lit(`"`)), nil
		}
	}
	if lo == 0 && hi < 0 {
		return a.str(), nil
	}
	parts := []frag{a.lit(`"`)}
	for range lo {
		parts = append(parts, a.char())
	}
	if hi < 0 {
		parts = append(parts, a.star(a.char()))
	} else {
		tail, _ := a.upTo(hi-lo, func() (frag, error) { return a.char(), nil })
		parts = append(parts, tail)
	}
	parts = append(parts, a.lit(`"`))
	return a.seq(parts...), nil
}

// char is one character of a JSON string's content: a printable ASCII
// byte other than " and \, a UTF-8 sequence of two to four bytes, an
// escape, or the two \u escapes of a surrogate pair.
func (a *nfa) char() frag {
	in, out := a.node(), a.node()
	a.edge(in, 0x20, '"'-1, out)
	a.edge(in, '"'+1, '\\'-1, out)
	a.edge(in, '\\'+1, 0x7f, out)
	a.utf8Char(in, out)
	esc := a.node()
	a.edge(in, '\\', '\\', esc)
	for _, c := range []byte(`"\/bfnrt`) {
		a.edge(esc, c, c, out)
	}
	u := a.node()
	a.edge(esc, 'u', 'u', u)
	// \uXXXX outside the surrogates: a first digit other than d, or d then 0-7
	notD, d, d07 := a.node(), a.node(), a.node()
	a.edge(u, '0', '9', notD)
	a.edge(u, 'a', 'c', notD)
	a.edge(u, 'A', 'C', notD)
	a.edge(u, 'e', 'f', notD)
	a.edge(u, 'E', 'F', notD)
	a.edge(u, 'd', 'd', d)
	a.edge(u, 'D', 'D', d)
	a.edge(d, '0', '7', d07)
	a.hexes(notD, 3, out)
	a.hexes(d07, 2, out)
	// a high surrogate (d8-db) and then \u and a low one (dc-df)
	hs := a.node()
	a.edge(d, '8', '9', hs)
	a.edge(d, 'a', 'b', hs)
	a.edge(d, 'A', 'B', hs)
	b1 := a.hexes(hs, 2, -1)
	bs, bu, ld := a.node(), a.node(), a.node()
	a.edge(b1, '\\', '\\', bs)
	a.edge(bs, 'u', 'u', bu)
	a.edge(bu, 'd', 'd', ld)
	a.edge(bu, 'D', 'D', ld)
	ls := a.node()
	a.edge(ld, 'c', 'f', ls)
	a.edge(ld, 'C', 'F', ls)
	a.hexes(ls, 2, out)
	return frag{in, out}
}

// utf8Char adds the UTF-8 sequences of two to four bytes (one non-ASCII
// character each) from node in to node out.
func (a *nfa) utf8Char(in, out int32) {
	for _, l := range []struct{ lo, hi, n byte }{{0xc2, 0xdf, 1}, {0xe0, 0xef, 2}, {0xf0, 0xf4, 3}} {
		cur := a.node()
		a.edge(in, l.lo, l.hi, cur)
		for i := range l.n {
			next := out
			if i < l.n-1 {
				next = a.node()
			}
			a.edge(cur, 0x80, 0xbf, next)
			cur = next
		}
	}
}

// hexes adds n hex digits from node from, ending at to (a new node when to
// < 0), and returns the end.
func (a *nfa) hexes(from int32, n int, to int32) int32 {
	cur := from
	for i := range n {
		next := to
		if i < n-1 || to < 0 {
			next = a.node()
		}
		a.edge(cur, '0', '9', next)
		a.edge(cur, 'a', 'f', next)
		a.edge(cur, 'A', 'F', next)
		cur = next
	}
	return cur
}

// opt is f or nothing.
func (a *nfa) opt(f frag) frag {
	e := a.node()
	return a.alt(f, frag{e, e})
}

// upTo is 0 to n fragments from mk, one after another. Each point between
// them may be the last, so it leaves straight to the end: a point's
// ε-closure is itself, the next fragment's start and the end. (n opt
// fragments in a row mean the same, but there the closure of each point holds
// every later point: O(n) NFA nodes in each DFA state and an O(n²)
// determinization — 5 s for a string of up to 256 characters.)
func (a *nfa) upTo(n int, mk func() (frag, error)) (frag, error) {
	in, out := a.node(), a.node()
	cur := in
	for range n {
		f, err := mk()
		if err != nil {
			return frag{}, err
		}
		a.eps(cur, out)
		a.eps(cur, f.in)
		cur = f.out
	}
	a.eps(cur, out)
	return frag{in, out}, nil
}

// class is one byte in the ranges r (pairs of first and last).
func (a *nfa) class(r ...byte) frag {
	in, out := a.node(), a.node()
	for i := 0; i+1 < len(r); i += 2 {
		a.edge(in, r[i], r[i+1], out)
	}
	return frag{in, out}
}

// times is n fragments from mk, one after another.
func (a *nfa) times(n int, mk func() frag) frag {
	fs := make([]frag, n)
	for i := range fs {
		fs[i] = mk()
	}
	return a.seq(fs...)
}

func (a *nfa) digit() frag    { return a.class('0', '9') }
func (a *nfa) hexDigit() frag { return a.class('0', '9', 'a', 'f', 'A', 'F') }

// stringFormats are the formats the constraint writes, each a string's
// content (between the quotes), as RFC 3339 (date, time, date-time: full-
// date, full-time, date-time) and RFC 4122 (uuid) spell them, and ipv4's
// dotted quad. A day is 01-31 whatever the month.
var stringFormats = map[string]func(a *nfa) frag{
	"date":      (*nfa).date,
	"time":      (*nfa).time,
	"date-time": func(a *nfa) frag { return a.seq(a.date(), a.class('T', 'T', 't', 't'), a.time()) },
	"uuid": func(a *nfa) frag {
		var parts []frag
		for i, n := range []int{8, 4, 4, 4, 12} {
			if i > 0 {
				parts = append(parts, a.lit("-"))
			}
			parts = append(parts, a.times(n, a.hexDigit))
		}
		return a.seq(parts...)
	},
	"ipv4": func(a *nfa) frag {
		octet := func() frag { // 0-255 without leading zeros
			return a.alt(a.seq(a.lit("25"), a.class('0', '5')), a.seq(a.lit("2"), a.class('0', '4'), a.digit()),
				a.seq(a.lit("1"), a.digit(), a.digit()), a.seq(a.class('1', '9'), a.digit()), a.digit())
		}
		return a.seq(octet(), a.lit("."), octet(), a.lit("."), octet(), a.lit("."), octet())
	},
}

// date is RFC 3339's full-date: YYYY-MM-DD.
func (a *nfa) date() frag {
	month := a.alt(a.seq(a.lit("0"), a.class('1', '9')), a.seq(a.lit("1"), a.class('0', '2')))
	day := a.alt(a.seq(a.lit("0"), a.class('1', '9')), a.seq(a.class('1', '2'), a.digit()), a.seq(a.lit("3"), a.class('0', '1')))
	return a.seq(a.times(4, a.digit), a.lit("-"), month, a.lit("-"), day)
}

// time is RFC 3339's full-time: HH:MM:SS, a fraction, and Z or an offset.
func (a *nfa) time() frag {
	hour := func() frag { return a.alt(a.seq(a.class('0', '1'), a.digit()), a.seq(a.lit("2"), a.class('0', '3'))) }
	minute := func() frag { return a.seq(a.class('0', '5'), a.digit()) }
	second := a.alt(minute(), a.lit("60"))
	frac := a.opt(a.seq(a.lit("."), a.digit(), a.star(a.digit())))
	offset := a.alt(a.class('Z', 'Z', 'z', 'z'), a.seq(a.class('+', '+', '-', '-'), hour(), a.lit(":"), minute()))
	return a.seq(hour(), a.lit(":"), minute(), a.lit(":"), second, frac, offset)
}

// star is f any number of times.
func (a *nfa) star(f frag) frag {
	loop := a.node()
	a.eps(loop, f.in)
	a.eps(f.out, loop)
	return frag{loop, loop}
}

// integer is -?(0|[1-9][0-9]*).
func (a *nfa) integer() frag {
	in, m, d, out := a.node(), a.node(), a.node(), a.node()
	a.edge(in, '-', '-', m)
	a.eps(in, m)
	a.edge(m, '0', '0', out)
	a.edge(m, '1', '9', d)
	a.edge(d, '0', '9', d)
	a.eps(d, out)
	return frag{in, out}
}

// number is a JSON number.
func (a *nfa) number() frag {
	i := a.integer()
	f0, f1, x := a.node(), a.node(), a.node()
	a.eps(i.out, x)
	a.edge(i.out, '.', '.', f0)
	a.edge(f0, '0', '9', f1)
	a.edge(f1, '0', '9', f1)
	a.eps(f1, x)
	e0, e1, e2, out := a.node(), a.node(), a.node(), a.node()
	a.eps(x, out)
	a.edge(x, 'e', 'e', e0)
	a.edge(x, 'E', 'E', e0)
	a.edge(e0, '+', '+', e1)
	a.edge(e0, '-', '-', e1)
	a.eps(e0, e1)
	a.edge(e1, '0', '9', e2)
	a.edge(e2, '0', '9', e2)
	a.eps(e2, out)
	return frag{i.in, out}
}

// The keywords compile takes: those that only annotate are ignored.
var (
	schemaAnnotations = map[string]bool{"title": true, "description": true, "default": true, "examples": true,
		"$schema": true, "$id": true, "$comment": true, "required": true, "additionalProperties": true, "strict": true,
		"$defs": true, "definitions": true}
	schemaKeywords = map[string]bool{"type": true, "properties": true, "items": true, "enum": true, "const": true,
		"anyOf": true, "minItems": true, "maxItems": true, "minLength": true, "maxLength": true, "format": true,
		"$ref": true, "pattern": true, "prefixItems": true, "minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true}
)

// maxNFANodes bounds the NFA a schema builds (bounded arrays copy their
// items' fragments, so nesting multiplies).
const maxNFANodes = 200000

// errTooLarge is the error of an NFA past maxNFANodes.
var errTooLarge = fmt.Errorf("schema: too large (its automaton passes %d NFA nodes)", maxNFANodes)

// tooLarge is the error of an automaton past limit states.
func tooLarge(limit int) error {
	return fmt.Errorf("schema: too large (its automaton passes %d states)", limit)
}

// compile adds schema s (at path, for errors) to the NFA.
func (a *nfa) compile(s *onode, path string, depth int) (frag, error) {
	if len(a.nodes) > maxNFANodes {
		return frag{}, errTooLarge
	}
	if depth > maxSchemaDepth {
		return frag{}, fmt.Errorf("%s: nested deeper than %d schemas", path, maxSchemaDepth)
	}
	if s.kind == 'b' && s.b { // true: any value — not a finite language
		return frag{}, fmt.Errorf("%s: a schema of true (any value) is not supported", path)
	}
	if s.kind != 'o' {
		return frag{}, fmt.Errorf("%s: a schema must be an object", path)
	}
	kw := map[string]*onode{}
	for i, k := range s.keys {
		if !schemaKeywords[k] && !schemaAnnotations[k] {
			return frag{}, fmt.Errorf("%s: keyword %q is not supported (supported: type, properties, required, additionalProperties, items, prefixItems, minItems, maxItems, minLength, maxLength, format, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum, const, anyOf, $ref, $defs)", path, k)
		}
		kw[k] = s.vals[i]
	}
	if ref := kw["$ref"]; ref != nil {
		return a.ref(ref, kw, path, depth)
	}
	if ap := kw["additionalProperties"]; ap != nil && ap.kind != 'b' && ap.kind != 'o' {
		return frag{}, fmt.Errorf("%s.additionalProperties: want true, false or a schema", path)
	}
	n := 0
	for _, k := range []string{"const", "enum", "anyOf"} {
		if kw[k] != nil {
			n++
		}
	}
	if n > 1 {
		return frag{}, fmt.Errorf("%s: const, enum and anyOf together are not supported (one of them)", path)
	}
	if c, e := kw["const"], kw["enum"]; c != nil || e != nil {
		vals, what := []*onode{c}, path+".const"
		if e != nil {
			if e.kind != 'a' || len(e.arr) == 0 {
				return frag{}, fmt.Errorf("%s.enum: want a non-empty array", path)
			}
			vals, what = e.arr, path+".enum"
		}
		var fs []frag
		for _, v := range vals {
			if t := kw["type"]; t != nil && !v.hasType(t) {
				continue // a value the type excludes: never written
			}
			f, err := a.literal(v, what)
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		if len(fs) == 0 {
			return frag{}, fmt.Errorf("%s: no value of the type %s", what, t2s(kw["type"]))
		}
		return a.alt(fs...), nil
	}
	if any := kw["anyOf"]; any != nil {
		if any.kind != 'a' || len(any.arr) == 0 {
			return frag{}, fmt.Errorf("%s.anyOf: want a non-empty array of schemas", path)
		}
		fs := make([]frag, 0, len(any.arr))
		for i, sub := range any.arr {
			f, err := a.compile(sub, fmt.Sprintf("%s.anyOf[%d]", path, i), depth+1)
			if err != nil {
				return frag{}, err
			}
			fs = append(fs, f)
		}
		if kw["type"] != nil || kw["properties"] != nil || kw["items"] != nil {
			return frag{}, fmt.Errorf("%s: anyOf beside type, properties or items is not supported", path)
		}
		return a.alt(fs...), nil
	}
	t := kw["type"]
	if t == nil {
		return frag{}, fmt.Errorf("%s: no type (nor enum, const or anyOf)", path)
	}
	var types []string
	switch t.kind {
	case 's':
		types = []string{t.str}
	case 'a':
		for _, x := range t.arr {
			if x.kind != 's' {
				return frag{}, fmt.Errorf("%s.type: want a string or an array of strings", path)
			}
			types = append(types, x.str)
		}
	default:
		return frag{}, fmt.Errorf("%s.type: want a string or an array of strings", path)
	}
	if len(types) == 0 {
		return frag{}, fmt.Errorf("%s.type: empty", path)
	}
	fs := make([]frag, 0, len(types))
	for _, ty := range types {
		f, err := a.typed(ty, kw, path, depth)
		if err != nil {
			return frag{}, err
		}
		fs = append(fs, f)
	}
	if len(fs) == 1 {
		return fs[0], nil
	}
	return a.alt(fs...), nil
}

// ref compiles the subschema that $ref names: a JSON pointer into the
// schema document, beside which only annotations may stand (JSON Schema
// would take both; a value meeting two sets of keywords at once is not
// what this constraint builds).
func (a *nfa) ref(ref *onode, kw map[string]*onode, path string, depth int) (frag, error) {
	for k := range kw {
		if k != "$ref" && !schemaAnnotations[k] {
			return frag{}, fmt.Errorf("%s: %q beside $ref is not supported", path, k)
		}
	}
	if ref.kind != 's' {
		return frag{}, fmt.Errorf("%s.$ref: want a string", path)
	}
	if slices.Contains(a.refs, ref.str) {
		return frag{}, fmt.Errorf("%s.$ref: %q refers to itself (a recursive schema is not a regular language; only references without cycles are supported)", path, ref.str)
	}
	target, err := a.resolve(ref.str)
	if err != nil {
		return frag{}, fmt.Errorf("%s.$ref: %w", path, err)
	}
	a.refs = append(a.refs, ref.str)
	f, err := a.compile(target, ref.str, depth+1)
	a.refs = a.refs[:len(a.refs)-1]
	return f, err
}

// resolve finds the subschema a JSON pointer within the document names
// ("#" the root, "#/$defs/Name", ~0 and ~1 for ~ and /).
func (a *nfa) resolve(ptr string) (*onode, error) {
	if ptr == "#" {
		return a.root, nil
	}
	rest, ok := strings.CutPrefix(ptr, "#/")
	if !ok {
		return nil, fmt.Errorf("%q: only references within the schema (\"#/...\") are supported", ptr)
	}
	n := a.root
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		var next *onode
		switch n.kind {
		case 'o':
			if i := slices.Index(n.keys, tok); i >= 0 {
				next = n.vals[i]
			}
		case 'a':
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err == nil && fmt.Sprint(i) == tok && i >= 0 && i < len(n.arr) {
				next = n.arr[i]
			}
		}
		if next == nil {
			return nil, fmt.Errorf("%q: no such subschema (%q not found)", ptr, tok)
		}
		n = next
	}
	return n, nil
}

// typed compiles a value of JSON type ty with the schema's keywords kw.
func (a *nfa) typed(ty string, kw map[string]*onode, path string, depth int) (frag, error) {
	switch ty {
	case "string":
		return a.stringOf(kw, path)
	case "integer", "number":
		lo, hi, bounded, err := bounds(kw, path, ty == "integer")
		switch {
		case err != nil:
			return frag{}, err
		case bounded:
			return a.ranged(lo, hi, ty == "integer", path)
		case ty == "integer":
			return a.integer(), nil
		}
		return a.number(), nil
	case "boolean":
		return a.alt(a.lit("true"), a.lit("false")), nil
	case "null":
		return a.lit("null"), nil
	case "object":
		props := kw["properties"]
		if ap := kw["additionalProperties"]; ap != nil && ap.kind == 'o' {
			if props != nil && len(props.keys) > 0 {
				return frag{}, fmt.Errorf("%s: additionalProperties as a schema beside properties is not supported", path)
			}
			return a.mapOf(ap, path, depth)
		}
		if props == nil || props.kind != 'o' {
			return frag{}, fmt.Errorf("%s: an object needs properties (an object of schemas) or additionalProperties (a schema); free-form objects are not supported", path)
		}
		parts := []frag{a.lit("{"), a.ws()}
		for i, k := range props.keys {
			if i > 0 {
				parts = append(parts, a.lit(","), a.ws())
			}
			key, err := marshalPlain(k)
			if err != nil {
				return frag{}, err
			}
			v, err := a.compile(props.vals[i], path+".properties."+k, depth+1)
			if err != nil {
				return frag{}, err
			}
			parts = append(parts, a.lit(key), a.ws(), a.lit(":"), a.ws(), v, a.ws())
		}
		parts = append(parts, a.lit("}"))
		return a.seq(parts...), nil
	case "array":
		items := kw["items"]
		if kw["prefixItems"] != nil {
			return a.tuple(kw, path, depth)
		}
		if items == nil {
			return frag{}, fmt.Errorf("%s: an array needs items (a schema)", path)
		}
		lo, hi, err := counts(kw, path, "minItems", "maxItems", MaxItemsBound)
		if err != nil {
			return frag{}, err
		}
		item := func() (frag, error) { return a.compile(items, path+".items", depth+1) }
		open, close := a.seq(a.lit("["), a.ws()), a.lit("]")
		// items 1..lo required, then up to hi (or any number), each after
		// the one before and ", "
		var chain []frag
		for i := range max(lo, 1) {
			if hi == 0 {
				break
			}
			f, err := item()
			if err != nil {
				return frag{}, err
			}
			if i > 0 {
				f = a.seq(a.lit(","), a.ws(), f)
			}
			chain = append(chain, a.seq(f, a.ws()))
		}
		if len(chain) == 0 { // maxItems 0: []
			return a.seq(open, close), nil
		}
		body := a.seq(chain...)
		switch {
		case hi < 0: // any number more: a loop
			f, err := item()
			if err != nil {
				return frag{}, err
			}
			more := a.seq(a.lit(","), a.ws(), f, a.ws())
			loop := a.node()
			a.eps(body.out, loop)
			a.eps(loop, more.in)
			a.eps(more.out, loop)
			body = frag{body.in, loop}
		default: // up to hi − max(lo, 1) more
			tail, err := a.upTo(hi-max(lo, 1), func() (frag, error) {
				f, err := item()
				if err != nil {
					return frag{}, err
				}
				return a.seq(a.lit(","), a.ws(), f, a.ws()), nil
			})
			if err != nil {
				return frag{}, err
			}
			body = a.seq(body, tail)
		}
		if lo == 0 { // the first item optional too
			return a.alt(a.seq(open, body, close), a.seq(a.seq(a.lit("["), a.ws()), a.lit("]"))), nil
		}
		return a.seq(open, body, close), nil
	}
	return frag{}, fmt.Errorf("%s.type: %q is not a JSON type (string, number, integer, boolean, null, object, array)", path, ty)
}

// mapOf is an object of any string keys, each value one that schema ap
// accepts (pydantic's dict[str, T]). Keys may repeat: no automaton can
// remember every key written.
func (a *nfa) mapOf(ap *onode, path string, depth int) (frag, error) {
	pair := func() (frag, error) {
		v, err := a.compile(ap, path+".additionalProperties", depth+1)
		if err != nil {
			return frag{}, err
		}
		return a.seq(a.str(), a.ws(), a.lit(":"), a.ws(), v, a.ws()), nil
	}
	first, err := pair()
	if err != nil {
		return frag{}, err
	}
	more, err := pair()
	if err != nil {
		return frag{}, err
	}
	pairs := a.seq(first, a.star(a.seq(a.lit(","), a.ws(), more)))
	return a.seq(a.lit("{"), a.ws(), a.opt(pairs), a.lit("}")), nil
}

// tuple is an array whose items follow prefixItems in order (pydantic's
// tuple[int, str]): at least minItems of them, and after the prefix more
// items of the items schema up to maxItems, or none when items is false
// or absent.
func (a *nfa) tuple(kw map[string]*onode, path string, depth int) (frag, error) {
	prefix := kw["prefixItems"]
	if prefix.kind != 'a' || len(prefix.arr) == 0 || len(prefix.arr) > MaxItemsBound {
		return frag{}, fmt.Errorf("%s.prefixItems: want 1 to %d schemas", path, MaxItemsBound)
	}
	n := len(prefix.arr)
	hi := n // items false or absent: the prefix's items at most
	items := kw["items"]
	switch {
	case items == nil, items.kind == 'b' && !items.b:
		items = nil
	case items.kind == 'o':
		hi = -1
	default:
		return frag{}, fmt.Errorf("%s.items: beside prefixItems, want false or a schema", path)
	}
	lo, most, err := counts(kw, path, "minItems", "maxItems", MaxItemsBound)
	if err != nil {
		return frag{}, err
	}
	if most >= 0 && (hi < 0 || most < hi) {
		hi = most
	}
	if hi >= 0 && hi < lo {
		return frag{}, fmt.Errorf("%s: no tuple of %d to %d items", path, lo, hi)
	}
	// element i, after a comma unless first
	element := func(i int) (frag, error) {
		sch, where := items, path+".items"
		if i < n {
			sch, where = prefix.arr[i], fmt.Sprintf("%s.prefixItems[%d]", path, i)
		}
		v, err := a.compile(sch, where, depth+1)
		if err != nil {
			return frag{}, err
		}
		if i == 0 {
			return a.seq(v, a.ws()), nil
		}
		return a.seq(a.lit(","), a.ws(), v, a.ws()), nil
	}
	// from(i): the elements from i on, those before lo required
	var from func(i int) (frag, error)
	from = func(i int) (frag, error) {
		switch {
		case hi >= 0 && i >= hi:
			e := a.node()
			return frag{e, e}, nil
		case hi < 0 && i >= n: // the items schema, any number more
			e, err := element(i)
			if err != nil {
				return frag{}, err
			}
			if i < lo {
				rest, err := from(i + 1)
				if err != nil {
					return frag{}, err
				}
				return a.seq(e, rest), nil
			}
			return a.star(e), nil
		}
		e, err := element(i)
		if err != nil {
			return frag{}, err
		}
		rest, err := from(i + 1)
		if err != nil {
			return frag{}, err
		}
		if i < lo {
			return a.seq(e, rest), nil
		}
		return a.opt(a.seq(e, rest)), nil
	}
	body, err := from(0)
	if err != nil {
		return frag{}, err
	}
	return a.seq(a.lit("["), a.ws(), body, a.lit("]")), nil
}

// counts reads a pair of count keywords (minItems and maxItems, minLength
// and maxLength): lo (0 when absent) and hi (-1 when absent), each at most
// limit, hi not below lo.
func counts(kw map[string]*onode, path, minKey, maxKey string, limit int) (lo, hi int, err error) {
	lo, hi = 0, -1
	for _, b := range []struct {
		k string
		v *int
	}{{minKey, &lo}, {maxKey, &hi}} {
		if x := kw[b.k]; x != nil {
			n, ok := x.count()
			if !ok || n > limit {
				return 0, 0, fmt.Errorf("%s.%s: want an integer from 0 to %d", path, b.k, limit)
			}
			*b.v = n
		}
	}
	if hi >= 0 && hi < lo {
		return 0, 0, fmt.Errorf("%s: %s %d < %s %d", path, maxKey, hi, minKey, lo)
	}
	return lo, hi, nil
}

// literal is the one spelling of JSON value v this constraint writes.
func (a *nfa) literal(v *onode, path string) (frag, error) {
	var b strings.Builder
	if err := v.write(&b); err != nil {
		return frag{}, fmt.Errorf("%s: %w", path, err)
	}
	return a.lit(b.String()), nil
}

// marshalPlain is s as a JSON string, without Go's HTML escapes.
func marshalPlain(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// determinize builds s's automaton from the NFA's subsets reachable from
// f.in; a subset holding f.out accepts.
func (s *Schema) determinize(a *nfa, f frag) error {
	// the byte classes: the intervals between the ends of every edge's range
	var cut [257]bool
	for _, nd := range a.nodes {
		for _, e := range nd.edges {
			cut[e.lo], cut[int(e.hi)+1] = true, true
		}
	}
	s.ncls = 0
	for c := range 256 {
		if c > 0 && cut[c] {
			s.ncls++
		}
		s.cls[c] = uint8(s.ncls)
	}
	s.ncls++
	limit := min(MaxSchemaStates, MaxSchemaTable/(4*s.ncls))
	ids := map[string]int32{}
	var sets [][]int32
	// closure marks the nodes it has reached with its own generation
	// number (an array the size of the NFA, not a map a call)
	mark, gen := make([]uint32, len(a.nodes)), uint32(0)
	var stack []int32
	work, kept := 0, 0 // against MaxSchemaWork and maxSchemaSets
	closure := func(seed []int32) []int32 {
		gen++
		stack = append(stack[:0], seed...)
		var out []int32
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if mark[n] == gen {
				continue
			}
			mark[n] = gen
			work++
			out = append(out, n)
			stack = append(stack, a.nodes[n].eps...)
		}
		slices.Sort(out)
		return out
	}
	key := func(set []int32) string {
		b := make([]byte, 4*len(set))
		for i, n := range set {
			b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
		}
		return string(b)
	}
	add := func(set []int32) (int32, error) {
		k := key(set)
		if id, ok := ids[k]; ok {
			return id, nil
		}
		if len(sets) >= limit {
			return 0, tooLarge(limit)
		}
		if kept += len(set); kept > maxSchemaSets {
			return 0, tooComplex
		}
		id := int32(len(sets))
		ids[k] = id
		sets = append(sets, set)
		acc := false
		for _, n := range set {
			acc = acc || n == f.out
		}
		s.accept = append(s.accept, acc)
		return id, nil
	}
	if _, err := add(closure([]int32{f.in})); err != nil {
		return err
	}
	targets := make([][]int32, s.ncls)
	kern := map[string]int32{} // a state by the target list its closure was taken of
	for i := 0; i < len(sets); i++ {
		if work > MaxSchemaWork {
			return tooComplex
		}
		for k := range targets {
			targets[k] = targets[k][:0]
		}
		for _, n := range sets[i] {
			for _, e := range a.nodes[n].edges {
				for k := s.cls[e.lo]; ; k++ {
					work++
					targets[k] = append(targets[k], e.to)
					if k == s.cls[e.hi] {
						break
					}
				}
			}
		}
		row := make([]int32, s.ncls)
		for k := range row {
			row[k] = deadState
			if len(targets[k]) == 0 {
				continue
			}
			if k > 0 && slices.Equal(targets[k], targets[k-1]) { // one closure for both
				row[k] = row[k-1]
				continue
			}
			// a target list met before (most are) names its state without
			// its closure
			tk := key(targets[k])
			id, ok := kern[tk]
			if !ok {
				set := closure(targets[k])
				if work > MaxSchemaWork {
					return tooComplex
				}
				var err error
				if id, err = add(set); err != nil {
					return err
				}
				kern[tk] = id
				kept += len(targets[k])
			}
			row[k] = id
		}
		for k, id := range row {
			if id != deadState {
				row[k] = id * int32(s.ncls) // its row
			}
		}
		s.trans = append(s.trans, row...)
	}
	s.free = make([]bool, s.States())
	for i := range s.free {
		free := true
		for c := 0x20; c < 256 && free; c++ {
			if c != '"' && c != '\\' && s.next(int32(i), byte(c)) != int32(i) {
				free = false
			}
		}
		s.free[i] = free
	}
	s.runs()
	return nil
}

// plainByte reports whether c is printable ASCII string content.
func plainByte(c int) bool { return c >= 0x20 && c <= 0x7f && c != '"' && c != '\\' }

// runs fills run and runEnd: a state whose plain bytes all lead to one
// state u takes a run of 1 + run[u] of them (u's run when u treats them
// alike too); the run ends refused when the last such state's plain bytes
// all lead nowhere. States on a cycle of such states (a string without a
// bound) take runs of any length.
func (s *Schema) runs() {
	n := s.States()
	s.run, s.runEnd = make([]int32, n), make([]bool, n)
	const unknown, visiting = -1, -2
	for i := range s.run {
		s.run[i] = unknown
	}
	// uniform: the one state every plain byte of st leads to
	uniform := func(st int32) (int32, bool) {
		u := s.next(st, ' ')
		for c := 0x21; c <= 0x7f; c++ {
			if plainByte(c) && s.next(st, byte(c)) != u {
				return 0, false
			}
		}
		return u, true
	}
	var visit func(st int32)
	visit = func(st int32) {
		s.run[st] = visiting
		u, ok := uniform(st)
		switch {
		case !ok:
			s.run[st] = 0
		case u == deadState:
			s.run[st], s.runEnd[st] = 0, true
		default:
			if s.run[u] == unknown {
				visit(u)
			}
			switch r := s.run[u]; {
			case r == visiting || r >= math.MaxUint8: // a cycle: runs of any length
				s.run[st] = math.MaxUint8
			default:
				s.run[st], s.runEnd[st] = 1+r, s.runEnd[u]
			}
		}
	}
	for st := range n {
		if s.run[st] == unknown {
			visit(int32(st))
		}
	}
}

// onode is a JSON value with its objects' keys in their order: kind 'o'
// object (keys, vals), 'a' array, 's' string, 'n' number (its text), 'b'
// boolean, 'z' null.
type onode struct {
	kind byte
	keys []string
	vals []*onode
	arr  []*onode
	str  string
	b    bool
}

// maxOrderedDepth bounds the nesting parseOrdered takes.
const maxOrderedDepth = 128

// parseOrdered decodes one JSON value, keeping its objects' key order.
func parseOrdered(data []byte) (*onode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeOrdered(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

func decodeOrdered(dec *json.Decoder, depth int) (*onode, error) {
	if depth > maxOrderedDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxOrderedDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("no JSON value")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &onode{kind: 'o'}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				if seen[k] {
					return nil, fmt.Errorf("key %q twice in one object", k)
				}
				seen[k] = true
				v, err := decodeOrdered(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, k), append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '[':
			n := &onode{kind: 'a'}
			for dec.More() {
				v, err := decodeOrdered(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
	case string:
		return &onode{kind: 's', str: t}, nil
	case json.Number:
		return &onode{kind: 'n', str: t.String()}, nil
	case bool:
		return &onode{kind: 'b', b: t}, nil
	case nil:
		return &onode{kind: 'z'}, nil
	}
	return nil, fmt.Errorf("unexpected %v", tok)
}

// hasType reports whether value n is of a type schema keyword t names (a
// string or an array of strings).
func (n *onode) hasType(t *onode) bool {
	names := []*onode{t}
	if t.kind == 'a' {
		names = t.arr
	}
	for _, x := range names {
		if x.kind != 's' {
			continue
		}
		switch x.str {
		case "string":
			if n.kind == 's' {
				return true
			}
		case "number":
			if n.kind == 'n' {
				return true
			}
		case "integer":
			if n.kind == 'n' && !strings.ContainsAny(n.str, ".eE") {
				return true
			}
		case "boolean":
			if n.kind == 'b' {
				return true
			}
		case "null":
			if n.kind == 'z' {
				return true
			}
		case "object":
			if n.kind == 'o' {
				return true
			}
		case "array":
			if n.kind == 'a' {
				return true
			}
		}
	}
	return false
}

// t2s is a type keyword's JSON text.
func t2s(t *onode) string {
	var b strings.Builder
	if t != nil {
		_ = t.write(&b)
	}
	return b.String()
}

// count is n's value as a non-negative integer, if it is one.
func (n *onode) count() (int, bool) {
	if n.kind != 'n' {
		return 0, false
	}
	var v int
	if _, err := fmt.Sscan(n.str, &v); err != nil || v < 0 || fmt.Sprint(v) != n.str {
		return 0, false
	}
	return v, true
}

// write writes n as compact JSON, object keys in order.
func (n *onode) write(b *strings.Builder) error {
	switch n.kind {
	case 'o':
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			ks, err := marshalPlain(k)
			if err != nil {
				return err
			}
			b.WriteString(ks)
			b.WriteByte(':')
			if err := n.vals[i].write(b); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for i, v := range n.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := v.write(b); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case 's':
		s, err := marshalPlain(n.str)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case 'n':
		b.WriteString(n.str)
	case 'b':
		if n.b {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case 'z':
		b.WriteString("null")
	}
	return nil
}
