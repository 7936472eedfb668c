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

// sel3 mirrors sel3 (kernels/gemv.cu): the PRMT selector (ks, j) of a
// 3-bit unit from word j of its three plane words p0, p1, p2.
func sel3(p0, p1, p2 uint32, ks int) uint32 {
	switch ks {
	case 0:
		return p0 & 0x77777777
	case 1:
		return p1 & 0x77777777
	case 2:
		return p2 & 0x77777777
	}
	return p0>>3&0x11111111 | p1>>2&0x22222222 | p2>>1&0x44444444
}

// TestCodeSel3 checks the 3-bit selector layout (sel3, as the GEMV and
// the GEMM decode it) against the codec's codes: for every row, unit,
// k-slice, lane group and half of random 3-bit matrices in the GPU layout
// (repackDense), PRMT in its sign mode on the selector (its upper half
// shifted down for the second register) gives the level bytes of codes
// 32·ks + 16·second + 4·tig .. +3, the columns the mma fragment's register
// holds; so no selector nibble has bit 3 set.
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
						for tig := 0; tig < 4; tig++ {
							sel := sel3(word(0, u, tig), word(1, u, tig), word(2, u, tig), ks)
							got := prmt(tb[0], tb[1], sel>>(16*sec))
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
