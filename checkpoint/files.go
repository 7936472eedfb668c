package checkpoint

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/upg-ai/upg/gguf"
	"github.com/upg-ai/upg/tokenizer"
)

// Release drops the source files' pages from memory (they are re-read on
// demand); the compressor calls it after each layer so that memory does not
// grow with the model.
func (c *Checkpoint) Release() {
	if r, ok := c.Tensors.(interface{ Release() }); ok {
		r.Release()
	}
}

// Release drops the shards' pages from memory.
func (s *hfSource) Release() {
	for _, f := range s.shards {
		f.Release()
	}
}

// tokenizerFromFiles builds a tokenizer from files embedded in a .upg:
// "tokenizer.json" (+ "tokenizer_config.json"), "*.tiktoken" or a
// vocabulary-only "vocab.gguf"; any of them may be gzip-compressed (".gz").
func tokenizerFromFiles(files map[string][]byte, name string) (tokenizer.Tokenizer, error) {
	plain := map[string][]byte{}
	for k, v := range files {
		if strings.HasSuffix(k, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(v))
			if err != nil {
				return nil, fmt.Errorf("%s: embedded %s: %v", name, k, err)
			}
			b, err := io.ReadAll(io.LimitReader(zr, 1<<30))
			if err != nil {
				return nil, fmt.Errorf("%s: embedded %s: %v", name, k, err)
			}
			k = strings.TrimSuffix(k, ".gz")
			v = b
		}
		plain[k] = v
	}
	if tj, ok := plain["tokenizer.json"]; ok {
		return tokenizer.FromHFJSON(tj, plain["tokenizer_config.json"], name+":tokenizer.json")
	}
	if v, ok := plain["vocab.gguf"]; ok {
		f, err := gguf.Parse(v, name+":vocab.gguf")
		if err != nil {
			return nil, err
		}
		return tokenizer.FromGGUF(f)
	}
	for k, v := range plain {
		if strings.HasSuffix(k, ".tiktoken") {
			return tokenizer.FromTiktoken(v, name+":"+k)
		}
	}
	return nil, fmt.Errorf("%s: no tokenizer embedded (want tokenizer.json, a .tiktoken rank file or vocab.gguf)", name)
}

// GGUFVocabFile serialises the GGUF checkpoint's tokenizer metadata as a
// tensor-free GGUF file, so it can be embedded in a .upg.
func (c *Checkpoint) GGUFVocabFile() ([]byte, error) {
	if c.gguf == nil {
		return nil, fmt.Errorf("%s: not a GGUF checkpoint", c.Path)
	}
	var keys []string
	for _, k := range c.gguf.Keys {
		if strings.HasPrefix(k, "tokenizer.") || k == "general.architecture" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	str := func(s string) { w(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	w(uint32(3))
	w(uint64(0))
	w(uint64(len(keys)))
	for _, k := range keys {
		str(k)
		if err := writeGGUFValue(&b, c.gguf.Metadata[k]); err != nil {
			return nil, fmt.Errorf("%s: metadata %s: %w", c.Path, k, err)
		}
	}
	return b.Bytes(), nil
}

// GGUF value type codes.
const (
	ggufU8, ggufI8, ggufU16, ggufI16, ggufU32, ggufI32, ggufF32, ggufBool, ggufString, ggufArray, ggufU64, ggufI64, ggufF64 = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
)

func writeGGUFValue(b *bytes.Buffer, v any) error {
	le := binary.LittleEndian
	w := func(x any) { binary.Write(b, le, x) }
	str := func(s string) { w(uint64(len(s))); b.WriteString(s) }
	arr := func(t uint32, n int) { w(uint32(ggufArray)); w(t); w(uint64(n)) }
	switch x := v.(type) {
	case uint8:
		w(uint32(ggufU8))
		w(x)
	case int8:
		w(uint32(ggufI8))
		w(x)
	case uint16:
		w(uint32(ggufU16))
		w(x)
	case int16:
		w(uint32(ggufI16))
		w(x)
	case uint32:
		w(uint32(ggufU32))
		w(x)
	case int32:
		w(uint32(ggufI32))
		w(x)
	case uint64:
		w(uint32(ggufU64))
		w(x)
	case int64:
		w(uint32(ggufI64))
		w(x)
	case float32:
		w(uint32(ggufF32))
		w(x)
	case float64:
		w(uint32(ggufF64))
		w(x)
	case bool:
		w(uint32(ggufBool))
		w(x)
	case string:
		w(uint32(ggufString))
		str(x)
	case []string:
		arr(ggufString, len(x))
		for _, s := range x {
			str(s)
		}
	case []float32:
		arr(ggufF32, len(x))
		w(x)
	case []int32:
		arr(ggufI32, len(x))
		w(x)
	case []uint32:
		arr(ggufU32, len(x))
		w(x)
	case []uint8:
		arr(ggufU8, len(x))
		w(x)
	case []int8:
		arr(ggufI8, len(x))
		w(x)
	case []int64:
		arr(ggufI64, len(x))
		w(x)
	case []uint64:
		arr(ggufU64, len(x))
		w(x)
	case []float64:
		arr(ggufF64, len(x))
		w(x)
	case []bool:
		arr(ggufBool, len(x))
		w(x)
	default:
		return fmt.Errorf("value of type %T cannot be re-encoded", v)
	}
	return nil
}
