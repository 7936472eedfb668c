// Package safetensors reads Hugging Face .safetensors files: an 8-byte
// little-endian header length, a JSON header describing each tensor
// (dtype, shape, byte range), then the raw tensor bytes. Files are
// memory-mapped; tensor data is returned as zero-copy slices.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"sort"

	"github.com/upg-ai/upg/internal/mmap"
	"github.com/upg-ai/upg/tensor"
)

// maxHeaderBytes bounds the JSON header (the reference implementation uses 100 MB).
const maxHeaderBytes = 100 << 20

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType string // as written in the file, e.g. "BF16"; see tensor.ParseDType
	Shape []int
	Begin int64 // byte range within the data section
	End   int64
}

// File is an opened (parsed and validated) safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	Tensors  map[string]TensorInfo
	Names    []string // in data order
	data     []byte   // data section
	mapping  *mmap.Mapping
}

// Open memory-maps and parses path.
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Parse(m.Data, path)
	if err != nil {
		m.Close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Close unmaps the file; slices returned by Data become invalid.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := f.mapping.Close()
	f.mapping = nil
	return err
}

type rawEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// Parse validates a whole safetensors file held in memory. name is used in errors.
func Parse(buf []byte, name string) (*File, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("safetensors: %s: %s", name, fmt.Sprintf(format, a...))
	}
	if len(buf) < 8 {
		return nil, fail("truncated: %d bytes, need at least 8 for the header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > maxHeaderBytes {
		return nil, fail("header length %d exceeds the %d byte limit (corrupt file?)", n, maxHeaderBytes)
	}
	if n > uint64(len(buf)-8) {
		return nil, fail("truncated: header claims %d bytes but only %d follow", n, len(buf)-8)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &raw); err != nil {
		return nil, fail("bad JSON header: %v", err)
	}
	f := &File{Path: name, Tensors: make(map[string]TensorInfo), data: buf[8+n:]}
	for key, msg := range raw {
		if key == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fail("bad __metadata__: %v", err)
			}
			continue
		}
		var e rawEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fail("tensor %q: bad entry: %v", key, err)
		}
		if len(e.DataOffsets) != 2 {
			return nil, fail("tensor %q: data_offsets %v must be [begin, end]", key, e.DataOffsets)
		}
		ti := TensorInfo{Name: key, DType: e.DType, Shape: e.Shape, Begin: e.DataOffsets[0], End: e.DataOffsets[1]}
		if ti.Begin < 0 || ti.End < ti.Begin {
			return nil, fail("tensor %q: bad data_offsets [%d, %d]", key, ti.Begin, ti.End)
		}
		if ti.End > int64(len(f.data)) {
			return nil, fail("tensor %q: data [%d, %d) overruns the %d-byte data section (truncated file?)", key, ti.Begin, ti.End, len(f.data))
		}
		numel, ok := tensor.NumElements(e.Shape)
		if !ok {
			return nil, fail("tensor %q: invalid shape %v", key, e.Shape)
		}
		if dt, err := tensor.ParseDType(e.DType); err == nil {
			// Compare element counts, not byte counts: numel*size can overflow.
			size := int64(dt.Size())
			if n := ti.End - ti.Begin; n%size != 0 || int64(numel) != n/size {
				return nil, fail("tensor %q: shape %v of %s needs %d elements of %d bytes, data_offsets give %d bytes", key, e.Shape, e.DType, numel, size, n)
			}
		}
		f.Tensors[key] = ti
		f.Names = append(f.Names, key)
	}
	sort.Slice(f.Names, func(i, j int) bool {
		a, b := f.Tensors[f.Names[i]], f.Tensors[f.Names[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End // a zero-size tensor sorts before one starting at the same offset
		}
		return a.Name < b.Name
	})
	for i := 1; i < len(f.Names); i++ {
		prev, cur := f.Tensors[f.Names[i-1]], f.Tensors[f.Names[i]]
		if cur.Begin < prev.End {
			return nil, fail("tensors %q and %q overlap", prev.Name, cur.Name)
		}
	}
	return f, nil
}

// Data returns the tensor's bytes (zero-copy) and its dtype. Unsupported
// dtypes give an error naming the tensor and the dtype.
func (f *File) Data(name string) ([]byte, tensor.DType, TensorInfo, error) {
	ti, ok := f.Tensors[name]
	if !ok {
		return nil, 0, ti, fmt.Errorf("safetensors: %s: no tensor %q", f.Path, name)
	}
	dt, err := tensor.ParseDType(ti.DType)
	if err != nil {
		return nil, 0, ti, fmt.Errorf("safetensors: %s: tensor %q: %w", f.Path, name, err)
	}
	return f.data[ti.Begin:ti.End], dt, ti, nil
}

// Release drops the file's pages from the resident set (see mmap.Mapping.Release).
func (f *File) Release() { f.mapping.Release() }
