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
// The hash is linear, so a window is hashed as the XOR of 16-entry TBL
// lookups of pieces that need no shifts: for k = 4 three whole nibbles of
// the stream (hash; 16 bytes and the same one byte earlier give 32
// positions), for k = 3 four whole 3-bit symbols (lag; a step unpacks 16
// symbols, TBL gathering each halfword's two bytes from symctl and USHL by
// symsh bringing the even symbol to bit 0 and the odd one to bit 8), for
// k = 2 whole or partial nibbles of the bytes at and before a position's
// byte (g2, trellisK2Sources). A four-register TBL then looks the level
// bytes up.
type trellisNEONTables struct {
	hash   [3][16]byte  // 0: k = 4: nibbles p-2, p-1, p
	nib    [16]byte     // 48: 0x0f
	g2     [14][16]byte // 64: k = 2 hash tables (trellisK2Hash)
	symctl [16]byte     // 288: k = 3
	symsh  [2][8]int16  // 304: USHL counts, even and odd symbol of a halfword
	mask   [8]uint16    // 336: 0x00ff
	sym7   [16]byte     // 352: 0x07
	lag    [4][16]byte  // 368: k = 3 hash tables of symbols p, p-1, p-2, p-3
}

var trellisNEONTab = func() (t [5]trellisNEONTables) {
	for k := 2; k <= 4; k++ {
		tt := &t[k]
		for n := 0; n < 3; n++ {
			for v := 0; v < 16; v++ {
				tt.hash[n][v] = byte(codec.TrellisIndex(uint32(v) << (4 * n)))
			}
		}
		for i := range tt.nib {
			tt.nib[i], tt.sym7[i] = 0x0f, 0x07
		}
		tt.g2 = trellisK2Hash()
		for w := 0; w < 8; w++ {
			b0, sB := 6*w/8, 6*w%8
			tt.symctl[2*w], tt.symctl[2*w+1] = byte(b0), byte(b0+1)
			tt.symsh[0][w], tt.symsh[1][w] = int16(-sB), int16(8-(sB+3))
			tt.mask[w] = 0x00ff
		}
		for d := 0; d < 4; d++ {
			for v := 0; v < 16; v++ {
				tt.lag[d][v] = byte(codec.TrellisIndex(uint32(v&7) << (9 - 3*d)))
			}
		}
	}
	return t
}()

// trellisRowsNEON computes 16 outputs per band for nbands consecutive bands.
//
//go:noescape
func trellisRowsNEON(out *float32, nbands int, a *trellisI8Args)

// trellisCall runs the NEON kernel for token t over nbands bands from band
// b0, writing 16 floats per band to out.
func (b *Backend) trellisCall(ws *workerState, t, b0, nbands int, out *float32, outStride int) {
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
	if b0+nbands == m.Bands && trellisPadLast(b.level, m.Bits) {
		// The last band from its padded copy.
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
