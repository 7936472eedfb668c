//go:build !amd64 && !arm64

package cpu

func archArgOffsets() []argOffset { return nil }
