//go:build amd64

package cpu

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

// The AVX2 integer kernels (kindDenseI8): dense k-bit codes, k ≤ 4 with any
// codebook and k ≤ 6 with linear levels, multiplied with the same int8
// activations as the AVX-512 path by VPMADDUBSW (unsigned code byte × signed
// activation, adjacent pairs summed to int16) and VPMADDWD (pairs to int32).
//
// VPMADDUBSW saturates its int16 pair sums, so the code bytes stay ≤ 64
// (i8MaxLevel): a pair sum is ≤ 2·64·127 = 16256 in magnitude and two
// chunks' pair sums add in int16 (VPADDW, ≤ 32512) before one VPMADDWD
// widens them, so every sum is exact. A codebook that is not linear is
// quantized to a grid of at most 65 steps fitted to it (newQ8LevelsFit);
// linear levels stay exact. With AVX-VNNI
// (hasAVXVNNI; Alder Lake and later, Zen 5) i8RowsVNNI and i8TileVNNI
// multiply with one VPDPBUSD (ymm, VEX) instead, which sums four unsigned ×
// signed byte products straight into int32: the code bytes use 0..255 and a
// codebook gets 256 steps, as on the AVX-512 path.
//
// Accumulation order (batch invariance): i8Rows sums each group's products
// in int32 (exact, so any order), keeps 8 groups' int32 lane vectors, and
// every 8 groups reduces them (VPHADDD tree) to one vector of the 8 group
// dots, converts it and adds it times the groups' sws into the float sum:
// lane j holds the groups ≡ j mod 8. i8Tile gets the same group dots for 8
// tokens at once and keeps, per j, a vector over the tokens of lane j, so
// each token's float operations are i8Rows' one for one.
//
// AVX2 has no per-byte variable shift, so 32 codes (one register) are
// unpacked per step in one of four ways (i8Mode), each table-driven:
//
//   - i8Window (k = 3): VBROADCASTI128 of the 12 bytes, VPSHUFB puts a
//     16-bit window of the stream in each word (lane 0: codes 0-15, lane 1:
//     codes 16-31), VPMULHUW shifts the window right so that an odd code
//     lands in the low byte, VPMULLW shifts it left so that the even code
//     before it lands in the high byte; two masks and an OR merge them.
//   - i8WindowWide (k = 5, 6, linear only): the same, lane 1 loaded from
//     byte 2k by VINSERTI128 (32 codes span more than 16 bytes).
//   - i8Nibble (k = 4): VBROADCASTI128 of 16 bytes, VPSRLVD by 0 (lane 0)
//     and 4 (lane 1), mask: lane 0 holds the even codes, lane 1 the odd.
//   - i8Crumb (k = 2): VPBROADCASTQ of 8 bytes, VPSRLVD by 0, 2, 4, 6 per
//     dword pair, mask.
//
// The codes come out in a fixed permutation of the chunk's 32 columns
// (i8Tables.perm); the activations are stored in the same order, so the
// products pair up. Then VPSHUFB maps codes to level bytes (the identity
// for linear levels; i8WindowWide has no table).
type i8Mode int

const (
	i8Window i8Mode = iota
	i8WindowWide
	i8Nibble
	i8Crumb
	// i8Plane3 (k = 3, groups of a multiple of 128, decode and tile): the
	// codes repacked once (repackPlanes3) so that a 128-code block of 48
	// bytes unpacks in 8 vector ops plus the 4 lookups (the windows: 24;
	// i8Split3, the decode layout before this one: 16 plus 5 lookups into
	// 160 slots). The block's four 32-code chunks A, B, C, D (the windows'
	// codes, i.e. in the permuted order i8Tables.perm of their 32 columns,
	// so the activations are laid out as for the windows) become P = 32
	// bytes, lane i: A_i | B_i<<3 | ((C_i ^ D_i>>1)&3)<<6, and Q = 16 bytes,
	// byte j: D_j | h_j<<3 | D_(16+j)<<4 | h_(16+j)<<7 with
	// h_i = (C_i>>2) ^ (A_(i+1)&1) for even i and C_i>>2 for odd i.
	// Unpack: A = P&7; B = (P>>3)&7 (VPSRLW: a word shift, the mask drops
	// the next byte's bits); Q' = Q broadcast to both lanes, VPSRLVD by 0
	// (lane 0) and 4 (lane 1), D = Q'&7; ((P>>5) ^ Q') & 14 is 2C: the word
	// shift brings C's low bits to bits 1-2 and, in an even byte, the next
	// byte's bit 0 (A_(i+1)&1) to bit 3, and the XOR with Q' cancels D's
	// bits and that bit (which the repack put into Q) — one op fewer than
	// masking both and ORing them. 2C is looked up in a table of the
	// levels at the even indices.
	i8Plane3
)

// i8Tables are the constant tables of one bit width; the assembly reads
// them by offset.
type i8Tables struct {
	ctl   [32]byte   // 0: VPSHUFB window bytes (window modes)
	mulA  [16]uint16 // 32: VPMULHUW multipliers (odd code → low byte)
	mulB  [16]uint16 // 64: VPMULLW multipliers (even code → high byte)
	maskA [16]uint16 // 96: code mask in the low byte
	maskB [16]uint16 // 128: code mask in the high byte
	shift [8]uint32  // 160: VPSRLVD counts (nibble, crumb modes)
	mask  [32]byte   // 192: code mask in every byte (nibble, crumb modes)
	ones  [16]int16  // 224: VPMADDWD ones
	// i8Plane3 tables (k = 3)
	smask [32]byte  // 256: 7 in every byte
	pm6   [32]byte  // 288: 6 in every byte
	pm8   [32]byte  // 320: 8 in every byte
	psh   [8]uint32 // 352: VPSRLVD counts 0 (lane 0), 4 (lane 1)
	ptc   [32]byte  // 384: VPSHUFB indices of the C table: i/2 at i
	pm3   [32]byte  // 416: 3 in every byte (repack)
	pm1   [32]byte  // 448: 1 in every byte (repack)
	pm14  [32]byte  // 480: 14 in every byte (the C index's bits 1-3)
	perm  [32]uint8 // slot → column within the chunk (not read by assembly)
	mode  i8Mode
	bytes int // code bytes per chunk (4k)
}

// buildPlanes fills the i8Plane3 tables (k = 3).
func (t *i8Tables) buildPlanes() {
	for i := 0; i < 32; i++ {
		t.smask[i], t.pm6[i], t.pm8[i], t.pm3[i], t.pm1[i], t.pm14[i] = 7, 6, 8, 3, 1, 14
		t.ptc[i] = byte(i % 16 / 2)
	}
	for d := 0; d < 8; d++ {
		t.psh[d] = uint32(4 * (d / 4))
	}
}

// planes reports whether the kernels run the i8Plane3 layout (a repacked
// copy of the codes, repackPlanes3) for a matrix of these tables with
// bits-bit codes in groups of group columns.
func (t *i8Tables) planes(bits, group int) bool {
	return t.mode == i8Window && bits == 3 && group%128 == 0
}

// repackPlanes3 returns m's codes in the i8Plane3 layout: per row, Groups ·
// GroupSize/128 blocks of 48 bytes (the row's codes past C are zero), rows
// back to back. The larger matrices are repacked by several goroutines.
func repackPlanes3(m *codec.DenseMatrix) []byte {
	rb := m.Groups * m.GroupSize * 3 / 8
	nb := rb / 48
	dst := make([]byte, m.R*rb)
	t := &i8Tab[3]
	if m.RowBytes != rb { // a last group narrower than GroupSize: row by row through a zero-padded copy
		pad := make([]byte, rb+16)
		for r := 0; r < m.R; r++ {
			clear(pad)
			copy(pad, m.Codes[r*m.RowBytes:(r+1)*m.RowBytes])
			i8Repack3(&dst[r*rb], &pad[0], nb, t)
		}
		return dst
	}
	// The rows are one run of R·nb blocks. The unpack reads 16 bytes at
	// byte 36 of a block, 4 past its end: the last block goes through a
	// zero-padded copy.
	total := m.R * nb
	if total == 0 {
		return dst
	}
	var tail [64]byte
	copy(tail[:], m.Codes[(total-1)*48:total*48])
	i8Repack3(&dst[(total-1)*48], &tail[0], 1, t)
	total--
	parts := 1
	if total*48 >= 1<<22 {
		parts = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		lo, hi := total*p/parts, total*(p+1)/parts
		if lo == hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			i8Repack3(&dst[lo*48], &m.Codes[lo*48], hi-lo, t)
		}()
	}
	wg.Wait()
	return dst
}

var i8Tab = func() (t [7]i8Tables) {
	for k := 2; k <= 6; k++ {
		t[k] = newI8Tables(k)
	}
	t[3].buildPlanes()
	return t
}()

func newI8Tables(k int) i8Tables {
	var t i8Tables
	t.bytes = 4 * k
	for i := range t.ones {
		t.ones[i] = 1
	}
	km := byte(1<<k - 1)
	switch k {
	case 2:
		t.mode = i8Crumb
		for d := 0; d < 8; d++ { // dword d holds bytes 4(d%2)..+3 shifted by 2(d/2)
			t.shift[d] = uint32(2 * (d / 2))
			for i := 0; i < 4; i++ {
				t.perm[4*d+i] = uint8(4*((d%2)*4+i) + d/2)
			}
		}
		for i := range t.mask {
			t.mask[i] = km
		}
	case 4:
		t.mode = i8Nibble
		for d := 0; d < 8; d++ {
			t.shift[d] = uint32(4 * (d / 4))
		}
		for i := 0; i < 16; i++ {
			t.perm[i], t.perm[16+i] = uint8(2*i), uint8(2*i+1)
		}
		for i := range t.mask {
			t.mask[i] = km
		}
	default:
		t.mode = i8Window
		if k > 4 {
			t.mode = i8WindowWide
		}
		for lane := 0; lane < 2; lane++ {
			base := 0 // lane 1's bytes: the broadcast copy at +2k, or its own load
			if lane == 1 && k <= 4 {
				base = 2 * k
			}
			for i := 0; i < 8; i++ {
				even := 2 * i // code within the lane's 16
				w := even * k / 8
				sB := even*k - 8*w // ≤ 7
				sA := sB + k       // ≤ 13, sA + k ≤ 16 for k ≤ 6
				word := lane*8 + i
				for b := 0; b < 2; b++ {
					idx := base + w + b
					if idx >= 16 || (w+b)*8 >= 16*k { // past the chunk's bytes: zero
						idx = 0x80
					}
					t.ctl[2*word+b] = byte(idx)
				}
				t.mulA[word] = uint16(1 << (16 - sA))
				t.mulB[word] = uint16(1 << (8 - sB))
				t.maskA[word] = uint16(km)
				t.maskB[word] = uint16(km) << 8
				t.perm[2*word] = uint8(16*lane + even + 1)
				t.perm[2*word+1] = uint8(16*lane + even)
			}
		}
	}
	return t
}

// i8Supported reports whether the AVX2 integer kernels handle a matrix.
func i8Supported(bits, group, groups int, linear bool) bool {
	return group%32 == 0 && bits >= 2 && (bits <= 4 || bits <= 6 && linear)
}

// i8Args is the argument block of i8Rows; the assembly reads it by offset.
type i8Args struct {
	xq       *int8     // 0: permuted quantized input, cp bytes
	pv       *float32  // 8: α·s_x per group (gp)
	qv       *float32  // 16: β·s_x·Σx_q per group (gp)
	xb       *float32  // 24: s_x·Σx_q per group (gp), asym only
	scales   *byte     // 32: fp16 scales of the first row
	offs     *byte     // 40: fp16 offsets of the first row or nil
	sws      *float32  // 48: scratch, gp floats
	tab      *i8Tables // 56
	lut      *byte     // 64: 32-byte VPSHUFB level table (16 entries per lane)
	rowBytes int       // 72
	groups   int       // 80
	chunks   int       // 88: 32-code chunks per group
	cbytes   int       // 96: bytes per chunk (4·bits)
	mode     int       // 104: i8Mode
	pfNear   int       // 112
	pfFar    int       // 120
	isum     *int32    // 128: scratch, 256-byte aligned: 8 groups' int32 sums (256 bytes), then the rows left
}

// i8TileArgs is the argument block of i8Tile; the assembly reads it by offset.
type i8TileArgs struct {
	xq        *int8     // 0: the tile's activations [chunk][token][32]
	pv        *float32  // 8: α·s_x [group][token]
	qv        *float32  // 16: β·s_x·Σx_q [group][token]
	xb        *float32  // 24: s_x·Σx_q [group][token], asym only
	scales    *byte     // 32
	offs      *byte     // 40
	tab       *i8Tables // 48
	lut       *byte     // 56
	rowBytes  int       // 64
	groups    int       // 72
	chunks    int       // 80
	cbytes    int       // 88
	mode      int       // 96
	outStride int       // 104: bytes between two tokens' outputs (4·R)
	nt        int       // 112: valid tokens in the tile (1..8)
	scratch   *float32  // 120: 592 bytes of scratch, 32-byte aligned
	sws       *float32  // 128: scratch, 8 floats per group: the row's scale·pv [group][token]
}

// aligned returns the first element of s at a multiple of align bytes.
func aligned[T any](s []T, align uintptr) *T {
	var z T
	sz := unsafe.Sizeof(z)
	p := uintptr(unsafe.Pointer(&s[0]))
	return &s[((align-p%align)%align)/sz]
}

// maxRead is how many bytes from the start of a code row the kernels read
// for cp (padded) columns.
func (t *i8Tables) maxRead(cp int) int {
	n := 16
	switch t.mode {
	case i8WindowWide:
		n = t.bytes/2 + 16
	case i8Crumb:
		n = 8
	}
	return t.bytes*(cp/32-1) + n
}

// i8Level reports whether level lv runs the integer kernels of this file
// (where the AVX-512 ones do not apply).
func i8Level(lv Level) bool { return lv == LevelAVX2 || lv == LevelAVX512 }

// i8Tiled: the AVX2 kernels have a prefill tile (i8Tile).
const i8Tiled = true

// i8MaxLevel bounds the level bytes of the kernels without AVX-VNNI
// (q8LevelsI8): with u ≤ 64 and activations within ±127, a VPMADDUBSW pair
// sum is ≤ 2·64·127 = 16256 in magnitude, so two chunks' pair sums add in
// int16 (VPADDW, ≤ 32512 < 32767) before one VPMADDWD widens them.
const i8MaxLevel = 64

// i8TablesFor returns the tables of bit width k.
func i8TablesFor(k int) *i8Tables { return &i8Tab[k] }

// i8Call runs the AVX2 integer kernel on nrows rows from r for token t
// (for tile t when the job is tiled).
func (b *Backend) i8Call(ws *workerState, t, r, nrows int, codes *byte) {
	j := &b.mm
	m := j.dense
	sh := &b.shared
	if sh.tiles > 0 {
		if len(ws.sws) < tileN*m.Groups {
			ws.sws = make([]float32, tileN*m.Groups)
		}
		a := &ws.it
		*a = i8TileArgs{
			xq: &sh.xqT[t*tileN*sh.cp], pv: &sh.pvT[t*m.Groups*tileN], qv: &sh.qvT[t*m.Groups*tileN],
			xb: &sh.xbT[t*m.Groups*tileN], scales: &m.Scales[2*r*m.Groups], tab: sh.i8, lut: &sh.i8lut[0],
			rowBytes: j.rowBytes, groups: m.Groups, chunks: m.GroupSize / 32, cbytes: 4 * m.Bits,
			mode: int(sh.i8.mode), outStride: 4 * m.R, nt: min(tileN, j.n-t*tileN), scratch: aligned(ws.tsc[:], 32),
			sws: &ws.sws[0],
		}
		if sh.planes {
			a.mode = int(i8Plane3)
		}
		if m.Asym {
			a.offs = &m.Offsets[2*r*m.Groups]
		}
		if b.vnni {
			i8TileVNNI(&j.dst[t*tileN*m.R+r], codes, nrows, a)
			return
		}
		i8Tile(&j.dst[t*tileN*m.R+r], codes, nrows, a)
		return
	}
	if len(ws.sws) < sh.gp+8 { // + the zeros up to the next multiple of 8 groups
		ws.sws = make([]float32, sh.gp+8)
	}
	a := &ws.i8
	*a = i8Args{
		xq: &sh.xq[t*sh.cp], pv: &sh.pv[t*sh.gp], qv: &sh.qv[t*sh.gp], xb: &sh.xb[t*sh.gp],
		scales: &m.Scales[2*r*m.Groups], sws: &ws.sws[0], tab: sh.i8, lut: &sh.i8lut[0],
		rowBytes: j.rowBytes, groups: m.Groups, chunks: m.GroupSize / 32, cbytes: 4 * m.Bits,
		mode: int(sh.i8.mode), pfNear: prefetch.near, pfFar: prefetch.far, isum: aligned(ws.isum[:], 256),
	}
	if sh.planes {
		a.mode = int(i8Plane3)
	}
	if m.Asym {
		a.offs = &m.Offsets[2*r*m.Groups]
	}
	if b.vnni {
		i8RowsVNNI(&j.dst[t*m.R+r], codes, nrows, a)
		return
	}
	i8Rows(&j.dst[t*m.R+r], codes, nrows, a)
}
