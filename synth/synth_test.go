package synth

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/engine"
	"github.com/upg-ai/upg/tokenizer"
	"github.com/upg-ai/upg/upgfile"
)

// small is a Phi-4-like model shrunk so the test is fast; the vocabulary
// stays Phi-4's so that the embedded cl100k tokenizer fits.
var small = Options{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Seed: 3}

func TestWriteOpensThroughCodec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.upg")
	var calls int
	opts := small
	opts.Progress = func(done, total int64, name string) { calls++ }
	if err := Write(path, opts); err != nil {
		t.Fatal(err)
	}
	f, err := upgfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	if calls != len(f.Tensors) {
		t.Errorf("progress called %d times for %d tensors", calls, len(f.Tensors))
	}
	var bytes, n int64
	for _, te := range f.Tensors {
		bytes += te.Length
		n64 := int64(1)
		for _, d := range te.Shape {
			n64 *= int64(d)
		}
		n += n64
	}
	if bpw := float64(bytes) * 8 / float64(n); bpw > 3.2 {
		t.Errorf("%.3f bits per weight > 3.2", bpw)
	}
	if len(f.Meta.Tokenizer) != 1 {
		t.Errorf("embedded tokenizer files %d, want 1 (cl100k_base or the byte-level fallback)", len(f.Meta.Tokenizer))
	}
	// Every matrix decodes through the real codec to a Gaussian of std ≈ 0.02.
	te, data, err := f.Tensor("model.layers.1.mlp.down_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	var p codec.Params
	if err := json.Unmarshal(te.Params, &p); err != nil {
		t.Fatal(err)
	}
	if p.Levels != "lloyd" || p.Rotate == 0 || p.Bits != 3 {
		t.Errorf("params %+v, want the compressor's default: 3-bit lloyd with rotation", p)
	}
	m, err := codec.Open(p, te.Shape[0], te.Shape[1], data)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, m.Rows()*m.Cols())
	m.DecodeRows(w, 0, m.Rows())
	var ss float64
	for _, v := range w {
		ss += float64(v) * float64(v)
	}
	std := math.Sqrt(ss / float64(len(w)))
	if std < 0.017 || std > 0.023 {
		t.Errorf("decoded std %.4f, want ≈ 0.02", std)
	}
}

// TestEncoderMatchesCodecQuality checks the fast RTN encoder against
// codec.Encode on the same weights: same layout size, comparable error.
func TestEncoderMatchesCodecQuality(t *testing.T) {
	rows, cols := 64, 512
	p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "uniform"}
	data, err := encodeDense(rows, cols, p, 0.02, 5)
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Open(p, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	// Regenerate the same weights and compare.
	g := gaussTable(5)
	_ = g
	w := make([]float32, rows*cols)
	m.DecodeRows(w, 0, rows)
	ref, err := codec.Encode(w, rows, cols, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(data) {
		t.Fatalf("layout size %d, codec's %d", len(data), len(ref))
	}
	// Re-encoding decoded values with the real codec must reproduce them
	// closely (they lie on a grid the codec can represent).
	m2, _ := codec.Open(p, rows, cols, ref)
	w2 := make([]float32, rows*cols)
	m2.DecodeRows(w2, 0, rows)
	var se, ss float64
	for i := range w {
		se += float64(w[i]-w2[i]) * float64(w[i]-w2[i])
		ss += float64(w[i]) * float64(w[i])
	}
	if rel := math.Sqrt(se / ss); rel > 0.1 {
		t.Errorf("codec re-encoding error %.3f", rel)
	}
}

// TestLloydEncoderQuality regenerates the rotated-domain weights the fast
// lloyd encoder drew, and checks that its codes reproduce them about as
// well as codec.Encode's Lloyd search does (same layout size).
func TestLloydEncoderQuality(t *testing.T) {
	rows, cols := 64, 512
	p := codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: rotateSeed}
	data, err := encodeDense(rows, cols, p, 0.02, 5)
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Open(p, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	dm := m.(*codec.DenseMatrix)
	got := make([]float32, rows*cols)
	dm.DecodeRowsRotated(got, 0, rows)
	gauss := gaussTable(5)
	for i := range gauss {
		gauss[i] *= 0.02
	}
	w := make([]float32, rows*cols)
	rng := rand.NewPCG(5, 0)
	for r := 0; r < rows; r++ {
		fillRow(w[r*cols:(r+1)*cols], rng, gauss)
	}
	relErr := func(a, b []float32) float64 {
		var se, ss float64
		for i := range a {
			se += float64(a[i]-b[i]) * float64(a[i]-b[i])
			ss += float64(b[i]) * float64(b[i])
		}
		return math.Sqrt(se / ss)
	}
	pn := p
	pn.Rotate = 0
	ref, err := codec.Encode(w, rows, cols, pn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ref) != len(data) {
		t.Fatalf("layout size %d, codec's %d", len(data), len(ref))
	}
	rm, _ := codec.Open(pn, rows, cols, ref)
	want := make([]float32, rows*cols)
	rm.DecodeRows(want, 0, rows)
	e, ec := relErr(got, w), relErr(want, w)
	t.Logf("relative RMS error: fast encoder %.4f, codec.Encode %.4f", e, ec)
	if e > 1.25*ec || e > 0.25 {
		t.Errorf("fast lloyd encoder error %.4f vs codec's %.4f", e, ec)
	}
}

// TestTrellisSynth: --codec trellis writes random valid trellis tensors that
// open through the checkpoint loader (the file declares codec:trellis),
// stay within the bits budget and decode to weights of std ≈ 0.02.
func TestTrellisSynth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.upg")
	opts := small
	opts.Codec = "trellis"
	if err := Write(path, opts); err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if req := ck.Upgfile().Meta.Requires; len(req) != 1 || req[0] != "codec:trellis" {
		t.Errorf("requires %v, want [codec:trellis]", req)
	}
	mat, err := ck.Tensors.Matrix("model.layers.1.mlp.down_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	m, ok := mat.(*codec.TrellisMatrix)
	if !ok || m.Bits != 3 || m.Signs == nil {
		t.Fatalf("down_proj is %T %+v, want a rotated 3-bit trellis matrix", mat, mat)
	}
	w := make([]float32, m.Rows()*m.Cols())
	m.DecodeRows(w, 0, m.Rows())
	var ss float64
	for _, v := range w {
		ss += float64(v) * float64(v)
	}
	if std := math.Sqrt(ss / float64(len(w))); std < 0.017 || std > 0.023 {
		t.Errorf("decoded std %.4f, want ≈ 0.02", std)
	}
}

// TestRotateResidualSynth: with RotateResidual the matrices that read the
// norms (q|k|v, gate|up, the head) carry no input rotation, o and down
// keep theirs, and every norm gain is exactly 1 — the layout `upg compress
// --rotate-residual` writes.
func TestRotateResidualSynth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.upg")
	opts := small
	opts.RotateResidual = true
	if err := Write(path, opts); err != nil {
		t.Fatal(err)
	}
	f, err := upgfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	readers := map[string]bool{"model.layers.0.self_attn.qkv_proj.weight": true, "model.layers.1.mlp.gate_up_proj.weight": true, "lm_head.weight": true}
	for _, name := range []string{"model.layers.0.self_attn.qkv_proj.weight", "model.layers.1.mlp.gate_up_proj.weight", "lm_head.weight",
		"model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"} {
		te, _, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		var p codec.Params
		if err := json.Unmarshal(te.Params, &p); err != nil {
			t.Fatal(err)
		}
		if rotated := p.Rotate != 0; rotated == readers[name] {
			t.Errorf("%s: Rotate %#x", name, p.Rotate)
		}
	}
	ck, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, name := range []string{"model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"} {
		v, err := ck.Tensors.Vector(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range v {
			if g != 1 {
				t.Fatalf("%s[%d] = %g, want 1", name, i, g)
			}
		}
	}
}

// TestTokenizerFallback: without the shared rank file, synth embeds a
// byte-level tokenizer that round-trips any text and fits the vocabulary;
// an explicit path that is missing is an error; a vocabulary too small for
// cl100k's special tokens gets none.
func TestTokenizerFallback(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.tiktoken")
	files, err := tokenizerFiles("", missing, 100352)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := files["bytes.tiktoken"]
	if !ok || len(files) != 1 {
		t.Fatalf("files %v, want only bytes.tiktoken", slices.Collect(maps.Keys(files)))
	}
	tok, err := tokenizer.FromTiktoken(data, "s.upg:bytes.tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	if n := tok.VocabSize(); n != 100277 { // cl100k's last special, <|endofprompt|>, is 100276
		t.Errorf("vocab %d, want 100277", n)
	}
	text := "héllo, wörld\n\x00<|endoftext|>"
	ids := tok.Encode(text, false, false)
	if len(ids) != len(text) {
		t.Errorf("%d ids for %d bytes: want one a byte (%v)", len(ids), len(text), ids)
	}
	if got := tok.Decode(ids); got != text {
		t.Errorf("round trip %q, want %q", got, text)
	}
	if _, err := tokenizerFiles(missing, missing, 100352); err == nil || !strings.Contains(err.Error(), "none.tiktoken") {
		t.Errorf("missing --tokenizer: err %v, want one naming the file", err)
	}
	if files, err := tokenizerFiles("", missing, 1000); err != nil || files != nil {
		t.Errorf("vocab 1000: %v, %v; want no tokenizer and no error", files, err)
	}
	// an explicit rank file: checked, and embedded under its own name
	dir := t.TempDir()
	ranks := filepath.Join(dir, "r50k_base.tiktoken")
	if err := os.WriteFile(ranks, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if files, err := tokenizerFiles(ranks, missing, 100352); err != nil || len(files["r50k_base.tiktoken"]) != len(data) {
		t.Errorf("--tokenizer %s: files %v, err %v; want it under its own name", ranks, slices.Collect(maps.Keys(files)), err)
	}
	if _, err := tokenizerFiles(ranks, missing, 1000); err == nil || !strings.Contains(err.Error(), "more than the model's vocabulary of 1000") {
		t.Errorf("a tokenizer larger than the vocabulary: err %v", err)
	}
	bad := filepath.Join(dir, "bad.tiktoken")
	if err := os.WriteFile(bad, []byte("not a rank file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenizerFiles(bad, missing, 100352); err == nil || !strings.Contains(err.Error(), "bad.tiktoken") {
		t.Errorf("a file that is not a rank file: err %v, want one naming it", err)
	}
}

// TestByteTokenizerFileRuns: a file written where the shared rank file is
// missing opens in the engine and generates (the bench and run path).
func TestByteTokenizerFileRuns(t *testing.T) {
	old := defaultTokenizer
	defaultTokenizer = filepath.Join(t.TempDir(), "none.tiktoken")
	t.Cleanup(func() { defaultTokenizer = old })
	path := filepath.Join(t.TempDir(), "b.upg")
	if err := Write(path, small); err != nil {
		t.Fatal(err)
	}
	l, err := engine.Load(path, engine.Options{Device: "cpu", Threads: 1, Ctx: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.Generate(context.Background(), engine.Request{Prompt: []int{104, 105, 33}, MaxTokens: 4, IgnoreEOS: true}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if st.GeneratedTokens != 4 {
		t.Errorf("generated %d tokens, want 4", st.GeneratedTokens)
	}
}
