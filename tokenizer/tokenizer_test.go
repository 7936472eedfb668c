package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/upg-ai/upg/gguf"
)

func loadShared(t testing.TB, rel string) Tokenizer {
	t.Helper()
	p := filepath.Join(shared, rel)
	requireShared(t, p)
	tok, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMiniphiSpecials(t *testing.T) {
	tok := loadShared(t, "models/miniphi-29m")
	text := "<|im_start|>user<|im_sep|>Hi there<|im_end|>"
	got := tok.Encode(text, true, true)
	if len(got) < 5 || got[0] != 1 || got[2] != 3 || got[len(got)-1] != 2 {
		t.Errorf("parsed chat text = %v", got)
	}
	plain := tok.Encode(text, false, false)
	for _, id := range plain {
		if id <= 3 {
			t.Errorf("special id %d produced with parseSpecial=false: %v", id, plain)
		}
	}
	if d := tok.Decode(got); d != text {
		t.Errorf("decode %q", d)
	}
	if d := tok.Decode(plain); d != text {
		t.Errorf("decode of unparsed %q", d)
	}
	if eos := tok.EOS(); !slices.Contains(eos, 0) || !slices.Contains(eos, 2) || len(eos) != 2 {
		t.Errorf("EOS %v, want <|endoftext|>=0 and <|im_end|>=2", eos)
	}
	if !tok.IsControl(2) || tok.IsControl(100) {
		t.Error("IsControl wrong")
	}
	if id, ok := tok.TokenID("<|im_end|>"); !ok || id != 2 {
		t.Errorf("TokenID(<|im_end|>) = %d %v", id, ok)
	}
	// Byte-level: " the" is stored as "Ġthe".
	a, ok1 := tok.TokenID(" the")
	b, ok2 := tok.TokenID("Ġthe")
	if !ok1 || !ok2 || a != b || string(tok.TokenBytes(a)) != " the" {
		t.Errorf("TokenID(' the')=%d,%v TokenID('Ġthe')=%d,%v bytes %q", a, ok1, b, ok2, tok.TokenBytes(a))
	}
	if tok.TokenBytes(-1) != nil || tok.TokenBytes(tok.VocabSize()) != nil {
		t.Error("TokenBytes of out-of-range id is not nil")
	}
	if tok.VocabSize() != 8192 {
		t.Errorf("VocabSize %d", tok.VocabSize())
	}
}

func TestTinyStoriesSpecials(t *testing.T) {
	tok := loadShared(t, "models/TinyStories-656K")
	if tok.BOS() != 1 || !slices.Equal(tok.EOS(), []int{2}) {
		t.Errorf("BOS %d EOS %v", tok.BOS(), tok.EOS())
	}
	// The emoji is not in the 2048-token vocabulary, which has no <0xXX>
	// tokens despite byte_fallback: HF emits <unk> (once, fuse_unk).
	ids := tok.Encode("Hi 😀 there", false, false)
	unks := 0
	for _, id := range ids {
		if id == 0 {
			unks++
		}
	}
	if unks != 1 {
		t.Errorf("want one <unk> in %v", ids)
	}
	if d := tok.Decode(ids); d != "Hi <unk> there" {
		t.Errorf("decode %q (ids %v)", d, ids)
	}
	if d := tok.Decode(tok.Encode("Once upon a time, Lily", false, false)); d != "Once upon a time, Lily" {
		t.Errorf("round trip %q", d)
	}
}

func TestStories260KGGUF(t *testing.T) {
	p := filepath.Join(shared, "models/stories260K/stories260K.gguf")
	requireShared(t, p)
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(shared, "models/stories260K/greedy200.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(text))
	ids := tok.Encode(s, true, false)
	if ids[0] != 1 {
		t.Errorf("no BOS: %v", ids[:5])
	}
	if d := tok.Decode(ids[1:]); d != s {
		t.Errorf("round trip:\n got %q\nwant %q", d, s)
	}
	if !slices.Contains(tok.EOS(), 2) || tok.BOS() != 1 || tok.VocabSize() != 512 {
		t.Errorf("BOS %d EOS %v vocab %d", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
	if b := tok.TokenBytes(3 + 'A'); string(b) != "A" {
		t.Errorf("byte token <0x41> = %q", b)
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := map[string]string{
		"abc":              "abc",
		"\xe2\x82A":        "\uFFFDA",
		"\x80\x80":         "\uFFFD\uFFFD",
		"a\xf0\x9f\x98":    "a\uFFFD",
		"\xed\xa0\x80":     "\uFFFD\uFFFD\uFFFD", // surrogate: E0 A0 not allowed after ED
		"\xf0\x9f\x98\x80": "😀",
		"\xc0\xaf":         "\uFFFD\uFFFD",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// byteTok is a tokenizer whose tokens are single bytes, for StreamDecoder.
type byteTok struct{ Tokenizer }

func (byteTok) TokenBytes(id int) []byte { return []byte{byte(id)} }

func TestStreamDecoder(t *testing.T) {
	in := "añ😀€x\xff\xe2\x82y\xf0\x9f"
	d := NewStreamDecoder(byteTok{})
	var out strings.Builder
	for i := 0; i < len(in); i++ {
		s := d.Add(int(in[i]))
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 emitted: %q", s)
		}
		out.WriteString(s)
		// The partial emoji must be held back.
		if i == 3 && s != "" {
			t.Errorf("after first emoji byte emitted %q", s)
		}
	}
	out.WriteString(d.Flush())
	if got, want := out.String(), lossyUTF8([]byte(in)); got != want {
		t.Errorf("stream %q, want %q", got, want)
	}

	tok := loadShared(t, "models/miniphi-29m")
	text := "Grüße 😀 — 漢字 ok"
	d = NewStreamDecoder(tok)
	out.Reset()
	for _, id := range tok.Encode(text, false, false) {
		s := d.Add(id)
		if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("bad chunk %q", s)
		}
		out.WriteString(s)
	}
	out.WriteString(d.Flush())
	if out.String() != text {
		t.Errorf("stream %q, want %q", out.String(), text)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no tokenizer.json") {
		t.Errorf("empty dir: %v", err)
	}
	missing := filepath.Join(dir, "nope.json")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	wp := filepath.Join(dir, "tokenizer.json")
	os.WriteFile(wp, []byte(`{"model":{"type":"WordPiece","vocab":{"a":0}}}`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `"WordPiece"`) || !strings.Contains(err.Error(), wp) {
		t.Errorf("unsupported model: %v", err)
	}
	os.WriteFile(wp, []byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Fancy"}}`), 0o644)
	if _, err := Load(wp); err == nil || !strings.Contains(err.Error(), `"Fancy"`) {
		t.Errorf("unsupported pre-tokenizer: %v", err)
	}
	os.WriteFile(wp, []byte(`{"model":{"type":"BPE","vocab":{"a":99999999},"merges":[]}}`), 0o644)
	if _, err := Load(wp); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("sparse ids: %v", err)
	}
	tp := filepath.Join(dir, "x.tiktoken")
	os.WriteFile(tp, []byte("!!!! 0\n"), 0o644)
	if _, err := Load(tp); err == nil || !strings.Contains(err.Error(), tp) {
		t.Errorf("bad tiktoken: %v", err)
	}
}

func TestSplitBehaviors(t *testing.T) {
	cases := []struct {
		behavior int
		invert   bool
		want     []string
	}{
		{splitIsolated, false, []string{"a", "-", "b", "-", "-", "c"}},
		{splitRemoved, false, []string{"a", "b", "c"}},
		{splitMergedWithPrevious, false, []string{"a-", "b-", "-", "c"}},
		{splitMergedWithNext, false, []string{"a", "-b", "-", "-c"}},
		{splitContiguous, false, []string{"a", "-", "b", "--", "c"}},
		{splitRemoved, true, []string{"-", "-", "-"}},
	}
	for _, c := range cases {
		sp, err := newRegexSplitter("-", c.behavior, c.invert)
		if err != nil {
			t.Fatal(err)
		}
		if got := sp.split("a-b--c"); !slices.Equal(got, c.want) {
			t.Errorf("behavior %d invert %v: %q, want %q", c.behavior, c.invert, got, c.want)
		}
	}
}

// FuzzHFJSON feeds mutated tokenizer.json files to FromHFJSON; it must
// return an error or a tokenizer that survives encoding, never panic.
func FuzzHFJSON(f *testing.F) {
	for _, m := range []string{"miniphi-29m", "TinyStories-656K"} {
		if b, err := os.ReadFile(filepath.Join(shared, "models", m, "tokenizer.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[{"id":3,"content":"<s>","special":true}],
		"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Replace","pattern":{"Regex":" +"},"content":" "}]},
		"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"},
		"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{"<s>":{"ids":[3]}}},
		"decoder":{"type":"Metaspace"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := FromHFJSON(data, nil, "fuzz.json")
		if err != nil {
			return
		}
		ids := tok.Encode("Hello wörld <s> 123 ab\n", true, true)
		tok.Decode(append(ids, -1, tok.VocabSize()))
		for _, id := range ids {
			tok.TokenBytes(id)
		}
	})
}

// FuzzEncode checks Decode(Encode(s)) == s through miniphi's tokenizer for
// valid UTF-8 s.
func FuzzEncode(f *testing.F) {
	p := filepath.Join(shared, "models/miniphi-29m")
	tok, err := Load(p)
	if err != nil {
		f.Skipf("miniphi tokenizer unavailable: %v", err)
	}
	for _, s := range []string{"", "Hello, world!", "  \n\t x", "func main() {\n\tfmt.Println(\"hi\")\n}", "日本語 😀 ok", "<|im_end|>", "'s 'LL 123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := tok.Encode(s, false, false)
		if d := tok.Decode(ids); d != s {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, d, ids)
		}
	})
}
