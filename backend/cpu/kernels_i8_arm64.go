//go:build arm64

package cpu

import "github.com/upg-ai/upg/codec"

// The NEON integer kernels (kindDenseI8 on arm64): dense k-bit codes,
// k ∈ {2, 3, 4} with any codebook, groups of a multiple of 64 columns and a
// multiple of 4 groups per row, multiplied with the int8 activations of the
// AVX-512 path by SDOT (Armv8.2 dot product: 16 products summed into 4
// int32 lanes per instruction) or, without it, by SMULL + SMLAL2 (int16,
// ≤ 2·127·127, exact) and SADALP (pairs into int32). The code bytes are
// ≤ 127 (q8LevelsI8), so SDOT, signed × signed, sees them as non-negative.
//
// Codes are unpacked 64 at a time into four 16-byte vectors:
//
//   - k = 2: one 16-byte load; the vectors are the bytes shifted right by
//     0, 2, 4, 6 (USHR), masked.
//   - k = 3: a 32-byte load (24 used); TBL gathers for every code the byte
//     it starts in, USHL shifts each byte right by the code's offset (a
//     per-byte variable shift), AND masks. The 48 codes that lie within one
//     byte fill three vectors; the 16 that straddle two bytes (offsets 6
//     and 7) fill the fourth, which also gathers the next byte, shifts it
//     left and ORs it in.
//   - k = 4: a 32-byte load; low nibbles (AND) and high nibbles (USHR 4).
//
// Then TBL maps the codes to level bytes (the identity for linear levels).

// i8Tables are the constant tables of one bit width; the assembly reads
// them by offset.
type i8Tables struct {
	idx   [4][16]byte // 0: TBL indices of the byte holding each code (k = 3)
	idxHi [16]byte    // 64: TBL indices of the next byte (straddling codes)
	sh    [4][16]int8 // 80: USHL counts (negative: right shift)
	shHi  [16]int8    // 144: USHL counts of the next byte
	mask  [16]byte    // 160: code mask
	perm  [64]uint8   // slot → column within the 64-column chunk (not read by assembly)
	bits  int
	bytes int // code bytes per chunk (8·bits)
}

var i8Tab = func() (t [5]i8Tables) {
	for k := 2; k <= 4; k++ {
		t[k] = newI8Tables(k)
	}
	return t
}()

func newI8Tables(k int) i8Tables {
	t := i8Tables{bits: k, bytes: 8 * k}
	for i := range t.mask {
		t.mask[i] = byte(1<<k - 1)
	}
	switch k {
	case 2: // vector j, byte b: code 4b + j
		for j := 0; j < 4; j++ {
			for b := 0; b < 16; b++ {
				t.perm[16*j+b] = uint8(4*b + j)
			}
		}
	case 4: // vectors: low, high nibbles of bytes 0-15, then of bytes 16-31
		for h := 0; h < 2; h++ {
			for b := 0; b < 16; b++ {
				t.perm[32*h+b] = uint8(32*h + 2*b)
				t.perm[32*h+16+b] = uint8(32*h + 2*b + 1)
			}
		}
	case 3:
		var within, straddle []int
		for c := 0; c < 64; c++ {
			if (3*c)%8 <= 5 {
				within = append(within, c)
			} else {
				straddle = append(straddle, c)
			}
		}
		for s, c := range append(within, straddle...) {
			v, i := s/16, s%16
			p, o := 3*c/8, 3*c%8
			t.perm[s] = uint8(c)
			t.idx[v][i] = byte(p)
			t.sh[v][i] = int8(-o)
			if v == 3 {
				t.idxHi[i] = byte(p + 1)
				t.shHi[i] = int8(8 - o)
			}
		}
	}
	return t
}

func (t *i8Tables) maxRead(cp int) int {
	n := 32
	if t.bits == 2 {
		n = 16
	}
	return t.bytes*(cp/64-1) + n
}

// i8Level reports whether level lv runs the NEON integer kernels.
func i8Level(lv Level) bool { return lv == LevelNEON }

// i8Tiled: the NEON kernels have no prefill tile; batches run token by
// token over blocks of rows that stay in cache.
const i8Tiled = false

// i8MaxLevel: the level bytes are ≤ 127, so SDOT (signed × signed) sees
// them as non-negative (q8LevelsI8).
const i8MaxLevel = 127

func i8TablesFor(k int) *i8Tables { return &i8Tab[k] }

// planes: the NEON kernels have no i8Plane3 layout (kernels_i8_amd64.go).
func (*i8Tables) planes(bits, group int) bool { return false }

func repackPlanes3(*codec.DenseMatrix) []byte { panic("cpu: no i8Plane3 kernel on arm64") }

// i8Supported reports whether the NEON kernels handle a matrix.
func i8Supported(bits, group, groups int, linear bool) bool {
	return group%64 == 0 && groups%4 == 0 && bits >= 2 && bits <= 4
}

// i8Args is the argument block of neonRows; the assembly reads it by offset.
type i8Args struct {
	xq       *int8     // 0: permuted quantized input, cp bytes
	pv       *float32  // 8: α·s_x per group
	qv       *float32  // 16: β·s_x·Σx_q per group
	xb       *float32  // 24: s_x·Σx_q per group, asym only
	scales   *byte     // 32: fp16 scales of the first row
	offs     *byte     // 40: fp16 offsets of the first row or nil
	sws      *float32  // 48: scratch, groups floats
	tab      *i8Tables // 56
	lut      *byte     // 64: 16-byte TBL level table
	rowBytes int       // 72
	groups   int       // 80: a multiple of 4
	chunks   int       // 88: 64-code chunks per group
	cbytes   int       // 96: bytes per chunk (8·bits)
	bits     int       // 104
	dot      int       // 112: 1 = SDOT
}

type i8TileArgs struct{}

// neonRows computes out[i] for nrows code rows (kernels_i8_arm64.s).
//
//go:noescape
func neonRows(out *float32, codes *byte, nrows int, a *i8Args)

// i8Call runs the NEON kernel on nrows rows from r for token t.
func (b *Backend) i8Call(ws *workerState, t, r, nrows int, codes *byte) {
	j := &b.mm
	m := j.dense
	sh := &b.shared
	if len(ws.sws) < sh.gp {
		ws.sws = make([]float32, sh.gp)
	}
	a := &ws.i8
	*a = i8Args{
		xq: &sh.xq[t*sh.cp], pv: &sh.pv[t*sh.gp], qv: &sh.qv[t*sh.gp], xb: &sh.xb[t*sh.gp],
		scales: &m.Scales[2*r*m.Groups], sws: &ws.sws[0], tab: sh.i8, lut: &sh.i8lut[0],
		rowBytes: m.RowBytes, groups: m.Groups, chunks: m.GroupSize / 64, cbytes: 8 * m.Bits,
		bits: m.Bits,
	}
	if hasDotProd {
		a.dot = 1
	}
	if m.Asym {
		a.offs = &m.Offsets[2*r*m.Groups]
	}
	neonRows(&j.dst[t*m.R+r], codes, nrows, a)
}
