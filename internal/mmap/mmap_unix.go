//go:build unix

package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

// Map maps the first size bytes of f read-only (size > 0). The mapping
// outlives f; Unmap releases it.
func Map(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

// Unmap releases a mapping made by Map.
func Unmap(data []byte) error { return unix.Munmap(data) }

func release(data []byte) { unix.Madvise(data, unix.MADV_DONTNEED) }
