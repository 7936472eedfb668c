package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkEncodeMiniphi250K encodes the 250 KB evaluation text with the
// miniphi tokenizer (cl100k-style regex, byte-level BPE).
func BenchmarkEncodeMiniphi250K(b *testing.B) {
	requireShared(b, filepath.Join(shared, "corpus/miniphi_eval_250k.txt"))
	text, err := os.ReadFile(filepath.Join(shared, "corpus/miniphi_eval_250k.txt"))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := Load(filepath.Join(shared, "models/miniphi-29m"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.(*hfTokenizer).cache = cache{} // measure cold-cache encoding
		tok.Encode(string(text), false, false)
	}
}
