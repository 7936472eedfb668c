//go:build linux && (amd64 || arm64)

package cuda

import (
	"math"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
)

func TestDisjointViews(t *testing.T) {
	a, b := &buffer{n: 100}, &buffer{n: 100}
	for _, c := range []struct {
		x, y   backend.View
		wx, wy int
		want   bool
	}{
		{backend.View{Buf: a, Stride: 10}, backend.View{Buf: b, Stride: 10}, 10, 10, true},
		{backend.View{Buf: a, Stride: 30}, backend.View{Buf: a, Off: 20, Stride: 30}, 20, 5, true},
		{backend.View{Buf: a, Stride: 30}, backend.View{Buf: a, Off: 19, Stride: 30}, 20, 5, false},
		{backend.View{Buf: a, Off: 20, Stride: 30}, backend.View{Buf: a, Off: 25, Stride: 30}, 5, 5, true},
		{backend.View{Buf: a, Off: 25, Stride: 30}, backend.View{Buf: a, Off: 20, Stride: 30}, 5, 6, false},
		{backend.View{Buf: a, Stride: 30}, backend.View{Buf: a, Off: 20, Stride: 20}, 20, 5, false},
		{backend.View{Buf: a, Stride: 30}, backend.View{Buf: a, Off: 40, Stride: 30}, 5, 5, false},
	} {
		if got := disjoint(c.x, c.wx, c.y, c.wy); got != c.want {
			t.Errorf("disjoint(%+v, %d, %+v, %d) = %v, want %v", c.x, c.wx, c.y, c.wy, got, c.want)
		}
	}
}

// TestGPUFusedMatchesUnfused: the fused step kernels give the same greedy
// tokens and (up to float rounding of the same operations) the same logits
// as the unfused ops on the demo model, with fewer launches per decode step.
func TestGPUFusedMatchesUnfused(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	tok, err := ck.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"package main", "It was a dark and stormy night; the"} {
		prompt := tok.Encode(text, true, true)
		var res [2]genResult
		var per [2]float64
		for i, fuse := range []bool{false, true} {
			b, err := New(0)
			if err != nil {
				t.Fatal(err)
			}
			if fuse && !b.fuse {
				t.Fatalf("the loaded kernels lack the fused ones (or %s=0 is set)", FuseEnv)
			}
			b.fuse, b.graphsOn = fuse, false
			const steps = 16
			res[i] = generate(t, ck, w, b, prompt, steps, true)
			per[i] = float64(b.d.launches) / (steps + 1)
			b.Close()
		}
		var worst float64
		for i := range res[0].logits {
			for j, v := range res[0].logits[i] {
				worst = math.Max(worst, math.Abs(float64(v-res[1].logits[i][j])))
			}
		}
		same := 0
		for i := range res[0].tokens {
			if res[0].tokens[i] != res[1].tokens[i] {
				break
			}
			same++
		}
		t.Logf("%q: fused vs unfused: %d/%d tokens identical, max |logit diff| %.3g; launches per step (incl. prefill) %.1f -> %.1f, %d layers",
			text, same, len(res[0].tokens), worst, per[0], per[1], ck.Config.Layers)
		if same != len(res[0].tokens) || worst > 1e-3 {
			t.Errorf("%q: fused path differs: %d/%d tokens, logits by %.3g", text, same, len(res[0].tokens), worst)
		}
		if per[1] >= per[0] {
			t.Errorf("%q: fusion did not reduce launches (%.1f -> %.1f)", text, per[0], per[1])
		}
	}
}

// TestGPUAttentionRotqMatches: decoding with the merge and rotation folded
// into the per-head attention's last blocks (upg_attn_rotq_*) gives the
// same tokens and the same logits bit for bit as with upg_combine_rotq after
// it (the same operations in the same order), with one launch fewer per
// layer.
func TestGPUAttentionRotqMatches(t *testing.T) {
	gpu(t)
	defer func(on bool) { attnRotqOn = on }(attnRotqOn)
	ck, w := openE2E(t)
	tok, err := ck.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode("It was a dark and stormy night; the", true, true)
	var res [2]genResult
	var per [2]float64
	for i, on := range []bool{false, true} {
		attnRotqOn = on
		b, err := New(0)
		if err != nil {
			t.Fatal(err)
		}
		b.graphsOn = false
		const steps = 16
		res[i] = generate(t, ck, w, b, prompt, steps, true)
		per[i] = float64(b.d.launches) / (steps + 1)
		b.Close()
	}
	for i := range res[0].tokens {
		if res[0].tokens[i] != res[1].tokens[i] {
			t.Fatalf("token %d: %d folded, %d separate", i, res[1].tokens[i], res[0].tokens[i])
		}
	}
	for i := range res[0].logits {
		for j, v := range res[0].logits[i] {
			if math.Float32bits(v) != math.Float32bits(res[1].logits[i][j]) {
				t.Fatalf("step %d logit %d: %v folded, %v separate", i, j, res[1].logits[i][j], v)
			}
		}
	}
	if per[1] > per[0]-float64(ck.Config.Layers)/2 { // 16 of the 17 passes are one-token steps
		t.Errorf("launches per step %.2f folded, %.2f separate: want one fewer per layer in each decode step", per[1], per[0])
	}
}

// TestGPUSplitFusionsMatch: the fusions into a split-K sum — the q|k|v
// projection's with rope_kv (upg_splitk_rope_kv, UPG_CUDA_SPLITK_ROPE) and
// a residual projection's with the next RMSNorm's rotation
// (upg_splitk_rms_rotq, UPG_CUDA_SUM_NORM) — leave the demo model's greedy
// tokens and every logit the same bits as the two launches each replaces,
// in fewer launches.
func TestGPUSplitFusionsMatch(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	tok, err := ck.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer func(a, b bool, u int) { useSplitRope, sumNormOn, splitMinUnits = a, b, u }(useSplitRope, sumNormOn, splitMinUnits)
	splitMinUnits = 1 // the demo model's q|k|v and o projections (4 units) split too
	prompt := tok.Encode("It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind", true, true)
	for _, f := range []struct {
		name string
		on   *bool
	}{{"splitk_rope_kv", &useSplitRope}, {"splitk_rms_rotq", &sumNormOn}} {
		t.Run(f.name, func(t *testing.T) {
			var res [2]genResult
			var launches [2]int64
			for i, on := range []bool{false, true} {
				*f.on = on
				b, err := New(0)
				if err != nil {
					t.Fatal(err)
				}
				b.graphsOn = false
				res[i] = generate(t, ck, w, b, prompt, 12, true)
				launches[i] = b.d.launches
				b.Close()
			}
			for i := range res[0].logits {
				for j, v := range res[0].logits[i] {
					if res[1].logits[i][j] != v {
						t.Fatalf("step %d, logit %d: %v fused, %v with two launches", i, j, res[1].logits[i][j], v)
					}
				}
			}
			if !slices.Equal(res[0].tokens, res[1].tokens) {
				t.Errorf("tokens: %v fused, %v with two launches", res[1].tokens, res[0].tokens)
			}
			t.Logf("%d-token prompt, 12 steps: launches %d -> %d (%d layers)", len(prompt), launches[0], launches[1], ck.Config.Layers)
			if launches[1] >= launches[0] {
				t.Errorf("the fused sum did not save a launch (%d -> %d): the prompt's step took no split-K parts", launches[0], launches[1])
			}
		})
	}
}
