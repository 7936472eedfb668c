//go:build !amd64

package bench

func readBytes(b []byte) uint64 { return readGo(b) }
