package tokenizer

import (
	"container/heap"
	"fmt"
	"strings"
	"unicode"

	"github.com/upg-ai/upg/gguf"
	"golang.org/x/text/unicode/norm"
)

// Token attributes (llama.cpp's llama_token_attr).
const (
	attrUndefined   = 0
	attrUnknown     = 1 << 0
	attrUnused      = 1 << 1
	attrNormal      = 1 << 2
	attrControl     = 1 << 3
	attrUserDefined = 1 << 4
	attrByte        = 1 << 5
	attrLstrip      = 1 << 7
	attrRstrip      = 1 << 8
)

// GGUF vocabulary kinds.
const (
	kindSPM = iota // tokenizer.ggml.model "llama"
	kindBPE        // "gpt2"
	kindWPM        // "bert"
)

// llamaTokenizer tokenizes a GGUF-embedded vocabulary as llama.cpp's
// llama-vocab.cpp does.
type llamaTokenizer struct {
	vocab
	name   string
	kind   int
	attrs  []int
	scores []float32
	merges map[[2]string]int

	splitters    []*regexSplitter
	ignoreMerges bool
	specials     []specialToken // llama.cpp's cache_special_tokens order

	wantBOS, wantEOS, wantSEP bool
	addSpacePrefix            bool
	unk, sep, eosID           int
	maxTokenLen               int
	lowercase, stripAccent    bool // WPM normalizer options

	cache cache
}

// The pre-tokenizer regexes of llama.cpp's llm_tokenizer_bpe, by
// tokenizer.ggml.pre. They run in order, each splitting every piece of the
// previous one.
const (
	gpt2Regex     = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	llama3Regex   = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Regex    = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	cjkRegex      = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
	poroRegex     = ` ?[^(\s|.,!?…。，、।۔،)]+`
	gpt4oRegex    = o200kPattern
	deepseekV3Reg = `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// deepseekLetters is the cased-letter class of DeepSeek LLM's tokenizer.
const deepseekLetters = "A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af" +
	"\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5" +
	"\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf" +
	"\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57" +
	"\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3" +
	"\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124" +
	"\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b" +
	"\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e" +
	"\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3" +
	"\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943"

type preType struct {
	regexes      []string
	ignoreMerges bool
	addBOS       bool
	noBOS        bool
}

var (
	preDefault = preType{regexes: []string{`[\p{P}\$\+<=>\^~\|]+`, gpt2Regex, `\p{N}+`, `[0-9][0-9][0-9]`}}
	preLlama3  = preType{regexes: []string{llama3Regex}, ignoreMerges: true, addBOS: true}
	preGPT2    = preType{regexes: []string{gpt2Regex}}
	preStar    = preType{regexes: []string{`\p{N}`, gpt2Regex}}
	preQwen2   = preType{regexes: []string{qwen2Regex}}
	prePoro    = preType{regexes: []string{poroRegex}}
	preGPT4o   = preType{regexes: []string{gpt4oRegex}}
)

// preTypes maps tokenizer.ggml.pre to the pre-tokenizer (llama-vocab.cpp).
var preTypes = map[string]preType{
	"default": preDefault,
	"llama3":  preLlama3, "llama-v3": preLlama3, "llama-bpe": preLlama3, "falcon3": preLlama3, "falcon-h1": preLlama3,
	"pixtral": preLlama3, "midm-2.0": preLlama3, "lfm2": preLlama3, "jina-v5-nano": preLlama3,
	"dbrx": {regexes: []string{llama3Regex}}, "smaug-bpe": {regexes: []string{llama3Regex}},
	"deepseek-llm": {regexes: []string{"[\r\n]", `\s?[` + deepseekLetters + `]+`,
		"\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", `\s+$`, cjkRegex, `\p{N}+`}},
	"deepseek-coder": {regexes: []string{"[\r\n]", `\s?\p{L}+`, `\s?\p{P}+`, cjkRegex, `\p{N}`}},
	"deepseek-v3":    {regexes: []string{`\p{N}{1,3}`, "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+", deepseekV3Reg}},
	"falcon":         {regexes: []string{`[\p{P}\$\+<=>\^~\|` + "`" + `]+`, gpt2Regex, `[0-9][0-9][0-9]`}},
	"mpt":            preGPT2, "gpt-2": preGPT2, "phi-2": preGPT2, "jina-es": preGPT2, "jina-de": preGPT2,
	"gigachat": preGPT2, "jina-v2-es": preGPT2, "jina-v2-de": preGPT2, "a.x-4.0": preGPT2, "mellum": preGPT2,
	"modern-bert": preGPT2, "jina-v1-en": preGPT2, "jina-v2-code": preGPT2, "roberta-bpe": preGPT2,
	"olmo": preGPT2, "jais": preGPT2, "trillion": preGPT2, "granite-docling": preGPT2, "exaone4": preGPT2,
	"starcoder": preStar, "refact": preStar, "command-r": preStar, "smollm": preStar, "codeshell": preStar,
	"exaone": preStar, "minerva-7b": preStar, "mellum2": preStar,
	"qwen2": preQwen2, "deepseek-r1-qwen": preQwen2, "kormo": preQwen2, "f2llmv2": preQwen2, "stablelm2": preQwen2,
	"hunyuan": preQwen2, "megrez": preQwen2, "solar-open": preQwen2,
	"poro-chat": prePoro, "bloom": prePoro, "gpt3-finnish": prePoro,
	"viking":      {regexes: []string{poroRegex, `\p{N}`}},
	"chatglm-bpe": {regexes: []string{llama3Regex}, noBOS: true}, "glm4": {regexes: []string{llama3Regex}, noBOS: true},
	"tekken": {regexes: []string{`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`},
		ignoreMerges: true, addBOS: true},
	"gpt-4o": preGPT4o, "llama4": preGPT4o, "kanana2": preGPT4o, "talkie": preGPT4o, "minimax-m2": preGPT4o,
	"chameleon": {regexes: []string{`<sentinel:[0-9]+>`, `(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z`, "([\\t\\n]|    |  )", `\p{N}`,
		`[\p{P}!-/:-@\[-` + "`" + `{-~]`, gpt2Regex}, addBOS: true},
}

var controlTokenNames = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
	"<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
	"<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
	"<|code_middle|>", "<|middle|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
	"<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"}

// FromGGUF builds the tokenizer embedded in a GGUF file's metadata
// (tokenizer.ggml.*). The returned tokenizer does not reference f.
func FromGGUF(f *gguf.File) (Tokenizer, error) {
	t, err := fromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", f.Path, err)
	}
	return t, nil
}

func fromGGUF(f *gguf.File) (*llamaTokenizer, error) {
	model, ok := f.String("tokenizer.ggml.model")
	if !ok {
		return nil, fmt.Errorf("no GGUF vocabulary found (tokenizer.ggml.model missing)")
	}
	pre, _ := f.String("tokenizer.ggml.pre")
	t := &llamaTokenizer{name: f.Path, unk: -1, sep: -1, eosID: -1}
	t.bos = -1
	switch model {
	case "llama":
		t.kind = kindSPM
		t.bos, t.eosID, t.unk = 1, 2, 0
		t.addSpacePrefix, t.wantBOS = true, true
	case "bert":
		t.kind = kindWPM
		t.bos, t.unk, t.sep = 101, 100, 102
		t.wantBOS, t.wantSEP = true, true
		t.lowercase = true
	case "gpt2":
		t.kind = kindBPE
		t.bos, t.eosID = 11, 11
		if pre == "" {
			pre = "default"
		}
		pt, ok := preTypes[pre]
		if !ok {
			return nil, fmt.Errorf("unsupported pre-tokenizer type %q (tokenizer.ggml.pre)", pre)
		}
		for _, r := range pt.regexes {
			sp, err := newRegexSplitter(r, splitIsolated, false)
			if err != nil {
				return nil, err
			}
			sp.re.MatchTimeout = regexTimeout
			t.splitters = append(t.splitters, sp)
		}
		t.ignoreMerges, t.wantBOS = pt.ignoreMerges, pt.addBOS
		if pt.noBOS {
			t.bos = -1
		}
		if pre == "jina-v1-en" || pre == "jina-v2-code" || pre == "roberta-bpe" {
			t.wantSEP = true
		}
	default:
		return nil, fmt.Errorf("unsupported tokenizer model %q (supported: llama, gpt2, bert)", model)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); ok {
		t.addSpacePrefix = b
	}

	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok {
		return nil, fmt.Errorf("tokenizer.ggml.tokens missing or not a string array")
	}
	n := len(toks)
	if n == 0 {
		return nil, fmt.Errorf("empty vocabulary")
	}
	t.texts = make([]string, n)
	t.ids = make(map[string]int, n)
	t.attrs = make([]int, n)
	t.scores = make([]float32, n)
	if s, ok := f.Float32s("tokenizer.ggml.scores"); ok {
		if len(s) < n {
			return nil, fmt.Errorf("%d scores for %d tokens", len(s), n)
		}
		copy(t.scores, s)
	} else if s, ok := f.Int32s("tokenizer.ggml.scores"); ok && len(s) >= n {
		for i := range t.scores {
			t.scores[i] = float32(s[i])
		}
	}
	types, hasTypes := f.Int32s("tokenizer.ggml.token_type")
	if hasTypes && len(types) < n {
		return nil, fmt.Errorf("%d token types for %d tokens", len(types), n)
	}
	for i, s := range toks {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if _, dup := t.ids[s]; dup {
			return nil, fmt.Errorf("duplicate token %q in vocabulary", s)
		}
		t.texts[i] = s
		t.ids[s] = i
		t.maxTokenLen = max(t.maxTokenLen, len(s))
		t.attrs[i] = attrNormal
		if hasTypes {
			switch types[i] {
			case 1:
				t.attrs[i] = attrNormal
			case 2:
				t.attrs[i] = attrUnknown
			case 3:
				t.attrs[i] = attrControl
			case 4:
				t.attrs[i] = attrUserDefined
			case 5:
				t.attrs[i] = attrUnused
			case 6:
				t.attrs[i] = attrByte
			default:
				t.attrs[i] = attrUndefined
			}
		}
	}

	if t.kind == kindBPE {
		merges, ok := f.Strings("tokenizer.ggml.merges")
		if !ok {
			return nil, fmt.Errorf("tokenizer.ggml.merges missing")
		}
		t.merges = make(map[[2]string]int, len(merges))
		for i, m := range merges {
			var a, b string
			if k := strings.IndexByte(m[min(1, len(m)):], ' '); k >= 0 {
				k += min(1, len(m))
				a, b = m[:k], m[k+1:]
			}
			if _, dup := t.merges[[2]string{a, b}]; !dup {
				t.merges[[2]string{a, b}] = i
			}
		}
	}

	// Special ids from the metadata (out-of-range values are ignored).
	getID := func(key string, dst *int) {
		if v, ok := f.Uint(key); ok && v < uint64(n) {
			*dst = int(v)
		}
	}
	for _, p := range []*int{&t.bos, &t.eosID, &t.unk, &t.sep} {
		if *p >= n {
			*p = -1
		}
	}
	getID("tokenizer.ggml.bos_token_id", &t.bos)
	getID("tokenizer.ggml.eos_token_id", &t.eosID)
	getID("tokenizer.ggml.unknown_token_id", &t.unk)
	getID("tokenizer.ggml.seperator_token_id", &t.sep)
	eot, eom := -1, -1
	getID("tokenizer.ggml.eot_token_id", &eot)
	getID("tokenizer.ggml.eom_token_id", &eom)
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		t.wantBOS = b
	}
	if b, ok := f.Bool("tokenizer.ggml.add_eos_token"); ok {
		t.wantEOS = b
	}
	if b, ok := f.Bool("tokenizer.ggml.add_sep_token"); ok {
		t.wantSEP = b
	}
	if t.wantBOS && t.bos < 0 || t.wantEOS && t.eosID < 0 || t.wantSEP && t.sep < 0 {
		return nil, fmt.Errorf("add_bos/add_eos/add_sep is set but the token id is missing")
	}
	if b, ok := f.Bool("tokenizer.ggml.normalizer.lowercase"); ok {
		t.lowercase = b
	}
	t.stripAccent = t.lowercase
	if b, ok := f.Bool("tokenizer.ggml.normalizer.strip_accents"); ok {
		t.stripAccent = b
	}

	// Control-looking tokens are forced to control and end generation.
	t.vocab.control = make([]bool, n)
	for _, name := range controlTokenNames {
		if id, ok := t.ids[name]; ok {
			t.attrs[id] |= attrControl
		}
	}
	for _, name := range eogTokenNames {
		if id, ok := t.ids[name]; ok {
			t.attrs[id] |= attrControl
			t.addEOS(id)
		}
	}
	t.addEOS(t.eosID)
	t.addEOS(eot)
	t.addEOS(eom)

	// Tokens split out before tokenization, longest first.
	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.specials = append(t.specials, specialToken{text: t.texts[id], id: id, onlyIfParsed: a&(attrControl|attrUnknown) != 0})
		}
	}
	sortSpecials(t.specials)
	// Phi-3: special tokens swallow whitespace to their right.
	name, _ := f.String("general.name")
	if lname := strings.ToLower(name); strings.Contains(lname, "phi-3") || strings.Contains(lname, "phi3") {
		for i := range t.specials {
			switch t.specials[i].text {
			case "<unk>", "<s>", "<|endoftext|>":
			default:
				t.specials[i].rstrip = true
			}
		}
	}

	t.bytes = make([][]byte, n)
	for id := range t.texts {
		t.control[id] = t.attrs[id]&(attrControl|attrUnknown) != 0
		t.bytes[id] = t.pieceBytes(id)
	}
	t.byteLevel = t.kind == kindBPE
	return t, nil
}

// pieceBytes is llama.cpp's token_to_piece with special=true.
func (t *llamaTokenizer) pieceBytes(id int) []byte {
	text, a := t.texts[id], t.attrs[id]
	switch {
	case a&(attrControl|attrUnknown|attrUserDefined) != 0:
		return []byte(text)
	case a&attrNormal != 0:
		if t.kind == kindBPE {
			if b, ok := byteLevelDecode(text); ok {
				return b
			}
			return []byte(text)
		}
		return []byte(strings.ReplaceAll(text, "▁", " "))
	case a&attrByte != 0:
		if b, ok := parseByteToken(text); ok {
			return []byte{b}
		}
		if t.kind == kindBPE {
			if b, ok := byteLevelDecode(text); ok {
				return b
			}
		}
		return []byte(text)
	}
	return []byte{}
}

// Encode implements Tokenizer (llama.cpp's llama_tokenize).
func (t *llamaTokenizer) Encode(text string, addSpecial, parseSpecial bool) []int {
	segs := t.partition(text, parseSpecial)
	var out []int
	switch t.kind {
	case kindSPM:
		if addSpecial && t.wantBOS {
			out = append(out, t.bos)
		}
		prevSpecial := true
		for _, sg := range segs {
			if sg.id >= 0 {
				out = append(out, sg.id)
				prevSpecial = true
				continue
			}
			s := sg.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.spm(strings.ReplaceAll(s, " ", "▁"), out)
			prevSpecial = false
		}
		if addSpecial && t.wantEOS {
			out = append(out, t.eosID)
		}
	case kindBPE:
		if addSpecial && t.wantBOS {
			out = append(out, t.bos)
		}
		for _, sg := range segs {
			if sg.id >= 0 {
				out = append(out, sg.id)
				continue
			}
			for _, w := range splitAll(sg.text, t.splitters) {
				out = append(out, t.bpeWord(byteLevelEncode(w))...)
			}
		}
		if addSpecial && t.wantEOS {
			out = append(out, t.eosID)
		}
		if addSpecial && t.wantSEP {
			out = append(out, t.sep)
		}
	case kindWPM:
		if addSpecial {
			out = append(out, t.bos)
		}
		for _, sg := range segs {
			if sg.id >= 0 {
				out = append(out, sg.id)
				continue
			}
			out = t.wpm(sg.text, out)
		}
		if addSpecial {
			out = append(out, t.sep)
		}
	}
	return out
}

// partition splits special tokens out of text, each token (longest first)
// over all remaining text fragments, as llama.cpp's tokenizer_st_partition.
func (t *llamaTokenizer) partition(text string, parseSpecial bool) []segment {
	if text == "" {
		return nil
	}
	segs := []segment{{text, -1}}
	for _, st := range t.specials {
		if st.onlyIfParsed && !parseSpecial {
			continue
		}
		var out []segment
		for _, sg := range segs {
			if sg.id >= 0 {
				out = append(out, sg)
				continue
			}
			s := sg.text
			for {
				k := strings.Index(s, st.text)
				if k < 0 {
					if s != "" {
						out = append(out, segment{s, -1})
					}
					break
				}
				left := s[:k]
				if st.lstrip {
					left = strings.TrimRightFunc(left, func(r rune) bool { return r < 128 && isSpaceByte(byte(r)) })
				}
				if left != "" {
					out = append(out, segment{left, -1})
				}
				out = append(out, segment{"", st.id})
				s = s[k+len(st.text):]
				if st.rstrip {
					s = strings.TrimLeftFunc(s, func(r rune) bool { return r < 128 && isSpaceByte(byte(r)) })
				}
			}
		}
		segs = out
	}
	return segs
}

// bpeWord is llm_tokenizer_bpe_session::tokenize for one byte-level word.
func (t *llamaTokenizer) bpeWord(word string) []int {
	if ids, ok := t.cache.get(word); ok {
		return ids
	}
	var ids []int
	if id, ok := t.ids[word]; ok && t.ignoreMerges {
		ids = []int{id}
	} else {
		rank := func(a, b string) int {
			if r, ok := t.merges[[2]string{a, b}]; ok {
				return r
			}
			return -1
		}
		for _, s := range bpeMerge(chars(word), rank) {
			if id, ok := t.ids[s]; ok {
				ids = append(ids, id)
				continue
			}
			for i := 0; i < len(s); i++ {
				if id, ok := t.ids[s[i:i+1]]; ok {
					ids = append(ids, id)
				}
			}
		}
	}
	t.cache.put(word, ids)
	return ids
}

// spm is llm_tokenizer_spm_session::tokenize: bigrams merged by score.
func (t *llamaTokenizer) spm(text string, out []int) []int {
	if text == "" {
		return out
	}
	type sym struct{ start, n, prev, next int }
	var syms []sym
	for off := 0; off < len(text); {
		n := charLen(text, off)
		syms = append(syms, sym{off, n, len(syms) - 1, len(syms) + 1})
		off += n
	}
	syms[len(syms)-1].next = -1
	q := &bigramQueue{}
	tryAdd := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		s := text[syms[l].start : syms[l].start+syms[l].n+syms[r].n]
		id, ok := t.ids[s]
		if !ok {
			return
		}
		heap.Push(q, bigram{l, r, t.scores[id], len(s)})
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(bigram)
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	for i := 0; i != -1; i = syms[i].next {
		s := text[syms[i].start : syms[i].start+syms[i].n]
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
			continue
		}
		// Not a token: emit its bytes as byte tokens.
		for k := 0; k < len(s); k++ {
			if id, ok := t.byteToken(s[k]); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// byteToken is llama.cpp's byte_to_token for SPM vocabularies.
func (t *llamaTokenizer) byteToken(c byte) (int, bool) {
	if id, ok := t.ids[fmt.Sprintf("<0x%02X>", c)]; ok {
		return id, true
	}
	if id, ok := t.ids[string([]byte{c})]; ok {
		return id, true
	}
	if t.unk >= 0 {
		return t.unk, true
	}
	return 0, false
}

type bigram struct {
	left, right int
	score       float32
	size        int
}

type bigramQueue []bigram

func (q bigramQueue) Len() int { return len(q) }
func (q bigramQueue) Less(i, j int) bool {
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}
func (q bigramQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *bigramQueue) Push(x any)   { *q = append(*q, x.(bigram)) }
func (q *bigramQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// wpm is llm_tokenizer_wpm_session::tokenize: BERT-style normalization and
// greedy longest-match WordPiece with "▁" marking word starts.
func (t *llamaTokenizer) wpm(text string, out []int) []int {
	for _, word := range t.wpmWords(text) {
		w := "▁" + word
		start := len(out)
		for i := 0; i < len(w); i++ {
			match := false
			for j := min(len(w), i+t.maxTokenLen+1); j > i; j-- {
				if id, ok := t.ids[w[i:j]]; ok {
					out = append(out, id)
					match = true
					i = j - 1
					break
				}
			}
			if !match {
				out = out[:start]
				break
			}
		}
		if len(out) == start && t.unk >= 0 {
			out = append(out, t.unk)
		}
	}
	return out
}

// wpmWords is llm_tokenizer_wpm_session::preprocess.
func (t *llamaTokenizer) wpmWords(text string) []string {
	if t.stripAccent {
		text = norm.NFD.String(text)
	}
	words := []string{""}
	for _, r := range text {
		if unicode.IsSpace(r) {
			if words[len(words)-1] != "" {
				words = append(words, "")
			}
			continue
		}
		if r == 0 || r == utf8RuneError || isControlRune(r) {
			continue
		}
		if t.stripAccent && unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) {
			continue
		}
		if t.lowercase {
			r = unicode.ToLower(r)
		}
		if unicode.IsPunct(r) || r < 0x7F && unicode.IsSymbol(r) || isChineseChar(r) {
			if words[len(words)-1] != "" {
				words = append(words, "")
			}
			words[len(words)-1] = string(r)
			words = append(words, "")
		} else {
			words[len(words)-1] += string(r)
		}
	}
	if words[len(words)-1] == "" {
		words = words[:len(words)-1]
	}
	return words
}

const utf8RuneError = '\uFFFD'

func isControlRune(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

func isChineseChar(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B920 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

// Decode implements Tokenizer: the tokens' pieces concatenated, with the
// SentencePiece prefix space of the first token removed (llama.cpp's
// llama_detokenize with special tokens rendered).
func (t *llamaTokenizer) Decode(ids []int) string {
	var b []byte
	for i, id := range ids {
		p := t.TokenBytes(id)
		if i == 0 && t.addSpacePrefix && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		b = append(b, p...)
	}
	return lossyUTF8(b)
}
