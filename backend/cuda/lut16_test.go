package cuda

import (
	"math/bits"
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

// codeSel3 mirrors code_sel3 (kernels/mma.cu): the PRMT selector of the four
// 3-bit codes lane tig of an mma A fragment takes in k-slice ks (second:
// the fragment's upper 16 columns), from the unit's low-plane word 2·ks +
// second and high-plane word ks.
func codeSel3(lo, b uint32, second bool, tig int) uint32 {
	nl := 2*(tig>>1) + 16*(tig&1)
	nh := (tig >> 1) + 16*(tig&1)
	r0 := 2 - (tig >> 1)
	if tig&1 != 0 {
		r0 = 18 - (tig >> 1)
	}
	hi := bits.RotateLeft32(b, r0)
	if second {
		hi = bits.RotateLeft32(b, -nh)
	}
	return (lo>>nl)&0x33333333 | hi&0x44444444
}

// TestCodeSel3 checks the 3-bit GEMM's code bytes (code_sel3, with the
// lane's shifts computed once) against the codec's codes: for every row,
// unit, k-slice, lane and half of random 3-bit matrices in the GPU layout
// (repackDense), PRMT in its sign mode on the selector gives the level
// bytes of codes 32·ks + 16·second + 4·tig .. +3, the columns the mma
// fragment's register holds; so no selector nibble has bit 3 set.
func TestCodeSel3(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 0
	for _, c := range denseCases() {
		if c.p.Bits != 3 {
			continue
		}
		m := randomDense(t, rng, c)
		packed := repackDense(m)
		u8, _, _ := byteLevels(m.Levels)
		tb := permTable(u8)
		U := (m.C + unitCodes - 1) / unitCodes
		for r := 0; r < m.R; r++ {
			row := m.Codes[r*m.RowBytes : (r+1)*m.RowBytes]
			code := func(col int) uint8 {
				if col >= m.C {
					return 0 // padding columns hold zero codes
				}
				return uint8(getBits(row, col*m.Bits, m.Bits))
			}
			word := func(j, u, comp int) uint32 { return u32At(packed, (((((r/32)*U+u)*3+j)*32+r%32)*4+comp)*4) }
			for u := 0; u < U; u++ {
				for ks := 0; ks < 4; ks++ {
					for sec := 0; sec < 2; sec++ {
						mw := 2*ks + sec
						lo, b := word(mw>>2, u, mw&3), word(2, u, ks)
						for tig := 0; tig < 4; tig++ {
							got := prmt(tb[0], tb[1], codeSel3(lo, b, sec == 1, tig))
							var want uint32
							for i := 0; i < 4; i++ {
								col := u*unitCodes + 32*ks + 16*sec + 4*tig + i
								want |= uint32(u8[code(col)]) << (8 * i)
							}
							if got != want {
								t.Fatalf("%dx%d %s: row %d unit %d ks %d second %d tig %d: got %08x want %08x",
									c.R, c.C, c.p.Levels, r, u, ks, sec, tig, got, want)
							}
							n++
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no 3-bit cases")
	}
	t.Logf("%d fragment registers checked", n)
}
