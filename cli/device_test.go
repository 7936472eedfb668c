package cli

import (
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

// TestDeviceFlag: --device cuda without an NVIDIA driver fails with one
// clear line (exit 1), a bad --device is a usage error, and --device auto
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
	r := upg(t, "run", "--model", demo, "--device", "auto", "--temperature", "0", "--max-tokens", "2", "hi")
	if r.code != 0 {
		t.Fatalf("--device auto without a driver should run on the CPU:\n%s", r)
	}
}
