//go:build linux && (amd64 || arm64)

package cuda

import "testing"

func TestWarpsFor(t *testing.T) {
	for _, c := range []struct{ U, RG, sms, nt, want int }{
		{40, 160, 132, 1, 16},  // o 5120×5120: one wave of 2 blocks per SM, 3 units per warp
		{140, 160, 132, 1, 16}, // down 5120×17920: one wave, 9 units
		{40, 240, 132, 1, 16},  // qkv 7680×5120
		{40, 1120, 132, 1, 10}, // gate_up: 3 waves of 4 units (6 warps: 2 waves of 7)
		{40, 3136, 132, 1, 8},  // output head: 6 waves of 5 units ties 3 of 10; more warps
		{40, 160, 132, 8, 8},   // eight tokens: about 48 warps per SM
		{40, 1120, 132, 8, 6},
		{2, 10, 132, 1, 2},    // tiny: limited by units
		{40, 100, 132, 1, 32}, // one block per SM: one wave whatever the width; the widest
		{40, 160, 0, 1, 1},    // no SM count: the eight-token rule as for one SM
	} {
		if got := warpsFor(c.U, c.RG, c.sms, c.nt); got != c.want {
			t.Errorf("warpsFor(%d, %d, %d, %d) = %d, want %d", c.U, c.RG, c.sms, c.nt, got, c.want)
		}
	}
}

func TestGemvPlan(t *testing.T) {
	for _, c := range []struct{ U, RG, sms, maxW, W, P int }{
		{140, 160, 132, 32, 8, 3},  // down 5120×17920: 480 blocks in one wave, 6 units per warp (9 unsplit)
		{40, 160, 132, 32, 16, 1},  // o
		{40, 240, 132, 32, 16, 1},  // qkv
		{40, 1120, 132, 32, 10, 1}, // gate_up: a second part would add waves
		{40, 3136, 132, 32, 8, 1},  // output head
		{140, 160, 132, 8, 8, 3},   // the byte layout (at most 8 warps): the same (18 units unsplit)
		{140, 160, 66, 32, 4, 3},   // half the SMs: 480 blocks of 4 warps in one wave, 12 units (2 parts would hold 70 units: more than gemvXsUnits)
		{24, 5, 132, 32, 24, 1},    // a small matrix: one unit per warp already
		{140, 160, 0, 32, 1, 3},    // no SM count: warpsFor's fallback, parts of ≤ gemvXsUnits units
		{40, 160, 0, 32, 1, 1},
	} {
		if W, P := gemvPlan(c.U, c.RG, c.sms, c.maxW, gemvXsUnits); W != c.W || P != c.P {
			t.Errorf("gemvPlan(%d, %d, %d, %d) = %d warps, %d parts; want %d, %d", c.U, c.RG, c.sms, c.maxW, W, P, c.W, c.P)
		}
	}
}

// TestGemvWarpsOverride: warpsOverride (UPG_CUDA_GEMV_WARPS) fixes the
// width, within maxW and the units, with one part unless gemvSplitOverride
// (UPG_CUDA_GEMV_SPLIT) says otherwise.
func TestGemvWarpsOverride(t *testing.T) {
	defer func(w, p int) { warpsOverride, gemvSplitOverride = w, p }(warpsOverride, gemvSplitOverride)
	for _, c := range []struct{ env, split, U, maxW, W, P int }{
		{5, 0, 40, 32, 5, 1},   // gate_up at 5 warps
		{64, 0, 40, 32, 32, 1}, // capped by the kernel's 32 warps
		{16, 0, 40, 8, 8, 1},   // and by a byte-layout kernel's 8
		{16, 0, 6, 32, 6, 1},   // and by the units
		{8, 2, 140, 32, 8, 3},  // down: 8 warps, 3 parts (not 2: parts of ≤ gemvXsUnits units)
		{8, 2, 120, 32, 8, 2},  // 8 warps in 2 parts
		{8, 9, 140, 32, 8, 4},  // parts at most GEMV_MAX_SPLIT
	} {
		warpsOverride, gemvSplitOverride = c.env, c.split
		if W, P := gemvPlan(c.U, 160, 132, c.maxW, gemvXsUnits); W != c.W || P != c.P {
			t.Errorf("warps %d, split %d: gemvPlan(%d, 160, 132, %d) = %d warps, %d parts; want %d, %d", c.env, c.split, c.U, c.maxW, W, P, c.W, c.P)
		}
	}
}

// TestGemvPlanXsUnits (CPU): every one-token plan keeps a part's units
// within the activations' room in shared memory (gemvXsUnits, XS_UNITS in
// kernels/gemv.cu), and a matrix too wide for gemvMaxSplit such parts gets
// none (the eight-token kernel takes it).
func TestGemvPlanXsUnits(t *testing.T) {
	for _, U := range []int{1, 40, 64, 65, 140, 200, 256, 257, 400} {
		for _, RG := range []int{5, 160, 3136} {
			for _, sms := range []int{132, 0} {
				W, P := gemvPlan(U, RG, sms, 32, gemvXsUnits)
				if U > gemvXsUnits*gemvMaxSplit {
					if P != 0 {
						t.Errorf("gemvPlan(%d, %d, %d) = %d parts, want 0 (too wide)", U, RG, sms, P)
					}
					continue
				}
				if P < 1 || P > gemvMaxSplit || W < 1 || W > 32 {
					t.Fatalf("gemvPlan(%d, %d, %d) = %d warps, %d parts", U, RG, sms, W, P)
				}
				for p := range P {
					if n := U*(p+1)/P - U*p/P; n > gemvXsUnits {
						t.Errorf("gemvPlan(%d, %d, %d): part %d of %d has %d units, more than %d", U, RG, sms, p, P, n, gemvXsUnits)
					}
				}
			}
		}
	}
}

// TestGemvPlanTwoToken (CPU): the two-token kernel's plans (no room limit:
// its activations come through L1) always have parts, within gemvMaxSplit,
// and are the one-token plans wherever those did not need parts for the
// room (Phi-4's shapes among them: down's 140 units take 3 parts either way).
func TestGemvPlanTwoToken(t *testing.T) {
	for _, c := range []struct{ U, RG, W, P int }{
		{140, 160, 8, 3}, {40, 160, 16, 1}, {40, 240, 16, 1}, {40, 1120, 10, 1}, {40, 3136, 8, 1},
		{258, 2, 32, 3}, // wider than the one-token kernel's room (its plan: 0 parts): 3 units a warp, as 4 parts would give
		{65, 2, 32, 3},  // 2 row groups: 3 parts of 32 warps (a unit a warp and a reduction) beat 2 parts' 2 units
	} {
		if W, P := gemvPlan(c.U, c.RG, 132, 32, 0); W != c.W || P != c.P {
			t.Errorf("gemvPlan(%d, %d, 132, 32, 0) = %d warps, %d parts; want %d, %d", c.U, c.RG, W, P, c.W, c.P)
		}
	}
	for _, U := range []int{1, 40, 64, 65, 140, 256, 257, 400, 1000} {
		for _, RG := range []int{1, 5, 160, 3136} {
			for _, sms := range []int{132, 66, 0} {
				W, P := gemvPlan(U, RG, sms, 32, 0)
				if P < 1 || P > gemvMaxSplit || W < 1 || W > 32 {
					t.Errorf("gemvPlan(%d, %d, %d, 32, 0) = %d warps, %d parts", U, RG, sms, W, P)
				}
				if U <= gemvXsUnits {
					if W1, P1 := gemvPlan(U, RG, sms, 32, gemvXsUnits); W1 != W || P1 != P {
						t.Errorf("%d units, %d row groups, %d SMs: two-token plan %d×%d, one-token %d×%d", U, RG, sms, W, P, W1, P1)
					}
				}
			}
		}
	}
}

// TestEightTokenWarps (CPU): the eight-token kernel's blocks stay within
// its 256 threads for every shape, SM count and UPG_CUDA_GEMV_WARPS
// override, including the one-token rows too wide for the one-token kernel.
func TestEightTokenWarps(t *testing.T) {
	defer func(o int) { warpsOverride = o }(warpsOverride)
	for _, ov := range []int{0, 5, 16, 32} {
		warpsOverride = ov
		for _, U := range []int{1, 7, 40, 140, 258, 400} {
			for _, RG := range []int{1, 2, 160, 3136} {
				for _, sms := range []int{132, 0} {
					for _, maxW := range []int{8, 32} {
						w := eightTokenWarps(U, RG, sms, maxW)
						if w < 1 || w > gemv8MaxWarps || w > maxW {
							t.Errorf("override %d: eightTokenWarps(%d, %d, %d, %d) = %d, want 1..%d", ov, U, RG, sms, maxW, w, min(maxW, gemv8MaxWarps))
						}
					}
				}
			}
		}
	}
	// the wide row of TestGPUGemvWideRows (258 units, 2 row groups, 132 SMs)
	// on the planner's own path, without the override the loop left set
	warpsOverride = 0
	if _, P := gemvPlan(258, 2, 132, 32, gemvXsUnits); P != 0 {
		t.Fatalf("258 units: %d one-token parts, want 0 (the eight-token kernel)", P)
	}
	if w := eightTokenWarps(258, 2, 132, 32); w != gemv8MaxWarps {
		t.Errorf("258 units, 2 row groups: %d warps, want %d", w, gemv8MaxWarps)
	}
}

func TestSplitMMA(t *testing.T) {
	for _, c := range []struct{ blocks, slots, U, want int }{
		{320, 528, 140, 3}, // down at 256 tokens (80 row × 4 token tiles, 4 per SM on 132 SMs)
		{320, 528, 40, 3},  // o at 256 tokens
		{480, 528, 40, 1},  // qkv at 256 tokens: one wave already
		{2240, 528, 40, 1}, // gate_up at 256 tokens: more blocks than slots
		{120, 660, 40, 5},  // qkv at 32 tokens (5 per SM): 600 blocks, one wave
		{80, 660, 40, 8},   // o at 32 tokens: 640 blocks of 5 units
		{80, 660, 140, 8},  // down at 32 tokens: 640 blocks of 18 units
		{80, 528, 40, 6},   // o at 64 tokens: 6 parts, 480 blocks in one wave (8 would not fit)
		{560, 660, 40, 1},  // gate_up at 32 tokens: a second part would add a wave
		{6, 528, 5, 1},     // too few units for parts of ≥ 4
		{6, 0, 40, 1},      // no SM count
	} {
		if got := splitMMA(c.blocks, c.slots, c.U); got != c.want {
			t.Errorf("splitMMA(%d, %d, %d) = %d, want %d", c.blocks, c.slots, c.U, got, c.want)
		}
	}
}

// TestLaunchWaves: the step trace's description of a launch against the
// SMs' block slots — run 101's SwiGLU at 32 tokens on an H200 (1,120
// blocks, 4 an SM at 256 threads: three waves; 9 at 128: one), a launch of
// exactly one wave, and an unknown occupancy.
func TestLaunchWaves(t *testing.T) {
	for _, c := range []struct {
		blocks, perSM, sms int
		want               string
	}{
		{1120, 4, 132, "1120 blocks, 4 an SM: 3 waves"},
		{1120, 9, 132, "1120 blocks, 9 an SM: 1 wave"},
		{660, 5, 132, "660 blocks, 5 an SM: 1 wave"},
		{661, 5, 132, "661 blocks, 5 an SM: 2 waves"},
		{90, 0, 132, "90 blocks"},
	} {
		if got := launchWaves(c.blocks, c.perSM, c.sms); got != c.want {
			t.Errorf("launchWaves(%d, %d, %d) = %q, want %q", c.blocks, c.perSM, c.sms, got, c.want)
		}
	}
}
