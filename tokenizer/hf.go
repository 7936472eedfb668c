package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// gpt2Pattern is the GPT-2 pre-tokenizer regex (HF ByteLevel use_regex).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// regexTimeout bounds a single regex search so that a pathological pattern
// from a corrupt file cannot hang encoding.
const regexTimeout = 10 * time.Second

// hfTokenizer implements a Hugging Face tokenizer.json BPE model.
type hfTokenizer struct {
	vocab
	name string

	model        map[string]int    // model vocabulary
	merges       map[[2]string]int // merge ranks
	unk          int               // -1 if none
	byteFallback bool              // chars not in vocab become <0xXX> tokens
	fuseUnk      bool
	ignoreMerges bool

	rawSpecials  []specialToken // added tokens matched on raw text
	normSpecials []specialToken // added tokens matched on normalized text

	normalizers []func(string) string
	preSteps    []preStep

	before, after []int // added by the post-processor for addSpecial

	decoders     []func([]string) []string
	hasDecoder   bool
	cleanUpSpace bool

	cache cache
}

// preStep transforms the list of pieces; first is true for the first text
// segment of the input (Metaspace prepend_scheme "first").
type preStep func(pieces []string, first bool) []string

type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfBPEModel struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ByteFallback            bool            `json:"byte_fallback"`
	FuseUnk                 bool            `json:"fuse_unk"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
}

// hfConfig is the part of tokenizer_config.json that matters here.
type hfConfig struct {
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	CleanUpSpace *bool           `json:"clean_up_tokenization_spaces"`
}

// tokenContent reads a token given as a string or as {"content": ...}.
func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// typeOf reads the "type" field of a component.
func typeOf(raw json.RawMessage) string {
	var t struct {
		Type string `json:"type"`
	}
	json.Unmarshal(raw, &t)
	return t.Type
}

// FromHFJSON builds a tokenizer from the bytes of a Hugging Face
// tokenizer.json and, optionally, tokenizer_config.json (config may be nil).
// name is used in error messages.
func FromHFJSON(tokenizerJSON, tokenizerConfigJSON []byte, name string) (Tokenizer, error) {
	t, err := fromHFJSON(tokenizerJSON, tokenizerConfigJSON, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	return t, nil
}

func fromHFJSON(data, cfgData []byte, name string) (*hfTokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parsing tokenizer.json: %v", err)
	}
	var m hfBPEModel
	if err := json.Unmarshal(f.Model, &m); err != nil || isNull(f.Model) {
		mt := typeOf(f.Model)
		if mt != "" && mt != "BPE" {
			return nil, fmt.Errorf("unsupported tokenizer model type %q (supported: BPE)", mt)
		}
		if err == nil {
			err = fmt.Errorf("missing")
		}
		return nil, fmt.Errorf("parsing model: %v", err)
	}
	if m.Type == "" && m.Merges == nil {
		return nil, fmt.Errorf("model has no type and no merges")
	}
	if m.Type != "" && m.Type != "BPE" {
		return nil, fmt.Errorf("unsupported tokenizer model type %q (supported: BPE)", m.Type)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" || m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("unsupported BPE option continuing_subword_prefix/end_of_word_suffix")
	}
	t := &hfTokenizer{name: name, model: m.Vocab, unk: -1, byteFallback: m.ByteFallback, fuseUnk: m.FuseUnk, ignoreMerges: m.IgnoreMerges}
	if t.model == nil {
		t.model = map[string]int{}
	}

	// Vocabulary size and sanity of ids.
	count := len(t.model) + len(f.AddedTokens)
	maxID := -1
	check := func(id int, what string) error {
		if id < 0 || id > 2*count+1024 {
			return fmt.Errorf("%s has id %d out of range for %d tokens", what, id, count)
		}
		if id > maxID {
			maxID = id
		}
		return nil
	}
	for s, id := range t.model {
		if err := check(id, fmt.Sprintf("vocab token %q", s)); err != nil {
			return nil, err
		}
	}
	for _, a := range f.AddedTokens {
		if err := check(a.ID, fmt.Sprintf("added token %q", a.Content)); err != nil {
			return nil, err
		}
	}
	n := maxID + 1
	t.texts = make([]string, n)
	t.bytes = make([][]byte, n)
	t.control = make([]bool, n)
	t.ids = make(map[string]int, n)
	t.bos = -1
	for s, id := range t.model {
		t.texts[id] = s
		t.ids[s] = id
	}
	added := map[int]bool{}
	for _, a := range f.AddedTokens {
		t.texts[a.ID] = a.Content
		t.ids[a.Content] = a.ID
		t.control[a.ID] = a.Special
		added[a.ID] = true
	}

	// Merges.
	t.merges = map[[2]string]int{}
	if !isNull(m.Merges) {
		var strs []string
		var pairs [][]string
		if json.Unmarshal(m.Merges, &strs) == nil {
			for i, s := range strs {
				k := strings.Index(s[min(1, len(s)):], " ")
				if k < 0 {
					return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, s)
				}
				k += min(1, len(s))
				if _, dup := t.merges[[2]string{s[:k], s[k+1:]}]; !dup {
					t.merges[[2]string{s[:k], s[k+1:]}] = i
				}
			}
		} else if json.Unmarshal(m.Merges, &pairs) == nil {
			for i, p := range pairs {
				if len(p) != 2 {
					return nil, fmt.Errorf("merge %d has %d parts, want 2", i, len(p))
				}
				if _, dup := t.merges[[2]string{p[0], p[1]}]; !dup {
					t.merges[[2]string{p[0], p[1]}] = i
				}
			}
		} else {
			return nil, fmt.Errorf("merges are neither strings nor pairs")
		}
	}
	if m.UnkToken != nil {
		if id, ok := t.ids[*m.UnkToken]; ok {
			t.unk = id
		}
	}

	// Normalizer, pre-tokenizer, decoder, post-processor.
	var err error
	if t.normalizers, err = parseNormalizer(f.Normalizer, 0); err != nil {
		return nil, err
	}
	if t.preSteps, err = t.parsePreTokenizer(f.PreTokenizer, 0); err != nil {
		return nil, err
	}
	if !isNull(f.Decoder) {
		t.hasDecoder = true
		if t.decoders, err = parseDecoder(f.Decoder, 0); err != nil {
			return nil, err
		}
	}
	if t.before, t.after, err = t.parsePostProcessor(f.PostProcessor, 0); err != nil {
		return nil, err
	}
	if !t.byteLevel && strings.Contains(string(f.Decoder), `"ByteLevel"`) {
		t.byteLevel = true
	}

	// Added tokens: split out before pre-tokenization.
	for _, a := range f.AddedTokens {
		st := specialToken{text: a.Content, id: a.ID, lstrip: a.Lstrip, rstrip: a.Rstrip, singleWord: a.SingleWord, onlyIfParsed: a.Special}
		if a.Normalized {
			st.text = t.normalize(a.Content)
			t.normSpecials = append(t.normSpecials, st)
		} else {
			t.rawSpecials = append(t.rawSpecials, st)
		}
	}

	// Token bytes.
	for id, s := range t.texts {
		t.bytes[id] = t.rawBytes(s, added[id])
	}

	// tokenizer_config.json: BOS/EOS, add_bos_token when there is no
	// post-processor, clean_up_tokenization_spaces.
	var cfg hfConfig
	if len(cfgData) > 0 {
		if err := json.Unmarshal(cfgData, &cfg); err != nil {
			return nil, fmt.Errorf("parsing tokenizer_config.json: %v", err)
		}
	}
	if id, ok := t.ids[tokenContent(cfg.BOS)]; ok && len(cfg.BOS) > 0 {
		t.bos = id
	}
	if id, ok := t.ids[tokenContent(cfg.EOS)]; ok && len(cfg.EOS) > 0 {
		t.addEOS(id)
	}
	if isNull(f.PostProcessor) {
		if cfg.AddBOS != nil && *cfg.AddBOS && t.bos >= 0 {
			t.before = []int{t.bos}
		}
		if cfg.AddEOS != nil && *cfg.AddEOS && len(t.eos) > 0 {
			t.after = []int{t.eos[0]}
		}
	}
	t.cleanUpSpace = cfg.CleanUpSpace != nil && *cfg.CleanUpSpace
	t.addEOGByName()
	return t, nil
}

// addGenerationConfig adds eos_token_id(s) from generation_config.json.
func (t *hfTokenizer) addGenerationConfig(data []byte) {
	var gc struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if json.Unmarshal(data, &gc) != nil {
		return
	}
	var one int
	var many []int
	if json.Unmarshal(gc.EOS, &one) == nil {
		t.addEOS(one)
	} else if json.Unmarshal(gc.EOS, &many) == nil {
		for _, id := range many {
			t.addEOS(id)
		}
	}
}

// rawBytes computes TokenBytes for a token text.
func (t *hfTokenizer) rawBytes(s string, added bool) []byte {
	if added {
		return []byte(s)
	}
	if t.byteLevel {
		if b, ok := byteLevelDecode(s); ok {
			return b
		}
		return []byte(s)
	}
	if b, ok := parseByteToken(s); ok {
		return []byte{b}
	}
	return []byte(strings.ReplaceAll(s, "▁", " "))
}

// parseByteToken parses a SentencePiece byte token "<0xXX>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func (t *hfTokenizer) normalize(s string) string {
	for _, n := range t.normalizers {
		s = n(s)
	}
	return s
}

// Encode implements Tokenizer.
func (t *hfTokenizer) Encode(text string, addSpecial, parseSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, t.before...)
	}
	first := true
	for _, seg := range splitLeftmostLongest(text, t.rawSpecials, parseSpecial) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			first = false
			continue
		}
		for _, seg2 := range splitLeftmostLongest(t.normalize(seg.text), t.normSpecials, parseSpecial) {
			if seg2.id >= 0 {
				ids = append(ids, seg2.id)
				continue
			}
			pieces := []string{seg2.text}
			for _, step := range t.preSteps {
				pieces = step(pieces, first)
			}
			for _, p := range pieces {
				ids = append(ids, t.encodePiece(p)...)
			}
		}
		first = false
	}
	if addSpecial {
		ids = append(ids, t.after...)
	}
	return ids
}

// encodePiece runs the BPE model on one pre-tokenized piece.
func (t *hfTokenizer) encodePiece(p string) []int {
	if p == "" {
		return nil
	}
	if ids, ok := t.cache.get(p); ok {
		return ids
	}
	var ids []int
	if id, ok := t.model[p]; ok && t.ignoreMerges {
		ids = []int{id}
	} else {
		rank := func(a, b string) int {
			if r, ok := t.merges[[2]string{a, b}]; ok {
				if _, ok := t.model[a+b]; ok {
					return r
				}
			}
			return -1
		}
		var run []string
		flush := func() {
			for _, s := range bpeMerge(run, rank) {
				if id, ok := t.model[s]; ok {
					ids = append(ids, id)
				} else if t.unk >= 0 {
					ids = append(ids, t.unk)
				}
			}
			run = run[:0]
		}
		lastUnk := false
		for _, c := range chars(p) {
			if _, ok := t.model[c]; ok {
				run = append(run, c)
				lastUnk = false
				continue
			}
			flush()
			if t.byteFallback {
				all := true
				var bs []int
				for i := 0; i < len(c); i++ {
					id, ok := t.model[fmt.Sprintf("<0x%02X>", c[i])]
					if !ok {
						all = false
						break
					}
					bs = append(bs, id)
				}
				if all {
					ids = append(ids, bs...)
					lastUnk = false
					continue
				}
			}
			if t.unk >= 0 && !(t.fuseUnk && lastUnk) {
				ids = append(ids, t.unk)
			}
			lastUnk = true
		}
		flush()
	}
	t.cache.put(p, ids)
	return ids
}

// Decode implements Tokenizer.
func (t *hfTokenizer) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < len(t.texts) {
			toks = append(toks, t.texts[id])
		}
	}
	var s string
	if !t.hasDecoder {
		s = strings.Join(toks, " ")
	} else {
		for _, d := range t.decoders {
			toks = d(toks)
		}
		s = strings.Join(toks, "")
	}
	if t.cleanUpSpace {
		s = cleanUpTokenization(s)
	}
	return s
}

// cleanUpTokenization is transformers' clean_up_tokenization.
func cleanUpTokenization(s string) string {
	r := strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")
	return r.Replace(s)
}

// pattern reads an HF pattern {"String": ...} or {"Regex": ...}.
type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func compileRegex(p string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(p, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("bad regex %q: %v", p, err)
	}
	re.MatchTimeout = regexTimeout
	return re, nil
}

const maxDepth = 16

func parseNormalizer(raw json.RawMessage, depth int) ([]func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("normalizers nested too deeply")
	}
	var n struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
		Prepend     string            `json:"prepend"`
		Pattern     hfPattern         `json:"pattern"`
		Content     string            `json:"content"`
		Left        bool              `json:"strip_left"`
		Right       bool              `json:"strip_right"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("parsing normalizer: %v", err)
	}
	switch n.Type {
	case "Sequence":
		var out []func(string) string
		for _, sub := range n.Normalizers {
			fs, err := parseNormalizer(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		}
		return out, nil
	case "NFC":
		return []func(string) string{norm.NFC.String}, nil
	case "NFD":
		return []func(string) string{norm.NFD.String}, nil
	case "NFKC":
		return []func(string) string{norm.NFKC.String}, nil
	case "NFKD":
		return []func(string) string{norm.NFKD.String}, nil
	case "Lowercase":
		return []func(string) string{strings.ToLower}, nil
	case "Prepend":
		p := n.Prepend
		return []func(string) string{func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}}, nil
	case "Replace":
		f, err := replaceFunc(n.Pattern, n.Content)
		if err != nil {
			return nil, err
		}
		return []func(string) string{f}, nil
	case "Strip":
		l, r := n.Left, n.Right
		return []func(string) string{func(s string) string {
			if l {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if r {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}}, nil
	case "StripAccents":
		return []func(string) string{func(s string) string {
			return strings.Map(func(r rune) rune {
				if unicode.Is(unicode.Mn, r) {
					return -1
				}
				return r
			}, s)
		}}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer type %q", n.Type)
}

func replaceFunc(p hfPattern, content string) (func(string) string, error) {
	switch {
	case p.String != nil:
		old := *p.String
		if old == "" {
			return func(s string) string { return s }, nil
		}
		return func(s string) string { return strings.ReplaceAll(s, old, content) }, nil
	case p.Regex != nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, err
		}
		lit := strings.ReplaceAll(content, "$", "$$")
		return func(s string) string {
			out, err := re.Replace(s, lit, -1, -1)
			if err != nil {
				return s
			}
			return out
		}, nil
	}
	return nil, fmt.Errorf("Replace without String or Regex pattern")
}

var behaviors = map[string]int{
	"Isolated": splitIsolated, "Removed": splitRemoved, "MergedWithPrevious": splitMergedWithPrevious,
	"MergedWithNext": splitMergedWithNext, "Contiguous": splitContiguous,
}

func splitterFor(p hfPattern, behavior string, invert bool) (*regexSplitter, error) {
	b, ok := behaviors[behavior]
	if !ok {
		return nil, fmt.Errorf("unsupported split behavior %q", behavior)
	}
	switch {
	case p.String != nil:
		if *p.String == "" {
			return nil, fmt.Errorf("empty split pattern")
		}
		return &regexSplitter{literal: *p.String, behavior: b, invert: invert}, nil
	case p.Regex != nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, err
		}
		return &regexSplitter{re: re, behavior: b, invert: invert}, nil
	}
	return nil, fmt.Errorf("Split without String or Regex pattern")
}

func splitStep(sp *regexSplitter) preStep {
	return func(pieces []string, _ bool) []string {
		var out []string
		for _, p := range pieces {
			out = append(out, sp.split(p)...)
		}
		return out
	}
}

func (t *hfTokenizer) parsePreTokenizer(raw json.RawMessage, depth int) ([]preStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("pre-tokenizers nested too deeply")
	}
	var p struct {
		Type           string            `json:"type"`
		Pretokenizers  []json.RawMessage `json:"pretokenizers"`
		Pattern        hfPattern         `json:"pattern"`
		Behavior       string            `json:"behavior"`
		Invert         bool              `json:"invert"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		Replacement    string            `json:"replacement"`
		PrependScheme  string            `json:"prepend_scheme"`
		Split          *bool             `json:"split"`
		Individual     bool              `json:"individual_digits"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("parsing pre_tokenizer: %v", err)
	}
	switch p.Type {
	case "Sequence":
		var out []preStep
		for _, sub := range p.Pretokenizers {
			s, err := t.parsePreTokenizer(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	case "Split":
		sp, err := splitterFor(p.Pattern, p.Behavior, p.Invert)
		if err != nil {
			return nil, err
		}
		return []preStep{splitStep(sp)}, nil
	case "ByteLevel":
		t.byteLevel = true
		prefix := p.AddPrefixSpace != nil && *p.AddPrefixSpace
		var sp *regexSplitter
		if p.UseRegex == nil || *p.UseRegex {
			re, err := compileRegex(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			sp = &regexSplitter{re: re, behavior: splitIsolated}
		}
		return []preStep{func(pieces []string, _ bool) []string {
			var out []string
			for _, s := range pieces {
				if prefix && !strings.HasPrefix(s, " ") {
					s = " " + s
				}
				if sp != nil {
					for _, q := range sp.split(s) {
						out = append(out, byteLevelEncode(q))
					}
				} else if s != "" {
					out = append(out, byteLevelEncode(s))
				}
			}
			return out
		}}, nil
	case "Metaspace":
		rep := p.Replacement
		if rep == "" {
			rep = "▁"
		}
		scheme := p.PrependScheme
		if scheme == "" {
			scheme = "always"
			if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
				scheme = "never"
			}
		}
		split := p.Split == nil || *p.Split
		sp := &regexSplitter{literal: rep, behavior: splitMergedWithNext}
		return []preStep{func(pieces []string, first bool) []string {
			var out []string
			for i, s := range pieces {
				s = strings.ReplaceAll(s, " ", rep)
				if !strings.HasPrefix(s, rep) && (scheme == "always" || scheme == "first" && first && i == 0) {
					s = rep + s
				}
				if split {
					out = append(out, sp.split(s)...)
				} else if s != "" {
					out = append(out, s)
				}
			}
			return out
		}}, nil
	case "Digits":
		pat := `\p{N}+`
		if p.Individual {
			pat = `\p{N}`
		}
		sp, err := splitterFor(hfPattern{Regex: &pat}, "Isolated", false)
		if err != nil {
			return nil, err
		}
		return []preStep{splitStep(sp)}, nil
	case "Whitespace":
		pat := `\w+|[^\w\s]+`
		sp, err := splitterFor(hfPattern{Regex: &pat}, "Removed", true)
		if err != nil {
			return nil, err
		}
		return []preStep{splitStep(sp)}, nil
	case "WhitespaceSplit":
		pat := `\s+`
		sp, err := splitterFor(hfPattern{Regex: &pat}, "Removed", false)
		if err != nil {
			return nil, err
		}
		return []preStep{splitStep(sp)}, nil
	case "Punctuation":
		pat := `[\p{P}!-/:-@\[-` + "`" + `{-~]`
		b := p.Behavior
		if b == "" {
			b = "Isolated"
		}
		sp, err := splitterFor(hfPattern{Regex: &pat}, b, false)
		if err != nil {
			return nil, err
		}
		return []preStep{splitStep(sp)}, nil
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer type %q", p.Type)
}

func parseDecoder(raw json.RawMessage, depth int) ([]func([]string) []string, error) {
	if isNull(raw) {
		return nil, nil
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("decoders nested too deeply")
	}
	var d struct {
		Type          string            `json:"type"`
		Decoders      []json.RawMessage `json:"decoders"`
		Pattern       hfPattern         `json:"pattern"`
		Content       string            `json:"content"`
		Start         int               `json:"start"`
		Stop          int               `json:"stop"`
		Replacement   string            `json:"replacement"`
		PrependScheme string            `json:"prepend_scheme"`
		AddPrefix     *bool             `json:"add_prefix_space"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("parsing decoder: %v", err)
	}
	switch d.Type {
	case "Sequence":
		var out []func([]string) []string
		for _, sub := range d.Decoders {
			fs, err := parseDecoder(sub, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		}
		return out, nil
	case "ByteLevel":
		return []func([]string) []string{func(toks []string) []string {
			var b []byte
			for _, s := range toks {
				if bs, ok := byteLevelDecode(s); ok {
					b = append(b, bs...)
				} else {
					b = append(b, s...)
				}
			}
			return []string{lossyUTF8(b)}
		}}, nil
	case "Replace":
		f, err := replaceFunc(d.Pattern, d.Content)
		if err != nil {
			return nil, err
		}
		return []func([]string) []string{func(toks []string) []string {
			out := make([]string, len(toks))
			for i, s := range toks {
				out[i] = f(s)
			}
			return out
		}}, nil
	case "ByteFallback":
		return []func([]string) []string{byteFallbackDecode}, nil
	case "Fuse":
		return []func([]string) []string{func(toks []string) []string {
			return []string{strings.Join(toks, "")}
		}}, nil
	case "Strip":
		c, start, stop := d.Content, d.Start, d.Stop
		if utf8.RuneCountInString(c) != 1 {
			return nil, fmt.Errorf("Strip decoder content %q is not one character", c)
		}
		return []func([]string) []string{func(toks []string) []string {
			out := make([]string, len(toks))
			for i, s := range toks {
				for k := 0; k < start && strings.HasPrefix(s, c); k++ {
					s = s[len(c):]
				}
				for k := 0; k < stop && strings.HasSuffix(s, c); k++ {
					s = s[:len(s)-len(c)]
				}
				out[i] = s
			}
			return out
		}}, nil
	case "Metaspace":
		rep := d.Replacement
		if rep == "" {
			rep = "▁"
		}
		strip := d.PrependScheme != "never" && (d.AddPrefix == nil || *d.AddPrefix || d.PrependScheme != "")
		return []func([]string) []string{func(toks []string) []string {
			out := make([]string, len(toks))
			for i, s := range toks {
				s = strings.ReplaceAll(s, rep, " ")
				if i == 0 && strip {
					s = strings.TrimPrefix(s, " ")
				}
				out[i] = s
			}
			return out
		}}, nil
	}
	return nil, fmt.Errorf("unsupported decoder type %q", d.Type)
}

// byteFallbackDecode turns runs of <0xXX> tokens into text; a run that is
// not valid UTF-8 yields one U+FFFD per byte (as HF's ByteFallback).
func byteFallbackDecode(toks []string) []string {
	var out []string
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, s := range toks {
		if b, ok := parseByteToken(s); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, s)
	}
	flush()
	return out
}

// parsePostProcessor returns the ids added before and after the sequence
// for a single input.
func (t *hfTokenizer) parsePostProcessor(raw json.RawMessage, depth int) (before, after []int, err error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("post-processors nested too deeply")
	}
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		} `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int `json:"ids"`
		} `json:"special_tokens"`
		Sep []json.RawMessage `json:"sep"`
		Cls []json.RawMessage `json:"cls"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, nil, fmt.Errorf("parsing post_processor: %v", err)
	}
	checkID := func(id int) error {
		if id < 0 || id >= len(t.texts) {
			return fmt.Errorf("post_processor token id %d out of range", id)
		}
		return nil
	}
	switch p.Type {
	case "ByteLevel":
		return nil, nil, nil
	case "Sequence":
		for _, sub := range p.Processors {
			b, a, err := t.parsePostProcessor(sub, depth+1)
			if err != nil {
				return nil, nil, err
			}
			before = append(before, b...)
			after = append(a, after...)
		}
		return before, after, nil
	case "TemplateProcessing":
		seen := false
		for _, piece := range p.Single {
			switch {
			case piece.Sequence != nil:
				seen = true
			case piece.SpecialToken != nil:
				st, ok := p.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("post_processor template uses unknown special token %q", piece.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if err := checkID(id); err != nil {
						return nil, nil, err
					}
				}
				if seen {
					after = append(after, st.IDs...)
				} else {
					before = append(before, st.IDs...)
				}
			}
		}
		return before, after, nil
	case "RobertaProcessing", "BertProcessing":
		pairID := func(raw []json.RawMessage) (int, error) {
			if len(raw) != 2 {
				return 0, fmt.Errorf("%s: cls/sep must be [token, id]", p.Type)
			}
			var id int
			if err := json.Unmarshal(raw[1], &id); err != nil {
				return 0, fmt.Errorf("%s: bad id: %v", p.Type, err)
			}
			return id, checkID(id)
		}
		cls, err := pairID(p.Cls)
		if err != nil {
			return nil, nil, err
		}
		sep, err := pairID(p.Sep)
		if err != nil {
			return nil, nil, err
		}
		return []int{cls}, []int{sep}, nil
	}
	return nil, nil, fmt.Errorf("unsupported post_processor type %q", p.Type)
}

// sortSpecials orders specials longest first (used by the GGUF path).
func sortSpecials(s []specialToken) {
	sort.SliceStable(s, func(i, j int) bool { return len(s[i].text) > len(s[j].text) })
}
