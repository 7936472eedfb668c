//go:build linux && (amd64 || arm64)

package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
)

// perturbAttention is a backend whose attention output of call at (layer
// order, the prompt's step first) is scaled elementwise by 1 ± eps: a float
// difference of the size a different summation order makes.
type perturbAttention struct {
	backend.Backend
	calls, at, n int
	eps          float64
}

func (p *perturbAttention) Attention(dst backend.Buffer, q backend.View, heads int, scale float32, kv backend.KV, layer int, s backend.StepBuf) {
	p.Backend.Attention(dst, q, heads, scale, kv, layer, s)
	if p.calls == p.at {
		v := make([]float32, p.n)
		p.Backend.Read(v, dst, 0)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range v {
			f := 1 + p.eps
			if rng.IntN(2) == 0 {
				f = 1 - p.eps
			}
			v[i] *= float32(f)
		}
		p.Backend.Write(dst, 0, v)
	}
	p.calls++
}

// TestInt8SpreadFromRounding: why the GPU tests bound two int8-activation
// paths' logits by the int8 spread and not by float rounding. On the CPU's
// int8 path, the demo model's first one-token step with one layer's
// attention output moved by a few float ulps (1e-7 and 1e-6 relative, the
// size of another summation order) gives the same greedy tokens, and its
// logits move either not at all or, when one value crosses an int8 rounding
// edge and the step it moves the residual by carries later layers' inputs
// across theirs, by int8 noise: layer 0 moved by 1e-6 moves that step's
// logits by 0.061 and 16 steps' by 0.128, by 1e-7 by 4e-6 and 0.011
// (measured; the CPU's own int8-against-float spread is 0.16-0.18, and the
// GPU's cluster attention differed from its split kernels by 0.084 and
// 0.128, NOTES.md run 167). The bound asserted is that spread, 0.2, and the
// tokens.
func TestInt8SpreadFromRounding(t *testing.T) {
	ck, w := openE2E(t)
	prompt := promptOf(t, ck, "It was a dark and stormy night; the")
	L, C := ck.Config.Layers, ck.Config.Heads*ck.Config.HeadDim
	const steps = 16
	rb := cpu.New(0)
	ref := generate(t, ck, w, rb, prompt, steps, true)
	rb.Close()
	moved := false
	for _, eps := range []float64{1e-7, 1e-6} {
		for _, layer := range []int{0, L / 2} {
			pb := &perturbAttention{Backend: cpu.New(0), at: L + layer, n: C, eps: eps} // step 1, layer
			got := generate(t, ck, w, pb, prompt, steps, true)
			pb.Close()
			worst, first := 0.0, 0.0
			for i := range ref.logits {
				d := maxDiff(ref.logits[i], got.logits[i])
				if i == 1 {
					first = d
				}
				worst = math.Max(worst, d)
			}
			t.Logf("attention of layer %d moved by %.0e at the first one-token step: its logits by %.3g, all %d steps' by %.3g",
				layer, eps, first, steps, worst)
			if worst > 1e-3 {
				moved = true
			}
			if !(worst <= 0.2) {
				t.Errorf("layer %d, %.0e: logits moved by %.3g, more than the int8 spread 0.2", layer, eps, worst)
			}
			for i := range ref.tokens {
				if got.tokens[i] != ref.tokens[i] {
					t.Errorf("layer %d, %.0e: token %d is %d, unperturbed %d", layer, eps, i, got.tokens[i], ref.tokens[i])
					break
				}
			}
		}
	}
	if !moved {
		t.Logf("no perturbation crossed an int8 rounding edge this time")
	}
}
