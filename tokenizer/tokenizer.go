// Package tokenizer turns text into token ids and back for the model
// families UPG runs. One interface, Tokenizer, has three implementations:
//
//   - Hugging Face tokenizer.json BPE models (byte-level GPT-2/cl100k style or
//     SentencePiece-style with byte fallback), with the normalizers,
//     pre-tokenizers, added tokens, post-processors and decoders the file
//     declares (FromHFJSON);
//   - tiktoken rank files such as cl100k_base (FromTiktoken);
//   - vocabularies embedded in GGUF files, tokenized exactly as llama.cpp's
//     llama-vocab.cpp does: SentencePiece ("llama"), byte-level BPE ("gpt2",
//     with the pre-tokenizer regexes chosen by tokenizer.ggml.pre) and
//     WordPiece ("bert") (FromGGUF).
//
// Load picks the right one from a path. StreamDecoder turns a stream of
// generated ids into text without ever splitting a UTF-8 character.
package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/upg-ai/upg/gguf"
)

// Tokenizer converts between text and token ids.
type Tokenizer interface {
	// Encode tokenizes text. parseSpecial: added/special tokens written
	// literally in text (e.g. "<|im_start|>") become their ids (as HF does
	// for added tokens); otherwise only non-special added tokens are split
	// out and special tokens are tokenized as plain text. addSpecial: add
	// BOS/EOS etc. as HF's add_special_tokens=True / llama.cpp's
	// add_special would.
	Encode(text string, addSpecial, parseSpecial bool) []int
	// Decode renders ids as text; special/control tokens are rendered as
	// their text (like HF skip_special_tokens=False). Invalid UTF-8 becomes
	// U+FFFD. Out-of-range ids are skipped.
	Decode(ids []int) string
	// TokenBytes returns the raw bytes a token stands for (byte-level,
	// "▁" and byte-fallback tokens decoded); nil for an out-of-range id.
	TokenBytes(id int) []byte
	// VocabSize is the number of token ids (including added tokens).
	VocabSize() int
	// BOS is the beginning-of-sequence token, -1 if none.
	BOS() int
	// EOS lists the tokens that end generation.
	EOS() []int
	// TokenID looks a token up by its text as stored in the vocabulary
	// (or, for byte-level vocabularies, by its raw text).
	TokenID(text string) (int, bool)
	// IsControl reports whether id is a special/control token.
	IsControl(id int) bool
}

// eogTokenNames are the token texts llama.cpp treats as control and
// end-of-generation (plus FIM/EOT names it forces to control). GGUF
// vocabularies (llama.go) use the list as llama.cpp does; Hugging Face
// tokenizers take from it the tokens that they declare special.
var eogTokenNames = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
	"<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>"}

// vocab holds what every implementation shares: the token texts, their
// bytes and the special-token bookkeeping.
type vocab struct {
	texts   []string       // token text as stored in the vocabulary
	bytes   [][]byte       // TokenBytes
	ids     map[string]int // texts -> id
	control []bool
	bos     int
	eos     []int
	// byteLevel: texts are GPT-2 byte-level strings, so TokenID also
	// accepts raw text.
	byteLevel bool
}

func (v *vocab) VocabSize() int { return len(v.texts) }
func (v *vocab) BOS() int       { return v.bos }
func (v *vocab) EOS() []int     { return append([]int(nil), v.eos...) }

func (v *vocab) TokenBytes(id int) []byte {
	if id < 0 || id >= len(v.bytes) {
		return nil
	}
	return v.bytes[id]
}

func (v *vocab) IsControl(id int) bool {
	return id >= 0 && id < len(v.control) && v.control[id]
}

func (v *vocab) TokenID(text string) (int, bool) {
	if id, ok := v.ids[text]; ok {
		return id, true
	}
	if v.byteLevel {
		id, ok := v.ids[byteLevelEncode(text)]
		return id, ok
	}
	return -1, false
}

// addEOS appends id to the EOS list once.
func (v *vocab) addEOS(id int) {
	if id < 0 || id >= len(v.texts) {
		return
	}
	for _, e := range v.eos {
		if e == id {
			return
		}
	}
	v.eos = append(v.eos, id)
}

// addEOGByName adds the well-known end-of-generation tokens that exist as
// control tokens.
func (v *vocab) addEOGByName() {
	for _, name := range eogTokenNames {
		if id, ok := v.ids[name]; ok && v.IsControl(id) {
			v.addEOS(id)
		}
	}
}

// decodeBytes concatenates TokenBytes and converts to text.
func (v *vocab) decodeBytes(ids []int) string {
	var b []byte
	for _, id := range ids {
		b = append(b, v.TokenBytes(id)...)
	}
	return lossyUTF8(b)
}

// cache memoizes the token ids of pre-tokenized pieces.
type cache struct {
	mu sync.Mutex
	m  map[string][]int
}

const maxCacheEntries = 1 << 16
const maxCachedPiece = 256

func (c *cache) get(s string) ([]int, bool) {
	if len(s) > maxCachedPiece {
		return nil, false
	}
	c.mu.Lock()
	ids, ok := c.m[s]
	c.mu.Unlock()
	return ids, ok
}

func (c *cache) put(s string, ids []int) {
	if len(s) > maxCachedPiece {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCacheEntries {
		c.m = make(map[string][]int)
	}
	c.m[s] = ids
	c.mu.Unlock()
}

// lossyUTF8 converts b to a string, replacing each maximal invalid
// subsequence with one U+FFFD (the Unicode "maximal subpart" practice that
// Rust's String::from_utf8_lossy and Python follow).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
			b = b[n:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefixLen(b):]
	}
	return sb.String()
}

// invalidPrefixLen returns the length of the maximal prefix of b that could
// start a valid UTF-8 sequence but does not complete one (at least 1).
func invalidPrefixLen(b []byte) int {
	need, lo, hi := seqInfo(b[0])
	if need == 0 {
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		c := b[i]
		l, h := byte(0x80), byte(0xBF)
		if i == 1 {
			l, h = lo, hi
		}
		if c < l || c > h {
			break
		}
	}
	return i
}

// seqInfo returns the number of continuation bytes a lead byte needs and the
// allowed range of the first continuation byte; need=0 for an invalid lead.
func seqInfo(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	}
	return 0, 0, 0
}

// StreamDecoder turns generated ids into text incrementally. It emits only
// complete UTF-8 characters; bytes that can no longer form a valid character
// are emitted as U+FFFD. It concatenates the tokens' bytes exactly (it does
// not strip a SentencePiece leading space as Decode does, so streamed
// continuations join the prompt correctly).
type StreamDecoder struct {
	t       Tokenizer
	pending []byte
}

// NewStreamDecoder returns a StreamDecoder for t.
func NewStreamDecoder(t Tokenizer) *StreamDecoder { return &StreamDecoder{t: t} }

// Add appends token id and returns the text that became complete.
func (d *StreamDecoder) Add(id int) string {
	d.pending = append(d.pending, d.t.TokenBytes(id)...)
	var sb strings.Builder
	b := d.pending
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
			b = b[n:]
			continue
		}
		k := invalidPrefixLen(b)
		if k == len(b) && !utf8.FullRune(b) {
			break // an incomplete but so far valid sequence: wait for more
		}
		sb.WriteRune(utf8.RuneError)
		b = b[k:]
	}
	d.pending = append(d.pending[:0], b...)
	return sb.String()
}

// Flush returns any held incomplete bytes as U+FFFD and resets the decoder.
func (d *StreamDecoder) Flush() string {
	s := lossyUTF8(d.pending)
	d.pending = d.pending[:0]
	return s
}

// Load reads a tokenizer from path: a directory holding tokenizer.json (and
// optionally tokenizer_config.json and generation_config.json), a
// tokenizer.json file, a *.tiktoken rank file or a *.gguf file.
func Load(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		p := filepath.Join(path, "tokenizer.json")
		if _, err := os.Stat(p); err == nil {
			return loadHFFile(p)
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.tiktoken")); len(m) == 1 {
			return loadTiktokenFile(m[0])
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.gguf")); len(m) == 1 {
			return Load(m[0])
		}
		return nil, fmt.Errorf("tokenizer: %s: no tokenizer.json, *.tiktoken or GGUF vocabulary found", path)
	}
	switch {
	case strings.HasSuffix(path, ".json"):
		return loadHFFile(path)
	case strings.HasSuffix(path, ".tiktoken"):
		return loadTiktokenFile(path)
	case strings.HasSuffix(path, ".gguf"):
		f, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		defer f.Close()
		return FromGGUF(f)
	}
	return nil, fmt.Errorf("tokenizer: %s: no tokenizer.json, *.tiktoken or GGUF vocabulary found (unrecognized file type)", path)
}

func loadHFFile(p string) (Tokenizer, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	dir := filepath.Dir(p)
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := fromHFJSON(data, cfg, p)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", p, err)
	}
	// generation_config.json may list further end-of-generation ids.
	if gc, err := os.ReadFile(filepath.Join(dir, "generation_config.json")); err == nil {
		t.addGenerationConfig(gc)
	}
	return t, nil
}

func loadTiktokenFile(p string) (Tokenizer, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return FromTiktoken(data, p)
}
