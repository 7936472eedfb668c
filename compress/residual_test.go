package compress

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
	"github.com/upg-ai/upg/upgfile"
)

// rotateCols is the reference for outRotated: Q applied to each column.
func rotateCols(s *rotatedSource, w []float32, R, C int) []float32 {
	out := make([]float32, R*C)
	col := make([]float32, R)
	for j := range C {
		for r := range R {
			col[r] = w[r*C+j]
		}
		s.rotate(col)
		for r := range R {
			out[r*C+j] = col[r]
		}
	}
	return out
}

// TestOutRotatedMatchesColumnRotation checks the writers' row-mixing
// rotation (Q·W, computed a whole row at a time) against Q applied to
// each column with the codecs' rotation, for whole and partial row ranges
// that cross the Hadamard blocks (48 rows: three blocks of 16).
func TestOutRotatedMatchesColumnRotation(t *testing.T) {
	const R, C = 48, 7
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, R*C)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	s := &rotatedSource{hidden: R, signs: codec.RotationSigns(ResidualSeed, R), whole: map[string][]float32{}}
	want := rotateCols(s, w, R, C)
	m := &outRotated{src: tensor.FromF32(R, C, w), name: "o", s: s}
	for _, rr := range [][2]int{{0, R}, {0, 1}, {5, 21}, {15, 17}, {47, 48}, {0, R}} {
		got := make([]float32, (rr[1]-rr[0])*C)
		for i := range got {
			got[i] = float32(math.NaN())
		}
		m.DecodeRows(got, rr[0], rr[1])
		for i, v := range got {
			if d := math.Abs(float64(v - want[rr[0]*C+i])); !(d < 1e-5) {
				t.Fatalf("rows %v: value %d = %g, want %g", rr, i, v, want[rr[0]*C+i])
			}
		}
	}
	if s.whole["o"] == nil {
		t.Error("a partial decode did not keep the rotated matrix")
	}
	s.Release()
	if len(s.whole) != 0 {
		t.Error("Release kept the rotated matrix")
	}
}

// TestRotateResidualRefusesTiedModels: a tied head cannot take the final
// norm's gain without changing the embedding.
func TestRotateResidualRefusesTiedModels(t *testing.T) {
	_, err := newResidualRoles(&model.Config{TieEmbeddings: true, Hidden: 64}, nil)
	if err == nil || !strings.Contains(err.Error(), "ties them") {
		t.Fatalf("tied model: err %v, want a refusal naming the tie", err)
	}
	dir := "../../shared/models/TinyStories-656K"
	testutil.NeedData(t, dir)
	_, err = Run(dir, filepath.Join(t.TempDir(), "x.upg"), Options{TargetBPW: 8, RotateResidual: true})
	if err == nil || !strings.Contains(err.Error(), "ties them") {
		t.Fatalf("TinyStories-656K: err %v, want a refusal naming the tie", err)
	}
}

type residualCase struct {
	InputIDs   []int     `json:"input_ids"`
	LastLogits []float32 `json:"last_logits"`
	Greedy32   []int     `json:"greedy_32"`
}

func residualCases(t *testing.T, dir string) []residualCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "reference_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []residualCase }
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("no cases")
	}
	return ref.Cases
}

// checkAgainstReference runs m on the reference cases: last-position
// logits within tol of transformers' float32 logits, and the greedy
// continuation (EOS masked, as the references were made) identical.
func checkAgainstReference(t *testing.T, m *model.Model, cases []residualCase, tol float64) {
	t.Helper()
	V := m.Config.Vocab
	argmax := func(x []float32) int {
		best := 0
		for i, v := range x {
			if v > x[best] {
				best = i
			}
		}
		return best
	}
	for ci, c := range cases {
		run, err := m.NewSingle(256, backend.KVF32)
		if err != nil {
			t.Fatal(err)
		}
		n := len(c.InputIDs)
		logits, err := run.Forward(c.InputIDs, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := append([]float32(nil), logits[(n-1)*V:n*V]...)
		var maxErr float64
		for i, want := range c.LastLogits {
			maxErr = math.Max(maxErr, math.Abs(float64(last[i]-want)))
		}
		t.Logf("case %d: last-position logits max abs error %.2e", ci, maxErr)
		if !(maxErr <= tol) {
			t.Errorf("case %d: last logits max abs error %.3e > %.0e", ci, maxErr, tol)
		}
		mask := func(lg []float32) []float32 {
			for _, id := range m.Config.EOS {
				lg[id] = float32(math.Inf(-1))
			}
			return lg
		}
		tok := argmax(mask(last))
		for i, want := range c.Greedy32 {
			if tok != want {
				t.Errorf("case %d: greedy token %d = %d, want %d", ci, i, tok, want)
				break
			}
			lg, err := run.Forward([]int{tok}, 0)
			if err != nil {
				t.Fatal(err)
			}
			tok = argmax(mask(lg[:V]))
		}
	}
}

// TestRotatedResidualMatchesTransformers runs the rotated model (embedding
// rotated, gains folded, writers rotated; uncompressed) against
// transformers' reference logits of the original: the construction is
// exact up to float rounding. miniphi-29m is Phi-3 with fused q/k/v and
// gate/up; tiny-qwen2-random has split projections and q/k/v biases.
func TestRotatedResidualMatchesTransformers(t *testing.T) {
	for _, name := range []string{"miniphi-29m", "tiny-qwen2-random"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("../../shared/models", name)
			testutil.NeedData(t, dir)
			ck, err := checkpoint.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			rs, err := newRotatedSource(ck.Config, ck.Tensors)
			if err != nil {
				t.Fatal(err)
			}
			w, err := model.LoadWeights(ck.Config, rs)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range w.Layers {
				for j, g := range append(append([]float32{}, l.AttnNorm...), l.FFNNorm...) {
					if g != 1 {
						t.Fatalf("layer %d: norm gain %d is %g, want 1 (folded)", i, j, g)
					}
				}
			}
			be := cpu.New(0)
			defer be.Close()
			m, err := model.New(ck.Config, w, be)
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstReference(t, m, residualCases(t, dir), 5e-5)
		})
	}
}

// TestCompressRotateResidual compresses miniphi-29m at 8 bits a weight
// (no calibration: round to nearest) with the rotated residual stream and
// checks the file: the matrices that read the stream carry no rotation,
// o_proj and down_proj keep theirs, every norm gain is 1, the provenance
// records the seed, and the model still decodes the reference's greedy
// tokens.
func TestCompressRotateResidual(t *testing.T) {
	dir := "../../shared/models/miniphi-29m"
	testutil.NeedData(t, dir)
	out := filepath.Join(t.TempDir(), "r.upg")
	if _, err := Run(dir, out, Options{TargetBPW: 8, RotateResidual: true, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	r, err := upgfile.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var prov struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal(r.Meta.Provenance, &prov); err != nil {
		t.Fatal(err)
	}
	if prov.Settings["rotate_residual"] != "0x5eed" {
		t.Errorf("provenance settings %v: rotate_residual missing", prov.Settings)
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
			if p := tensorParams(t, r, n); p.Rotate != 0 {
				t.Errorf("%s reads the rotated stream but has its own rotation (%+v)", n, p)
			}
		case strings.HasSuffix(n, "o_proj.weight") || strings.HasSuffix(n, "down_proj.weight"):
			writers++
			if p := tensorParams(t, r, n); p.Codec != "f32" && p.Rotate == 0 {
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
	checkAgainstReference(t, m, residualCases(t, dir)[:1], 0.25)
}

func tensorParams(t *testing.T, r *upgfile.File, name string) codec.Params {
	t.Helper()
	e, _, err := r.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	var p codec.Params
	if err := json.Unmarshal(e.Params, &p); err != nil {
		t.Fatal(err)
	}
	return p
}
