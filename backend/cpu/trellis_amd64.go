package cpu

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/upg-ai/upg/codec"
	"golang.org/x/sys/cpu"
)

var hasTrellisAsm = hasAVX512 && cpu.X86.HasAVX512GFNI

// trellisUmax is the largest level byte of the int8 trellis kernel at level
// lv, 0 where the Go kernel runs: VPDPBUSD multiplies unsigned bytes, and
// VPMADDUBSW's int16 pair sums stay exact with bytes ≤ 127.
func trellisUmax(lv Level) int {
	switch {
	case lv == LevelAVX512 && hasTrellisAsm:
		return 255
	case lv == LevelAVX2 && hasAVX2:
		return 127
	}
	return 0
}

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
	pfNear    int      // 152: software prefetch distance into L1, bytes (two lines per tile)
	pfFar     int      // 160: the same into L2
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

// trellisI8Args is the argument block of the AVX2 trellis kernels; the
// assembly reads it by offset (TestArgOffsets checks them).
type trellisI8Args struct {
	xq        *int8              // 0: the token's quantized input, padded to 16·TileCols
	sx        *float32           // 8: α·s_x per group
	sq        *float32           // 16: β·s_x·Σx_q per group
	scales    *byte              // 24: fp16 scales of the first band
	tiles     *byte              // 32: the first band's tiles
	tab       *trellisAVX2Tables // 40
	pieces    *[4][32]byte       // 48: the level table in VPSHUFB pieces
	groups    int                // 56
	tpg       int                // 64: tiles per group
	tcols     int                // 72: tiles per band
	tileBytes int                // 80
	bandBytes int                // 88
}

// trellisAVX2Tables are the constant tables of the AVX2 trellis kernels
// for one bit width; the assembly reads them by offset.
//
// The hash is linear, so a window is hashed as the XOR of 16-entry VPSHUFB
// lookups of its pieces, and each kernel picks pieces that need no shifts:
// for k = 4 the windows are three whole nibbles of the stream (hash), for
// k = 3 four whole 3-bit symbols (lag), for k = 2 whole or partial nibbles
// of the bytes at and before a position's byte (g2, trellisK2Sources). The
// first table of each window also sets bit 6, which the level lookup uses
// (trellisPieces); VPMADDUBSW multiplies the level bytes with the
// activations, VPMADDWD sums each row's four.
type trellisAVX2Tables struct {
	hash  [3][32]byte  // 0: k = 4: nibbles p-2 (|0x40), p-1, p
	add   [3][32]byte  // 96: 0x10, 0x20, 0x30
	ones  [16]int16    // 192
	nib   [32]byte     // 224: 0x0f (k = 2, 4)
	g2    [14][32]byte // 256: k = 2 hash tables (trellisK2Hash)
	lanes [8]uint32    // 704: VPERMD: dword 0 to lane 0, dword 1 to lane 1
	lag   [4][32]byte  // 736: k = 3 hash tables of symbols p (|0x40), p-1, p-2, p-3
	swap  [32]byte     // 864: VPSHUFB: swap the bytes of each pair
	sym   [160]byte    // 896: k = 3 symbol unpacking, i8Tab[3]'s ctl, mulA, mulB, maskA, maskB
}

var trellisAVX2Tab = func() (t [5]trellisAVX2Tables) {
	for k := 2; k <= 4; k++ {
		tt := &t[k]
		for n := 0; n < 3; n++ {
			for i := 0; i < 32; i++ {
				h := byte(codec.TrellisIndex(uint32(i%16) << (4 * n)))
				if n == 0 {
					h |= 0x40
				}
				tt.hash[n][i] = h
				tt.add[n][i] = byte(0x10 * (n + 1))
			}
		}
		for i := range tt.ones {
			tt.ones[i] = 1
		}
		for i := range tt.nib {
			tt.nib[i] = 0x0f
		}
		for i := range tt.lanes {
			tt.lanes[i] = uint32(i / 4)
		}
		for d := 0; d < 4; d++ {
			for i := 0; i < 32; i++ {
				h := byte(codec.TrellisIndex(uint32(i%8) << (9 - 3*d)))
				if d == 0 {
					h |= 0x40
				}
				tt.lag[d][i] = h
			}
		}
		for i := range tt.swap {
			tt.swap[i] = byte(i ^ 1)
		}
		copy(tt.sym[:], unsafe.Slice((*byte)(unsafe.Pointer(&i8Tab[3])), len(tt.sym)))
		for n, h := range trellisK2Hash() {
			for v := 0; v < 16; v++ {
				if slices.Contains(trellisK2First, n) {
					h[v] |= 0x40
				}
				tt.g2[n][v], tt.g2[n][16+v] = h[v], h[v]
			}
		}
	}
	return t
}()

// trellisRowsAVX2K2 computes 16 outputs per band for nbands consecutive
// bands of a k = 2 matrix: 32 bytes of the stream
// hold two strips, positions 4m+e in byte m; column e's windows are hashed
// from whole nibbles of the bytes m, m-1 and m-2 (trellisK2Sources: 14
// lookups for 128 positions, no shifts), and a 4×4 byte transpose puts each
// row's four columns together; the activations are in order.
//
//go:noescape
func trellisRowsAVX2K2(out *float32, nbands int, a *trellisI8Args)

// trellisRowsAVX2K3 is trellisRowsAVX2K2 for k = 3: the windows are four
// whole 3-bit symbols of the stream (position p's are symbols p-3..p), so
// a chunk unpacks its 32 symbols as the dense 3-bit kernel does (i8Tab[3]),
// restores their order and takes the three earlier versions with
// VPALIGNR against the previous chunk's; four 8-entry lookups hash them.
// The activations are in order.
//
//go:noescape
func trellisRowsAVX2K3(out *float32, nbands int, a *trellisI8Args)

// trellisRowsAVX2K4 is trellisRowsAVX2K2 for k = 4: the windows are whole
// nibbles of the stream (position p's are nibbles p-2, p-1, p), so a strip
// needs no shifts, only its bytes and the same bytes one earlier.
//
//go:noescape
func trellisRowsAVX2K4(out *float32, nbands int, a *trellisI8Args)

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
	if b.level == LevelAVX2 {
		b.trellisCallAVX2(ws, t, b0, nbands, out)
		return
	}
	tt := &trellisTab[m.Bits]
	a := &ws.tr
	*a = trellisArgs{
		scales: &m.Scales[b0*m.Groups*32], tiles: &m.Tiles[b0*m.TileCols*m.TileBytes],
		lut: &st.levels.lut[0], perm: &tt.perm[0], ctl: &tt.ctl[0], aff: &tt.aff[0],
		groups: m.Groups, tpg: m.GroupSize / 16, tcols: m.TileCols, tileBytes: m.TileBytes,
		lastOff: m.TileBytes - 64, bandBytes: m.TileCols * m.TileBytes, bits: m.Bits,
		pfNear: prefetch.near, pfFar: prefetch.far,
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

func (b *Backend) trellisCallAVX2(ws *workerState, t, b0, nbands int, out *float32) {
	st := &b.shared.trellis
	m := st.m
	bb := m.TileCols * m.TileBytes
	a := &ws.tr2
	*a = trellisI8Args{
		xq: &st.xq[t*st.cp], sx: &st.sx[t*m.Groups], sq: &st.sq[t*m.Groups],
		scales: &m.Scales[b0*m.Groups*32], tiles: &m.Tiles[b0*bb], tab: &trellisAVX2Tab[m.Bits], pieces: &st.pieces,
		groups: m.Groups, tpg: m.GroupSize / 16, tcols: m.TileCols, tileBytes: m.TileBytes, bandBytes: bb,
	}
	run := trellisRowsAVX2K3
	switch m.Bits {
	case 2:
		run = trellisRowsAVX2K2
	case 4:
		run = trellisRowsAVX2K4
	}
	if b0+nbands == m.Bands && trellisPadLast(b.level, m.Bits) {
		// The last band from its padded copy.
		if nbands > 1 {
			run(out, nbands-1, a)
		}
		last := unsafe.Add(unsafe.Pointer(out), 64*(nbands-1))
		a.scales, a.tiles = &m.Scales[(m.Bands-1)*m.Groups*32], &st.last[0]
		run((*float32)(last), 1, a)
		return
	}
	run(out, nbands, a)
}
