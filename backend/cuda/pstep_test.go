//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/synth"
)

// psBlockOf is the kernel's ps_block_of: the block whose range of a
// matrix of n units holds unit i.
func psBlockOf(i, n int64, nb int) int { return int(((i+1)*int64(nb) - 1) / n) }

// psShapes are the persistent step's matrices (rows, units a row) for the
// Phi-4 shape and the GPU test's small model, with the head.
var psShapes = map[string][][2]int{
	"phi4":  {{7680, 40}, {5120, 40}, {35840, 40}, {5120, 140}, {100352, 40}},
	"small": {{1536, 8}, {1024, 8}, {4096, 8}, {1024, 16}, {4096, 8}}, // q|k|v: (8 + 2·2)·128 rows
}

// TestPstepPlan (CPU): the launch shape psPlan gives holds what the kernel
// assumes, checked by walking the kernel's own partition (ps_lo, the warps'
// parts, ps_block_of) in Go: every row group's units lie in at most two
// blocks' ranges, ps_block_of names the block whose range holds a unit, a
// warp's part touches at most kmax row groups, and the shared memory fits
// an H200's 227 KB for Phi-4.
func TestPstepPlan(t *testing.T) {
	for name, shapes := range psShapes {
		var mats [][4]*DenseGPU
		var l [4]*DenseGPU
		for i, s := range shapes[:4] {
			l[i] = &DenseGPU{R: s[0], U: s[1], C: s[1] * 128, G: s[1], plan: quantPlan{seg: 1024}}
		}
		mats = append(mats, l)
		head := &DenseGPU{R: shapes[4][0], U: shapes[4][1], C: shapes[4][1] * 128, G: shapes[4][1], plan: quantPlan{seg: 1024}}
		heads, H := 40, 10
		if name == "small" {
			heads, H = 8, 2
		}
		nb, S, kmax, nsm, smem := psPlan(mats, head, 132, heads, H)
		t.Logf("%s: %d blocks, %d splits, kmax %d, %d small-op floats, %d bytes of shared memory", name, nb, S, kmax, nsm, smem)
		if name == "phi4" && (nb != 132 || S != 13 || smem > 232448) {
			t.Errorf("phi4: %d blocks, %d splits, %d bytes: want 132, 13 and ≤ 232,448", nb, S, smem)
		}
		for _, s := range shapes {
			R, U := s[0], s[1]
			n := int64(R/32) * int64(U)
			for b := 0; b < nb; b++ {
				n0, n1 := n*int64(b)/int64(nb), n*int64(b+1)/int64(nb)
				for i := n0; i < n1; i += max(1, (n1-n0)/7) {
					if got := psBlockOf(i, n, nb); got != b {
						t.Fatalf("%s %d×%d: unit %d is in block %d's range, ps_block_of says %d", name, R, U*128, i, b, got)
					}
				}
				for w := 0; w < psWarps; w++ {
					a, e := n0+(n1-n0)*int64(w)/psWarps, n0+(n1-n0)*int64(w+1)/psWarps
					if a < e && int((e-1)/int64(U)-a/int64(U))+1 > kmax {
						t.Errorf("%s %d×%d: block %d warp %d touches %d row groups > kmax %d", name, R, U*128, b, w, (e-1)/int64(U)-a/int64(U)+1, kmax)
					}
				}
			}
			for rg := int64(0); rg < int64(R/32); rg++ {
				if b0, b1 := psBlockOf(rg*int64(U), n, nb), psBlockOf(rg*int64(U)+int64(U)-1, n, nb); b1-b0 > 1 {
					t.Errorf("%s %d×%d: row group %d lies in blocks %d..%d (the partials hold two)", name, R, U*128, rg, b0, b1)
				}
			}
		}
	}
}

// TestPutPsMat (CPU): the bytes pstep.cu's PsMat reads (its static_asserts
// fix the offsets).
func TestPutPsMat(t *testing.T) {
	g := &DenseGPU{R: 64, U: 3, C: 384, G: 3, codes: 0x1000, scales: 0x2000, offs: 0, signs: 0x3000,
		plan: quantPlan{rb: 128, gs: 128, seg: 128}, t: [4]uint32{1, 2, 3, 4}, alpha: 0.5, beta: -1.5}
	o := make([]byte, psMatBytes)
	putPsMat(o, g)
	le := binary.LittleEndian
	for _, c := range []struct {
		off  int
		got  uint64
		want uint64
	}{
		{0, le.Uint64(o[0:]), 0x1000}, {8, le.Uint64(o[8:]), 0x2000}, {16, le.Uint64(o[16:]), 0}, {24, le.Uint64(o[24:]), 0x3000},
		{32, uint64(le.Uint32(o[32:])), 64}, {36, uint64(le.Uint32(o[36:])), 3}, {40, uint64(le.Uint32(o[40:])), 384},
		{44, uint64(le.Uint32(o[44:])), 3}, {48, uint64(le.Uint32(o[48:])), 128}, {52, uint64(le.Uint32(o[52:])), 128},
		{56, uint64(le.Uint32(o[56:])), 128}, {60, uint64(le.Uint32(o[60:])), 384}, {64, uint64(le.Uint32(o[64:])), 1},
		{76, uint64(le.Uint32(o[76:])), 4}, {80, uint64(le.Uint32(o[80:])), uint64(math.Float32bits(0.5))},
		{84, uint64(le.Uint32(o[84:])), uint64(math.Float32bits(-1.5))},
	} {
		if c.got != c.want {
			t.Errorf("PsMat byte %d: %#x, want %#x", c.off, c.got, c.want)
		}
	}
}

// TestGPUPstepMatchesPerOp: a small synthetic Phi-3-shaped model at 3 bits
// (what the persistent step takes) decodes greedily the same on the
// persistent step as op by op, and their logits differ by no more than the
// per-op GPU path's own int8 difference from the CPU (the GEMVs' sums are
// added in another order, which moves a few int8 activation codes). Needs a
// fatbin with upg_pstep (FatbinEnv; experiments/pstep.cu says how).
func TestGPUPstepMatchesPerOp(t *testing.T) {
	d := gpu(t)
	if _, err := d.function("upg_pstep"); err != nil {
		t.Skipf("the loaded kernels lack upg_pstep (build experiments/pstep.cu, name it in %s): %v", FatbinEnv, err)
	}
	path := filepath.Join(t.TempDir(), "small.upg")
	if err := synth.Write(path, synth.Options{Layers: 3, Hidden: 1024, FFN: 2048, Heads: 8, KVHeads: 2, HeadDim: 128,
		Vocab: 4096, TargetBPW: 3.2}); err != nil {
		t.Fatal(err)
	}
	ck, w := decodetest.OpenWeights(t, path)
	prompt := make([]int, 40)
	for i := range prompt {
		prompt[i] = (i*977 + 13) % 4096
	}
	const steps = 24
	cb := cpu.New(0)
	ref := generate(t, ck, w, cb, prompt, steps, true)
	cb.Close()
	run := func(pstep bool) (genResult, int64) {
		if pstep {
			t.Setenv(PstepEnv, "1")
		} else {
			t.Setenv(PstepEnv, "0")
		}
		gb, err := New(0)
		if err != nil {
			t.Fatal(err)
		}
		defer gb.Close()
		before := gb.d.psteps
		r := generate(t, ck, w, gb, prompt, steps, true)
		return r, gb.d.psteps - before
	}
	op, _ := run(false)
	ps, launched := run(true)
	if launched == 0 {
		t.Fatalf("%s=1 launched no upg_pstep: the model was not bound (see the log's reason)", PstepEnv)
	}
	var spread, worst float64
	for i := range ref.logits {
		spread = math.Max(spread, maxDiff(ref.logits[i], op.logits[i]))
	}
	same := 0
	for i := range op.tokens {
		if ps.tokens[i] != op.tokens[i] {
			l := append([]float32(nil), op.logits[i]...)
			sort.Slice(l, func(a, b int) bool { return l[a] > l[b] })
			if l[0]-l[1] > 2*float32(math.Max(2*spread, 1e-3)) {
				t.Errorf("token %d differs (persistent %d, per-op %d) and the per-op top two logits are %.4g apart", i, ps.tokens[i], op.tokens[i], l[0]-l[1])
			} else {
				t.Logf("token %d differs at a near-tie (%.2g)", i, l[0]-l[1])
			}
			break
		}
		same++
		// the logits after token i: both paths fed the same tokens so far
		worst = math.Max(worst, maxDiff(op.logits[i+1], ps.logits[i+1]))
	}
	t.Logf("persistent step: %d launches, %d/%d greedy tokens as the per-op path's, logits within %.3g (per-op GPU against the CPU: %.3g); prompt's last position within %.3g",
		launched, same, len(op.tokens), worst, spread, maxDiff(op.logits[0], ps.logits[0]))
	if maxDiff(op.logits[0], ps.logits[0]) != 0 {
		t.Errorf("the prompt's step (op by op on both) differs: %.3g", maxDiff(op.logits[0], ps.logits[0]))
	}
	if worst > math.Max(2*spread, 1e-3) {
		t.Errorf("persistent step's logits differ from the per-op path's by %.3g, more than twice the per-op path's spread from the CPU (%.3g)", worst, spread)
	}
}
