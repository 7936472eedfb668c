//go:build !amd64 && !arm64

package linalg

// available lists the micro-kernels this machine can run: the portable one.
func available() []microKernel { return []microKernel{goKernel} }
