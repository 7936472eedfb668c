package mmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestOpen maps a file, an empty file and refuses a directory; the bytes
// are the file's, and Release and Close leave no error behind.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("upg mmap "), 100_000)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, want) {
		t.Fatal("mapped bytes differ from the file")
	}
	m.Release()
	if !bytes.Equal(m.Data[:9], want[:9]) { // re-read after the pages were dropped
		t.Fatal("bytes differ after Release")
	}
	if err := m.Close(); err != nil || m.Data != nil {
		t.Fatalf("Close: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if m, err := Open(empty); err != nil || len(m.Data) != 0 || m.Close() != nil {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("a directory was mapped")
	}
}
