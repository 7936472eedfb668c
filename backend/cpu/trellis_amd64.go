package cpu

import (
	"github.com/upg-ai/upg/codec"
	"golang.org/x/sys/cpu"
)

var hasTrellisAsm = hasAVX512 && cpu.X86.HasAVX512GFNI

// trellisArgs is the argument block of trellisRows; the assembly reads it by
// offset (TestArgOffsets checks them).
type trellisArgs struct {
	xq        *int8    // 0: the token's quantized input, padded to 16·TileCols
	sx        *float32 // 8: α·s_x per group
	sq        *float32 // 16: β·s_x·Σx_q per group
	scales    *byte    // 24: fp16 scales of the first band
	tiles     *byte    // 32: the first band's tiles
	lut       *byte    // 40: 64 level bytes
	perm      *byte    // 48: 4 × 64 VPERMI2B indices, one per 16×4 strip
	ctl       *byte    // 56: 2 × 64 VPMULTISHIFTQB controls (hash fields A and B)
	aff       *uint64  // 64: GF2P8AFFINEQB matrices of fields A and B
	groups    int      // 72
	tpg       int      // 80: tiles per group
	tcols     int      // 88: tiles per band
	tileBytes int      // 96
	hiMask    uint64   // 104: bytes of a tile beyond its first 64
	bandBytes int      // 112
}

// trellisRows computes 16 outputs per band for nbands consecutive bands.
//
//go:noescape
func trellisRows(out *float32, nbands int, a *trellisArgs)

// trellisTables are the constant tables of trellisRows for one bit width.
type trellisTables struct {
	perm [4 * 64]byte
	ctl  [2 * 64]byte
	aff  [2]uint64
}

var trellisTab = func() (t [5]trellisTables) {
	for k := 2; k <= 4; k++ {
		tt := &t[k]
		n := 32 * k
		// Qword i of strip c holds the tile's bytes from (8c+i)·k-2 on
		// (circularly): the 16 bits before weight 64c+8i's own and the 8k
		// bits of weights 64c+8i..+7.
		for c := 0; c < 4; c++ {
			for i := 0; i < 8; i++ {
				for by := 0; by < 8; by++ {
					tt.perm[64*c+8*i+by] = byte(((8*c+i)*k - 2 + by + n) % n)
				}
			}
		}
		// Weight j of a qword: its 12-bit window starts at bit (j+1)·k+4;
		// field A is the window's bits 0-7, field B its bits 4-11.
		for i := 0; i < 8; i++ {
			for jj := 0; jj < 8; jj++ {
				tt.ctl[8*i+jj] = byte((jj+1)*k + 4)
				tt.ctl[64+8*i+jj] = byte((jj+1)*k + 8)
			}
		}
		// GF2P8AFFINEQB: output bit b is the parity of (matrix byte 7-b) & x.
		for b, m := range codec.TrellisHashMasks {
			tt.aff[0] |= uint64(m&0xff) << (8 * (7 - b))
			tt.aff[1] |= uint64((m>>8)&0xf) << 4 << (8 * (7 - b))
		}
	}
	return t
}()

// trellisCall runs the assembly kernel for token t over nbands bands from
// band b0, writing 16 floats per band to out.
func (b *Backend) trellisCall(ws *workerState, t, b0, nbands int, out *float32) {
	st := &b.shared.trellis
	m := st.m
	tt := &trellisTab[m.Bits]
	var hi uint64
	switch m.Bits {
	case 3:
		hi = 1<<32 - 1
	case 4:
		hi = ^uint64(0)
	}
	a := &ws.tr
	*a = trellisArgs{
		xq: &st.xq[t*st.cp], sx: &st.sx[t*m.Groups], sq: &st.sq[t*m.Groups],
		scales: &m.Scales[b0*m.Groups*32], tiles: &m.Tiles[b0*m.TileCols*m.TileBytes],
		lut: &st.levels.lut[0], perm: &tt.perm[0], ctl: &tt.ctl[0], aff: &tt.aff[0],
		groups: m.Groups, tpg: m.GroupSize / 16, tcols: m.TileCols, tileBytes: m.TileBytes,
		hiMask: hi, bandBytes: m.TileCols * m.TileBytes,
	}
	trellisRows(out, nbands, a)
}
