package upgfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/upg-ai/upg/internal/mmap"
)

// Metadata is everything in a .upg file except the tensors.
type Metadata struct {
	// Version is the format version "major.minor" of the file; set by the
	// reader, ignored by the writer (which writes MajorVersion.MinorVersion).
	Version string
	// Architecture is the model config (defined by the loader).
	Architecture json.RawMessage
	// Tokenizer holds tokenizer files embedded verbatim, by file name
	// (e.g. "tokenizer.json", "cl100k_base.tiktoken").
	Tokenizer map[string][]byte
	// ChatTemplate is the chat template source.
	ChatTemplate string
	// Generation holds generation defaults.
	Generation json.RawMessage
	// Provenance holds source file hashes, compressor version and settings
	// and measured quality.
	Provenance json.RawMessage
	// Requires lists features a reader must support to use the file.
	Requires []string
	// Extra holds further top-level header keys (forward compatibility);
	// keys must not collide with the keys above.
	Extra map[string]json.RawMessage
}

// TensorEntry is one tensor directory entry.
type TensorEntry struct {
	Name   string          `json:"name"`
	Shape  []int           `json:"shape"`
	Params json.RawMessage `json:"params,omitempty"` // codec parameters, opaque here
	Offset int64           `json:"offset"`           // from the start of the file
	Length int64           `json:"length"`           // data bytes
	CRC32C uint32          `json:"crc32c"`           // CRC-32C of the data
}

var (
	featureMu sync.RWMutex
	features  = map[string]bool{}
)

// RegisterFeature declares that this program supports the named feature
// (e.g. "codec:trellis"), so files listing it in "requires" are accepted.
func RegisterFeature(name string) {
	featureMu.Lock()
	features[name] = true
	featureMu.Unlock()
}

func featureKnown(name string) bool {
	featureMu.RLock()
	defer featureMu.RUnlock()
	return features[name]
}

// File is an open .upg file. Its methods are safe for concurrent use, except
// Close.
type File struct {
	Path    string        // name used in error messages
	Meta    Metadata      // metadata; stays valid after Close
	Tensors []TensorEntry // directory in file order

	// VerifyOnAccess makes Tensor check a tensor's CRC the first time it is
	// returned. Set it before calling Tensor.
	VerifyOnAccess bool

	data     []byte // whole file (mmapped by Open)
	mapped   bool
	align    int64
	index    map[string]int
	verified []atomic.Bool
}

// Open memory-maps the file at path read-only and validates its preamble,
// trailer, header and directory. Tensor data is checked by Verify (or by
// Tensor when VerifyOnAccess is set).
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upg: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("upg: %w", err)
	}
	size := st.Size()
	if size < preambleSize+trailerSize {
		// Too small to map usefully; read it so Parse gives the precise error.
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("upg: %w", err)
		}
		return Parse(b, path)
	}
	if size > math.MaxInt {
		return nil, unsupported(path, "file of %d bytes is too large to map", size)
	}
	data, err := mmap.Map(fd, int(size))
	if err != nil {
		return nil, fmt.Errorf("upg: %s: mmap: %w", path, err)
	}
	f, err := Parse(data, path)
	if err != nil {
		mmap.Unmap(data)
		return nil, err
	}
	f.mapped = true
	return f, nil
}

// Parse validates a whole .upg file held in data; name is used in error
// messages. Tensor slices returned by the File alias data.
func Parse(data []byte, name string) (*File, error) {
	size := int64(len(data))
	if size >= 4 && string(data[:4]) != Magic {
		return nil, corrupt(name, "not a .upg file (bad magic %q)", data[:4])
	}
	if size < preambleSize+trailerSize {
		return nil, truncated(name, "file is %d bytes, a .upg file has at least %d", size, preambleSize+trailerSize)
	}

	// Preamble. The version is checked before anything else so that a newer
	// major version, whose layout may differ, gets the version message.
	pre := data[:preambleSize]
	major := binary.LittleEndian.Uint16(pre[4:])
	minor := binary.LittleEndian.Uint16(pre[6:])
	if major > MajorVersion {
		return nil, unsupported(name, "format version %d.%d is newer than this reader (%d.x); upgrade upg", major, minor, MajorVersion)
	}
	if major < MajorVersion {
		return nil, unsupported(name, "format version %d.%d is not supported by this reader (%d.x)", major, minor, MajorVersion)
	}
	if got, want := crc(pre[:28]), binary.LittleEndian.Uint32(pre[28:]); got != want {
		return nil, corrupt(name, "preamble checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if flags := binary.LittleEndian.Uint32(pre[8:]); flags != 0 {
		return nil, unsupported(name, "file uses format flags %#x unknown to this reader; upgrade upg", flags)
	}
	align := int64(binary.LittleEndian.Uint32(pre[12:]))
	if align < minAlign || align > maxAlign || align&(align-1) != 0 {
		return nil, corrupt(name, "alignment %d is not a power of two in [%d, %d]", align, minAlign, maxAlign)
	}
	for _, b := range pre[16:28] {
		if b != 0 {
			return nil, corrupt(name, "reserved preamble bytes are not zero")
		}
	}

	// Trailer.
	tr := data[size-trailerSize:]
	if string(tr[28:]) != Magic {
		return nil, truncated(name, "no trailer at end of file (the file was cut off, or its writer did not finish)")
	}
	if got, want := crc(tr[:24]), binary.LittleEndian.Uint32(tr[24:]); got != want {
		return nil, corrupt(name, "trailer checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if binary.LittleEndian.Uint32(tr[20:]) != 0 {
		return nil, corrupt(name, "reserved trailer bytes are not zero")
	}
	hoff := binary.LittleEndian.Uint64(tr[0:])
	hlen := binary.LittleEndian.Uint64(tr[8:])
	hend := uint64(size - trailerSize)
	if hoff < preambleSize || hoff > hend || hlen != hend-hoff {
		return nil, corrupt(name, "header extent [%d, +%d) does not end at the trailer (file is %d bytes)", hoff, hlen, size)
	}
	header := data[hoff:hend]
	if got, want := crc(header), binary.LittleEndian.Uint32(tr[16:]); got != want {
		return nil, corrupt(name, "header checksum mismatch (stored %#08x, computed %#08x)", want, got)
	}

	f := &File{Path: name, data: data, align: align}
	if err := f.parseHeader(header); err != nil {
		return nil, err
	}
	f.Meta.Version = fmt.Sprintf("%d.%d", major, minor)

	// Directory: canonical placement, which also rules out overlaps and
	// out-of-bounds extents.
	cursor := int64(preambleSize)
	f.index = make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		if t.Name == "" {
			return nil, corrupt(name, "tensor %d has an empty name", i)
		}
		if _, dup := f.index[t.Name]; dup {
			return nil, corrupt(name, "tensor %q appears twice in the directory", t.Name)
		}
		f.index[t.Name] = i
		for _, d := range t.Shape {
			if d < 0 {
				return nil, corrupt(name, "tensor %q has negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		want := alignUp(cursor, align)
		if t.Offset != want {
			return nil, corrupt(name, "tensor %q at offset %d, expected %d", t.Name, t.Offset, want)
		}
		if t.Length < 0 || t.Length > int64(hoff)-t.Offset {
			return nil, corrupt(name, "tensor %q extent [%d, +%d) runs past the data section (ends at %d)", t.Name, t.Offset, t.Length, hoff)
		}
		cursor = t.Offset + t.Length
	}
	if cursor != int64(hoff) {
		return nil, corrupt(name, "tensor data ends at %d but the header starts at %d", cursor, hoff)
	}
	f.verified = make([]atomic.Bool, len(f.Tensors))
	return f, nil
}

// parseHeader decodes the header JSON into f.Meta and f.Tensors.
func (f *File) parseHeader(header []byte) error {
	if !utf8.Valid(header) {
		return corrupt(f.Path, "header is not valid UTF-8")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(header, &top); err != nil {
		return corrupt(f.Path, "header JSON: %v", err)
	}
	if top == nil {
		return corrupt(f.Path, "header JSON is not an object")
	}
	m := &f.Meta
	field := func(key string, dst any) error {
		raw, ok := top[key]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return corrupt(f.Path, "header key %q: %v", key, err)
		}
		return nil
	}
	// Requires first: an unknown required feature may change the meaning of
	// everything else.
	if err := field(keyRequires, &m.Requires); err != nil {
		return err
	}
	for _, r := range m.Requires {
		if !featureKnown(r) {
			return unsupported(f.Path, "file requires feature %q, which this reader does not support; upgrade upg", r)
		}
	}
	if err := field(keyTokenizer, &m.Tokenizer); err != nil {
		return err
	}
	if err := field(keyChatTemplate, &m.ChatTemplate); err != nil {
		return err
	}
	if err := field(keyTensors, &f.Tensors); err != nil {
		return err
	}
	for _, raw := range []struct {
		key string
		dst *json.RawMessage
	}{{keyArchitecture, &m.Architecture}, {keyGeneration, &m.Generation}, {keyProvenance, &m.Provenance}} {
		if v, ok := top[raw.key]; ok && !isNull(v) {
			*raw.dst = v
		}
	}
	for k, v := range top {
		if !knownKeys[k] {
			if m.Extra == nil {
				m.Extra = map[string]json.RawMessage{}
			}
			m.Extra[k] = v
		}
	}
	for i := range f.Tensors {
		if isNull(f.Tensors[i].Params) {
			f.Tensors[i].Params = nil
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || bytes.Equal(raw, []byte("null")) }

// Tensor returns the directory entry and data of the named tensor. The data
// is a read-only view of the file (writing to it crashes when mmapped) and
// is valid until Close.
func (f *File) Tensor(name string) (TensorEntry, []byte, error) {
	i, ok := f.index[name]
	if !ok {
		return TensorEntry{}, nil, fmt.Errorf("upg: %s: no tensor %q", f.Path, name)
	}
	if f.data == nil {
		return TensorEntry{}, nil, fmt.Errorf("upg: %s: file is closed", f.Path)
	}
	t := f.Tensors[i]
	b := f.data[t.Offset : t.Offset+t.Length : t.Offset+t.Length]
	if f.VerifyOnAccess && !f.verified[i].Load() {
		if err := f.checkTensor(i); err != nil {
			return TensorEntry{}, nil, err
		}
		f.verified[i].Store(true)
	}
	return t, b, nil
}

func (f *File) checkTensor(i int) error {
	t := f.Tensors[i]
	if got := crc(f.data[t.Offset : t.Offset+t.Length]); got != t.CRC32C {
		return corrupt(f.Path, "tensor %q: data checksum mismatch (stored %#08x, computed %#08x)", t.Name, t.CRC32C, got)
	}
	return nil
}

// Verify checks the CRC of every tensor and that all padding is zero
// (preamble, trailer and header were checked by Open). It reports every
// damaged region, each naming the tensor or padding range.
func (f *File) Verify() error {
	if f.data == nil {
		return fmt.Errorf("upg: %s: file is closed", f.Path)
	}
	var errs []error
	cursor := int64(preambleSize)
	for i, t := range f.Tensors {
		if !allZero(f.data[cursor:t.Offset]) {
			errs = append(errs, corrupt(f.Path, "padding [%d, %d) before tensor %q is not zero", cursor, t.Offset, t.Name))
		}
		if err := f.checkTensor(i); err != nil {
			errs = append(errs, err)
		} else {
			f.verified[i].Store(true)
		}
		cursor = t.Offset + t.Length
	}
	return errors.Join(errs...)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Close releases the mapping; tensor data slices become invalid. Metadata and
// directory stay valid.
func (f *File) Close() error {
	data := f.data
	f.data = nil
	if f.mapped && data != nil {
		if err := mmap.Unmap(data); err != nil {
			return fmt.Errorf("upg: %s: munmap: %w", f.Path, err)
		}
	}
	return nil
}
