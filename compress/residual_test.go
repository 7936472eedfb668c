package compress

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// rotateCols is the reference for outRotated: Q applied to each column.
func rotateCols(s *rotatedSource, w []float32, R, C int) []float32 {
	out := make([]float32, R*C)
	col := make([]float32, R)
	for j := range C {
		for r := range R {
			col[r] = w[r*C+j]
		}
		codec.RotateForward(col, s.signs)
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
	_, err = Run(dir, filepath.Join(t.TempDir(), "x.upg"), Options{TargetBPW: 8, Residual: ResidualRotated})
	if err == nil || !strings.Contains(err.Error(), "ties them") {
		t.Fatalf("TinyStories-656K: err %v, want a refusal naming the tie", err)
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
			decodetest.CheckGolden(t, m, decodetest.LoadGolden(t, dir), backend.KVF32, 5e-5, true)
		})
	}
}
