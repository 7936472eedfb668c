//go:build arm64

package cpu

import "testing"

// TestNEONWithoutDotProd runs the kernel tests again with the SDOT kernels
// switched off, so that a machine (or emulator) with the dot product also
// checks the SMULL/SMLAL2/SADALP fallback.
func TestNEONWithoutDotProd(t *testing.T) {
	if !hasDotProd {
		t.Skip("no dot product on this machine: the other tests already run the fallback")
	}
	hasDotProd = false
	defer func() { hasDotProd = true }()
	TestKernelsMatchOracle(t)
}
