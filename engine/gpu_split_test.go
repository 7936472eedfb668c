package engine

import (
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
)

// needGPU skips a test, saying why, where no CUDA GPU is usable (fails
// under UPG_REQUIRE_GPU), as backend/cuda's GPU tests do.
func needGPU(t *testing.T) {
	t.Helper()
	be, err := cuda.NewBackend(0)
	if err != nil {
		if os.Getenv("UPG_REQUIRE_GPU") != "" {
			t.Fatalf("GPU required: %v", err)
		}
		t.Skipf("no CUDA GPU: %v", err)
	}
	be.Close()
}

// greedyRun is a greedy generation's tokens and, for each, the logits it
// was chosen from.
type greedyRun struct {
	tokens []int
	logits [][]float32
}

// greedy generates steps tokens of prompt greedily on e (the prompt in one
// step, then one token a step), keeping each step's last-position logits.
func greedy(t *testing.T, e *Engine, prompt string, steps int) greedyRun {
	t.Helper()
	p := e.EncodePrompt(prompt)
	s, err := e.NewSequence(Request{Prompt: p, MaxTokens: steps, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Release(s)
	defer e.SetOverlap(e.SetOverlap(false)) // this step's logits, not the next's
	var r greedyRun
	for !s.Done() {
		n := len(s.Tokens())
		if _, err := e.Step([]*Sequence{s}, 0); err != nil {
			t.Fatal(err)
		}
		if len(s.Tokens()) > n { // a token was sampled from this step's logits
			r.logits = append(r.logits, slices.Clone(e.Context().ReadLogits()))
		}
	}
	r.tokens = slices.Clone(s.Tokens()[len(p):])
	return r
}

// compareGreedy checks got against the CPU's want as backend/cuda's
// TestGPUGreedyMatchesCPU does: the same greedy tokens up to a near-tie of
// the CPU's top two logits (1e-3), and logits within max(2e-2, spread) over
// the steps before any divergence, spread being the CPU's own
// int8-versus-float difference (both sides quantize activations to int8
// and round a few values differently).
func compareGreedy(t *testing.T, what string, got, want greedyRun, spread float64) {
	t.Helper()
	if len(got.tokens) != len(want.tokens) || len(got.logits) != len(got.tokens) || len(want.logits) != len(want.tokens) {
		t.Fatalf("%s: %d tokens from %d logits rows, want %d from %d", what, len(got.tokens), len(got.logits), len(want.tokens), len(want.logits))
	}
	worst, same := 0.0, 0
	for i := range want.tokens {
		for j, v := range want.logits[i] {
			worst = math.Max(worst, math.Abs(float64(v-got.logits[i][j])))
		}
		if got.tokens[i] != want.tokens[i] {
			l := slices.Clone(want.logits[i])
			sort.Slice(l, func(a, b int) bool { return l[a] > l[b] })
			if l[0]-l[1] > 1e-3 {
				t.Errorf("%s: token %d differs (%d, CPU %d) and the CPU's top two logits are %.4g apart", what, i, got.tokens[i], want.tokens[i], l[0]-l[1])
			} else {
				t.Logf("%s: token %d differs at a near-tie (%.2g)", what, i, l[0]-l[1])
			}
			break
		}
		same++
	}
	t.Logf("%s: %d/%d greedy tokens identical, max |logit diff| %.3g (CPU int8-vs-float spread %.3g)", what, same, len(want.tokens), worst, spread)
	if worst > math.Max(2e-2, spread) {
		t.Errorf("%s: logits differ by %.3g, more than max(2e-2, %.3g)", what, worst, spread)
	}
}

// TestGPUSplitMatchesCPU (GPU): the demo model split CUDA+CPU at half its
// layers gives the CPU's greedy tokens and last-position logits within the
// tolerance of the whole-GPU test; then, under UPG_GPU_MEMORY set so that
// the whole model does not fit, Load refuses it naming how many layers
// fit, runs with that many (and with GPULayersAuto, which picks them), and
// the KV budget from free memory keeps the GPU's share under the cap.
func TestGPUSplitMatchesCPU(t *testing.T) {
	needGPU(t)
	ck, w := demoWeights(t)
	L := len(w.Layers)
	tok, err := ck.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	const ctx, steps = 256, 32
	prompts := []string{"package main", "It was a dark and stormy night; the"}
	ref := mustLoad(t, Options{Device: "cpu", Ctx: ctx})
	gb := cpu.NewWithLevel(1, cpu.LevelGeneric) // float activations
	defer gb.Close()
	gm, err := model.New(ck.Config, w, gb)
	if err != nil {
		t.Fatal(err)
	}
	generic, err := New(gm, tok, ck.Template(tok), Config{Ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]greedyRun{}
	spread := 0.0
	for _, p := range prompts {
		want[p] = greedy(t, ref.Engine, p, steps)
		g := greedy(t, generic, p, steps)
		for i := range g.logits { // up to the first token the two disagree on
			for j, v := range g.logits[i] {
				spread = math.Max(spread, math.Abs(float64(v-want[p].logits[i][j])))
			}
			if g.tokens[i] != want[p].tokens[i] {
				break
			}
		}
	}
	split, err := Load(demoModel, Options{Device: "cuda", GPULayers: L / 2, Ctx: ctx, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := split.Model.Stages()
	if split.GPULayers != L/2 || len(st) != 2 || !strings.HasPrefix(st[1].Backend.Name(), "cuda/") || !strings.HasPrefix(st[0].Backend.Name(), "cpu") {
		split.Close()
		t.Fatalf("GPULayers %d: %d on the GPU, %s", L/2, split.GPULayers, BackendName(split.Model))
	}
	for _, p := range prompts {
		compareGreedy(t, fmt.Sprintf("%q split at %d GPU layers", p, L/2), greedy(t, split.Engine, p, steps), want[p], spread)
	}
	split.Close()

	// A card too small for the whole model.
	be, err := cuda.NewBackend(0)
	if err != nil {
		t.Fatal(err)
	}
	sz := be.(weightSizer)
	po := kvcache.Options{Layers: 1, KVHeads: ck.Config.KVHeads, HeadDim: ck.Config.HeadDim, BlockSize: kvcache.DefaultBlockSize}
	perLayer := kvcache.BudgetFor(po, ctx, 1)
	k := L / 2
	capBytes := deviceNeed(sz, w, k) + int64(k)*perLayer + (1 << 20)
	whole := deviceNeed(sz, w, L)
	be.Close()
	if capBytes >= whole {
		t.Fatalf("cap %d does not keep out the whole model (%d)", capBytes, whole)
	}
	t.Setenv(cuda.MemEnv, fmt.Sprint(capBytes))
	_, err = Load(demoModel, Options{Device: "cuda", Ctx: ctx, Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "fits") {
		t.Fatalf("whole model under %s=%d (it needs %d): %v, want an error saying how many layers fit", cuda.MemEnv, capBytes, whole, err)
	}
	t.Log(err)
	fits := 0
	if i := strings.Index(err.Error(), "--gpu-layers "); i >= 0 {
		fmt.Sscanf(err.Error()[i:], "--gpu-layers %d fits", &fits)
	}
	// k fit with a MiB to spare; what the backend allocates when it starts
	// may take some of it.
	if fits < 1 || fits > k {
		t.Fatalf("%d layers fit, want 1..%d: %v", fits, k, err)
	}
	for _, n := range []int{fits, GPULayersAuto} {
		l, err := Load(demoModel, Options{Device: "cuda", GPULayers: n, Ctx: ctx, KVBudget: -1, Threads: 1})
		if err != nil {
			t.Fatalf("GPULayers %d under %s=%d: %v", n, cuda.MemEnv, capBytes, err)
		}
		defer l.Close()
		if l.GPULayers != fits {
			t.Fatalf("GPULayers %d under the cap: %d on the GPU, want %d", n, l.GPULayers, fits)
		}
		if share := l.Pool.Bytes() * int64(fits) / int64(L); share > capBytes {
			t.Errorf("KV budget %d: the GPU's share %d is over the cap %d", l.Pool.Bytes(), share, capBytes)
		}
		t.Logf("GPULayers %d under %s=%d: %s; KV %d bytes (%s)", n, cuda.MemEnv, capBytes, BackendName(l.Model), l.Pool.Bytes(), l.KVBudgetWhy)
		compareGreedy(t, fmt.Sprintf("under the cap, GPULayers %d", n), greedy(t, l.Engine, prompts[0], steps), want[prompts[0]], spread)
	}
}
