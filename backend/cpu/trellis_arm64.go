//go:build arm64

package cpu

import (
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

const hasTrellisAsm = false // the AVX-512 kernel

type trellisArgs struct{}

// trellisUmax is the largest level byte of the NEON trellis kernel: SDOT
// multiplies signed bytes.
func trellisUmax(lv Level) int {
	if lv == LevelNEON {
		return 127
	}
	return 0
}

// trellisI8Args is the argument block of trellisRowsNEON; the assembly
// reads it by offset (TestArgOffsets checks them).
type trellisI8Args struct {
	xq        *int8              // 0: the token's quantized input, padded to 16·TileCols
	sx        *float32           // 8: α·s_x per group
	sq        *float32           // 16: β·s_x·Σx_q per group
	scales    *byte              // 24: fp16 scales of the first band
	tiles     *byte              // 32: the first band's tiles
	tab       *trellisNEONTables // 40
	lut       *[64]byte          // 48: the 64 level bytes (≤ 127)
	groups    int                // 56
	tpg       int                // 64: tiles per group
	tcols     int                // 72: tiles per band
	tileBytes int                // 80
	bandBytes int                // 88
	dot       int                // 96: 1 = SDOT
}

// trellisNEONTables are the constant tables of trellisRowsNEON for one bit
// width; the assembly reads them by offset.
//
// A step decodes 16 consecutive trellis positions (four rows of a 16×4
// strip) from the 16 bytes of the tile at 2k·s − 2 (step s; step 0 takes
// the tile's last two bytes first, tail-biting), so that position i has its
// 12-bit window at bit (i+1)·k + 4 of the vector in every step. Nibble t
// (bits 4t..4t+3) of the windows of positions 2i and 2i+1 lies in the
// bytes ctl[t][2i], +1 (a halfword); USHL by sh[2t] brings position 2i's
// nibble to bit 0, by sh[2t+1] position 2i+1's to bit 8, BIT merges the
// two bytes and AND masks them. The hash is linear, idx =
// H0[n0]^H1[n1]^H2[n2] (TBL), and a four-register TBL looks the level
// bytes up. k = 4 and k = 2 have their own paths without shifts (tile4,
// tile2 in tools/neon-asm/trellis.py): their windows are whole nibbles of
// the stream, or parts of them (g2, trellisK2Sources).
type trellisNEONTables struct {
	ctl  [3][16]byte  // 0
	sh   [6][8]int16  // 48: USHL counts, even and odd position per nibble
	mask [8]uint16    // 144: 0x00ff
	nib  [16]byte     // 160: 0x0f
	hash [3][16]byte  // 176
	g2   [14][16]byte // 224: k = 2 hash tables (trellisK2Sources)
}

var trellisNEONTab = func() (t [5]trellisNEONTables) {
	for k := 2; k <= 4; k++ {
		tt := &t[k]
		for n := 0; n < 3; n++ {
			for w := 0; w < 8; w++ {
				f := (2*w+1)*k + 4 + 4*n // the even position's nibble, in bits of the vector
				b0, sB := f/8, f%8
				sA := sB + k
				tt.ctl[n][2*w], tt.ctl[n][2*w+1] = byte(b0), byte(b0+1)
				tt.sh[2*n][w] = int16(-sB)
				tt.sh[2*n+1][w] = int16(8 - sA)
			}
			for i := 0; i < 16; i++ {
				tt.hash[n][i] = byte(codec.TrellisIndex(uint32(i) << (4 * n)))
			}
		}
		for i := range tt.mask {
			tt.mask[i] = 0x00ff
		}
		for i := range tt.nib {
			tt.nib[i] = 0x0f
		}
		tt.g2 = trellisK2Hash()
	}
	return t
}()

// trellisRowsNEON computes 16 outputs per band for nbands consecutive bands.
//
//go:noescape
func trellisRowsNEON(out *float32, nbands int, a *trellisI8Args)

// trellisCall runs the NEON kernel for token t over nbands bands from band
// b0, writing 16 floats per band to out.
func (b *Backend) trellisCall(ws *workerState, t, b0, nbands int, out *float32) {
	st := &b.shared.trellis
	m := st.m
	bb := m.TileCols * m.TileBytes
	a := &ws.tr2
	*a = trellisI8Args{
		xq: &st.xq[t*st.cp], sx: &st.sx[t*m.Groups], sq: &st.sq[t*m.Groups],
		scales: &m.Scales[b0*m.Groups*32], tiles: &m.Tiles[b0*bb], tab: &trellisNEONTab[m.Bits], lut: &st.levels.lut,
		groups: m.Groups, tpg: m.GroupSize / 16, tcols: m.TileCols, tileBytes: m.TileBytes, bandBytes: bb,
	}
	if hasDotProd {
		a.dot = 1
	}
	if b0+nbands == m.Bands {
		// The last band from its padded copy (the kernel reads past a tile).
		if nbands > 1 {
			trellisRowsNEON(out, nbands-1, a)
		}
		last := unsafe.Add(unsafe.Pointer(out), 64*(nbands-1))
		a.scales, a.tiles = &m.Scales[(m.Bands-1)*m.Groups*32], &st.last[0]
		trellisRowsNEON((*float32)(last), 1, a)
		return
	}
	trellisRowsNEON(out, nbands, a)
}
