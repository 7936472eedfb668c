package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/internal/decodetest"
	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/kvcache"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/sample"
	"github.com/upg-ai/upg/tensor"
)

const demoModel = "../models/miniphi-29m.upg"

// fakeGPU is a CPU backend dressed as a device backend: it sizes weights
// (2 bytes a weight, as fp16) and reports a fixed amount of free memory,
// so that Load's placement, its errors and the KV budget run without a GPU.
type fakeGPU struct {
	*cpu.Backend
	free int64
}

func (f *fakeGPU) Name() string                      { return "fake-gpu" }
func (f *fakeGPU) FreeMemory() int64                 { return f.free }
func (f *fakeGPU) WeightBytes(m tensor.Matrix) int64 { return 2 * int64(m.Rows()) * int64(m.Cols()) }

// withFakeGPU makes Load's device backends fake GPUs with free bytes free
// (the CPU stays the CPU) for the rest of the test.
func withFakeGPU(t *testing.T, free int64) {
	t.Cleanup(func() { newBackend = NewBackend })
	newBackend = func(device string, threads int) (backend.Backend, error) {
		if strings.EqualFold(device, "cpu") {
			return cpu.New(threads), nil
		}
		return &fakeGPU{Backend: cpu.New(threads), free: free}, nil
	}
}

func demoWeights(t *testing.T) (*checkpoint.Checkpoint, *model.Weights) {
	t.Helper()
	testutil.NeedData(t, demoModel)
	return decodetest.OpenWeights(t, demoModel)
}

func mustLoad(t *testing.T, o Options) *Loaded {
	t.Helper()
	o.Threads = 1
	l, err := Load(demoModel, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// greedyBatch decodes the prompts together, sequence i joining at step 2i,
// greedy for even i and seeded sampling for odd i, and returns their tokens.
func greedyBatch(t *testing.T, l *Loaded, prompts []string) [][]int {
	t.Helper()
	var seqs []*Sequence
	for step := 0; ; step++ {
		if i := len(seqs); i < len(prompts) && step >= 2*i {
			r := Request{Prompt: l.EncodePrompt(prompts[i]), MaxTokens: 10 + 3*i, IgnoreEOS: true}
			if i%2 == 1 {
				r.Sampling = sample.Options{Temperature: 0.9, TopP: 0.95, Seed: uint64(7 + i)}
			}
			s, err := l.NewSequence(r)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, s)
		}
		if len(seqs) == len(prompts) && !slices.ContainsFunc(seqs, func(s *Sequence) bool { return !s.Done() }) {
			break
		}
		if _, err := l.Step(seqs, 0); err != nil {
			t.Fatal(err)
		}
	}
	out := make([][]int, len(seqs))
	for i, s := range seqs {
		out[i] = slices.Clone(s.Tokens())
		l.Release(s)
	}
	return out
}

var splitPrompts = []string{"package main\n\nfunc main() {", "It was a dark and stormy night", "type Reader interface {", "The old man"}

// TestLoadGPULayers runs Load's placement on a fake device backend (a CPU
// backend that reports free memory and sizes weights): GPULayers 0 and
// values past the layers put every layer on the device, n puts the last n
// there and the rest on a CPU backend; a batched, partly sampled engine
// run over the split gives the CPU's tokens exactly (both are CPU kernels);
// the last logits row is the same bit for bit.
func TestLoadGPULayers(t *testing.T) {
	_, w := demoWeights(t)
	L := len(w.Layers)
	withFakeGPU(t, 1<<40)
	ref := mustLoad(t, Options{Device: "cpu", Ctx: 128, MaxSeqs: 4, StepTokens: 32})
	if ref.GPULayers != 0 || len(ref.Model.Stages()) != 1 {
		t.Errorf("--device cpu: %d GPU layers, %d stages", ref.GPULayers, len(ref.Model.Stages()))
	}
	want := greedyBatch(t, ref, splitPrompts)
	wantLogits := slices.Clone(ref.Context().ReadLogits())
	for _, n := range []int{0, 1, L / 2, L - 1, L, L + 5} {
		t.Run(fmt.Sprintf("gpu-layers=%d", n), func(t *testing.T) {
			l := mustLoad(t, Options{Device: "cuda", GPULayers: n, Ctx: 128, MaxSeqs: 4, StepTokens: 32})
			wantN := n
			if n == 0 || n > L {
				wantN = L
			}
			if l.GPULayers != wantN {
				t.Errorf("GPULayers %d: %d on the device, want %d", n, l.GPULayers, wantN)
			}
			st := l.Model.Stages()
			if wantN == L {
				if len(st) != 1 || st[0].Backend.Name() != "fake-gpu" {
					t.Errorf("every layer: stages %+v", st)
				}
			} else {
				if len(st) != 2 || st[0].End != L-wantN || st[1].Backend.Name() != "fake-gpu" || !strings.HasPrefix(st[0].Backend.Name(), "cpu") {
					t.Errorf("last %d layers: stages %+v", wantN, st)
				}
				if name := BackendName(l.Model); !strings.Contains(name, fmt.Sprintf("fake-gpu (layers %d-%d)", L-wantN, L-1)) {
					t.Errorf("backend name %q", name)
				}
			}
			got := greedyBatch(t, l, splitPrompts)
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("sequence %d: %v, want %v", i, got[i], want[i])
				}
			}
			lg := l.Context().ReadLogits()
			if !slices.Equal(lg, wantLogits) {
				t.Errorf("last step's logits differ from the CPU's")
			}
			// The prefix cache and a second chat turn reuse blocks of both backends.
			r := Request{Prompt: l.EncodePrompt(strings.Repeat(splitPrompts[0], 4)), MaxTokens: 4}
			var a, b strings.Builder
			if _, err := l.Generate(context.Background(), r, func(s string) { a.WriteString(s) }); err != nil {
				t.Fatal(err)
			}
			if _, err := ref.Generate(context.Background(), r, func(s string) { b.WriteString(s) }); err != nil {
				t.Fatal(err)
			}
			if a.String() != b.String() {
				t.Errorf("Generate: %q, want %q", a.String(), b.String())
			}
		})
	}
}

// TestGPULayersFit: a model whose weights do not fit the device's free
// memory is refused with how many layers would fit; those run; auto picks
// them; --device auto falls back to the CPU; the KV budget from free
// memory gives the device no more than half its free memory for its share.
func TestGPULayersFit(t *testing.T) {
	ck, w := demoWeights(t)
	L := len(w.Layers)
	sz := &fakeGPU{}
	whole := deviceNeed(sz, w, L)
	const ctx = 128
	po := kvcache.Options{Layers: 1, KVHeads: ck.Config.KVHeads, HeadDim: ck.Config.HeadDim, BlockSize: kvcache.DefaultBlockSize}
	perLayer := kvcache.BudgetFor(po, ctx, 1)
	// Free memory for the head and half the layers with their KV cache.
	free := deviceNeed(sz, w, L/2) + int64(L/2)*perLayer
	if free >= whole {
		t.Fatalf("free %d ≥ whole %d", free, whole)
	}
	k := layersThatFit(sz, w, free, perLayer)
	if k != L/2 {
		t.Fatalf("layersThatFit = %d, want %d", k, L/2)
	}
	if deviceNeed(sz, w, L-1) >= deviceNeed(sz, w, L) || deviceNeed(sz, w, 1) >= deviceNeed(sz, w, 2) {
		t.Errorf("deviceNeed does not grow with the layers")
	}
	withFakeGPU(t, free)
	_, err := Load(demoModel, Options{Device: "cuda", Ctx: ctx, Threads: 1})
	hint := fmt.Sprintf("--gpu-layers %d fits", k)
	if err == nil || !strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), "GiB is free on fake-gpu") || !errors.Is(err, ErrDevice) {
		t.Fatalf("whole model on a small device: %v, want an ErrDevice with %q", err, hint)
	}
	t.Log(err)
	if _, err := Load(demoModel, Options{Device: "cuda", GPULayers: L - 1, Ctx: ctx, Threads: 1}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the last %d of its %d layers need", L-1, L)) {
		t.Errorf("%d layers on a small device: %v", L-1, err)
	}
	l := mustLoad(t, Options{Device: "cuda", GPULayers: k, Ctx: ctx})
	if l.GPULayers != k {
		t.Errorf("GPULayers %d: %d on the device", k, l.GPULayers)
	}
	a := mustLoad(t, Options{Device: "cuda", GPULayers: GPULayersAuto, Ctx: ctx, KVBudget: -1, MaxSeqs: 64})
	if a.GPULayers != k {
		t.Errorf("auto: %d layers on the device, want %d", a.GPULayers, k)
	}
	// The pool's blocks hold k of L layers on the device: that share stays
	// within half the free memory (kvcache.DefaultBudget's half).
	if share := a.Pool.Bytes() * int64(k) / int64(L); share > free/2 {
		t.Errorf("KV budget %d: the device's share %d is over half its free memory %d", a.Pool.Bytes(), share, free/2)
	}
	if !strings.Contains(a.KVBudgetWhy, "layers' share") {
		t.Errorf("KV budget why %q", a.KVBudgetWhy)
	}
	t.Logf("auto: %d layers, KV %d bytes: %s", a.GPULayers, a.Pool.Bytes(), a.KVBudgetWhy)
	f := mustLoad(t, Options{Device: "auto", Ctx: ctx})
	if f.GPULayers != 0 || f.Model.Backend().Name() == "fake-gpu" {
		t.Errorf("--device auto, model too large: %d GPU layers on %s, want the CPU", f.GPULayers, f.Model.Backend().Name())
	}
	// The GPU test's helpers, on two CPU kernels: identical.
	compareGreedy(t, "fake split", greedy(t, l.Engine, "package main", 16), greedy(t, f.Engine, "package main", 16), 0)
	// Not one layer fits: auto runs on the CPU.
	withFakeGPU(t, deviceNeed(sz, w, 1)-1)
	z := mustLoad(t, Options{Device: "cuda", GPULayers: GPULayersAuto, Ctx: ctx})
	if z.GPULayers != 0 || z.Model.Backend().Name() == "fake-gpu" {
		t.Errorf("auto with no room: %d GPU layers on %s", z.GPULayers, z.Model.Backend().Name())
	}
	if _, err := Load(demoModel, Options{Device: "cuda", Ctx: ctx, Threads: 1}); err == nil || !strings.Contains(err.Error(), "not one layer fits") {
		t.Errorf("no room at all: %v", err)
	}
	if _, err := Load(demoModel, Options{Device: "cpu", GPULayers: -2, Threads: 1}); err == nil || !strings.Contains(err.Error(), "GPULayers -2") {
		t.Errorf("GPULayers -2: %v", err)
	}
}

// TestLoadDeviceError: Load's errors for a GPU that cannot be used match
// ErrDevice (the C ABI's UPG_ERR_DEVICE) and keep the backend's own cause
// and message; a bad file does not.
func TestLoadDeviceError(t *testing.T) {
	testutil.NeedData(t, demoModel)
	t.Cleanup(func() { newBackend = NewBackend })
	noDriver := fmt.Errorf("cuda: %w: cannot load libcuda.so.1", cuda.ErrNoDriver)
	newBackend = func(device string, threads int) (backend.Backend, error) {
		if strings.EqualFold(device, "cpu") {
			return cpu.New(threads), nil
		}
		return nil, noDriver
	}
	_, err := Load(demoModel, Options{Device: "cuda", Threads: 1})
	if !errors.Is(err, ErrDevice) || !errors.Is(err, cuda.ErrNoDriver) || err.Error() != noDriver.Error() {
		t.Errorf("no driver: %v, want ErrDevice with the backend's message %q", err, noDriver)
	}
	bad := filepath.Join(t.TempDir(), "bad.upg")
	os.WriteFile(bad, []byte("not a model"), 0o644)
	if _, err := Load(bad, Options{Device: "cuda", Threads: 1}); err == nil || errors.Is(err, ErrDevice) {
		t.Errorf("a bad file: %v, want an error that is not ErrDevice", err)
	}
}

// TestConverseReuseOnDevice: on a device backend (whose one-token and
// multi-token kernels round differently) Converse reuses a cached prefix
// only up to where a step of the last conversation began, so a repeated
// prompt is fed as before; on the CPU (batch-invariant) it keeps all but
// the prompt's last token. The fake GPU computes as the CPU, so the texts
// agree either way: what differs is how much is reused.
func TestConverseReuseOnDevice(t *testing.T) {
	testutil.NeedData(t, demoModel)
	withFakeGPU(t, 1<<40)
	converse := func(l *Loaded, prompt []int, o sample.Options) ([]int, Stats) {
		t.Helper()
		s, err := l.Converse(Request{Prompt: prompt, MaxTokens: 6, IgnoreEOS: true, Sampling: o})
		if err != nil {
			t.Fatal(err)
		}
		for !s.Done() {
			if _, err := l.Step([]*Sequence{s}, 0); err != nil {
				t.Fatal(err)
			}
		}
		return slices.Clone(s.Tokens()), s.Stats()
	}
	sampled := sample.Options{Temperature: 0.9, TopP: 0.95, Seed: 3}
	for _, dev := range []string{"cpu", "cuda"} {
		const step = 5
		l := mustLoad(t, Options{Device: dev, Ctx: 256, StepTokens: step})
		prompt := l.EncodePrompt("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Println(os.Args[1:])\n}\n\nfunc add(a, b int) int {")
		n := len(prompt)
		if n <= 2*step || (n-1)%step == 0 {
			t.Fatalf("a prompt of %d tokens: want more than two steps of %d, the last one partial", n, step)
		}
		first, st := converse(l, prompt, sampled)
		again, st2 := converse(l, prompt, sampled)
		if !slices.Equal(first, again) || st.ReusedTokens != 0 {
			t.Errorf("%s: the same request twice: %v then %v (reused %d, %d)", dev, first[n:], again[n:], st.ReusedTokens, st2.ReusedTokens)
		}
		// a step began every `step` prompt positions, then at each generated one
		want := (n - 1) / step * step
		if dev == "cpu" {
			want = n - 1
		}
		if st2.ReusedTokens != want {
			t.Errorf("%s: repeating a prompt of %d tokens reused %d, want %d", dev, n, st2.ReusedTokens, want)
		}
		// extending the last conversation (its prompt and 4 of its tokens):
		// all of it, since each generated token was fed by a step of its own
		ext := append(slices.Clone(first[:n+4]), prompt[1:4]...)
		_, st3 := converse(l, ext, sampled)
		if st3.ReusedTokens != n+4 {
			t.Errorf("%s: extending the conversation reused %d, want %d", dev, st3.ReusedTokens, n+4)
		}
		// and the first request again: from the step at the largest start
		// within its prompt, which the previous conversation kept
		_, st4 := converse(l, prompt, sampled)
		if st4.ReusedTokens != want {
			t.Errorf("%s: the first prompt again reused %d, want %d", dev, st4.ReusedTokens, want)
		}
		l.Close()
	}
}
