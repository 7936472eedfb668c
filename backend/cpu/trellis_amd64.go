package cpu

import (
	"fmt"

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
	perm      *byte    // 48: 4 × 64 permute indices, one per 16×4 strip
	ctl       *byte    // 56: 2 × 64 VPMULTISHIFTQB controls (hash fields A and B)
	aff       *uint64  // 64: GF2P8AFFINEQB matrices of fields A and B
	groups    int      // 72
	tpg       int      // 80: tiles per group
	tcols     int      // 88: tiles per band
	tileBytes int      // 96
	lastOff   int      // 104: offset of a tile's last 64 bytes (32k-64)
	bandBytes int      // 112
	bits      int      // 120: k
	nt        int      // 128: tokens of the tile (trellisTile)
	outStride int      // 136: bytes between two tokens' outputs (trellisTile)
	scratch   *float32 // 144: 8×16 floats (trellisTile)
}

// trellisRows computes 16 outputs per band for nbands consecutive bands.
//
//go:noescape
func trellisRows(out *float32, nbands int, a *trellisArgs)

// trellisTile computes 16 outputs per band for nbands bands and the a.nt
// (1..8) tokens of a token tile, decoding each strip once.
//
//go:noescape
func trellisTile(out *float32, nbands int, a *trellisArgs)

// trellisTables are the constant tables of trellisRows for one bit width.
type trellisTables struct {
	perm [4 * 64]byte
	ctl  [2 * 64]byte
	aff  [2]uint64
}

var trellisTab = func() (t [5]trellisTables) {
	for k := 2; k <= 4; k++ {
		tt := &t[k]
		// Qword i of strip c takes the tile's bytes from (8c+i)·k-2 on,
		// circularly: the 16 bits before weight 64c+8i's own, then those of
		// weights 64c+8i..+7; of its 8 bytes the first k+2 are needed.
		// Z0 holds tile bytes [0, 64), Z1 [32k-64, 32k); a strip reads from
		// Z0 alone (indices 0-63), Z1 alone (0-63) or both (Z1 as 64-127).
		n := 32 * k
		last := n - 64
		for c := 0; c < 4; c++ {
			src := trellisStripSrc(k, c)
			for i := 0; i < 8; i++ {
				for by := 0; by < 8; by++ {
					need := min(by, k+1) // unneeded bytes repeat the last needed one
					t := ((8*c+i)*k - 2 + need + n) % n
					var ix int
					switch {
					case src == 0 && t < 64:
						ix = t
					case src == 1 && t >= last:
						ix = t - last
					case src == 2 && t < 64:
						ix = t
					case src == 2 && t >= last:
						ix = 64 + t - last
					default:
						panic(fmt.Sprintf("trellis tables: k=%d strip %d byte %d not in its source", k, c, t))
					}
					tt.perm[64*c+8*i+by] = byte(ix)
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

// trellisStripSrc says where strip c's bytes are for k: 0 = Z0 (the tile's
// first 64 bytes), 1 = Z1 (its last 64), 2 = both (VPERMI2B). It must
// match the assembly's per-k strip sequence.
func trellisStripSrc(k, c int) int {
	switch k {
	case 2:
		return 0
	case 3:
		return [4]int{2, 0, 1, 1}[c]
	}
	return [4]int{2, 0, 2, 1}[c]
}

// trellisCall runs the assembly kernel for token t (token tile t when the
// job is tiled) over nbands bands from band b0, writing 16 floats per band
// (per token) to out (token stride outStride floats).
func (b *Backend) trellisCall(ws *workerState, t, b0, nbands int, out *float32, outStride int) {
	st := &b.shared.trellis
	m := st.m
	tt := &trellisTab[m.Bits]
	a := &ws.tr
	*a = trellisArgs{
		scales: &m.Scales[b0*m.Groups*32], tiles: &m.Tiles[b0*m.TileCols*m.TileBytes],
		lut: &st.levels.lut[0], perm: &tt.perm[0], ctl: &tt.ctl[0], aff: &tt.aff[0],
		groups: m.Groups, tpg: m.GroupSize / 16, tcols: m.TileCols, tileBytes: m.TileBytes,
		lastOff: m.TileBytes - 64, bandBytes: m.TileCols * m.TileBytes, bits: m.Bits,
	}
	if st.tiles > 0 {
		a.xq, a.sx = &st.xqT[t*tileN*st.cp], &st.gfT[t*m.Groups*2*tileN]
		a.nt, a.outStride, a.scratch = min(tileN, b.mm.n-t*tileN), 4*outStride, &ws.tsc[0]
		trellisTile(out, nbands, a)
		return
	}
	a.xq, a.sx, a.sq = &st.xq[t*st.cp], &st.sx[t*m.Groups], &st.sq[t*m.Groups]
	trellisRows(out, nbands, a)
}
