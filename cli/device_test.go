package cli

import (
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

// TestDeviceFlag: --device cuda without an NVIDIA driver fails with one
// clear line (exit 1), a bad --device is a usage error, a bad
// UPG_GPU_MEMORY or UPG_CUDA_GRAPH_CACHE is named without a GPU too, and --device auto
// falls back to the CPU. UPG_LIBCUDA points the driver loader at a file
// that does not exist, so this holds on GPU machines too.
func TestDeviceFlag(t *testing.T) {
	const demo = "../models/miniphi-29m.upg"
	testutil.NeedData(t, demo)
	t.Setenv("UPG_LIBCUDA", "/nonexistent/libcuda.so.1")
	wantFail(t, upg(t, "run", "--model", demo, "--device", "cuda", "--max-tokens", "2", "hi"), 1, "no NVIDIA driver", "--device cpu")
	wantFail(t, upg(t, "run", "--model", demo, "--device", "tpu", "--max-tokens", "2", "hi"), exitUsage, "--device")
	wantFail(t, upg(t, "eval", "--model", demo, "--ref", demo, "--ref-device", "tpu", "--text", demo), exitUsage, "--ref-device")
	t.Setenv("UPG_GPU_MEMORY", "lots")
	wantFail(t, upg(t, "run", "--model", demo, "--device", "cuda", "--max-tokens", "2", "hi"), 1, "UPG_GPU_MEMORY")
	t.Setenv("UPG_GPU_MEMORY", "")
	t.Setenv("UPG_CUDA_GRAPH_CACHE", "0")
	wantFail(t, upg(t, "run", "--model", demo, "--device", "cuda", "--max-tokens", "2", "hi"), 1, "UPG_CUDA_GRAPH_CACHE")
	t.Setenv("UPG_CUDA_GRAPH_CACHE", "")
	r := upg(t, "run", "--model", demo, "--device", "auto", "--temperature", "0", "--max-tokens", "2", "hi")
	if r.code != 0 {
		t.Fatalf("--device auto without a driver should run on the CPU:\n%s", r)
	}
}

// TestGPULayersFlag: --gpu-layers is on every command that loads a model;
// a count with --device cpu, a negative count below -1 and a word other
// than auto are usage errors naming the flag; 0 runs on the CPU even with
// --device cuda; with --device auto and no driver a count is ignored (the
// CPU runs every layer) and bench reports gpu_layers 0.
func TestGPULayersFlag(t *testing.T) {
	const demo = "../models/miniphi-29m.upg"
	testutil.NeedData(t, demo)
	t.Setenv("UPG_LIBCUDA", "/nonexistent/libcuda.so.1")
	for _, cmd := range []string{"run", "chat", "eval", "bench", "serve"} {
		if r := upg(t, cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "--gpu-layers") {
			t.Errorf("upg %s --help does not list --gpu-layers:\n%s", cmd, r)
		}
	}
	gen := []string{"--model", demo, "--temperature", "0", "--max-tokens", "2"}
	wantFail(t, upg(t, append([]string{"run", "--device", "cpu", "--gpu-layers", "3"}, append(gen, "hi")...)...), exitUsage, "--gpu-layers 3 needs --device cuda or auto")
	wantFail(t, upg(t, append([]string{"run", "--device", "cpu", "--gpu-layers", "auto"}, append(gen, "hi")...)...), exitUsage, "--gpu-layers auto needs --device cuda or auto")
	wantFail(t, upg(t, append([]string{"run", "--gpu-layers", "-2"}, append(gen, "hi")...)...), exitUsage, "--gpu-layers must be", `"-2"`)
	wantFail(t, upg(t, append([]string{"run", "--gpu-layers", "half"}, append(gen, "hi")...)...), exitUsage, "--gpu-layers must be", `"half"`)
	wantFail(t, upg(t, "serve", "--model", demo, "--device", "cpu", "--gpu-layers", "2"), exitUsage, "--gpu-layers 2 needs --device cuda or auto")
	wantFail(t, upg(t, "eval", "--model", demo, "--text", demo, "--device", "cpu", "--gpu-layers", "2"), exitUsage, "--gpu-layers 2 needs --device cuda or auto")
	wantFail(t, upg(t, "bench", "--model", demo, "--device", "cpu", "--gpu-layers", "2"), exitUsage, "--gpu-layers 2 needs --device cuda or auto")
	wantFail(t, upg(t, append([]string{"run", "--device", "cuda", "--gpu-layers", "3"}, append(gen, "hi")...)...), 1, "no NVIDIA driver")
	want := upg(t, append([]string{"run", "--device", "cpu"}, append(gen, "hi")...)...)
	if want.code != 0 {
		t.Fatalf("--device cpu:\n%s", want)
	}
	for _, args := range [][]string{
		{"--device", "cpu", "--gpu-layers", "-1"},
		{"--device", "cpu", "--gpu-layers", "0"},
		{"--device", "cuda", "--gpu-layers", "0"}, // none on the GPU: no driver needed
		{"--device", "auto", "--gpu-layers", "3"},
		{"--device", "auto", "--gpu-layers", "auto"},
		{"--device", "auto", "--gpu-layers", "99"},
	} {
		r := upg(t, append(append([]string{"run"}, args...), append(gen, "hi")...)...)
		if r.code != 0 || r.stdout != want.stdout {
			t.Errorf("%v: want the CPU's text %q\n%s", args, want.stdout, r)
		}
	}
	r := upg(t, "bench", "--model", demo, "--device", "auto", "--gpu-layers", "3", "--prompt-tokens", "8", "--gen-tokens", "2", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"gpu_layers":0`) {
		t.Errorf("bench on the CPU: want \"gpu_layers\":0\n%s", r)
	}
}
