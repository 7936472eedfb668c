package model_test

import (
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/model"
)

const sharedModels = "../../shared/models"

func openModel(t *testing.T, path string) *model.Model {
	t.Helper()
	ck, w := decodetest.OpenWeights(t, path)
	be := cpu.New(0)
	t.Cleanup(be.Close)
	m, err := model.New(ck.Config, w, be)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var argmax = decodetest.Argmax

// TestGoldenLogits checks the forward pass against transformers' float32
// logits, per-position argmax and greedy continuation (tokenization is
// tested in package tokenizer; here the reference input ids are used).
// TestGoldenLogits compares logits and greedy continuations with
// transformers' float32 reference, through a float32 KV cache (tolerance
// 1.5e-5) and through an fp16 one (keys and values rounded to half
// precision: tolerance 2e-2, same greedy tokens).
func TestGoldenLogits(t *testing.T) {
	for _, name := range []string{"miniphi-29m", "TinyStories-656K", "tiny-qwen2-random"} {
		for _, dt := range []backend.KVType{backend.KVF32, backend.KVF16} {
			t.Run(name+"/kv-"+dt.String(), func(t *testing.T) { checkGolden(t, name, dt) })
		}
	}
}

func checkGolden(t *testing.T, name string, dt backend.KVType) {
	tol := 1.5e-5
	if dt == backend.KVF16 {
		tol = 2e-2
	}
	dir := filepath.Join(sharedModels, name)
	cases := decodetest.LoadGolden(t, dir)
	decodetest.CheckGolden(t, openModel(t, dir), cases, dt, tol, true)
}
