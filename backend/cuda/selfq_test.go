//go:build linux && (amd64 || arm64)

package cuda

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/synth"
)

// TestSelfQuantArgs: selfQuant gives GemvSelfQ's parameters, as many and
// of the kinds the _t1q kernels declare (gemvSelfQSig), and allOnes tells a
// folded gain from any other.
func TestSelfQuantArgs(t *testing.T) {
	sq := &selfQuant{x: 0x1000, h: 0x2000, eps: 1e-5}
	args := sq.args(&DenseGPU{C: 5120}, &Scratch{ssq: 0x3000})
	want := sigKinds(gemvSelfQSig)
	got := make([]byte, len(args))
	for i, a := range args {
		got[i] = a.kind
	}
	if n := len(kernelKinds["upg_gemv_k3_g1_t1q"]); n != 40 || n > maxKernelArgs {
		t.Errorf("upg_gemv_k3_g1_t1q takes %d parameters, want 40 (within maxKernelArgs %d)", n, maxKernelArgs)
	}
	if args[2].v != 160 {
		t.Errorf("nsq %d, want 160 row groups of 5120", args[2].v)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("kinds %q, want %q (gemvSelfQSig)", got, want)
	}
	for _, c := range []struct {
		v    []float32
		want bool
	}{{[]float32{1, 1, 1}, true}, {[]float32{1, 1.0000001, 1}, false}, {[]float32{}, false}, {[]float32{-1}, false}} {
		if allOnes(c.v) != c.want {
			t.Errorf("allOnes(%v) = %v", c.v, !c.want)
		}
	}
}

// TestGPUSelfQuantMatchesNorm: on a --rotate-residual file (Phi-4's
// shapes, 2 layers, random weights) the q|k|v projection quantizing its
// own input (no norm kernel before it; UPG_CUDA_SELFQ's default) decodes
// as the norm kernel does: the same greedy tokens up to a step whose
// logits differ, and logits within twice the int8 paths' own spread
// (each side against the GPU's float path), as TestGPUGreedyMatchesCPU
// bounds two independent int8 roundings. And it really runs: every step
// after the first layer's norm takes it with the switch on, none with it
// off.
func TestGPUSelfQuantMatchesNorm(t *testing.T) {
	gpu(t)
	path := filepath.Join(t.TempDir(), "rot.upg")
	if err := synth.Write(path, synth.Options{Layers: 2, RotateResidual: true, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	ck, w := decodetest.OpenWeights(t, path)
	prompt := make([]int, 40)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % 100000
	}
	run := func(on, float bool) (r genResult, n int64) {
		defer func(v bool) { useSelfQuant = v }(useSelfQuant)
		useSelfQuant = on
		withGPU(t, float, func(gb *Backend) {
			r, n = generate(t, ck, w, gb, prompt, 16, true), gb.d.selfQuants
		})
		return r, n
	}
	on, nOn := run(true, false)
	off, nOff := run(false, false)
	flt, _ := run(false, true)
	if nOn == 0 || nOff != 0 {
		t.Fatalf("self-quantizing q|k|v launches: %d with the switch on (want > 0), %d off (want 0)", nOn, nOff)
	}
	worst, steps, same := alike(off, on, 0)
	sOff, _, _ := alike(off, flt, steps)
	sOn, _, _ := alike(on, flt, steps)
	bound := max(2*max(sOff, sOn), 2e-2)
	t.Logf("self-quantized q|k|v (%d launches) vs the norm kernel: %d/%d greedy tokens identical, max |logit diff| %.3g over %d steps; int8 vs GPU float %.3g / %.3g (bound %.3g)",
		nOn, same, len(off.tokens), worst, steps, sOff, sOn, bound)
	if worst > bound {
		t.Errorf("logits differ by %.3g > %.3g", worst, bound)
	}
}
