package decodetest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/model"
)

// GoldenCase is one case of a shared model's reference_outputs.json:
// transformers' float32 results for a prompt.
type GoldenCase struct {
	Prompt     string    `json:"prompt"`
	InputIDs   []int     `json:"input_ids"`
	LastLogits []float32 `json:"last_logits"`
	Argmax     []int     `json:"argmax_per_position"`
	Greedy32   []int     `json:"greedy_32"`
}

// LoadGolden reads dir/reference_outputs.json (absent: a skip, a failure
// under CI=true).
func LoadGolden(t testing.TB, dir string) []GoldenCase {
	t.Helper()
	path := filepath.Join(dir, "reference_outputs.json")
	testutil.NeedData(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []GoldenCase }
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("no cases")
	}
	return ref.Cases
}

// Argmax is the index of x's largest value (the first of equals).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// CheckGolden runs m on each case through a cache of kv: with positions,
// every prompt position's argmax equal to the reference's; the last
// position's logits within tol of the reference (max abs); and the greedy
// continuation equal to the reference's 32 tokens (EOS masked: the
// references were made with min_new_tokens=32, which masks them).
func CheckGolden(t *testing.T, m *model.Model, cases []GoldenCase, kv backend.KVType, tol float64, positions bool) {
	t.Helper()
	V := m.Config.Vocab
	mask := func(lg []float32) []float32 {
		for _, id := range m.Config.EOS {
			lg[id] = float32(math.Inf(-1))
		}
		return lg
	}
	for ci, c := range cases {
		run, err := m.NewSingle(256, kv)
		if err != nil {
			t.Fatal(err)
		}
		n := len(c.InputIDs)
		logits, err := run.Forward(c.InputIDs, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; positions && i < n; i++ {
			if got := Argmax(logits[i*V : (i+1)*V]); got != c.Argmax[i] {
				t.Errorf("case %d position %d: argmax %d, want %d", ci, i, got, c.Argmax[i])
			}
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
		tok := Argmax(mask(last))
		var got []int
		for len(got) < len(c.Greedy32) {
			got = append(got, tok)
			lg, err := run.Forward([]int{tok}, 0)
			if err != nil {
				t.Fatal(err)
			}
			tok = Argmax(mask(lg[:V]))
		}
		for i := range got {
			if got[i] != c.Greedy32[i] {
				t.Errorf("case %d: greedy token %d = %d, want %d (got %v)", ci, i, got[i], c.Greedy32[i], got)
				break
			}
		}
	}
}
