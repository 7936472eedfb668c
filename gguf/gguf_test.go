package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

const stories260K = "../../shared/models/stories260K/stories260K.gguf"

// writer builds small GGUF images for tests.
type writer struct{ bytes.Buffer }

func (w *writer) u32(v uint32) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *writer) u64(v uint64) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *writer) str(s string) { w.u64(uint64(len(s))); w.WriteString(s) }

type testTensor struct {
	name   string
	dims   []uint64
	typ    GGMLType
	offset uint64
}

// buildFile writes a v3 file with a few metadata kinds and the given tensors;
// data is appended after the aligned header.
func buildFile(tensors []testTensor, data []byte) []byte {
	var w writer
	w.WriteString("GGUF")
	w.u32(3)
	w.u64(uint64(len(tensors)))
	w.u64(6)
	w.str("general.architecture")
	w.u32(vtString)
	w.str("llama")
	w.str("x.count")
	w.u32(vtUint32)
	w.u32(7)
	w.str("x.scale")
	w.u32(vtFloat32)
	w.u32(math.Float32bits(1.5))
	w.str("x.flag")
	w.u32(vtBool)
	w.WriteByte(1)
	w.str("x.tokens")
	w.u32(vtArray)
	w.u32(vtString)
	w.u64(3)
	for _, s := range []string{"a", "bc", "<s>"} {
		w.str(s)
	}
	w.str("x.nested")
	w.u32(vtArray)
	w.u32(vtArray)
	w.u64(2)
	for i := 0; i < 2; i++ {
		w.u32(vtInt32)
		w.u64(2)
		w.u32(uint32(i))
		w.u32(uint32(-i))
	}
	for _, t := range tensors {
		w.str(t.name)
		w.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			w.u64(d)
		}
		w.u32(uint32(t.typ))
		w.u64(t.offset)
	}
	for w.Len()%DefaultAlignment != 0 {
		w.WriteByte(0)
	}
	w.Write(data)
	return w.Bytes()
}

func smallFile() []byte {
	data := make([]byte, 32+34*2)
	for i := range data {
		data[i] = byte(i)
	}
	return buildFile([]testTensor{
		{"a", []uint64{2, 4}, TypeF32, 0},
		{"q", []uint64{64}, TypeQ8_0, 32},
	}, data)
}

func TestParseSynthetic(t *testing.T) {
	f, err := Parse(smallFile(), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || len(f.Tensors) != 2 {
		t.Fatalf("version %d tensors %d", f.Version, len(f.Tensors))
	}
	wantKeys := []string{"general.architecture", "x.count", "x.scale", "x.flag", "x.tokens", "x.nested"}
	if !reflect.DeepEqual(f.Keys, wantKeys) {
		t.Errorf("keys %v", f.Keys)
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("arch %q", s)
	}
	if u, ok := f.Uint("x.count"); !ok || u != 7 {
		t.Errorf("count %d %v", u, ok)
	}
	if v, ok := f.Float("x.scale"); !ok || v != 1.5 {
		t.Errorf("scale %v %v", v, ok)
	}
	if v, ok := f.Float("x.count"); !ok || v != 7 {
		t.Errorf("count as float %v %v", v, ok)
	}
	if b, ok := f.Bool("x.flag"); !ok || !b {
		t.Errorf("flag %v %v", b, ok)
	}
	if s, _ := f.Strings("x.tokens"); !reflect.DeepEqual(s, []string{"a", "bc", "<s>"}) {
		t.Errorf("tokens %q", s)
	}
	nested := f.Metadata["x.nested"].([]any)
	if !reflect.DeepEqual(nested[1], []int32{1, -1}) {
		t.Errorf("nested %v", nested)
	}
	ti, data, err := f.TensorData("q")
	if err != nil {
		t.Fatal(err)
	}
	if ti.Size != 68 || len(data) != 68 || data[0] != 32 || data[67] != 99 {
		t.Errorf("q: size %d len %d first %d last %d", ti.Size, len(data), data[0], data[len(data)-1])
	}
	if ti, _ := f.Tensor("a"); ti.Size != 32 || ti.Type.String() != "F32" {
		t.Errorf("a: %+v", ti)
	}
	if _, _, err := f.TensorData("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown tensor error %v", err)
	}
}

func TestTruncations(t *testing.T) {
	full := smallFile()
	for n := 0; n < len(full); n++ {
		if _, err := Parse(full[:n], "trunc"); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(full))
		} else if !strings.HasPrefix(err.Error(), "gguf: trunc: ") {
			t.Fatalf("error does not name the file: %v", err)
		}
	}
}

func TestBadTensors(t *testing.T) {
	data := make([]byte, 64)
	cases := []struct {
		name    string
		tensors []testTensor
		want    string
	}{
		{"overrun", []testTensor{{"x", []uint64{32}, TypeF32, 0}}, `tensor "x" data [`},
		{"overflow", []testTensor{{"x", []uint64{1 << 40, 1 << 40}, TypeF32, 0}}, "overflow"},
		{"huge offset", []testTensor{{"x", []uint64{4}, TypeF32, math.MaxUint64 - 31}}, "overruns file of"},
		{"misaligned", []testTensor{{"x", []uint64{4}, TypeF32, 4}}, "alignment"},
		{"block", []testTensor{{"x", []uint64{33}, TypeQ4_0, 0}}, "block size"},
		{"dup", []testTensor{{"x", []uint64{1}, TypeF32, 0}, {"x", []uint64{1}, TypeF32, 32}}, "duplicate"},
	}
	for _, c := range cases {
		_, err := Parse(buildFile(c.tensors, data), "bad.gguf")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.gguf") {
			t.Errorf("%s: error %v, want mention of %q", c.name, err, c.want)
		}
	}
	// An unknown type parses (the tensor is listed) but its data is refused.
	f, err := Parse(buildFile([]testTensor{{"u", []uint64{8}, GGMLType(99), 0}}, data), "unk.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.TensorData("u"); err == nil || !strings.Contains(err.Error(), "GGMLType(99)") || !strings.Contains(err.Error(), `"u"`) {
		t.Errorf("unknown type error %v", err)
	}
}

func TestLyingCounts(t *testing.T) {
	var w writer
	w.WriteString("GGUF")
	w.u32(3)
	w.u64(0)
	w.u64(1)
	w.str("k")
	w.u32(vtArray)
	w.u32(vtUint64)
	w.u64(math.MaxUint64 / 2)
	if _, err := Parse(w.Bytes(), "lie"); err == nil || !strings.Contains(err.Error(), "impossible") {
		t.Errorf("lying array length: %v", err)
	}
	var w2 writer
	w2.WriteString("GGUF")
	w2.u32(3)
	w2.u64(math.MaxUint64)
	w2.u64(0)
	if _, err := Parse(w2.Bytes(), "lie"); err == nil {
		t.Error("lying tensor count accepted")
	}
	if _, err := Parse([]byte("GGUF\x01\x00\x00\x00"), "v1"); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("v1: %v", err)
	}
}

func TestOpenStories260K(t *testing.T) {
	testutil.NeedData(t, stories260K)
	f, err := Open(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if a, _ := f.String("general.architecture"); a != "llama" {
		t.Errorf("architecture %q", a)
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 {
		t.Fatalf("tokens: %d %v", len(toks), ok)
	}
	if toks[1] != "<s>" || toks[2] != "</s>" {
		t.Errorf("tokens[1:3] = %q", toks[1:3])
	}
	if s, ok := f.Float32s("tokenizer.ggml.scores"); !ok || len(s) != 512 {
		t.Errorf("scores %d %v", len(s), ok)
	}
	if tt, ok := f.Int32s("tokenizer.ggml.token_type"); !ok || len(tt) != 512 || tt[1] != 3 {
		t.Errorf("token types %v", ok)
	}
	emb, data, err := f.TensorData("token_embd.weight")
	if err != nil {
		t.Fatal(err)
	}
	// stories260K: dim 64, vocab 512.
	if !reflect.DeepEqual(emb.Dims, []uint64{64, 512}) || emb.Type != TypeF32 || len(data) != 64*512*4 {
		t.Errorf("token_embd: %+v len %d", emb, len(data))
	}
	if u, ok := f.Uint("llama.embedding_length"); !ok || u != 64 {
		t.Errorf("embedding_length %d %v", u, ok)
	}
	if u, ok := f.Uint("llama.block_count"); !ok || u != 5 {
		t.Errorf("block_count %d %v", u, ok)
	}
	q, ok := f.Tensor("blk.0.attn_q.weight")
	if !ok || !reflect.DeepEqual(q.Dims, []uint64{64, 64}) {
		t.Errorf("attn_q %+v", q)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.gguf")
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(p, smallFile()[:100], 0o644)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("truncated file: %v", err)
	}
	os.WriteFile(p, smallFile(), 0o644)
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, d, err := f.TensorData("a"); err != nil || d[4] != 4 {
		t.Errorf("mapped data: %v", err)
	}
	f.Close()
}

func FuzzParse(f *testing.F) {
	f.Add(smallFile())
	f.Add(buildFile(nil, nil))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			if _, d, err := g.TensorData(ti.Name); err == nil && uint64(len(d)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, size %d", ti.Name, len(d), ti.Size)
			}
		}
	})
}
