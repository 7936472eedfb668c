//go:build amd64

package bench

import "golang.org/x/sys/cpu"

//go:noescape
func readAVX2(p *byte, n int) uint64

func readBytes(b []byte) uint64 {
	if cpu.X86.HasAVX2 && len(b) >= 256 {
		n := len(b) &^ 255
		return readAVX2(&b[0], n) ^ readGo(b[n:])
	}
	return readGo(b)
}
