package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/tensor"
)

// testTensor is one tensor of a synthetic file.
type testTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// build writes a safetensors file: tensors are laid out in the given order,
// back to back, and the header lists them with their data_offsets.
func build(t testing.TB, tensors []testTensor, meta map[string]string) []byte {
	t.Helper()
	header := map[string]any{}
	if meta != nil {
		header["__metadata__"] = meta
	}
	var data []byte
	for _, tt := range tensors {
		begin := len(data)
		data = append(data, tt.data...)
		shape := tt.shape
		if shape == nil {
			shape = []int{}
		}
		header[tt.name] = map[string]any{"dtype": tt.dtype, "shape": shape, "data_offsets": []int{begin, len(data)}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return assemble(h, data)
}

// assemble joins a raw JSON header and a data section.
func assemble(header, data []byte) []byte {
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	buf = append(buf, header...)
	return append(buf, data...)
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func u16Bytes(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

// sample is a small valid file with all three float dtypes and metadata.
// The BF16 and F16 bit patterns are written by hand (not through package
// tensor) so that decoding is checked against independent values.
func sample(t testing.TB) []byte {
	return build(t, []testTensor{
		{"w.f32", "F32", []int{2, 3}, f32Bytes(1, -2, 0.5, 3.25, -0.125, 1e-3)},
		// BF16: 0x3F80 = 1, 0xC000 = -2, 0x3EC0 = 0.375, 0x7F80 = +Inf.
		{"w.bf16", "BF16", []int{4}, u16Bytes(0x3F80, 0xC000, 0x3EC0, 0x7F80)},
		// F16: 0x3C00 = 1, 0xC500 = -5, 0x3555 = 0.333251953125, 0x0001 = 2^-24 (subnormal), 0x7BFF = 65504.
		{"w.f16", "F16", []int{5, 1}, u16Bytes(0x3C00, 0xC500, 0x3555, 0x0001, 0x7BFF)},
		{"scalar", "F32", nil, f32Bytes(42)},
	}, map[string]string{"format": "pt", "note": "synthetic"})
}

func decode(t *testing.T, f *File, name string) []float32 {
	t.Helper()
	data, dt, ti, err := f.Data(name)
	if err != nil {
		t.Fatalf("Data(%q): %v", name, err)
	}
	n, _ := tensor.NumElements(ti.Shape)
	out := make([]float32, n)
	if err := tensor.ToFloat32(out, data, dt); err != nil {
		t.Fatalf("decode %q: %v", name, err)
	}
	return out
}

func TestParseValid(t *testing.T) {
	f, err := Parse(sample(t), "sample.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Metadata, map[string]string{"format": "pt", "note": "synthetic"}; !equalMaps(got, want) {
		t.Errorf("metadata = %v, want %v", got, want)
	}
	if want := []string{"w.f32", "w.bf16", "w.f16", "scalar"}; !slices.Equal(f.Names, want) {
		t.Errorf("names = %v, want data order %v", f.Names, want)
	}
	if _, ok := f.Tensors["__metadata__"]; ok {
		t.Error("__metadata__ listed as a tensor")
	}
	cases := []struct {
		name  string
		dtype tensor.DType
		shape []int
		want  []float32
	}{
		{"w.f32", tensor.F32, []int{2, 3}, []float32{1, -2, 0.5, 3.25, -0.125, 1e-3}},
		{"w.bf16", tensor.BF16, []int{4}, []float32{1, -2, 0.375, float32(math.Inf(1))}},
		{"w.f16", tensor.F16, []int{5, 1}, []float32{1, -5, 0.333251953125, 1.0 / (1 << 24), 65504}},
		{"scalar", tensor.F32, []int{}, []float32{42}},
	}
	for _, c := range cases {
		_, dt, ti, err := f.Data(c.name)
		if err != nil {
			t.Fatalf("Data(%q): %v", c.name, err)
		}
		if dt != c.dtype || !slices.Equal(ti.Shape, c.shape) {
			t.Errorf("%s: dtype %v shape %v, want %v %v", c.name, dt, ti.Shape, c.dtype, c.shape)
		}
		if got := decode(t, f, c.name); !slices.Equal(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if _, _, _, err := f.Data("missing"); err == nil || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), "sample.safetensors") {
		t.Errorf("Data(missing) error = %v, want one naming the tensor and file", err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(p, sample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, f, "w.bf16"); got[1] != -2 {
		t.Errorf("w.bf16[1] = %v, want -2", got[1])
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	missing := filepath.Join(dir, "nope.safetensors")
	if _, err := Open(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) error = %v, want one naming %s", err, missing)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open(dir) error = %v, want one naming %s", err, dir)
	}
	empty := filepath.Join(dir, "empty.safetensors")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open(empty) error = %v, want a truncation error naming %s", err, empty)
	}
}

// A valid file cut at any length must give an error naming the file.
func TestTruncatedEverywhere(t *testing.T) {
	full := sample(t)
	for n := 0; n < len(full); n++ {
		f, err := Parse(full[:n:n], "cut.safetensors")
		if err == nil {
			t.Fatalf("truncated to %d of %d bytes: parsed %d tensors, want an error", n, len(full), len(f.Names))
		}
		if !strings.Contains(err.Error(), "cut.safetensors") {
			t.Fatalf("truncated to %d bytes: error %q does not name the file", n, err)
		}
	}
}

func wantError(t *testing.T, buf []byte, fragments ...string) {
	t.Helper()
	f, err := Parse(buf, "bad.safetensors")
	if err == nil {
		t.Fatalf("parsed %v, want an error mentioning %q", f.Names, fragments)
	}
	for _, s := range append(fragments, "bad.safetensors") {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestHeaderLength(t *testing.T) {
	full := sample(t)
	n := binary.LittleEndian.Uint64(full)

	b := bytes.Clone(full)
	binary.LittleEndian.PutUint64(b, uint64(len(full))) // 8 bytes more than there are
	wantError(t, b, "truncated", fmt.Sprint(len(full)))

	binary.LittleEndian.PutUint64(b, math.MaxUint64)
	wantError(t, b, "header length")

	binary.LittleEndian.PutUint64(b, 1<<63) // would be negative as int64
	wantError(t, b, "header length")

	binary.LittleEndian.PutUint64(b, n-1) // cuts the JSON short
	wantError(t, b, "JSON")

	binary.LittleEndian.PutUint64(b, 0) // empty header
	wantError(t, b, "JSON")
}

func entry(dtype string, shape []int, begin, end int64) string {
	s, _ := json.Marshal(map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int64{begin, end}})
	return string(s)
}

func TestBadEntries(t *testing.T) {
	data := make([]byte, 32)
	cases := []struct {
		name      string
		header    string
		fragments []string
	}{
		{"overrun", `{"a":` + entry("F32", []int{4}, 24, 40) + `}`, []string{`"a"`, "overruns", "40"}},
		{"overrun huge", `{"a":` + entry("F32", []int{2}, math.MaxInt64-8, math.MaxInt64) + `}`, []string{`"a"`, "overruns"}},
		{"negative begin", `{"a":` + entry("F32", []int{1}, -4, 0) + `}`, []string{`"a"`, "data_offsets"}},
		{"end before begin", `{"a":` + entry("F32", []int{0}, 8, 4) + `}`, []string{`"a"`, "data_offsets"}},
		{"one offset", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, []string{`"a"`}},
		{"three offsets", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, []string{`"a"`}},
		{"no offsets", `{"a":{"dtype":"F32","shape":[1]}}`, []string{`"a"`}},
		{"overlap", `{"a":` + entry("F32", []int{4}, 0, 16) + `,"b":` + entry("F32", []int{2}, 8, 16) + `}`, []string{`"a"`, `"b"`, "overlap"}},
		{"overlap nested", `{"a":` + entry("F32", []int{8}, 0, 32) + `,"b":` + entry("F32", []int{1}, 4, 8) + `,"c":` + entry("F32", []int{1}, 12, 16) + `}`, []string{"overlap"}},
		{"duplicate range", `{"a":` + entry("BF16", []int{2}, 0, 4) + `,"b":` + entry("F16", []int{2}, 0, 4) + `}`, []string{"overlap"}},
		{"shape too small", `{"a":` + entry("F32", []int{3}, 0, 16) + `}`, []string{`"a"`, "[3]", "3 elements of 4 bytes", "give 16 bytes"}},
		{"shape too large", `{"a":` + entry("BF16", []int{2, 5}, 0, 16) + `}`, []string{`"a"`, "[2 5]", "10 elements of 2 bytes", "give 16 bytes"}},
		{"negative dim", `{"a":` + entry("F32", []int{-1, -4}, 0, 16) + `}`, []string{`"a"`, "shape"}},
		// 2^62 F32 elements = 2^64 bytes, which wraps to 0 in 64-bit arithmetic.
		{"element count overflow", `{"a":` + entry("F32", []int{1 << 31, 1 << 31}, 0, 0) + `}`, []string{`"a"`}},
		{"element count overflow 2", `{"a":` + entry("F32", []int{1 << 62}, 0, 0) + `}`, []string{`"a"`}},
		{"dims overflow int", `{"a":` + entry("F32", []int{1 << 40, 1 << 40}, 0, 0) + `}`, []string{`"a"`, "shape"}},
		{"not json", `{"a": [`, []string{"JSON"}},
		{"json array", `[1, 2]`, []string{"JSON"}},
		{"entry not object", `{"a": 7}`, []string{`"a"`}},
		{"shape not ints", `{"a":{"dtype":"F32","shape":["x"],"data_offsets":[0,4]}}`, []string{`"a"`}},
		{"fractional offset", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}`, []string{`"a"`}},
		{"metadata not strings", `{"__metadata__":{"n":1}}`, []string{"__metadata__"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, assemble([]byte(c.header), data), c.fragments...)
		})
	}
}

func TestUnknownDType(t *testing.T) {
	for _, dt := range []string{"I64", "F8_E4M3", "", "f32"} {
		buf := build(t, []testTensor{
			{"ids", dt, []int{2}, make([]byte, 16)},
			{"w", "F32", []int{2}, f32Bytes(1.5, 2.5)},
		}, nil)
		f, err := Parse(buf, "odd.safetensors")
		if err != nil {
			t.Fatalf("dtype %q: parse failed: %v (only Data should fail)", dt, err)
		}
		if f.Tensors["ids"].DType != dt {
			t.Errorf("DType = %q, want %q", f.Tensors["ids"].DType, dt)
		}
		_, _, _, err = f.Data("ids")
		if err == nil {
			t.Fatalf("dtype %q: Data succeeded, want an error", dt)
		}
		for _, s := range []string{"odd.safetensors", `"ids"`, fmt.Sprintf("%q", dt)} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("dtype %q: error %q does not mention %s", dt, err, s)
			}
		}
		if got := decode(t, f, "w"); !slices.Equal(got, []float32{1.5, 2.5}) {
			t.Errorf("w = %v, want [1.5 2.5]", got)
		}
	}
}

func TestEdgeCasesAccepted(t *testing.T) {
	// No tensors at all, and a zero-size tensor next to a real one.
	if f, err := Parse(assemble([]byte(`{}`), nil), "e"); err != nil || len(f.Names) != 0 {
		t.Errorf("empty header: %v, %v", f, err)
	}
	for _, names := range [][2]string{{"a", "z"}, {"z", "a"}} {
		h := `{"` + names[0] + `":` + entry("F32", []int{0}, 0, 0) + `,"` + names[1] + `":` + entry("F32", []int{1}, 0, 4) + `}`
		f, err := Parse(assemble([]byte(h), f32Bytes(7)), "z")
		if err != nil {
			t.Errorf("zero-size tensor %q beside %q: %v", names[0], names[1], err)
			continue
		}
		if got := decode(t, f, names[1]); !slices.Equal(got, []float32{7}) {
			t.Errorf("%s = %v, want [7]", names[1], got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add(assemble([]byte(`{"a":`+entry("F32", []int{1 << 31, 1 << 31}, 0, 0)+`}`), nil))
	f.Add(assemble([]byte(`{"a":`+entry("I64", []int{2}, 0, 16)+`}`), make([]byte, 16)))
	f.Add(assemble([]byte(`{"__metadata__":{"k":"v"},"b":`+entry("BF16", []int{2, 2}, 0, 8)+`}`), make([]byte, 8)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		file, err := Parse(buf, "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		// Everything a parsed file claims must be readable without panicking.
		var prevEnd int64
		for _, name := range file.Names {
			if ti := file.Tensors[name]; ti.Begin < prevEnd {
				t.Fatalf("tensor %q starts at %d, before the previous one ends (%d)", name, ti.Begin, prevEnd)
			} else {
				prevEnd = ti.End
			}
			data, dt, ti, err := file.Data(name)
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
					t.Fatalf("Data error %q does not name tensor %q", err, name)
				}
				continue
			}
			n, ok := tensor.NumElements(ti.Shape)
			if !ok || n*dt.Size() != len(data) {
				t.Fatalf("tensor %q: shape %v of %s but %d bytes", name, ti.Shape, dt, len(data))
			}
			out := make([]float32, n)
			if err := tensor.ToFloat32(out, data, dt); err != nil {
				t.Fatal(err)
			}
		}
	})
}
