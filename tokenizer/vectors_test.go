package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

const shared = "../../shared"

// requireShared skips a test whose shared data is absent, and fails it
// under CI=true.
func requireShared(t testing.TB, path string) {
	t.Helper()
	testutil.NeedData(t, path)
}

// readVocabTests reads llama.cpp's test-tokenizer-0 format: inputs separated
// by "\n__ggml_vocab_test__\n", outputs one line of space-separated ids per
// input.
func readVocabTests(t *testing.T, inp, out string) (texts []string, ids [][]int) {
	t.Helper()
	raw, err := os.ReadFile(inp)
	if err != nil {
		t.Fatal(err)
	}
	outRaw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	s := string(raw)
	for pos := 0; pos < len(s); {
		k := strings.Index(s[pos:], sep)
		if k < 0 {
			texts = append(texts, s[pos:])
			break
		}
		texts = append(texts, s[pos:pos+k])
		pos += k + len(sep)
	}
	lines := strings.Split(strings.TrimSuffix(string(outRaw), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d inputs but %d outputs", inp, len(texts), len(lines))
	}
	for _, l := range lines {
		var row []int
		for _, f := range strings.Fields(l) {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s: bad id %q", out, f)
			}
			row = append(row, v)
		}
		ids = append(ids, row)
	}
	return texts, ids
}

// TestVectorsLlamaCpp runs llama.cpp's tokenizer test vectors through every
// vocabulary that is present (add_special=false, parse_special=false, as
// tests/test-tokenizer-0.cpp does).
func TestVectorsLlamaCpp(t *testing.T) {
	dir := filepath.Join(shared, "tokenizers/llamacpp-vocab")
	requireShared(t, dir)
	inps, _ := filepath.Glob(filepath.Join(dir, "*.gguf.inp"))
	if len(inps) == 0 {
		t.Fatal("no .inp files found")
	}
	var table []string
	tested := 0
	for _, inp := range inps {
		vocabPath := strings.TrimSuffix(inp, ".inp")
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(vocabPath), "ggml-vocab-"), ".gguf")
		if _, err := os.Stat(vocabPath); err != nil {
			table = append(table, fmt.Sprintf("%-18s  (no vocabulary file shipped; vectors only)", name))
			continue
		}
		tested++
		tok, err := Load(vocabPath)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			table = append(table, fmt.Sprintf("%-18s  LOAD ERROR", name))
			continue
		}
		texts, want := readVocabTests(t, inp, vocabPath+".out")
		pass := 0
		for i, text := range texts {
			got := tok.Encode(text, false, false)
			if slices.Equal(got, want[i]) {
				pass++
				continue
			}
			t.Errorf("%s case %d %q:\n got %v\nwant %v", name, i, text, got, want[i])
		}
		table = append(table, fmt.Sprintf("%-18s  %2d/%2d", name, pass, len(texts)))
	}
	t.Logf("llama.cpp vocab vectors (pass/total):\n%s", strings.Join(table, "\n"))
	if tested < 10 {
		t.Errorf("only %d vocabularies tested", tested)
	}
}

func TestVectorsTiktokenCl100k(t *testing.T) {
	rankPath := filepath.Join(shared, "tokenizers/tiktoken/cl100k_base.tiktoken")
	requireShared(t, rankPath)
	tok, err := Load(rankPath)
	if err != nil {
		t.Fatal(err)
	}
	texts, want := readVocabTests(t, filepath.Join(shared, "tokenizers/cl100k_base.inp"), filepath.Join(shared, "tokenizers/cl100k_base.out"))
	pass := 0
	for i, text := range texts {
		got := tok.Encode(text, false, false)
		if slices.Equal(got, want[i]) {
			pass++
		} else {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, text, got, want[i])
		}
		if d := tok.Decode(got); d != text {
			t.Errorf("case %d: decode %q != %q", i, d, text)
		}
	}
	t.Logf("cl100k_base vectors: %d/%d", pass, len(texts))
	// Specials parse only when asked.
	if got := tok.Encode("<|endoftext|>", false, true); !slices.Equal(got, []int{100257}) {
		t.Errorf("parsed <|endoftext|> = %v", got)
	}
	if got := tok.Encode("<|endofprompt|>x", false, true); len(got) != 2 || got[0] != 100276 {
		t.Errorf("parsed <|endofprompt|>x = %v", got)
	}
	if got := tok.Encode("<|endoftext|>", false, false); slices.Contains(got, 100257) {
		t.Errorf("unparsed <|endoftext|> = %v", got)
	}
	if eos := tok.EOS(); !slices.Equal(eos, []int{100257}) {
		t.Errorf("EOS %v", eos)
	}
}

type refCase struct {
	Prompt     string  `json:"prompt"`
	InputIDs   []int   `json:"input_ids"`
	Greedy     []int   `json:"greedy_32"`
	GreedyText *string `json:"greedy_text"`
}

// TestVectorsHFGolden checks every reference prompt of the shared models:
// Encode(prompt, addSpecial, parseSpecial) must equal the transformers
// input_ids and Decode(greedy_32) the transformers greedy_text.
func TestVectorsHFGolden(t *testing.T) {
	models := []string{"miniphi-29m", "TinyStories-656K", "tiny-qwen2-random"}
	var table []string
	for _, m := range models {
		dir := filepath.Join(shared, "models", m)
		requireShared(t, dir)
		tok, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "reference_outputs.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Cases []refCase `json:"cases"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatal(err)
		}
		enc, dec, ndec := 0, 0, 0
		for i, c := range ref.Cases {
			got := tok.Encode(c.Prompt, true, true)
			if slices.Equal(got, c.InputIDs) {
				enc++
			} else {
				t.Errorf("%s case %d encode %q:\n got %v\nwant %v", m, i, c.Prompt, got, c.InputIDs)
			}
			if c.GreedyText != nil {
				ndec++
				if d := tok.Decode(c.Greedy); d == *c.GreedyText {
					dec++
				} else {
					t.Errorf("%s case %d decode:\n got %q\nwant %q", m, i, d, *c.GreedyText)
				}
			}
		}
		table = append(table, fmt.Sprintf("%-18s encode %d/%d  decode %d/%d", m, enc, len(ref.Cases), dec, ndec))
	}
	t.Logf("HF golden vectors:\n%s", strings.Join(table, "\n"))
}
