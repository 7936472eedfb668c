// Package gguf reads GGUF files (versions 2 and 3), the single-file model
// format of ggml/llama.cpp.
//
// Layout: magic "GGUF", uint32 version, uint64 tensor count, uint64 metadata
// key/value count, the key/values (typed scalars, strings and arrays), the
// tensor infos (name, dims in ggml order, type, offset), padding to
// general.alignment (default 32) and then the tensor data section. All
// integers are little-endian.
//
// Open memory-maps the file read-only; TensorData returns zero-copy slices of
// the mapping that stay valid until Close. Metadata values are copied into Go
// values (scalars as their Go type, arrays as typed slices) and stay valid
// after Close.
//
// The parser never trusts a count: every length is checked against the bytes
// that remain before anything is allocated, tensor extents must lie inside the
// file, and corrupt input yields an error naming the file, never a panic.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"

	"github.com/upg-ai/upg/internal/mmap"
)

// DefaultAlignment is the data alignment used when general.alignment is absent.
const DefaultAlignment = 32

// Metadata value types.
const (
	vtUint8   = 0
	vtInt8    = 1
	vtUint16  = 2
	vtInt16   = 3
	vtUint32  = 4
	vtInt32   = 5
	vtFloat32 = 6
	vtBool    = 7
	vtString  = 8
	vtArray   = 9
	vtUint64  = 10
	vtInt64   = 11
	vtFloat64 = 12
)

// maxArrayDepth bounds nesting of arrays of arrays.
const maxArrayDepth = 16

// TensorInfo describes one tensor of the file.
type TensorInfo struct {
	Name string
	// Dims are in ggml "ne" order: Dims[0] is the fastest-varying
	// dimension (the columns of a matrix).
	Dims []uint64
	Type GGMLType
	// Offset is relative to the start of the data section.
	Offset uint64
	// Size is the data size in bytes computed from the type's block size;
	// 0 when Type is unknown to this package.
	Size uint64
}

// Elements returns the number of elements (product of Dims).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file.
type File struct {
	Path    string
	Version uint32
	// Metadata maps keys to values: scalars as uint8, int8, uint16,
	// int16, uint32, int32, uint64, int64, float32, float64, bool, string;
	// arrays as typed slices ([]string, []float32, []int32, []uint32,
	// []uint8, ...); arrays of arrays as []any.
	Metadata map[string]any
	// Keys lists the metadata keys in file order.
	Keys    []string
	Tensors []TensorInfo
	// Alignment is the data alignment in effect.
	Alignment uint64

	data       []byte // whole file
	dataOffset uint64 // start of the tensor data section within data
	index      map[string]int
	closer     func() error
}

// Open memory-maps the GGUF file at path read-only and parses it.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size < 24 {
		return nil, fmt.Errorf("gguf: %s: file of %d bytes is too small for a GGUF header", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: file too large to map", path)
	}
	data, err := mmap.Map(fd, int(size))
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: mmap: %w", path, err)
	}
	f, err := Parse(data, path)
	if err != nil {
		mmap.Unmap(data)
		return nil, err
	}
	f.closer = func() error { return mmap.Unmap(data) }
	return f, nil
}

// Close releases the mapping made by Open. Slices returned by TensorData
// must not be used afterwards. Close is a no-op for files made by Parse.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	f.data = nil
	return c()
}

// reader is a bounds-checked little-endian cursor.
type reader struct {
	b   []byte
	pos uint64
	err error
}

func (r *reader) remaining() uint64 { return uint64(len(r.b)) - r.pos }

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.remaining() {
		r.fail("truncated reading %s at offset %d: need %d bytes, %d left", what, r.pos, n, r.remaining())
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) u8(what string) uint8 {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(what string) uint16 {
	b := r.bytes(2, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *reader) u32(what string) uint32 {
	b := r.bytes(4, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64(what string) uint64 {
	b := r.bytes(8, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) str(what string) string {
	n := r.u64(what + " length")
	return string(r.bytes(n, what))
}

// Parse parses a GGUF image held in data; name is used in error messages
// and as File.Path. The returned File references data (tensor data is not
// copied).
func Parse(data []byte, name string) (*File, error) {
	f, err := parse(data, name)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", name, err)
	}
	return f, nil
}

func parse(data []byte, name string) (*File, error) {
	r := &reader{b: data}
	magic := r.bytes(4, "magic")
	if r.err != nil {
		return nil, r.err
	}
	if string(magic) != "GGUF" {
		return nil, fmt.Errorf("not a GGUF file (magic %q)", magic)
	}
	f := &File{Path: name, Metadata: map[string]any{}, data: data, index: map[string]int{}}
	f.Version = r.u32("version")
	if r.err != nil {
		return nil, r.err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("unsupported GGUF version %d (supported: 2, 3)", f.Version)
	}
	nTensors := r.u64("tensor count")
	nKV := r.u64("metadata count")
	if r.err != nil {
		return nil, r.err
	}
	// Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes;
	// each tensor info at least 8 + 4 + 4 + 8.
	if nKV > r.remaining()/13 {
		return nil, fmt.Errorf("metadata count %d impossible for %d remaining bytes", nKV, r.remaining())
	}
	for i := uint64(0); i < nKV; i++ {
		key := r.str("metadata key")
		vt := r.u32("metadata value type")
		if r.err != nil {
			return nil, fmt.Errorf("metadata %d: %w", i, r.err)
		}
		v := r.value(vt, 0)
		if r.err != nil {
			return nil, fmt.Errorf("metadata %q: %w", key, r.err)
		}
		if _, dup := f.Metadata[key]; dup {
			return nil, fmt.Errorf("duplicate metadata key %q", key)
		}
		f.Metadata[key] = v
		f.Keys = append(f.Keys, key)
	}

	f.Alignment = DefaultAlignment
	if v, ok := f.Metadata["general.alignment"]; ok {
		a, ok := toUint(v)
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return nil, fmt.Errorf("general.alignment %v is not a positive power of two", v)
		}
		f.Alignment = a
	}

	if nTensors > r.remaining()/24 {
		return nil, fmt.Errorf("tensor count %d impossible for %d remaining bytes", nTensors, r.remaining())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		var t TensorInfo
		t.Name = r.str("tensor name")
		nd := r.u32("tensor dims count")
		if r.err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, r.err)
		}
		if nd > 8 {
			return nil, fmt.Errorf("tensor %q: %d dimensions (max 8)", t.Name, nd)
		}
		t.Dims = make([]uint64, nd)
		elems := uint64(1)
		overflow := false
		for j := range t.Dims {
			t.Dims[j] = r.u64("tensor dim")
			hi, lo := bits.Mul64(elems, t.Dims[j])
			if hi != 0 || lo > math.MaxInt64 {
				overflow = true
			}
			elems = lo
		}
		t.Type = GGMLType(r.u32("tensor type"))
		t.Offset = r.u64("tensor offset")
		if r.err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, r.err)
		}
		if overflow {
			return nil, fmt.Errorf("tensor %q: dims %v overflow the element count", t.Name, t.Dims)
		}
		if _, dup := f.index[t.Name]; dup {
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d not a multiple of alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if ti, ok := typeInfos[t.Type]; ok {
			if nd > 0 && t.Dims[0]%ti.blockSize != 0 {
				return nil, fmt.Errorf("tensor %q: first dim %d not a multiple of %s block size %d", t.Name, t.Dims[0], t.Type, ti.blockSize)
			}
			hi, lo := bits.Mul64(elems/ti.blockSize, ti.typeSize)
			if hi != 0 {
				return nil, fmt.Errorf("tensor %q: size overflows", t.Name)
			}
			t.Size = lo
		}
		f.index[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	// Data section starts at the next multiple of the alignment.
	pos := r.pos
	if rem := pos % f.Alignment; rem != 0 {
		pos += f.Alignment - rem
	}
	f.dataOffset = pos
	if len(f.Tensors) == 0 {
		return f, nil
	}
	if pos > uint64(len(data)) {
		return nil, fmt.Errorf("data section at offset %d lies past end of file of %d bytes", pos, len(data))
	}
	dataLen := uint64(len(data)) - pos
	for _, t := range f.Tensors {
		end := t.Offset + t.Size
		if end < t.Offset || end > dataLen {
			return nil, fmt.Errorf("tensor %q data [%d,%d) overruns file of %d bytes", t.Name, pos+t.Offset, pos+t.Offset+t.Size, len(data))
		}
	}
	return f, nil
}

// value reads one metadata value of type vt.
func (r *reader) value(vt uint32, depth int) any {
	switch vt {
	case vtUint8:
		return r.u8("uint8")
	case vtInt8:
		return int8(r.u8("int8"))
	case vtUint16:
		return r.u16("uint16")
	case vtInt16:
		return int16(r.u16("int16"))
	case vtUint32:
		return r.u32("uint32")
	case vtInt32:
		return int32(r.u32("int32"))
	case vtFloat32:
		return math.Float32frombits(r.u32("float32"))
	case vtBool:
		b := r.u8("bool")
		if b > 1 {
			r.fail("invalid bool value %d", b)
		}
		return b == 1
	case vtString:
		return r.str("string")
	case vtUint64:
		return r.u64("uint64")
	case vtInt64:
		return int64(r.u64("int64"))
	case vtFloat64:
		return math.Float64frombits(r.u64("float64"))
	case vtArray:
		return r.array(depth)
	}
	r.fail("unknown metadata value type %d", vt)
	return nil
}

// minSize is the smallest encoding of one value of type vt.
func minSize(vt uint32) uint64 {
	switch vt {
	case vtUint8, vtInt8, vtBool:
		return 1
	case vtUint16, vtInt16:
		return 2
	case vtUint32, vtInt32, vtFloat32:
		return 4
	case vtUint64, vtInt64, vtFloat64, vtString:
		return 8
	case vtArray:
		return 12
	}
	return 1
}

func readArray[T any](r *reader, n uint64, read func() T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = read()
		if r.err != nil {
			return nil
		}
	}
	return s
}

func (r *reader) array(depth int) any {
	if depth >= maxArrayDepth {
		r.fail("arrays nested deeper than %d", maxArrayDepth)
		return nil
	}
	et := r.u32("array element type")
	n := r.u64("array length")
	if r.err != nil {
		return nil
	}
	if et > vtFloat64 {
		r.fail("unknown array element type %d", et)
		return nil
	}
	if n > r.remaining()/minSize(et) {
		r.fail("array length %d impossible for %d remaining bytes", n, r.remaining())
		return nil
	}
	switch et {
	case vtUint8:
		return readArray(r, n, func() uint8 { return r.u8("uint8") })
	case vtInt8:
		return readArray(r, n, func() int8 { return int8(r.u8("int8")) })
	case vtUint16:
		return readArray(r, n, func() uint16 { return r.u16("uint16") })
	case vtInt16:
		return readArray(r, n, func() int16 { return int16(r.u16("int16")) })
	case vtUint32:
		return readArray(r, n, func() uint32 { return r.u32("uint32") })
	case vtInt32:
		return readArray(r, n, func() int32 { return int32(r.u32("int32")) })
	case vtFloat32:
		return readArray(r, n, func() float32 { return math.Float32frombits(r.u32("float32")) })
	case vtBool:
		return readArray(r, n, func() bool { return r.value(vtBool, depth).(bool) })
	case vtString:
		return readArray(r, n, func() string { return r.str("string") })
	case vtUint64:
		return readArray(r, n, func() uint64 { return r.u64("uint64") })
	case vtInt64:
		return readArray(r, n, func() int64 { return int64(r.u64("int64")) })
	case vtFloat64:
		return readArray(r, n, func() float64 { return math.Float64frombits(r.u64("float64")) })
	default: // vtArray
		return readArray(r, n, func() any { return r.array(depth + 1) })
	}
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorData returns the named tensor's info and its raw bytes, a zero-copy
// slice of the file's data valid until Close.
func (f *File) TensorData(name string) (TensorInfo, []byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, nil, fmt.Errorf("gguf: %s: no tensor %q", f.Path, name)
	}
	if !t.Type.Known() {
		return t, nil, fmt.Errorf("gguf: %s: tensor %q has unsupported ggml type %s", f.Path, name, t.Type)
	}
	if f.data == nil {
		return t, nil, errors.New("gguf: " + f.Path + ": file is closed")
	}
	start := f.dataOffset + t.Offset
	return t, f.data[start : start+t.Size : start+t.Size], nil
}

func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// String returns a string metadata value.
func (f *File) String(key string) (string, bool) {
	s, ok := f.Metadata[key].(string)
	return s, ok
}

// Uint returns an integer metadata value of any integer kind if it is
// non-negative.
func (f *File) Uint(key string) (uint64, bool) { return toUint(f.Metadata[key]) }

// Float returns a float32/float64 (or integer) metadata value as float64.
func (f *File) Float(key string) (float64, bool) {
	switch x := f.Metadata[key].(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	u, ok := toUint(f.Metadata[key])
	return float64(u), ok
}

// Bool returns a bool metadata value.
func (f *File) Bool(key string) (bool, bool) {
	b, ok := f.Metadata[key].(bool)
	return b, ok
}

// Strings returns a string array metadata value.
func (f *File) Strings(key string) ([]string, bool) {
	s, ok := f.Metadata[key].([]string)
	return s, ok
}

// Float32s returns a float32 array metadata value.
func (f *File) Float32s(key string) ([]float32, bool) {
	s, ok := f.Metadata[key].([]float32)
	return s, ok
}

// Int32s returns an int32 array metadata value; uint32 arrays are accepted
// and converted (values above MaxInt32 make it fail).
func (f *File) Int32s(key string) ([]int32, bool) {
	switch s := f.Metadata[key].(type) {
	case []int32:
		return s, true
	case []uint32:
		out := make([]int32, len(s))
		for i, v := range s {
			if v > math.MaxInt32 {
				return nil, false
			}
			out[i] = int32(v)
		}
		return out, true
	}
	return nil, false
}
