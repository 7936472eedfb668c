package checkpoint

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
	"github.com/upg-ai/upg/upgfile"
)

// The codecs this program implements are features .upg files may require.
func init() {
	for _, f := range codec.Features {
		upgfile.RegisterFeature(f)
	}
}

// upgSource serves a .upg file's tensors through their codecs.
type upgSource struct {
	f      *upgfile.File
	byName map[string]int
}

func openUPG(path string) (*Checkpoint, error) {
	f, err := upgfile.Open(path)
	if err != nil {
		return nil, err
	}
	// Check each tensor's CRC the first time it is read: a damaged file is
	// refused instead of running with corrupt weights.
	f.VerifyOnAccess = true
	var cfg model.Config
	if err := json.Unmarshal(f.Meta.Architecture, &cfg); err != nil {
		f.Close()
		return nil, fmt.Errorf("upg: %s: bad architecture section: %v", path, err)
	}
	if err := cfg.Validate(); err != nil {
		f.Close()
		return nil, fmt.Errorf("upg: %s: %w", path, err)
	}
	src := &upgSource{f: f, byName: map[string]int{}}
	for i, t := range f.Tensors {
		src.byName[t.Name] = i
	}
	ck := &Checkpoint{Path: path, Format: "upg", Config: &cfg, Tensors: src, closer: f.Close,
		ChatTemplate: f.Meta.ChatTemplate, tokenizerFiles: f.Meta.Tokenizer, Metadata: map[string]string{}}
	if len(ck.tokenizerFiles) == 0 {
		ck.tokenizerFiles = map[string][]byte{} // makes Tokenizer report "no tokenizer embedded"
	}
	if len(f.Meta.Provenance) > 0 {
		ck.Metadata["provenance"] = string(f.Meta.Provenance)
	}
	ck.Metadata["format version"] = f.Meta.Version
	return ck, nil
}

// Upgfile returns the underlying .upg file of a "upg" checkpoint.
func (c *Checkpoint) Upgfile() *upgfile.File {
	if s, ok := c.Tensors.(*upgSource); ok {
		return s.f
	}
	return nil
}

func (s *upgSource) Names() []string {
	names := make([]string, len(s.f.Tensors))
	for i, t := range s.f.Tensors {
		names[i] = t.Name
	}
	return names
}

func (s *upgSource) Has(name string) bool { _, ok := s.byName[name]; return ok }

func (s *upgSource) Shape(name string) ([]int, bool) {
	i, ok := s.byName[name]
	if !ok {
		return nil, false
	}
	return s.f.Tensors[i].Shape, true
}

func (s *upgSource) Info(name string) (TensorInfo, bool) {
	i, ok := s.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	t := s.f.Tensors[i]
	enc := strings.NewReplacer(`"`, "", "{", "", "}", "").Replace(string(t.Params))
	return TensorInfo{Name: name, Shape: t.Shape, Encoding: enc, Bytes: t.Length}, true
}

// open decodes a tensor's codec parameters and wraps its data as a matrix of
// rows × cols (1-D tensors are one row).
func (s *upgSource) open(name string) (tensor.Matrix, error) {
	t, data, err := s.f.Tensor(name)
	if err != nil {
		return nil, err
	}
	var p codec.Params
	if err := json.Unmarshal(t.Params, &p); err != nil {
		return nil, fmt.Errorf("upg: %s: tensor %q: bad codec parameters: %v", s.f.Path, name, err)
	}
	rows, cols := 1, 1
	switch len(t.Shape) {
	case 1:
		cols = t.Shape[0]
	case 2:
		rows, cols = t.Shape[0], t.Shape[1]
	default:
		return nil, fmt.Errorf("upg: %s: tensor %q has shape %v; only 1-D and 2-D tensors are supported", s.f.Path, name, t.Shape)
	}
	m, err := codec.Open(p, rows, cols, data)
	if err != nil {
		return nil, fmt.Errorf("upg: %s: tensor %q: %w", s.f.Path, name, err)
	}
	return m, nil
}

func (s *upgSource) Matrix(name string) (tensor.Matrix, error) {
	if sh, ok := s.Shape(name); ok && len(sh) != 2 {
		return nil, fmt.Errorf("upg: %s: tensor %q has shape %v, want a matrix", s.f.Path, name, sh)
	}
	return s.open(name)
}

func (s *upgSource) Vector(name string) ([]float32, error) {
	m, err := s.open(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, m.Rows()*m.Cols())
	m.DecodeRows(out, 0, m.Rows())
	return out, nil
}
