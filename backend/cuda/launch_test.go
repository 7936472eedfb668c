//go:build linux && (amd64 || arm64)

package cuda

import "testing"

// TestKernelArgsFit: every kernel's parameter list fits launch's arrays
// (maxKernelArgs), so that no launch fails for its length on the GPU alone
// (run 220's 40-parameter kernels failed every launch on the limit of 32).
func TestKernelArgsFit(t *testing.T) {
	for name := range kernelSig {
		if n := len(kernelKinds[name]); n > maxKernelArgs {
			t.Errorf("%s takes %d parameters > maxKernelArgs %d", name, n, maxKernelArgs)
		}
	}
}
