package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const byteLevelJSON = `{
 "added_tokens":[{"id":5,"content":"<s>","special":true},{"id":6,"content":"</s>","special":true},
   {"id":7,"content":"[X]","special":false,"lstrip":true,"rstrip":true}],
 "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"use_regex":true},
 "post_processor":{"type":"RobertaProcessing","sep":["</s>",6],"cls":["<s>",5]},
 "decoder":{"type":"ByteLevel"},
 "model":{"type":"BPE","vocab":{"Ġ":0,"a":1,"b":2,"Ġa":3,"ab":4,"Ġab":8},"merges":["Ġ a","a b"],"ignore_merges":IGNORE}}`

func TestHFByteLevelSynthetic(t *testing.T) {
	tok, err := FromHFJSON([]byte(strings.Replace(byteLevelJSON, "IGNORE", "false", 1)), nil, "synthetic")
	if err != nil {
		t.Fatal(err)
	}
	check := func(text string, add, parse bool, want []int) {
		t.Helper()
		if got := tok.Encode(text, add, parse); !slices.Equal(got, want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", text, add, parse, got, want)
		}
	}
	// " ab" -> Ġ a b -> (Ġ a) merges first, then "Ġa"+"b" has no merge.
	check("ab", false, false, []int{3, 2})
	check("ab", true, true, []int{5, 3, 2, 6})
	// [X] is a non-special added token: split out even without
	// parseSpecial, absorbing the spaces around it.
	check("a [X] b", false, false, []int{3, 7, 0, 2})
	check("<s>", false, true, []int{5})
	if d := tok.Decode([]int{5, 3, 2, 7, 0, 2, 6}); d != "<s> ab[X] b</s>" {
		t.Errorf("decode %q", d)
	}
	tok, err = FromHFJSON([]byte(strings.Replace(byteLevelJSON, "IGNORE", "true", 1)), nil, "synthetic")
	if err != nil {
		t.Fatal(err)
	}
	check("ab", false, false, []int{8}) // ignore_merges: whole word in vocab
}

const spmStyleJSON = `{
 "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
 "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
 "model":{"type":"BPE","vocab":{"<unk>":0,"<0xC3>":1,"<0xA9>":2,"▁":3,"a":4,"▁a":5},"merges":["▁ a"],"byte_fallback":true,"unk_token":"<unk>","fuse_unk":true}}`

func TestHFByteFallbackSynthetic(t *testing.T) {
	tok, err := FromHFJSON([]byte(spmStyleJSON), []byte(`{"add_bos_token":true,"bos_token":"<unk>"}`), "synthetic")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("a é", false, false)
	if !slices.Equal(ids, []int{5, 3, 1, 2}) {
		t.Errorf("Encode = %v", ids)
	}
	if d := tok.Decode(ids); d != "a é" {
		t.Errorf("Decode = %q", d)
	}
	// ü = C3 BC: <0xBC> is missing, so the character becomes <unk>; with
	// fuse_unk two unknown characters give one <unk>.
	if ids := tok.Encode("a üü", false, false); !slices.Equal(ids, []int{5, 3, 0}) {
		t.Errorf("Encode(a üü) = %v", ids)
	}
	// No post-processor: add_bos_token from tokenizer_config.json applies.
	if ids := tok.Encode("a", true, false); !slices.Equal(ids, []int{0, 5}) {
		t.Errorf("Encode with BOS = %v", ids)
	}
	if b := tok.TokenBytes(1); len(b) != 1 || b[0] != 0xC3 {
		t.Errorf("TokenBytes(<0xC3>) = %v", b)
	}
	if b := tok.TokenBytes(5); string(b) != " a" {
		t.Errorf("TokenBytes(▁a) = %q", b)
	}
}

// TestGGUFVocabRoundTrip decodes the encoded llama.cpp test strings with the
// vocabularies that have byte-exact decoding (including baichuan and
// gpt-neox, for which no test vectors exist).
func TestGGUFVocabRoundTrip(t *testing.T) {
	dir := filepath.Join(shared, "tokenizers/llamacpp-vocab")
	requireShared(t, dir)
	texts, _ := readVocabTests(t, filepath.Join(dir, "ggml-vocab-gpt-2.gguf.inp"), filepath.Join(dir, "ggml-vocab-gpt-2.gguf.out"))
	for _, name := range []string{"baichuan", "gpt-neox", "gpt-2", "llama-spm", "mpt", "starcoder", "deepseek-llm", "falcon"} {
		p := filepath.Join(dir, "ggml-vocab-"+name+".gguf")
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tok, err := Load(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, s := range texts {
			if d := tok.Decode(tok.Encode(s, false, false)); d != s {
				t.Errorf("%s: Decode(Encode(%q)) = %q", name, s, d)
			}
		}
	}
}

// TestHFEndOfGenerationNames: a Hugging Face tokenizer's special tokens
// named like llama.cpp's end-of-generation tokens end generation, from the
// same list the GGUF vocabularies use ("</s>" was missing from the old
// Hugging Face list).
func TestHFEndOfGenerationNames(t *testing.T) {
	tok, err := FromHFJSON([]byte(strings.Replace(byteLevelJSON, "IGNORE", "false", 1)), nil, "synthetic")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tok.EOS(), 6) {
		t.Errorf("EOS %v lacks </s> (6)", tok.EOS())
	}
	if slices.Contains(tok.EOS(), 5) || slices.Contains(tok.EOS(), 7) {
		t.Errorf("EOS %v has <s> or the non-special [X]", tok.EOS())
	}
}
