// Package checkpoint opens a model from any of the formats UPG reads (a
// Hugging Face directory of safetensors, a GGUF file, a .upg file) and
// presents it uniformly: a model.Config, tensors by Hugging Face name, the
// tokenizer and the chat template.
package checkpoint

import (
	"fmt"
	"os"
	"strings"

	"github.com/upg-ai/upg/gguf"
	"github.com/upg-ai/upg/model"
)

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	Name     string
	Shape    []int
	Encoding string // dtype ("BF16") or codec description
	Bytes    int64
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
	switch {
	case strings.HasSuffix(path, ".gguf"):
		return openGGUF(path)
	case strings.HasSuffix(path, ".upg"):
		return openUPG(path)
	}
	return nil, fmt.Errorf("%s: unrecognised model format (want a Hugging Face directory, .gguf or .upg file)", path)
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
