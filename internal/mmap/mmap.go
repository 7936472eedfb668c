// Package mmap maps files read-only into memory, on Unix (mmap), Windows
// (file mapping views) and elsewhere (by reading the file).
package mmap

import (
	"fmt"
	"os"
)

// Mapping is a read-only memory map of a whole file.
type Mapping struct {
	Data []byte
}

// Open maps path read-only. An empty file maps to an empty slice.
func Open(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	size := st.Size()
	if size == 0 {
		return &Mapping{Data: []byte{}}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: too large to map (%d bytes)", path, size)
	}
	data, err := Map(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &Mapping{Data: data}, nil
}

// Close unmaps the file.
func (m *Mapping) Close() error {
	if m == nil || len(m.Data) == 0 {
		return nil
	}
	err := Unmap(m.Data)
	m.Data = nil
	return err
}

// Release tells the kernel the mapped pages are not needed now, dropping
// them from this process's resident set (they are re-read from the file if
// touched again). Used when streaming through files larger than memory.
// It does nothing where the platform has no such advice.
func (m *Mapping) Release() {
	if m != nil && len(m.Data) > 0 {
		release(m.Data)
	}
}
