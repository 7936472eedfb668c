package tokenizer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Split patterns of OpenAI's encodings (tiktoken's openai_public.py).
const (
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	o200kPattern  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	r50kPattern   = `'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// tiktokenTokenizer implements tiktoken's byte-level BPE over a rank file.
// Ranks are kept keyed by the GPT-2 byte-level form of each token so that
// the BPE works on characters.
type tiktokenTokenizer struct {
	vocab
	name     string
	ranks    map[string]int // byte-level form -> rank (= id)
	split    *regexSplitter
	specials []specialToken
	cache    cache
}

// FromTiktoken builds a tokenizer from a tiktoken rank file (lines of
// "base64-token rank"). The split pattern and special tokens are chosen by
// name: "o200k" selects o200k_base, "r50k"/"p50k"/"gpt2" the GPT-2 pattern,
// anything else cl100k_base (<|endoftext|>=100257, <|fim_prefix|>=100258,
// <|fim_middle|>=100259, <|fim_suffix|>=100260, <|endofprompt|>=100276).
func FromTiktoken(ranks []byte, name string) (Tokenizer, error) {
	t, err := fromTiktoken(ranks, name)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	return t, nil
}

func fromTiktoken(data []byte, name string) (*tiktokenTokenizer, error) {
	t := &tiktokenTokenizer{name: name, ranks: map[string]int{}}
	raw := map[int][]byte{}
	maxRank := -1
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"base64-token rank\"", i+1)
		}
		tok, err := base64.StdEncoding.DecodeString(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: bad base64: %v", i+1, err)
		}
		r, err := strconv.Atoi(f[1])
		if err != nil || r < 0 || r > 10*len(lines)+1024 {
			return nil, fmt.Errorf("line %d: bad rank %q", i+1, f[1])
		}
		if _, dup := raw[r]; dup {
			return nil, fmt.Errorf("line %d: duplicate rank %d", i+1, r)
		}
		raw[r] = tok
		t.ranks[byteLevelEncode(string(tok))] = r
		maxRank = max(maxRank, r)
	}
	if maxRank < 0 {
		return nil, fmt.Errorf("no ranks found")
	}

	lname := strings.ToLower(name)
	pattern := cl100kPattern
	var specials map[string]int
	switch {
	case strings.Contains(lname, "o200k"):
		pattern = o200kPattern
		specials = map[string]int{"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
	case strings.Contains(lname, "r50k") || strings.Contains(lname, "p50k") || strings.Contains(lname, "gpt2"):
		pattern = r50kPattern
		specials = map[string]int{"<|endoftext|>": 50256}
	default:
		specials = map[string]int{"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
			"<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
	}
	n := maxRank + 1
	for _, id := range specials {
		n = max(n, id+1)
	}
	t.texts = make([]string, n)
	t.bytes = make([][]byte, n)
	t.control = make([]bool, n)
	t.ids = make(map[string]int, n)
	t.byteLevel = true
	t.bos = -1
	for r, tok := range raw {
		t.texts[r] = byteLevelEncode(string(tok))
		t.bytes[r] = tok
		t.ids[t.texts[r]] = r
	}
	for s, id := range specials {
		if _, taken := raw[id]; taken {
			continue
		}
		t.texts[id] = s
		t.bytes[id] = []byte(s)
		t.ids[s] = id
		t.control[id] = true
		t.specials = append(t.specials, specialToken{text: s, id: id, onlyIfParsed: true})
	}
	if id, ok := t.ids["<|endoftext|>"]; ok && t.control[id] {
		t.addEOS(id)
	}
	sp, err := newRegexSplitter(pattern, splitIsolated, false)
	if err != nil {
		return nil, err
	}
	sp.re.MatchTimeout = regexTimeout
	t.split = sp
	return t, nil
}

// Encode implements Tokenizer. tiktoken adds no BOS/EOS, so addSpecial has
// no effect.
func (t *tiktokenTokenizer) Encode(text string, addSpecial, parseSpecial bool) []int {
	var ids []int
	for _, seg := range splitLeftmostLongest(text, t.specials, parseSpecial) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		for _, p := range t.split.split(seg.text) {
			ids = append(ids, t.encodePiece(p)...)
		}
	}
	return ids
}

func (t *tiktokenTokenizer) encodePiece(p string) []int {
	if ids, ok := t.cache.get(p); ok {
		return ids
	}
	enc := byteLevelEncode(p)
	var ids []int
	if r, ok := t.ranks[enc]; ok {
		ids = []int{r}
	} else {
		rank := func(a, b string) int {
			if r, ok := t.ranks[a+b]; ok {
				return r
			}
			return -1
		}
		for _, s := range bpeMerge(chars(enc), rank) {
			if r, ok := t.ranks[s]; ok {
				ids = append(ids, r)
			}
		}
	}
	t.cache.put(p, ids)
	return ids
}

// Decode implements Tokenizer.
func (t *tiktokenTokenizer) Decode(ids []int) string { return t.decodeBytes(ids) }
