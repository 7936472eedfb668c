//go:build !unix && !windows

package mmap

import (
	"io"
	"os"
)

// Map reads the first size bytes of f: this platform has no memory maps
// that this package knows.
func Map(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	_, err := io.ReadFull(f, b)
	return b, err
}

// Unmap releases what Map returned (nothing to do).
func Unmap([]byte) error { return nil }

func release([]byte) {}
