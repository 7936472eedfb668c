//go:build !amd64 && !arm64

package cpu

// i8ArgOffsets: no integer kernels in assembly on this architecture.
func i8ArgOffsets() []argOffset { return nil }
