package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/safetensors"
	"github.com/upg-ai/upg/tensor"
)

// hfSource serves tensors from one or more memory-mapped safetensors shards.
type hfSource struct {
	shards []*safetensors.File
	where  map[string]*safetensors.File
}

// openHF opens a Hugging Face model directory: config.json plus
// model.safetensors, or shards listed in model.safetensors.index.json.
func openHF(dir string) (*Checkpoint, error) {
	cfgPath := filepath.Join(dir, "config.json")
	cfgData, err := os.ReadFile(cfgPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: not a model directory: no config.json", dir)
		}
		return nil, err
	}
	cfg, err := model.ParseHFConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	files, err := shardFiles(dir)
	if err != nil {
		return nil, err
	}
	src := &hfSource{where: map[string]*safetensors.File{}}
	for _, p := range files {
		f, err := safetensors.Open(p)
		if err != nil {
			src.Close()
			return nil, err
		}
		src.shards = append(src.shards, f)
		for _, name := range f.Names {
			src.where[name] = f
		}
	}
	applyGenerationConfig(dir, cfg)
	ck := &Checkpoint{Path: dir, Format: "safetensors", Config: cfg, Tensors: src, closer: src.Close}
	ck.ChatTemplate = readChatTemplate(dir)
	ck.tokenizerPath = dir
	return ck, nil
}

func shardFiles(dir string) ([]string, error) {
	idxPath := filepath.Join(dir, "model.safetensors.index.json")
	if data, err := os.ReadFile(idxPath); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("%s: bad index: %v", idxPath, err)
		}
		seen := map[string]bool{}
		var files []string
		for _, f := range idx.WeightMap {
			if strings.Contains(f, "/") || strings.Contains(f, `\`) {
				return nil, fmt.Errorf("%s: shard name %q must be a plain file name", idxPath, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: weight_map is empty", idxPath)
		}
		sort.Strings(files)
		return files, nil
	}
	single := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(single); err != nil {
		return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", dir)
	}
	return []string{single}, nil
}

func (s *hfSource) Close() error {
	var first error
	for _, f := range s.shards {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *hfSource) Names() []string {
	var names []string
	for _, f := range s.shards {
		names = append(names, f.Names...)
	}
	return names
}

func (s *hfSource) Has(name string) bool { _, ok := s.where[name]; return ok }

func (s *hfSource) Shape(name string) ([]int, bool) {
	f, ok := s.where[name]
	if !ok {
		return nil, false
	}
	return f.Tensors[name].Shape, true
}

func (s *hfSource) Info(name string) (TensorInfo, bool) {
	f, ok := s.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	ti := f.Tensors[name]
	return TensorInfo{Name: name, Shape: ti.Shape, Encoding: ti.DType, Bytes: ti.End - ti.Begin}, true
}

func (s *hfSource) raw(name string) ([]byte, tensor.DType, []int, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, 0, nil, fmt.Errorf("checkpoint: tensor %q not found", name)
	}
	data, dt, ti, err := f.Data(name)
	return data, dt, ti.Shape, err
}

func (s *hfSource) Matrix(name string) (tensor.Matrix, error) {
	data, dt, shape, err := s.raw(name)
	if err != nil {
		return nil, err
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("checkpoint: tensor %q has shape %v, want a matrix", name, shape)
	}
	return tensor.NewDense(dt, shape[0], shape[1], data)
}

func (s *hfSource) Vector(name string) ([]float32, error) {
	data, dt, shape, err := s.raw(name)
	if err != nil {
		return nil, err
	}
	n, _ := tensor.NumElements(shape)
	out := make([]float32, n)
	return out, tensor.ToFloat32(out, data, dt)
}

// applyGenerationConfig takes EOS ids from generation_config.json when present.
func applyGenerationConfig(dir string, cfg *model.Config) {
	data, err := os.ReadFile(filepath.Join(dir, "generation_config.json"))
	if err != nil {
		return
	}
	var g struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if json.Unmarshal(data, &g) != nil || len(g.EOS) == 0 {
		return
	}
	var one int
	var many []int
	if json.Unmarshal(g.EOS, &one) == nil {
		many = []int{one}
	} else if json.Unmarshal(g.EOS, &many) != nil {
		return
	}
	for _, id := range many {
		if !containsInt(cfg.EOS, id) {
			cfg.EOS = append(cfg.EOS, id)
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readChatTemplate returns the Jinja chat template from chat_template.jinja
// or tokenizer_config.json, or "".
func readChatTemplate(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return string(b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return ""
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if json.Unmarshal(b, &tc) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(tc.ChatTemplate, &s) == nil {
		return s
	}
	// A list of named templates: take "default".
	var named []struct{ Name, Template string }
	if json.Unmarshal(tc.ChatTemplate, &named) == nil {
		for _, t := range named {
			if t.Name == "default" {
				return t.Template
			}
		}
	}
	return ""
}
