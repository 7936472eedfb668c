package constrain

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tokenizer"
)

// reference is what Valid must say: encoding/json's verdict for an object
// at the top level, within MaxDepth, with whitespace between tokens only as
// one space or a newline and at most MaxIndent spaces or tabs.
func reference(text []byte) bool {
	t := bytes.TrimLeft(text, " \t\r\n")
	if !json.Valid(text) || len(t) == 0 || t[0] != '{' || len(bytes.TrimRight(text, " \t\r\n")) != len(text) {
		return false // not JSON, not an object, or something after it
	}
	depth, maxDepth, inStr, escaped := 0, 0, false, false
	var run []byte // the whitespace run so far
	for _, c := range text {
		if !inStr && strings.IndexByte(" \t\r\n", c) >= 0 {
			run = append(run, c)
			continue
		}
		if len(run) > 0 {
			ok := string(run) == " " || run[0] == '\n' && len(run) <= 1+MaxIndent && !bytes.ContainsAny(run[1:], "\r\n")
			if !ok {
				return false
			}
			run = run[:0]
		}
		switch {
		case inStr && escaped:
			escaped = false
		case inStr && c == '\\':
			escaped = true
		case inStr && c == '"':
			inStr = false
		case inStr:
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return maxDepth <= MaxDepth
}

var docs = []string{
	`{}`, ` {"a":1}`, "{\n  \"a\": [1, 2.5, -0.5e10, 0, 1E+2, 3e-7],\n  \"b\": {\"c\": null, \"d\": true, \"e\": false}\n}",
	`{"s":"x\"y\\z\/\b\f\n\r\t\u00e9\uD83D\uDE00 é 😀"}`, `{"":""}`, `{"a":[]}`, `{"a":[{}]}`, `{"a":[[[]]]}`,
	`{"a":-0}`, `{"a":0.0}`, `{"k":"v","k2":[1,{"x":[true,false,null]}]}`,
	// invalid
	``, ` `, `[]`, `"s"`, `1`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":-}`, `{"a":1e}`, `{"a":1e+}`, `{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`,
	"{\"a\":\"\x01\"}", `{"a":[1 2]}`, `{"a":[1,]}`, `{"a":1} `, `{"a":1}{}`, `{'a':1}`, `{"a":NaN}`, `{"a":+1}`,
	`{"a":[}`, `{"a":{]}`, "{" + strings.Repeat(" ", 2) + "}", "{ }", "{\n" + strings.Repeat("\t", MaxIndent) + "}", "{\n" + strings.Repeat(" ", MaxIndent+1) + "}",
	"{\"a\":1 ,\n  \"b\" : 2}", "{\"a\":1\n\n}", "{\"a\":1\r\n}", "{\t}", "\n{}", " {}", "  {}",
	`{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`,
	`{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`,
}

// TestValid: the parser agrees with encoding/json on objects, numbers,
// strings, escapes and literals, and with the whitespace and depth limits.
func TestValid(t *testing.T) {
	for _, d := range docs {
		if got, want := Valid([]byte(d)), reference([]byte(d)); got != want {
			t.Errorf("Valid(%q) = %v, want %v", d, got, want)
		}
	}
}

// TestPrefixes: every prefix of an accepted document is accepted byte by
// byte (the mask never strands a sequence), and a rejected byte is
// rejected at the first place it makes the text invalid.
func TestPrefixes(t *testing.T) {
	for _, d := range docs {
		if !reference([]byte(d)) {
			continue
		}
		var st state
		for i := range len(d) {
			if !st.step(d[i]) {
				t.Errorf("%q: byte %d (%q) rejected", d, i, d[i])
				break
			}
		}
	}
}

// FuzzValid: on any bytes, Valid agrees with encoding/json (within the
// limits), and never panics.
//
//	go test ./constrain -run XXX -fuzz FuzzValid -fuzztime 1m
func FuzzValid(f *testing.F) {
	for _, d := range docs {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), reference(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// toy is a vocabulary of a few JSON pieces and an end token (id 0).
var toy = []string{"<end>", "{", "}", "\"", "a", "\":", ":", " ", "1", "0", ".5", "true", "nul", "l", ",", "[", "]", "\"a\"", "x", "{\"", "}}", "<ctl>", "\n"}

func toyJSON() *JSON {
	return NewJSON(len(toy), func(t int) []byte { return []byte(toy[t]) }, func(t int) bool { return toy[t] == "<ctl>" }, []int{0})
}

func ids(words ...string) []int {
	var out []int
	for _, w := range words {
		out = append(out, slices.Index(toy, w))
	}
	return out
}

// allowed runs Mask after gen and lists the tokens left.
func allowed(m sample.Matcher, gen []int) []string {
	l := make([]float32, len(toy)+2) // two logits past the vocabulary: masked
	m.Mask(gen, l)
	var out []string
	for t, v := range l {
		if !math.IsInf(float64(v), -1) {
			out = append(out, toy[t])
		}
	}
	return out
}

// TestMask: what each state leaves, over the toy vocabulary; a matcher fed
// a different history (a rejected draft) starts again from the common
// prefix.
func TestMask(t *testing.T) {
	j := toyJSON()
	m := j.NewMatcher().(*Matcher)
	for _, c := range []struct {
		gen  []int
		want []string
	}{
		{nil, []string{"{", " ", "{\"", "\n"}},
		{ids("{"), []string{"}", "\"", "\":", " ", "\"a\"", "\n"}}, // "\":" opens a key with a colon in it
		{ids("{", "\"a\""), []string{":", " ", "\n"}},
		// in a key: any text but a control byte; a quote ends it
		{ids("{\"", "a"), []string{"\"", "a", "\":", ":", " ", "1", "0", ".5", "true", "nul", "l", ",", "[", "]", "x", "{", "}", "{\"", "}}"}},
		{ids("{\"", "a", "\":", "1"), []string{"}", "1", "0", ".5", ",", " ", "\n"}},
		{ids("{\"", "a", "\":", "nul"), []string{"l"}},
		{ids("{\"", "a", "\":", "nul", "l"), []string{"}", ",", " ", "\n"}},
		{ids("{\"", "a", "\":", "[", "true"), []string{"]", ",", " ", "\n"}},
		{ids("{\"", "a", "\":", "{", "}"), []string{"}", ",", " ", "\n"}},
		{ids("{", "}"), []string{"<end>"}},
		{ids("{\"", "a", "\":", "{", "}}"), []string{"<end>"}},
		{ids("{", "x"), []string{"<end>"}}, // not JSON (a draft): only the end
	} {
		got := allowed(m, c.gen)
		want := slices.Clone(c.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("after %v: %q, want %q", c.gen, got, want)
		}
	}
	// the same matcher, back to a shorter history
	if got := allowed(m, ids("{")); !slices.Contains(got, "\"") || slices.Contains(got, "<end>") {
		t.Errorf("back to {: %q", got)
	}
}

const cl100k = "../../shared/tokenizers/tiktoken/cl100k_base.tiktoken"

// keptExactly checks a mask: the end tokens kept when the value is
// complete, every other token kept when takes its bytes (a walk of the
// parser or automaton from the state), control tokens never.
func keptExactly(t *testing.T, j *JSON, logits []float32, complete bool, takes func([]byte) bool, after string) {
	t.Helper()
	for id := range j.tokens {
		want := false
		switch {
		case j.end[id]:
			want = complete
		case j.tokens[id] != nil:
			want = takes(j.tokens[id])
		}
		if got := !math.IsInf(float64(logits[id]), -1); got != want {
			t.Fatalf("after %q: token %d %q kept %v, want %v", after, id, j.tokens[id], got, want)
		}
	}
}

// cl100kJSON is the JSON constraint's tables for Phi-4's vocabulary (a
// missing fixture fails under CI=true, testutil.NeedData).
func cl100kJSON(t *testing.T) *JSON {
	t.Helper()
	testutil.NeedData(t, cl100k)
	tok, err := tokenizer.Load(cl100k)
	if err != nil {
		t.Fatal(err)
	}
	return NewJSON(tok.VocabSize(), tok.TokenBytes, tok.IsControl, tok.EOS())
}

// TestMaskMatchesBruteForce: over Phi-4's vocabulary (cl100k), at every
// byte prefix of a few documents, Mask keeps exactly the tokens whose whole
// bytes the parser takes from that state (the grouping by first byte and
// by the byte after leading whitespace changes nothing), and the end
// tokens only when the object is complete.
func TestMaskMatchesBruteForce(t *testing.T) {
	j := cl100kJSON(t)
	n := len(j.tokens)
	logits := make([]float32, n)
	checked := 0
	for _, d := range []string{"{\n  \"a\": [1, -2.5e3, true, null],\n\t\"b\": {\"c\": \"x\\n\\u00e9y\"}\n" + strings.Repeat(" ", 19) + "}",
		` {"k" :0 , "z":[ [] , {} ,"s"]}`} {
		// every few bytes, and the whole document (where the end tokens are kept)
		for cut := 0; ; cut = min(cut+1+cut%3, len(d)) {
			var st state
			if !st.feed([]byte(d[:cut])) {
				t.Fatalf("%q: prefix %d rejected", d, cut)
			}
			m := &Matcher{j: j}
			clear(logits)
			m.mask(st, logits)
			keptExactly(t, j, logits, st.mode == complete, func(b []byte) bool { probe := st; return probe.feed(b) }, d[:cut])
			checked++
			if cut == len(d) {
				if st.mode != complete {
					t.Fatalf("the whole document is not complete: %s", d)
				}
				break
			}
		}
	}
	t.Logf("%d states × %d tokens", checked, n)
}

// BenchmarkMask: one step's mask over Phi-4's vocabulary (cl100k, 100,277
// tokens) in three states: before the object, inside a string (most
// tokens fit: the slowest), after a value.
//
//	go test ./constrain -run XXX -bench Mask
func BenchmarkMask(b *testing.B) {
	benchMasks(b, func(j *JSON) sample.Constraint { return j },
		[][2]string{{"start", ""}, {"string", `{"name": "Ada Love`}, {"after-value", `{"age": 36`}})
}

// benchMasks times one Mask over cl100k's vocabulary of the constraint
// made from its JSON tables, after each state's text (a sub-benchmark a
// state), and reports the tokens it keeps.
func benchMasks(b *testing.B, build func(*JSON) sample.Constraint, states [][2]string) {
	tok, err := tokenizer.Load(cl100k)
	if err != nil {
		b.Skipf("cl100k vocabulary: %v", err)
	}
	n := tok.VocabSize()
	c := build(NewJSON(n, tok.TokenBytes, tok.IsControl, tok.EOS()))
	logits := make([]float32, n)
	for _, st := range states {
		gen := tok.Encode(st[1], false, false)
		b.Run(st[0], func(b *testing.B) {
			m := c.NewMatcher()
			for b.Loop() {
				m.Mask(gen, logits)
			}
			clear(logits)
			m.Mask(gen, logits)
			kept := 0
			for _, v := range logits {
				if !math.IsInf(float64(v), -1) {
					kept++
				}
			}
			b.ReportMetric(float64(kept), "tokens-kept")
		})
	}
}
