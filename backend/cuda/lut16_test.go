package cuda

import (
	"math/rand/v2"
	"testing"
)

// prmt emulates PTX prmt.b32 in its default mode, sign replication included.
func prmt(a, b, sel uint32) uint32 {
	src := uint64(a) | uint64(b)<<32
	var r uint32
	for i := 0; i < 4; i++ {
		s := sel >> (4 * i) & 15
		v := byte(src >> (8 * (s & 7)))
		if s&8 != 0 {
			if v&0x80 != 0 {
				v = 0xff
			} else {
				v = 0
			}
		}
		r |= uint32(v) << (8 * i)
	}
	return r
}

// TestLut16Trick checks the kernel's 16-entry PRMT lookup (lut16 in
// kernels/gemv.cu) against a plain table on random tables and codes.
func TestLut16Trick(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for it := 0; it < 20000; it++ {
		var u [16]byte
		for i := range u {
			u[i] = byte(rng.IntN(256))
		}
		tb := permTable(u[:])
		x := rng.Uint32() & 0xffff
		sel := x & 0x7777
		lo, hi := prmt(tb[0], tb[1], sel), prmt(tb[2], tb[3], sel)
		m := prmt(0x80808080, 0x80808080, x) ^ 0x80808080
		m |= (m << 1) & 0x80808080
		got := (lo &^ m) | (hi & m)
		var want uint32
		for i := 0; i < 4; i++ {
			want |= uint32(u[x>>(4*i)&15]) << (8 * i)
		}
		if got != want {
			t.Fatalf("codes %04x: got %08x want %08x", x, got, want)
		}
	}
}
