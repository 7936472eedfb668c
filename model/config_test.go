package model_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/upg-ai/upg/model"
)

// miniphiConfig is the demo model's config.json (../shared), the seed the
// config tests change one field of.
func miniphiConfig(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../shared/models/miniphi-29m/config.json")
	if err != nil {
		t.Fatalf("fixture missing: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestParseHFConfigLimits: implausible or negative sizes in config.json are
// errors naming the field's value, never a config the loader would size
// its allocations from (2^62 layers used to panic in LoadWeights).
func TestParseHFConfigLimits(t *testing.T) {
	base := miniphiConfig(t)
	data, _ := json.Marshal(base)
	c, err := model.ParseHFConfig(data)
	if err != nil {
		t.Fatalf("the demo model's config: %v", err)
	}
	if c.Layers != 6 || c.Hidden != 512 || c.Vocab != 8192 {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []struct {
		field string
		value any
		want  string
	}{
		{"num_hidden_layers", int64(1) << 62, "implausible"},
		{"hidden_size", int64(1) << 40, "implausible"},
		{"intermediate_size", 1 << 21, "implausible"},
		{"vocab_size", 1 << 24, "implausible"},
		{"num_key_value_heads", 1 << 13, "implausible"},
		{"head_dim", 1 << 13, "implausible"},
		{"max_position_embeddings", -5, "negative"},
		{"num_hidden_layers", -1, "non-positive"},
		{"rope_parameters", map[string]any{"rope_type": "linear", "factor": 0}, "factor 0 must be positive"},
		{"rope_parameters", map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1,
			"original_max_position_embeddings": 8192}, "low_freq_factor < high_freq_factor"},
		{"rope_parameters", map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}, "original_max_position_embeddings"},
	} {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m[bad.field] = bad.value
		data, _ := json.Marshal(m)
		if _, err := model.ParseHFConfig(data); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s = %v: error %v, want one saying %q", bad.field, bad.value, err, bad.want)
		}
	}
}

// FuzzParseHFConfig: any bytes as config.json give an error or a config
// that passes Validate with every size within its limits.
//
//	go test ./model -run XXX -fuzz FuzzParseHFConfig -fuzztime 60s
func FuzzParseHFConfig(f *testing.F) {
	data, _ := json.Marshal(miniphiConfig(f))
	f.Add(data)
	f.Add([]byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}`))
	f.Add([]byte(`{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_attention_heads":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := model.ParseHFConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that fails Validate: %v", err)
		}
		if c.QDim() <= 0 || c.KVDim() <= 0 || c.Layers > 1<<12 || c.Vocab > 1<<23 || c.Hidden > 1<<20 {
			t.Fatalf("accepted implausible sizes: %+v", c)
		}
	})
}
