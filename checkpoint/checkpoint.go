// Package checkpoint opens a model from any of the formats UPG reads (a
// Hugging Face directory of safetensors, a GGUF file, a .upg file) and
// presents it uniformly: a model.Config, tensors by Hugging Face name, the
// tokenizer and the chat template.
package checkpoint

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/upg-ai/upg/gguf"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/upgfile"
)

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Encoding string `json:"encoding"` // dtype ("BF16") or codec description
	Bytes    int64  `json:"bytes"`
}

// Source is a model.TensorSource that can also list its tensors.
type Source interface {
	model.TensorSource
	Names() []string
	Info(name string) (TensorInfo, bool)
}

// Checkpoint is an opened model of any supported format.
type Checkpoint struct {
	Path         string
	Format       string // "safetensors", "gguf" or "upg"
	Config       *model.Config
	Tensors      Source
	ChatTemplate string
	Metadata     map[string]string // provenance and other facts worth showing (e.g. from a .upg)

	tokenizerPath  string // where tokenizer.Load finds the tokenizer
	closer         func() error
	tokenizerFiles map[string][]byte // set for .upg checkpoints: embedded tokenizer files by name
	gguf           *gguf.File        // set for GGUF checkpoints (its vocabulary is the tokenizer)
}

// Open detects the format of path and opens it.
func Open(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	if st.IsDir() {
		return openHF(path)
	}
	// The magic bytes decide; the extension only picks the parser whose
	// error explains a file that has neither magic.
	switch sniff(path) {
	case "gguf":
		return openGGUF(path)
	case "upg":
		return openUPG(path)
	}
	switch {
	case strings.HasSuffix(path, ".gguf"):
		return openGGUF(path)
	case strings.HasSuffix(path, ".upg"):
		return openUPG(path)
	}
	return nil, fmt.Errorf("%s: unrecognised model format: neither a GGUF nor a .upg file (by its first bytes), nor a Hugging Face directory", path)
}

// sniff names the format of a file by its magic bytes: "gguf", "upg" or "".
func sniff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return ""
	}
	switch string(magic[:]) {
	case "GGUF":
		return "gguf"
	case upgfile.Magic:
		return "upg"
	}
	return ""
}

// Close releases the mapped files.
func (c *Checkpoint) Close() error {
	if c.closer == nil {
		return nil
	}
	err := c.closer()
	c.closer = nil
	return err
}

// NumParams counts the parameters of all tensors.
func (c *Checkpoint) NumParams() int64 {
	var n int64
	for _, name := range c.Tensors.Names() {
		shape, _ := c.Tensors.Shape(name)
		k := int64(1)
		for _, d := range shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}
