package compress_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/upgfile"
)

// TestCompressRotateResidual compresses miniphi-29m at 8 bits a weight
// (no calibration: round to nearest) with the residual stream's form left
// to ResidualAuto (upg compress's default), which rotates an untied model's
// stream, and checks the file: the matrices that read the stream carry no rotation,
// o_proj and down_proj keep theirs, every norm gain is 1, the provenance
// records the seed, and the model still decodes the reference's greedy
// tokens.
func TestCompressRotateResidual(t *testing.T) {
	rep, dir, out, f := compressAuto(t, "miniphi-29m")
	if rep.ResidualStream != "rotated" || rep.PlainWhy != "" {
		t.Errorf("report: residual stream %q (%q), want rotated", rep.ResidualStream, rep.PlainWhy)
	}
	if s := provenanceSettings(t, f); s["rotate_residual"] != "0x5eed" {
		t.Errorf("provenance settings %v: rotate_residual missing", s)
	}
	ck, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	readers, writers := 0, 0
	for _, n := range ck.Tensors.Names() {
		switch {
		case strings.HasSuffix(n, "layernorm.weight") || n == "model.norm.weight":
			v, err := ck.Tensors.Vector(n)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range v {
				if g != 1 {
					t.Fatalf("%s[%d] = %g, want 1", n, i, g)
				}
			}
		case strings.HasSuffix(n, "qkv_proj.weight") || strings.HasSuffix(n, "gate_up_proj.weight") || n == "lm_head.weight":
			readers++
			if p := tensorParams(t, f, n); p.Rotate != 0 {
				t.Errorf("%s reads the rotated stream but has its own rotation (%+v)", n, p)
			}
		case strings.HasSuffix(n, "o_proj.weight") || strings.HasSuffix(n, "down_proj.weight"):
			writers++
			if p := tensorParams(t, f, n); p.Rotate == 0 {
				t.Errorf("%s lost its input rotation (%+v)", n, p)
			}
		}
	}
	if readers != 2*ck.Config.Layers+1 || writers != 2*ck.Config.Layers {
		t.Fatalf("found %d readers and %d writers for %d layers", readers, writers, ck.Config.Layers)
	}
	w, err := model.LoadWeights(ck.Config, ck.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New(2)
	defer be.Close()
	m, err := model.New(ck.Config, w, be)
	if err != nil {
		t.Fatal(err)
	}
	// 8-bit codes: the logits move by up to ~0.2 (measured 0.183), the greedy tokens do not
	decodetest.CheckGolden(t, m, decodetest.LoadGolden(t, dir)[:1], backend.KVF32, 0.25, false)
}

func tensorParams(t *testing.T, f *upgfile.File, name string) codec.Params {
	t.Helper()
	e, _, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	var p codec.Params
	if err := json.Unmarshal(e.Params, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// provenanceSettings is the settings object of f's provenance.
func provenanceSettings(t *testing.T, f *upgfile.File) map[string]any {
	t.Helper()
	var prov struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal(f.Meta.Provenance, &prov); err != nil {
		t.Fatal(err)
	}
	return prov.Settings
}

// TestCompressResidualAutoKeepsTiedPlain: ResidualAuto compresses a model
// whose head is tied to its embedding (TinyStories-656K), which
// ResidualRotated refuses, with its residual stream as it is.
func TestCompressResidualAutoKeepsTiedPlain(t *testing.T) {
	rep, _, _, f := compressAuto(t, "TinyStories-656K")
	if rep.ResidualStream != "plain" || !strings.Contains(rep.PlainWhy, "ties them") {
		t.Errorf("report: residual stream %q (%q), want plain, naming the tie", rep.ResidualStream, rep.PlainWhy)
	}
	if s := provenanceSettings(t, f); s["rotate_residual"] != nil {
		t.Errorf("ResidualAuto rotated a tied model's stream: provenance settings %v", s)
	}
}

// compressAuto compresses ../shared's model name at 8 bits a weight (no
// calibration: round to nearest) with ResidualAuto, upg compress's default;
// it returns the report, the model's directory, the file's path and the
// file opened (closed at the test's end).
func compressAuto(t *testing.T, name string) (*compress.Report, string, string, *upgfile.File) {
	t.Helper()
	dir := filepath.Join("../../shared/models", name)
	testutil.NeedData(t, dir)
	out := filepath.Join(t.TempDir(), name+".upg")
	rep, err := compress.Run(dir, out, compress.Options{TargetBPW: 8, Residual: compress.ResidualAuto, Threads: 2})
	if err != nil {
		t.Fatalf("%s with ResidualAuto: %v", name, err)
	}
	f, err := upgfile.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return rep, dir, out, f
}
