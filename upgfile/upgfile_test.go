package upgfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func init() { RegisterFeature("test:known") }

// CRC-32C check value from the CRC catalogue (RFC 3720 uses the same
// polynomial): CRC-32C("123456789") = 0xE3069283.
func TestCRC32CCheckValue(t *testing.T) {
	if got := crc([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("crc32c(123456789) = %#x, want 0xe3069283", got)
	}
}

type sampleTensor struct {
	name   string
	shape  []int
	params string
	data   []byte
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

var sampleMeta = Metadata{
	Architecture: json.RawMessage(`{"arch":"phi3","n_layer":2,"rope_theta":10000.5}`),
	Tokenizer: map[string][]byte{
		"tokenizer.json":       []byte(`{"model":{"type":"BPE"}}`),
		"cl100k_base.tiktoken": {0, 1, 0xff, 0xfe, '\n', 'a'}, // not UTF-8: must survive verbatim
	},
	ChatTemplate: "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>&{% endfor %}",
	Generation:   json.RawMessage(`{"temperature":0.7,"eos":[100257,100265]}`),
	Provenance:   json.RawMessage(`{"source":{"model.safetensors":"sha256:00ff"},"ppl":7.25}`),
	Requires:     []string{"test:known"},
	Extra:        map[string]json.RawMessage{"x_note": json.RawMessage(`"hello"`)},
}

// writeFile writes tensors (alternating AddTensor and AddTensorFrom) and meta
// to path.
func writeFile(t testing.TB, path string, meta Metadata, tensors []sampleTensor) {
	t.Helper()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i, s := range tensors {
		var params json.RawMessage
		if s.params != "" {
			params = json.RawMessage(s.params)
		}
		if i%2 == 0 {
			err = w.AddTensor(s.name, s.shape, params, s.data)
		} else {
			err = w.AddTensorFrom(s.name, s.shape, params, iotest.HalfReader(bytes.NewReader(s.data)), int64(len(s.data)))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.SetMetadata(meta); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// smallFile returns the bytes of a small but complete file: metadata and
// three tensors (two pages of data plus padding).
func smallFile(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "small.upg")
	writeFile(t, path, Metadata{
		Architecture: json.RawMessage(`{"n":1}`),
		Tokenizer:    map[string][]byte{"t": {0, 255}},
		ChatTemplate: "<s>",
	}, []sampleTensor{
		{"a", []int{1}, `{"codec":"f32"}`, []byte{0x42}},
		{"b", []int{10, 10}, "", pattern(100, 3)},
		{"c", []int{5}, `{"codec":"x","k":[1,2]}`, pattern(5, 9)},
	})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("compact %q: %v", raw, err)
	}
	return buf.String()
}

func TestRoundTrip(t *testing.T) {
	tensors := []sampleTensor{
		{"token_embd.weight", []int{3, 1365}, `{"codec":"q","bits":3}`, pattern(4095, 1)},
		{"empty", []int{0, 7}, "", nil},
		{"blk.0.attn_q.weight", []int{4096}, `{"codec":"f16"}`, pattern(4096, 2)},
		{"odd", []int{4097}, `null`, pattern(4097, 3)},
		{"one", []int{}, `{"scale": 0.5}`, []byte{0xAB}},
		{"big", []int{3, 1 << 20}, `{}`, pattern(3<<20+13, 4)}, // several AddTensorFrom buffers
	}
	path := filepath.Join(t.TempDir(), "model.upg")
	writeFile(t, path, sampleMeta, tensors)

	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	m := f.Meta
	if m.Version != "1.0" {
		t.Errorf("Version = %q, want 1.0", m.Version)
	}
	for _, c := range []struct{ got, want json.RawMessage }{
		{m.Architecture, sampleMeta.Architecture}, {m.Generation, sampleMeta.Generation},
		{m.Provenance, sampleMeta.Provenance}, {m.Extra["x_note"], sampleMeta.Extra["x_note"]},
	} {
		if compactJSON(t, c.got) != compactJSON(t, c.want) {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	if len(m.Extra) != 1 {
		t.Errorf("Extra = %v, want only x_note", m.Extra)
	}
	if len(m.Tokenizer) != 2 {
		t.Errorf("Tokenizer has %d files, want 2", len(m.Tokenizer))
	}
	for k, v := range sampleMeta.Tokenizer {
		if !bytes.Equal(m.Tokenizer[k], v) {
			t.Errorf("Tokenizer[%q] = %q, want %q", k, m.Tokenizer[k], v)
		}
	}
	if m.ChatTemplate != sampleMeta.ChatTemplate {
		t.Errorf("ChatTemplate = %q", m.ChatTemplate)
	}
	if fmt.Sprint(m.Requires) != "[test:known]" {
		t.Errorf("Requires = %v", m.Requires)
	}

	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
	}
	f.VerifyOnAccess = true
	cursor := int64(preambleSize)
	for i, s := range tensors {
		e, data, err := f.Tensor(s.name)
		if err != nil {
			t.Fatal(err)
		}
		if e.Name != f.Tensors[i].Name || e.Name != s.name {
			t.Errorf("tensor %d: name %q, want %q", i, e.Name, s.name)
		}
		if fmt.Sprint(e.Shape) != fmt.Sprint(s.shape) {
			t.Errorf("%s: shape %v, want %v", s.name, e.Shape, s.shape)
		}
		if s.params == "" || s.params == "null" {
			if e.Params != nil {
				t.Errorf("%s: params %s, want none", s.name, e.Params)
			}
		} else if compactJSON(t, e.Params) != compactJSON(t, json.RawMessage(s.params)) {
			t.Errorf("%s: params %s, want %s", s.name, e.Params, s.params)
		}
		if !bytes.Equal(data, s.data) || int64(len(data)) != e.Length {
			t.Errorf("%s: data differs (len %d, want %d)", s.name, len(data), len(s.data))
		}
		want := (cursor + 4095) / 4096 * 4096
		if e.Offset != want {
			t.Errorf("%s: offset %d, want %d", s.name, e.Offset, want)
		}
		if e.CRC32C != crc(s.data) {
			t.Errorf("%s: crc %#x, want %#x", s.name, e.CRC32C, crc(s.data))
		}
		cursor = e.Offset + e.Length
	}
	if _, _, err := f.Tensor("missing"); err == nil || !strings.Contains(err.Error(), `no tensor "missing"`) {
		t.Errorf("Tensor(missing) error = %v", err)
	}

	// Byte-exact preamble and trailer.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantPre := []byte{'U', 'P', 'G', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(raw[:28], wantPre) {
		t.Errorf("preamble % x, want % x", raw[:28], wantPre)
	}
	tr := raw[len(raw)-32:]
	hoff := binary.LittleEndian.Uint64(tr)
	hlen := binary.LittleEndian.Uint64(tr[8:])
	if int64(hoff) != cursor || hoff+hlen+32 != uint64(len(raw)) || string(tr[28:]) != "UPG\x00" {
		t.Errorf("trailer: header at %d+%d, data end %d, file %d, magic %q", hoff, hlen, cursor, len(raw), tr[28:])
	}
	if !json.Valid(raw[hoff : hoff+hlen]) {
		t.Errorf("header is not JSON")
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, err %v; want 0644", st.Mode(), err)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Tensor("odd"); err == nil {
		t.Error("Tensor after Close succeeded")
	}
}

func TestEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.upg")
	writeFile(t, path, Metadata{}, nil)
	raw, _ := os.ReadFile(path)
	if len(raw) != 32+len(`{"tensors":[]}`)+32 {
		t.Errorf("empty file is %d bytes: %q", len(raw), raw)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Tensors) != 0 || f.Verify() != nil || f.Meta.Architecture != nil || f.Meta.Extra != nil {
		t.Errorf("empty file: %+v", f)
	}
}

// Every single-byte change anywhere in the file must be caught by Parse or
// Verify, with an error that names the file.
func TestEveryByteFlip(t *testing.T) {
	orig := smallFile(t)
	if f, err := Parse(orig, "x.upg"); err != nil || f.Verify() != nil {
		t.Fatalf("pristine file: %v", err)
	}
	buf := make([]byte, len(orig))
	for i := range orig {
		for _, x := range []byte{0x01, 0xff, 0x80} {
			copy(buf, orig)
			buf[i] ^= x
			f, err := Parse(buf, "x.upg")
			if err == nil {
				err = f.Verify()
			}
			if err == nil {
				t.Fatalf("flip %#x at byte %d of %d not detected", x, i, len(orig))
			}
			if !strings.HasPrefix(err.Error(), "upg: x.upg: ") {
				t.Fatalf("flip at %d: error does not name the file: %v", i, err)
			}
		}
	}
}

func TestVerifyNamesTensor(t *testing.T) {
	orig := smallFile(t)
	f, err := Parse(orig, "x.upg")
	if err != nil {
		t.Fatal(err)
	}
	e := f.Tensors[1]
	orig[e.Offset+50] ^= 4
	orig[e.Offset+e.Length+1] = 9 // padding after b (before c)
	err = f.Verify()
	if err == nil || !errors.Is(err, ErrCorrupt) ||
		!strings.Contains(err.Error(), `upg: x.upg: corrupt: tensor "b": data checksum mismatch`) ||
		!strings.Contains(err.Error(), `before tensor "c" is not zero`) {
		t.Fatalf("Verify = %v", err)
	}
	f.VerifyOnAccess = true
	if _, _, err := f.Tensor("b"); err == nil {
		t.Error("Tensor(b) with VerifyOnAccess accepted bad data")
	}
	if _, _, err := f.Tensor("a"); err != nil {
		t.Errorf("Tensor(a): %v", err)
	}
}

func TestTruncation(t *testing.T) {
	orig := smallFile(t)
	for n := 0; n < len(orig); n++ {
		_, err := Parse(orig[:n], "x.upg")
		if err == nil || !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "upg: x.upg: truncated: ") {
			t.Fatalf("length %d of %d: error %v", n, len(orig), err)
		}
	}
	// Through Open (mmap path and the small-file path).
	dir := t.TempDir()
	for _, n := range []int{0, 3, 40, 63, 64, 5000, len(orig) - 1} {
		path := filepath.Join(dir, fmt.Sprintf("t%d.upg", n))
		if err := os.WriteFile(path, orig[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || !strings.HasPrefix(err.Error(), "upg: "+path+": truncated: ") {
			t.Errorf("Open of %d bytes: %v", n, err)
		}
	}
	// Trailing garbage is refused too.
	if _, err := Parse(append(append([]byte{}, orig...), 0), "x.upg"); err == nil {
		t.Error("file with an extra byte accepted")
	}
	if _, err := Open(filepath.Join(dir, "missing.upg")); err == nil || !strings.Contains(err.Error(), "missing.upg") {
		t.Errorf("Open(missing) = %v", err)
	}
	if _, err := Parse([]byte("GGUF and more bytes"), "m.gguf"); err == nil || err.Error() != `upg: m.gguf: corrupt: not a .upg file (bad magic "GGUF")` {
		t.Errorf("GGUF file: %v", err)
	}
}

// setVersion returns a copy of b with the preamble version changed and its
// CRC recomputed.
func setVersion(b []byte, major, minor uint16, flags uint32) []byte {
	b = append([]byte{}, b...)
	binary.LittleEndian.PutUint16(b[4:], major)
	binary.LittleEndian.PutUint16(b[6:], minor)
	binary.LittleEndian.PutUint32(b[8:], flags)
	binary.LittleEndian.PutUint32(b[28:], crc(b[:28]))
	return b
}

// reheader returns b with its header JSON replaced by edit(header) and the
// trailer rewritten to match (valid checksums).
func reheader(t testing.TB, b []byte, edit func(top map[string]any)) []byte {
	t.Helper()
	hoff := binary.LittleEndian.Uint64(b[len(b)-32:])
	var top map[string]any
	d := json.NewDecoder(bytes.NewReader(b[hoff : len(b)-32]))
	d.UseNumber()
	if err := d.Decode(&top); err != nil {
		t.Fatal(err)
	}
	edit(top)
	header, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return withHeader(b, header)
}

// withHeader returns b with its header replaced by header and a matching
// trailer.
func withHeader(b, header []byte) []byte {
	hoff := binary.LittleEndian.Uint64(b[len(b)-32:])
	out := append(append([]byte{}, b[:hoff]...), header...)
	var ntr [32]byte
	binary.LittleEndian.PutUint64(ntr[0:], hoff)
	binary.LittleEndian.PutUint64(ntr[8:], uint64(len(header)))
	binary.LittleEndian.PutUint32(ntr[16:], crc(header))
	binary.LittleEndian.PutUint32(ntr[24:], crc(ntr[:24]))
	copy(ntr[28:], Magic)
	return append(out, ntr[:]...)
}

func TestVersions(t *testing.T) {
	orig := smallFile(t)
	_, err := Parse(setVersion(orig, 2, 0, 0), "model.upg")
	if err == nil || err.Error() != "upg: model.upg: format version 2.0 is newer than this reader (1.x); upgrade upg" || !errors.Is(err, ErrUnsupported) {
		t.Errorf("major 2: %v", err)
	}
	if _, err := Parse(setVersion(orig, 0, 9, 0), "model.upg"); err == nil || !strings.Contains(err.Error(), "format version 0.9 is not supported") {
		t.Errorf("major 0: %v", err)
	}
	if _, err := Parse(setVersion(orig, 1, 0, 4), "model.upg"); err == nil || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "flags 0x4") {
		t.Errorf("unknown flag: %v", err)
	}

	// Newer minor with unknown keys, top level and in a tensor entry.
	newer := reheader(t, setVersion(orig, 1, 7, 0), func(top map[string]any) {
		top["future_section"] = map[string]any{"a": 1}
		top["tensors"].([]any)[0].(map[string]any)["future_field"] = "x"
	})
	f, err := Parse(newer, "model.upg")
	if err != nil {
		t.Fatalf("minor 7: %v", err)
	}
	if f.Meta.Version != "1.7" || string(f.Meta.Extra["future_section"]) != `{"a":1}` || f.Verify() != nil {
		t.Errorf("minor 7: version %q extra %v verify %v", f.Meta.Version, f.Meta.Extra, f.Verify())
	}
	if _, data, err := f.Tensor("a"); err != nil || !bytes.Equal(data, []byte{0x42}) {
		t.Errorf("minor 7 tensor a: %v %v", data, err)
	}
}

func TestRequires(t *testing.T) {
	orig := smallFile(t)
	b := reheader(t, orig, func(top map[string]any) { top["requires"] = []string{"test:known", "codec:frobnicate"} })
	_, err := Parse(b, "model.upg")
	want := `upg: model.upg: file requires feature "codec:frobnicate", which this reader does not support; upgrade upg`
	if err == nil || err.Error() != want || !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown feature: %v", err)
	}
	RegisterFeature("codec:frobnicate")
	if _, err := Parse(b, "model.upg"); err != nil {
		t.Errorf("registered feature refused: %v", err)
	}
}

// Directories with valid checksums but impossible contents.
func TestBadDirectory(t *testing.T) {
	orig := smallFile(t)
	entry := func(top map[string]any, i int) map[string]any { return top["tensors"].([]any)[i].(map[string]any) }
	cases := []struct {
		name, want string
		edit       func(top map[string]any)
	}{
		{"overlap", `tensor "b" at offset 4096, expected 8192`, func(top map[string]any) { entry(top, 1)["offset"] = 4096 }},
		{"misaligned", `tensor "a" at offset 4097`, func(top map[string]any) { entry(top, 0)["offset"] = 4097 }},
		{"too long", `tensor "c" extent`, func(top map[string]any) { entry(top, 2)["length"] = 1 << 62 }},
		{"negative length", `tensor "c" extent`, func(top map[string]any) { entry(top, 2)["length"] = -1 }},
		{"short", `tensor data ends at`, func(top map[string]any) { entry(top, 2)["length"] = 4 }},
		{"huge offset", `header key "tensors"`, func(top map[string]any) { entry(top, 2)["offset"] = 1e30 }},
		{"duplicate", `tensor "a" appears twice`, func(top map[string]any) { entry(top, 1)["name"] = "a" }},
		{"empty name", `tensor 0 has an empty name`, func(top map[string]any) { entry(top, 0)["name"] = "" }},
		{"negative dim", `negative dimension`, func(top map[string]any) { entry(top, 0)["shape"] = []int{-1} }},
		{"dropped", `tensor data ends at 4097`, func(top map[string]any) { top["tensors"] = top["tensors"].([]any)[:1] }},
		{"bad tokenizer", `header key "tokenizer"`, func(top map[string]any) { top["tokenizer"] = map[string]any{"t": "!!"} }},
		{"template type", `header key "chat_template"`, func(top map[string]any) { top["chat_template"] = 5 }},
	}
	for _, c := range cases {
		_, err := Parse(reheader(t, orig, c.edit), "x.upg")
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A writer that is aborted, fails, or never finishes leaves no file under
// the output name and keeps an existing one intact.
func TestWriterFailureKeepsExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.upg")
	good := smallFile(t)
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	intact := func(when string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, good) {
			t.Fatalf("%s: existing file changed (err %v)", when, err)
		}
		if names := dirNames(t, dir); len(names) != 1 {
			t.Fatalf("%s: directory holds %v", when, names)
		}
	}

	// Abort.
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("x", []int{3}, nil, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 2 || !strings.HasPrefix(names[1], "model.upg.tmp-") {
		t.Fatalf("while writing, directory holds %v", names)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	intact("after Abort")
	if err := w.AddTensor("y", nil, nil, nil); err == nil {
		t.Error("AddTensor after Abort succeeded")
	}

	// Read error mid-way: sticky, removes the temp file.
	w, err = Create(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = w.AddTensorFrom("x", []int{8}, nil, io.MultiReader(bytes.NewReader([]byte{1, 2}), iotest.ErrReader(boom)), 8)
	if !errors.Is(err, boom) {
		t.Fatalf("AddTensorFrom error = %v", err)
	}
	intact("after failed AddTensorFrom")
	if err := w.AddTensor("y", nil, nil, nil); !errors.Is(err, boom) {
		t.Errorf("AddTensor after failure: %v", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close after failure: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after failure: %v", err)
	}
	intact("after Close of failed writer")

	// Short reader.
	w, _ = Create(path)
	if err := w.AddTensorFrom("x", nil, nil, bytes.NewReader([]byte{1}), 2); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: %v", err)
	}
	intact("after short reader")

	// Unfinished writer (as if the process died): new name never appears.
	other := filepath.Join(dir, "new.upg")
	w, _ = Create(other)
	w.AddTensor("x", nil, nil, pattern(10000, 1))
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("unfinished writer: %s exists (%v)", other, err)
	}
	w.Abort()
	intact("after unfinished writer")

	// Successful replace.
	writeFile(t, path, Metadata{ChatTemplate: "new"}, nil)
	f, err := Open(path)
	if err != nil || f.Meta.ChatTemplate != "new" {
		t.Fatalf("replaced file: %v", err)
	}
	f.Close()
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("after replace, directory holds %v", names)
	}

	if _, err := Create(filepath.Join(dir, "no", "such", "dir.upg")); err == nil {
		t.Error("Create in missing directory succeeded")
	}
}

func TestWriterValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.upg")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.AddTensor("a", []int{1}, nil, []byte{1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		shape  []int
		params string
		want   string
	}{
		{"a", nil, "", `duplicate tensor "a"`},
		{"", nil, "", `invalid tensor name`},
		{"\xff", nil, "", `invalid tensor name`},
		{"b", []int{2, -1}, "", `negative dimension`},
		{"b", nil, "{bad", `params`},
	} {
		var p json.RawMessage
		if c.params != "" {
			p = json.RawMessage(c.params)
		}
		if err := w.AddTensor(c.name, c.shape, p, []byte{1}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddTensor(%q, %v, %q) = %v, want %q", c.name, c.shape, c.params, err, c.want)
		}
	}
	for _, m := range []Metadata{
		{Extra: map[string]json.RawMessage{"tensors": json.RawMessage(`1`)}},
		{Architecture: json.RawMessage(`{"a":`)},
		{ChatTemplate: "\xff"},
	} {
		if err := w.SetMetadata(m); err == nil {
			t.Errorf("SetMetadata(%+v) accepted", m)
		}
	}
	// The writer is still usable and the file is valid.
	if err := w.AddTensor("b", []int{1}, nil, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Tensors) != 2 || f.Verify() != nil {
		t.Errorf("tensors %v, verify %v", f.Tensors, f.Verify())
	}
}

// FuzzHeader fuzzes the header JSON behind valid checksums, which FuzzParse
// rarely gets past.
func FuzzHeader(f *testing.F) {
	orig := smallFile(f)
	hoff := binary.LittleEndian.Uint64(orig[len(orig)-32:])
	f.Add(orig[hoff : len(orig)-32])
	f.Add([]byte(`{"tensors":[{"name":"a","shape":[1],"offset":4096,"length":1,"crc32c":0}],"requires":["zz"]}`))
	f.Add([]byte(`{"tensors":null,"architecture":null,"tokenizer":{"a":"AAEC"},"x":[1,2]}`))
	f.Fuzz(func(t *testing.T, header []byte) {
		checkParse(t, withHeader(orig, header))
	})
}

func FuzzParse(f *testing.F) {
	orig := smallFile(f)
	f.Add(orig)
	f.Add(orig[:len(orig)/2])
	f.Add(setVersion(orig, 1, 3, 0))
	f.Add(reheader(f, orig, func(top map[string]any) { top["tensors"] = []any{} }))
	f.Add([]byte("UPG\x00"))
	f.Fuzz(checkParse)
}

// checkParse parses data and, if it is accepted, exercises every tensor.
func checkParse(t *testing.T, data []byte) {
	file, err := Parse(data, "fuzz.upg")
	if err != nil {
		if !strings.HasPrefix(err.Error(), "upg: fuzz.upg: ") {
			t.Fatalf("error does not name the file: %v", err)
		}
		return
	}
	verr := file.Verify()
	file.VerifyOnAccess = true
	for _, e := range file.Tensors {
		_, b, err := file.Tensor(e.Name)
		if err == nil && (int64(len(b)) != e.Length || e.Offset%file.align != 0) {
			t.Fatalf("tensor %q: %d bytes at %d, entry %+v", e.Name, len(b), e.Offset, e)
		}
		if err == nil && verr == nil && crc(b) != e.CRC32C {
			t.Fatalf("tensor %q passed Verify with a bad checksum", e.Name)
		}
	}
}

// TestHeaderSize: a file is its tensors' data and alignment padding plus
// HeaderSize of its metadata and directory, to the byte; wider directory
// values (as a planner assumes before the tensors exist) only add bytes.
func TestHeaderSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.upg")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	m := Metadata{Architecture: json.RawMessage(`{"arch":"x","layers":2}`), Tokenizer: map[string][]byte{"tok.json.gz": bytes.Repeat([]byte{0, 1, 2, 250}, 777)},
		ChatTemplate: "<|user|>{{ m }}", Generation: json.RawMessage(`{"bos_token_id":1}`), Provenance: json.RawMessage(`{"created":"2026-11-30T14:00:00Z"}`), Requires: []string{"test:known"}}
	if err := w.SetMetadata(m); err != nil {
		t.Fatal(err)
	}
	var data int64
	for i, n := range []int{10, 5000, 3} {
		if err := w.AddTensor(fmt.Sprintf("t%d", i), []int{n}, json.RawMessage(`{"codec": "f32"}`), make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		data += int64(n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	entries := f.Tensors
	f.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := HeaderSize(m, entries)
	if err != nil {
		t.Fatal(err)
	}
	// Padding: the preamble (32 bytes) up to 4096, 4106 up to 8192, 13192 up to 16384.
	pad := int64(4096-32) + (8192 - 4106) + (16384 - 13192)
	if got := hs + data + pad; got != st.Size() {
		t.Errorf("HeaderSize %d + data %d + padding %d = %d, file has %d bytes", hs, data, pad, got, st.Size())
	}
	wide := append([]TensorEntry(nil), entries...)
	for i := range wide {
		wide[i].Offset, wide[i].Length, wide[i].CRC32C = 1<<40, 1<<40, 1<<32-1
	}
	if hw, _ := HeaderSize(m, wide); hw <= hs {
		t.Errorf("wider directory values: HeaderSize %d, want more than %d", hw, hs)
	}
}

// TestRemovePartial: the temporary files of open writers go, those of
// closed and aborted ones are not listed, existing files stay, and the
// removed writers' later calls fail.
func TestRemovePartial(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.upg")
	writeFile(t, path, Metadata{ChatTemplate: "old"}, nil)
	w1, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := Create(filepath.Join(dir, "b.upg"))
	if err != nil {
		t.Fatal(err)
	}
	done, _ := Create(filepath.Join(dir, "c.upg"))
	if err := done.Close(); err != nil {
		t.Fatal(err)
	}
	aborted, _ := Create(filepath.Join(dir, "d.upg"))
	aborted.Abort()
	if err := w1.AddTensor("x", []int{3}, nil, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	removed := RemovePartial()
	if len(removed) != 2 || !strings.HasPrefix(filepath.Base(removed[0]), "b.upg.tmp-") || !strings.HasPrefix(filepath.Base(removed[1]), "model.upg.tmp-") {
		t.Fatalf("RemovePartial = %v", removed)
	}
	if names := dirNames(t, dir); strings.Join(names, " ") != "c.upg model.upg" {
		t.Fatalf("after RemovePartial the directory holds %v", names)
	}
	if err := w1.Close(); err == nil {
		t.Error("Close of a writer whose file RemovePartial removed succeeded")
	}
	w2.Abort()
	if got := RemovePartial(); len(got) != 0 {
		t.Errorf("second RemovePartial = %v", got)
	}
	f, err := Open(path)
	if err != nil || f.Meta.ChatTemplate != "old" {
		t.Fatalf("the existing file after RemovePartial: %v", err)
	}
	f.Close()
}
