//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/model"
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
	// the cluster attention sums in another order (not the unfused ops'
	// bits): TestGPUAttentionClusterMatches checks it
	defer func(m int) { attnClusterMax = m }(attnClusterMax)
	attnClusterMax = 0
	ck, w := openE2E(t)
	for _, text := range []string{"package main", "It was a dark and stormy night; the"} {
		prompt := promptOf(t, ck, text)
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
	defer func(on bool, m int) { attnRotqOn, attnClusterMax = on, m }(attnRotqOn, attnClusterMax)
	attnClusterMax = 0 // the split kernels in both runs
	ck, w := openE2E(t)
	prompt := promptOf(t, ck, "It was a dark and stormy night; the")
	const steps = 16
	res, launches := offOn(t, ck, w, prompt, steps, func(on bool) { attnRotqOn = on })
	sameBits(t, res, "folded", "separate")
	per := [2]float64{float64(launches[0]) / (steps + 1), float64(launches[1]) / (steps + 1)}
	if per[1] > per[0]-float64(ck.Config.Layers)/2 { // 16 of the 17 passes are one-token steps
		t.Errorf("launches per step %.2f folded, %.2f separate: want one fewer per layer in each decode step", per[1], per[0])
	}
}

// TestGPUAttentionClusterMatches: decoding with upg_attn_cluster_rotq (the
// merge and rotation in a cluster's shared memory; sm_90) gives the split
// kernels' greedy tokens on the demo model with as many launches, the kernel
// ran in every one-token step, and the logits are within the int8 paths'
// rounding spread. Its sums run in another order, so a value on a rounding
// edge may take the other code (TestGPUAttentionCluster: none in ~74,000 on
// random inputs); one such code moves the residual by a code step, which
// moves later layers' int8 inputs across their edges too, so one flip
// spreads to int8 noise — the size of the CPU's own int8-vs-float spread
// (TestGPUGreedyMatchesCPU's cpuSpread: 0.16-0.18 on this model), which
// bounds it here. Run 165 measured 0.08 at the first one-token step and
// 0.128 over 16; TestGPUAttentionCluster checks the kernel's algebra exactly.
func TestGPUAttentionClusterMatches(t *testing.T) {
	d := gpu(t)
	if d.Major != 9 {
		t.Skipf("upg_attn_cluster_rotq needs clusters (sm_90); this GPU is sm_%d%d", d.Major, d.Minor)
	}
	defer func(m int) { attnClusterMax = m }(attnClusterMax)
	ck, w := openE2E(t)
	prompt := promptOf(t, ck, "It was a dark and stormy night; the")
	const steps = 16
	clusters := [2]int64{}
	res, launches := offOn(t, ck, w, prompt, steps, func(on bool) {
		attnClusterMax = 0
		if on {
			attnClusterMax = attnClusterLimit
		}
	})
	for i, r := range res {
		clusters[i] = r.attnClusters
	}
	var worst float64
	for i := range res[0].logits {
		step := 0.0
		for j, v := range res[0].logits[i] {
			step = math.Max(step, math.Abs(float64(v-res[1].logits[i][j])))
		}
		t.Logf("step %d: max |logit diff| %.3g", i, step)
		worst = math.Max(worst, step)
	}
	t.Logf("cluster kernel vs splits: max |logit diff| %.3g over %d steps; launches %d, %d; cluster kernels %d",
		worst, steps+1, launches[1], launches[0], clusters[1])
	const int8Spread = 0.2
	if !slices.Equal(res[0].tokens, res[1].tokens) || !(worst <= int8Spread) {
		t.Errorf("tokens %v against %v, logits by %.3g", res[1].tokens, res[0].tokens, worst)
	}
	if launches[1] != launches[0] {
		t.Errorf("launches %d with the cluster kernel, %d without: want the same", launches[1], launches[0])
	}
	if want := int64(steps * ck.Config.Layers); clusters[1] != want || clusters[0] != 0 {
		t.Errorf("cluster kernels launched %d (off: %d), want one a layer of each one-token step: %d", clusters[1], clusters[0], want)
	}
}

// TestGPUSplitRopeMatches: the fused projection's split-K sum with rope_kv
// in it (upg_splitk_rope_kv, UPG_CUDA_SPLITK_ROPE) gives the tokens and
// logits of the split-K sum followed by upg_rope_kv — the same additions and
// rotations, so the same bits — with one launch fewer per layer of a step
// that splits, for a greedy generation of the demo model (its 512-column
// projections split only with splitMinUnits lowered: run 113 ran this test
// without, and the fusion never applied).
func TestGPUSplitRopeMatches(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	defer func(was bool, u int) { useSplitRope, splitMinUnits = was, u }(useSplitRope, splitMinUnits)
	splitMinUnits = 1 // the demo model's q|k|v projection (4 units) splits too
	prompt := promptOf(t, ck, "It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, when it was checked by a violent gust of wind")
	res, launches := offOn(t, ck, w, prompt, 12, func(on bool) { useSplitRope = on })
	sameBits(t, res, "fused", "with two launches")
	t.Logf("%d-token prompt, 12 steps: launches %d -> %d (%d layers)", len(prompt), launches[0], launches[1], ck.Config.Layers)
	if launches[1] >= launches[0] {
		t.Errorf("the fused sum did not save a launch (%d -> %d): the prompt's step took no split-K parts", launches[0], launches[1])
	}
}

// TestGPUSplitRopeKV: upg_splitk_rope_kv (ropeEpilogue.splitSum) writes the
// same bits as upg_splitk_sum followed by upg_rope_kv (ropeEpilogue.run) —
// the projection's rows y with rotated queries and keys, and the key and
// value cache rows — for random parts, positions and slots, fp16 and fp32
// caches, both rotary layouts, 1-11 parts, 1-33 tokens.
func TestGPUSplitRopeKV(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 31))
	for _, sh := range []struct{ heads, H, hd, n, S int }{{8, 2, 64, 48, 4}, {40, 10, 128, 32, 8}, {4, 4, 32, 1, 2}, {6, 2, 16, 33, 11}, {40, 10, 128, 3, 3}} {
		for _, f16 := range []bool{true, false} {
			for _, il := range []bool{false, true} {
				t.Run(fmt.Sprintf("h%d_H%d_hd%d_n%d_S%d_f16=%v_il=%v", sh.heads, sh.H, sh.hd, sh.n, sh.S, f16, il), func(t *testing.T) {
					R, n, S, bs := (sh.heads+2*sh.H)*sh.hd, sh.n, sh.S, 16
					const positions = 300
					part := devF32(t, d, randF(rng, S*n*R))
					cos, sin := devF32(t, d, randF(rng, positions*sh.hd/2)), devF32(t, d, randF(rng, positions*sh.hd/2))
					pos, slots := make([]int32, n), make([]int32, n)
					for i := range n {
						pos[i] = int32(rng.IntN(positions))
						slots[i] = int32(i*3 + 1) // distinct slots
					}
					posd, slotd := devI32(t, d, pos), devI32(t, d, slots)
					defer func() {
						for _, p := range []DevPtr{part, cos, sin, posd, slotd} {
							d.Free(p)
						}
					}()
					cacheFloats := (3*n/bs + 2) * bs * sh.H * sh.hd
					esz := 4
					if f16 {
						esz = 2
					}
					type out struct {
						y      []float32
						kc, vc []byte
					}
					var got [2]out
					for i := range 2 {
						y := devPoisoned(t, d, n*R)
						kc, err := d.Alloc(int64(cacheFloats*esz), "test cache")
						if err != nil {
							t.Fatal(err)
						}
						vc, err := d.Alloc(int64(cacheFloats*esz), "test cache")
						if err != nil {
							t.Fatal(err)
						}
						for _, c := range []DevPtr{kc, vc} {
							if err := d.Fill32(c, 0, cacheFloats*esz/4); err != nil {
								t.Fatal(err)
							}
						}
						e := &ropeEpilogue{heads: sh.heads, H: sh.H, hd: sh.hd, bs: bs, dim: sh.hd, interleave: il, f16: f16,
							kc: kc, vc: vc, slots: slotd, cos: cos, sin: sin, pos: posd}
						run(t, d, func() error {
							if i == 1 {
								return e.splitSum(d, part, S, y, n)
							}
							if err := d.launchK("upg_splitk_sum", [3]uint32{uint32((n*R + 255) / 256), 1, 1}, b256, 0,
								Ptr(part), I32(S), Ptr(y), Ptr(0), I32(n*R)); err != nil {
								return err
							}
							return e.run(d, y, R, n)
						})
						got[i].y = readF32(t, d, y, n*R)
						got[i].kc, got[i].vc = make([]byte, cacheFloats*esz), make([]byte, cacheFloats*esz)
						if err := d.Download(got[i].kc, kc); err != nil {
							t.Fatal(err)
						}
						if err := d.Download(got[i].vc, vc); err != nil {
							t.Fatal(err)
						}
						d.Free(y)
						d.Free(kc)
						d.Free(vc)
					}
					for i := range got[0].y {
						if math.Float32bits(got[0].y[i]) != math.Float32bits(got[1].y[i]) {
							t.Fatalf("y[%d] (token %d column %d): %v by the two kernels, %v fused", i, i/R, i%R, got[0].y[i], got[1].y[i])
						}
					}
					for i := range got[0].kc {
						if got[0].kc[i] != got[1].kc[i] || got[0].vc[i] != got[1].vc[i] {
							t.Fatalf("cache byte %d differs: key %d/%d, value %d/%d", i, got[0].kc[i], got[1].kc[i], got[0].vc[i], got[1].vc[i])
						}
					}
				})
			}
		}
	}
}

// TestGPUGemvRopeMatches: a one-token step's q|k|v GEMV with rope_kv as its
// epilogue (the _t1r kernels) gives the logits and tokens, bit for bit, of
// the GEMV followed by upg_rope_kv (UPG_CUDA_GEMV_ROPE=0), with one launch
// fewer a layer and decode step (the demo model: full rotary, heads of 64).
func TestGPUGemvRopeMatches(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	defer func(was bool) { useGemvRope = was }(useGemvRope)
	prompt := promptOf(t, ck, "Once upon a time, in a house at the end of a long lane, there lived an old clockmaker")
	const steps = 12
	res, launches := offOn(t, ck, w, prompt, steps, func(on bool) { useGemvRope = on })
	sameBits(t, res, "fused", "with two launches")
	// each of the 12 one-token steps saves one launch a layer whose q|k|v
	// code has a rope kernel (the demo model mixes codes: one layer of six
	// with run 119's kernels, five with run 118's, which had 4-bit ones)
	if d := launches[0] - launches[1]; d <= 0 || d%steps != 0 {
		t.Errorf("launches %d -> %d: want the same saving in each of the %d one-token steps", launches[0], launches[1], steps)
	}
	t.Logf("%d-token prompt, %d steps: launches %d -> %d", len(prompt), steps, launches[0], launches[1])
}

// TestGPUGemvRope: the _t1r kernels write the same bits as the one-token
// GEMV followed by upg_rope_kv_f16 — the projection's rows y with rotated
// queries and keys, and the key and value cache rows of the token's slot —
// for every code with a _t1r kernel (2 and 3 bits; groups of 32-256, one
// to four a unit), both rotary layouts, head sizes 32-128, 1 to 16 warps a
// row group (the warps' sums in shared memory and the one-warp path).
// Codes without one keep the two launches (fusesGemv false).
func TestGPUGemvRope(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 37))
	defer func(was bool, w int) { useGemvRope, warpsOverride = was, w }(useGemvRope, warpsOverride)
	params := []codec.Params{ // the codes with a _t1r kernel (kernels/gemv.cu)
		{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed},
		{Codec: "dense", Bits: 3, GroupSize: 64, Levels: "asym", Rotate: 11},
		{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "lloyd", Rotate: 7},
		{Codec: "dense", Bits: 2, GroupSize: 32, Levels: "uniform"},
		{Codec: "dense", Bits: 2, GroupSize: 256, Levels: "asym"},
	}
	t.Run("no kernel", func(t *testing.T) {
		m := randomDense(t, rng, denseCase{(8 + 2*2) * 64, 256, codec.Params{Codec: "dense", Bits: 4, GroupSize: 32, Levels: "asym"}})
		g, err := d.UploadMatrix(m)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Free(d)
		e := &ropeEpilogue{heads: 8, H: 2, hd: 64, bs: 16, dim: 64, f16: true}
		if g.nameRope1 != "" || e.fusesGemv(g) {
			t.Errorf("4-bit, group 32: rope kernel %q, fuses %v (want none: it spilled)", g.nameRope1, e.fusesGemv(g))
		}
	})
	shapes := []struct{ heads, H, hd, C int }{{8, 2, 64, 512}, {4, 4, 32, 96}, {6, 2, 96, 640}, {40, 10, 128, 256}}
	for _, sh := range shapes {
		for pi, p := range params {
			for _, il := range []bool{false, true} {
				for _, W := range []int{1, 3, 16} {
					R, C := (sh.heads+2*sh.H)*sh.hd, sh.C
					if W > (C+127)/128 {
						continue
					}
					t.Run(fmt.Sprintf("h%d_H%d_hd%d_C%d_k%d_g%d_%s_il=%v_W%d", sh.heads, sh.H, sh.hd, C, p.Bits, p.GroupSize, p.Levels, il, W), func(t *testing.T) {
						m := randomDense(t, rng, denseCase{R, C, p})
						g, err := d.UploadMatrix(m)
						if err != nil {
							t.Fatal(err)
						}
						defer g.Free(d)
						if g.nameRope1 == "" {
							t.Fatalf("%s: no rope kernel (params %d)", g.name1, pi)
						}
						s, err := d.NewScratch(1, C)
						if err != nil {
							t.Fatal(err)
						}
						defer s.Free(d)
						const positions, bs = 300, 16
						x := devF32(t, d, randF(rng, C))
						cos, sin := devF32(t, d, randF(rng, positions*sh.hd/2)), devF32(t, d, randF(rng, positions*sh.hd/2))
						posd, slotd := devI32(t, d, []int32{int32(rng.IntN(positions))}), devI32(t, d, []int32{int32(rng.IntN(3 * bs))})
						defer func() {
							for _, p := range []DevPtr{x, cos, sin, posd, slotd} {
								d.Free(p)
							}
						}()
						cacheHalves := 4 * bs * sh.H * sh.hd
						type out struct {
							y      []float32
							kc, vc []byte
						}
						var got [2]out
						warpsOverride = W
						for i, on := range []bool{false, true} {
							useGemvRope = on
							y := devPoisoned(t, d, R)
							kc, vc := devPoisoned(t, d, cacheHalves/2), devPoisoned(t, d, cacheHalves/2)
							e := &ropeEpilogue{heads: sh.heads, H: sh.H, hd: sh.hd, bs: bs, dim: sh.hd, interleave: il, f16: true,
								kc: kc, vc: vc, slots: slotd, cos: cos, sin: sin, pos: posd}
							if on && !e.fusesGemv(g) {
								t.Fatal("fusesGemv: false for a full-rotary projection")
							}
							launches := d.launches
							run(t, d, func() error {
								if err := d.rotq(g, x, C, 1, s); err != nil {
									return err
								}
								return d.gemv(g, y, 1, s, 0, e)
							})
							if n := d.launches - launches; n != 3-int64(i) { // rotq, the GEMV (and rope_kv)
								t.Errorf("fused %v: %d launches", on, n)
							}
							got[i].y = readF32(t, d, y, R)
							got[i].kc, got[i].vc = make([]byte, 2*cacheHalves), make([]byte, 2*cacheHalves)
							if err := d.Download(got[i].kc, kc); err != nil {
								t.Fatal(err)
							}
							if err := d.Download(got[i].vc, vc); err != nil {
								t.Fatal(err)
							}
							d.Free(y)
							d.Free(kc)
							d.Free(vc)
						}
						for r := range got[0].y {
							if math.Float32bits(got[0].y[r]) != math.Float32bits(got[1].y[r]) {
								t.Fatalf("y[%d] (head %d, column %d): %v by the two kernels, %v fused", r, r/sh.hd, r%sh.hd, got[0].y[r], got[1].y[r])
							}
						}
						for i := range got[0].kc {
							if got[0].kc[i] != got[1].kc[i] || got[0].vc[i] != got[1].vc[i] {
								t.Fatalf("cache byte %d differs: key %d/%d, value %d/%d", i, got[0].kc[i], got[1].kc[i], got[0].vc[i], got[1].vc[i])
							}
						}
						// the slot was written (not left poisoned) by both
						written := 0
						for i := 0; i+1 < len(got[0].kc); i += 2 {
							if h := uint16(got[0].kc[i]) | uint16(got[0].kc[i+1])<<8; h != uint16(poison&0xffff) && h != uint16(poison>>16) {
								written++
							}
						}
						if written < sh.H*sh.hd/2 {
							t.Errorf("only %d cache values differ from the poison (want the slot's %d keys)", written, sh.H*sh.hd)
						}
					})
				}
			}
		}
	}
}

// TestGPUSplitPartsMatches: a step whose gate|up GEMM splits (the demo
// model's prompt: splitMinUnits 1 gives its 4-unit matrices 4 parts, the
// SwiGLU's plain loop; 2 gives 2, its load-ahead path) gives the same
// logits and tokens, bit for bit, with the SwiGLU summing the GEMM's parts
// (partsOut) as with upg_splitk_sum between them
// (UPG_CUDA_SPLITK_SWIGLU=0), one launch a layer fewer in that step.
func TestGPUSplitPartsMatches(t *testing.T) {
	gpu(t)
	ck, w := openE2E(t)
	defer func(was bool, u int) { useSplitParts, splitMinUnits = was, u }(useSplitParts, splitMinUnits)
	prompt := promptOf(t, ck, "The lighthouse keeper counted the ships that passed each night, and wrote their names in a book")
	for _, minUnits := range []int{1, 2} {
		t.Run(fmt.Sprintf("minUnits%d", minUnits), func(t *testing.T) {
			splitMinUnits = minUnits
			res, launches := offOn(t, ck, w, prompt, 8, func(on bool) { useSplitParts = on })
			sameBits(t, res, "with the parts summed by the SwiGLU", "by upg_splitk_sum")
			t.Logf("%d-token prompt, 8 steps: launches %d -> %d", len(prompt), launches[0], launches[1])
			if launches[0]-launches[1] != int64(ck.Config.Layers) {
				t.Errorf("launches %d -> %d: want one fewer a layer in the prompt's step (%d layers)", launches[0], launches[1], ck.Config.Layers)
			}
		})
	}
}

// offOn decodes prompt greedily for steps steps on the demo model twice,
// after set(false) and after set(true), each time on a backend made after
// it with graphs off (every launch counted). It returns the two runs and
// their launches.
func offOn(t *testing.T, ck *checkpoint.Checkpoint, w *model.Weights, prompt []int, steps int, set func(on bool)) (res [2]genResult, launches [2]int64) {
	t.Helper()
	for i, on := range []bool{false, true} {
		set(on)
		b, err := New(0)
		if err != nil {
			t.Fatal(err)
		}
		b.graphsOn = false
		res[i] = generate(t, ck, w, b, prompt, steps, true)
		launches[i] = b.d.launches
		res[i].attnClusters = b.d.attnClusters
		b.Close()
	}
	return res, launches
}

// sameBits fails t unless offOn's two runs gave the same logits, bit for
// bit, and the same tokens (on and off name the runs in the messages).
func sameBits(t *testing.T, res [2]genResult, on, off string) {
	t.Helper()
	for i := range res[0].logits {
		for j, v := range res[0].logits[i] {
			if math.Float32bits(res[1].logits[i][j]) != math.Float32bits(v) {
				t.Fatalf("step %d, logit %d: %v %s, %v %s", i, j, res[1].logits[i][j], on, v, off)
			}
		}
	}
	if !slices.Equal(res[0].tokens, res[1].tokens) {
		t.Errorf("tokens: %v %s, %v %s", res[1].tokens, on, res[0].tokens, off)
	}
}
