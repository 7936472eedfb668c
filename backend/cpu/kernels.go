package cpu

import (
	"math"
	"unsafe"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/internal/sysmem"
	"github.com/upg-ai/upg/tensor"
)

type mmKind int

const (
	kindDenseGo  mmKind = iota // dense codes, portable Go kernel
	kindDenseF32               // dense codes, AVX2 float kernel
	kindDenseQ8                // dense codes, AVX-512 VNNI kernel with int8 activations
	kindDenseI8                // dense codes, AVX2 VPMADDUBSW (arm64: SDOT) kernel with int8 activations (kernels_i8*.go)
)

// mmJob is the matrix multiply in flight.
type mmJob struct {
	dst, x  []float32
	w       tensor.Matrix
	n       int
	k       *kernel // the matrix type's kernels (registry.go)
	kind    mmKind  // the dense kernel in use
	dense   *codec.DenseMatrix
	overlay *codec.OverlayMatrix
	sparse  *codec.SparseMatrix
	plain   *tensor.Dense
	lv      Level // the backend's kernel level (float dots: AVX2/NEON above generic)
	maxRead int   // bytes a kernel may read from the start of a code row
	// The dense kernels' codes: dense.Codes, or its repacked copy
	// (i8Plane3), rows rowBytes apart.
	codes    []byte
	rowBytes int
}

// sharedState holds the per-call activations prepared before the rows are
// split: rotated/padded inputs, their group sums and the int8 quantization.
type sharedState struct {
	xr     []float32 // n × cp rotated input, zero-padded to whole groups
	xsum   []float32 // n × gp group sums of xr (asym float path)
	xq     []int8    // n × cp quantized input (Q8 path)
	planes bool      // i8Rows and i8Tile run i8Plane3 on the repacked codes (AVX2, 3-bit codes)
	pv     []float32 // n × gp: α·s_x per group
	qv     []float32 // n × gp: β·s_x·Σx_q per group
	xb     []float32 // n × gp: s_x·Σx_q per group
	cp     int       // padded columns = groups × group size
	gp     int       // groups rounded up to 16
	// Token tiles of the prefill kernel (q8Tile), tileN tokens each, the
	// last one zero-padded: xqT[tile][chunk][token][64], and the per-group
	// factors pvT[tile][group][token] (and, for the I8 tile kernel, qvT and
	// xbT in the same layout).
	tiles         int
	xqT           []int8
	pvT, qvT, xbT []float32
	tbl           [16]float32
	shift         [8]uint32
	perm          [64]byte
	ctl           [64]byte
	q8            q8Levels  // level table of the Q8 and I8 kernels
	i8lut         [32]byte  // VPSHUFB level table of the I8 kernels
	i8            *i8Tables // unpack tables of the I8 kernels
	trellis       trellisState
}

// q8Levels maps a codebook onto unsigned bytes for the VNNI kernels:
// L[q] ≈ alpha·u[q] + beta. Linear levels are exact (alpha = 1, u[q] = q,
// no table); any other codebook of up to 64 entries is quantized to 256
// steps between its smallest and largest entry (error ≤ alpha/2, i.e.
// 0.2% of the codebook's range), and u is looked up by VPERMB from a
// 64-byte table replicated so that the bits above the code are ignored.
type q8Levels struct {
	lut         [64]byte
	useLut      bool
	alpha, beta float32
}

// newQ8Levels builds the table of codebook L (2^k entries).
func newQ8Levels(L []float32, k int) q8Levels { return newQ8LevelsMax(L, k, 255) }

// newQ8LevelsMax builds the table of codebook L with level bytes ≤ umax.
func newQ8LevelsMax(L []float32, k, umax int) q8Levels {
	if linearLevels(L) {
		return q8Levels{alpha: 1, beta: L[0]}
	}
	lo, hi := L[0], L[0]
	for _, v := range L {
		lo, hi = min(lo, v), max(hi, v)
	}
	q := q8Levels{useLut: true, alpha: (hi - lo) / float32(umax), beta: lo}
	for i := range q.lut {
		if q.alpha > 0 {
			u := math.Round(float64((L[i&(1<<k-1)] - lo) / q.alpha))
			q.lut[i] = byte(min(max(u, 0), float64(umax)))
		}
	}
	return q
}

// u is the byte code q stands for.
func (q *q8Levels) u(code uint8) int {
	if q.useLut {
		return int(q.lut[code])
	}
	return int(code)
}

// workerState is one worker's scratch memory, grown on first use.
type workerState struct {
	f32  []float32
	u8   []uint8
	pad  []byte
	cols []int32
	vals []float32
	sws  []float32
	q8   q8Args
	i8   i8Args
	it   i8TileArgs
	fa   f32Args
	qt   q8TileArgs
	tr   trellisArgs
	tr2  trellisI8Args
	tsc  [tileScratch]float32      // q8Tile, i8Tile and trellisTile scratch
	red  [tileN*16*16 + 16]float32 // q8Tile's rows before reduction (redBuf: 64-byte aligned within)
	isum [136]int32                // i8Rows scratch: 8 groups' int32 sums and a count, 256-byte aligned within
}

// tileN is the number of tokens q8Tile multiplies with each unpacked chunk.
const tileN = 8

// q8TileArgs is the argument block of q8Tile; the assembly reads it by
// offset (TestArgOffsets checks them).
type q8TileArgs struct {
	xq        *int8    // 0: the tile's interleaved activations
	pv        *float32 // 8: α·s_x [group][token]
	qv        *float32 // 16: β·s_x·Σx_q of the tile's first token, [token][gp] (q8Rows' layout)
	xb        *float32 // 24: s_x·Σx_q, the same layout, asym only
	scales    *byte    // 32: fp16 scales of the first row
	offs      *byte    // 40: fp16 offsets of the first row or nil
	perm      *byte    // 48: VPERMB byte index table
	ctl       *byte    // 56: VPMULTISHIFTQB controls
	lut       *byte    // 64: level table or nil
	mask      uint64   // 72: code mask in every byte
	rowBytes  int      // 80
	groups    int      // 88
	chunks    int      // 96: 64-code chunks per group
	cbytes    int      // 104: bytes per chunk (8·bits)
	outStride int      // 112: bytes between two tokens' outputs (4·R)
	nt        int      // 120: valid tokens in the tile (1..8)
	scratch   *float32 // 128: tileScratch floats
	gpBytes   int      // 136: bytes between two tokens' qv (and xb) rows: 4·gp
	tailMask  uint64   // 144: lanes of the last 16-group block
	pfNear    int      // 152: software prefetch distance into L1, bytes
	red       *float32 // 160: tileN × 16 rows × 16 lanes, 64-byte aligned: rows waiting for their 16-row reduction
}

// tileScratch is the tile kernels' scratch: q8Tile's 8 sws, 8 tokens'
// 16-lane β vectors and a saved register (552 bytes); i8Tile's 592 bytes
// (kernels_i8_amd64.s) from the first 32-byte aligned float.
const tileScratch = 148 + 8

// redBuf is the 64-byte aligned start of ws.red.
func (ws *workerState) redBuf() *float32 {
	p := uintptr(unsafe.Pointer(&ws.red[0]))
	return &ws.red[((64-p%64)%64)/4]
}

func (ws *workerState) grow(n int) []float32 {
	if cap(ws.f32) < n {
		ws.f32 = make([]float32, n)
	}
	return ws.f32[:n]
}

func growF(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// q8Args is the argument block of q8Rows; the assembly reads it by offset.
type q8Args struct {
	xq       *int8    // 0: quantized input, cp bytes
	pv       *float32 // 8: α·s_x per group (gp)
	qv       *float32 // 16: β·s_x·Σx_q per group (gp)
	xb       *float32 // 24: s_x·Σx_q per group (gp), asym only
	scales   *byte    // 32: fp16 scales of the first row
	offs     *byte    // 40: fp16 offsets of the first row or nil
	sws      *float32 // 48: scratch, gp floats
	perm     *byte    // 56: VPERMB byte index table
	ctl      *byte    // 64: VPMULTISHIFTQB controls
	rowBytes int      // 72
	groups   int      // 80
	chunks   int      // 88: 64-code chunks per group
	cbytes   int      // 96: bytes per chunk (8·bits)
	mask     uint64   // 104: code mask in every byte
	tailMask uint64   // 112: lanes of the last 16-group block
	lut      *byte    // 120: 64-byte level table for VPERMB, nil = mask only
	pfNear   int      // 128: software prefetch distance into L1, bytes
	pfFar    int      // 136: software prefetch distance into L2, bytes
}

// f32Args is the argument block of f32Rows; the assembly reads it by offset.
type f32Args struct {
	x        *float32 // 0: rotated input, cp floats
	xsum     *float32 // 8: group sums (asym only)
	scales   *byte    // 16
	offs     *byte    // 24
	tbl      *float32 // 32: 16 levels (lo 8, hi 8)
	shifts   *uint32  // 40: 8 shift counts
	rowBytes int      // 48
	groups   int      // 56
	iters    int      // 64: 16-code steps per group
	kbytes   int      // 72: bytes per 8 codes (= bits)
	mask     uint64   // 80
	k4       int      // 88: 1 when bits == 4
}

// linearLevels reports whether L[q] = L[0] + q (uniform, midrise, asym).
func linearLevels(L []float32) bool {
	for q, v := range L {
		if v != L[0]+float32(q) {
			return false
		}
	}
	return true
}

// denseKind picks the kernel for m at level lv.
func denseKind(m *codec.DenseMatrix, lv Level) mmKind {
	switch {
	case lv == LevelAVX512 && m.GroupSize%64 == 0 && (m.Bits <= 6 || m.Bits <= 8 && linearLevels(m.Levels)):
		return kindDenseQ8
	case i8Level(lv) && i8Supported(m.Bits, m.GroupSize, m.Groups, linearLevels(m.Levels)):
		return kindDenseI8
	case (lv == LevelAVX2 || lv == LevelAVX512) && m.GroupSize%16 == 0 && m.Bits <= 4:
		return kindDenseF32
	}
	return kindDenseGo
}

// planesFor returns the i8Plane3 copy of m's codes (repackPlanes3) where
// the kernels of this backend's level run it, made on first use and kept
// for the backend's lifetime (LoadMatrix makes it when the model loads);
// nil elsewhere, and where the copy would leave less than planesReserve of
// the system's memory available (the matrix then runs the windows, which
// read the memory-mapped codes: a model near the size of the memory pages
// in from disk rather than fail). The caller holds b.mu.
func (b *Backend) planesFor(m *codec.DenseMatrix) []byte {
	if denseKind(m, b.level) != kindDenseI8 || !i8TablesFor(m.Bits).planes(m.Bits, m.GroupSize) {
		return nil
	}
	if c, ok := b.planes[m]; ok {
		return c
	}
	if b.planes == nil {
		b.planes = map[*codec.DenseMatrix][]byte{}
	}
	var c []byte
	if avail := sysmem.Available(); avail == 0 || avail-int64(m.R*m.Groups*m.GroupSize*3/8) >= planesReserve {
		c = repackPlanes3(m)
	}
	b.planes[m] = c
	return c
}

// i8LevelsFor returns m's level bytes for the integer kernels
// (q8LevelsI8), computed once per matrix: without AVX-VNNI on amd64 they are
// fitted by a search (newQ8LevelsFit) that would cost more than a small
// matrix's multiply if it ran on every call.
func (b *Backend) i8LevelsFor(m *codec.DenseMatrix) q8Levels {
	if q, ok := b.i8levels[m]; ok {
		return q
	}
	if b.i8levels == nil {
		b.i8levels = map[*codec.DenseMatrix]q8Levels{}
	}
	q := q8LevelsI8(m.Levels, m.Bits, b.vnni)
	b.i8levels[m] = q
	return q
}

// planesReserve is the memory (MemAvailable) a repacked copy of codes must
// leave to the system.
const planesReserve = 1 << 30

// prepareDense rotates, pads and (for the Q8 kernels) quantizes the input,
// tokens split across the workers.
func (b *Backend) prepareDense(m *codec.DenseMatrix, ov *codec.OverlayMatrix) {
	j := &b.mm
	j.dense, j.overlay = m, ov
	j.kind = denseKind(m, b.level)
	sh := &b.shared
	n, G := j.n, m.Groups
	sh.cp = G * m.GroupSize
	sh.gp = (G + 15) &^ 15
	sh.xr = growF(sh.xr, n*sh.cp)
	if m.Asym && !j.kind.int8() {
		sh.xsum = growF(sh.xsum, n*sh.gp)
	}
	sh.tiles = 0
	sh.planes = false
	j.codes, j.rowBytes = m.Codes, m.RowBytes
	switch j.kind {
	case kindDenseQ8, kindDenseI8:
		if cap(sh.xq) < n*sh.cp {
			sh.xq = make([]int8, n*sh.cp)
		}
		sh.xq = sh.xq[:n*sh.cp]
		sh.pv = growF(sh.pv, n*sh.gp)
		sh.qv = growF(sh.qv, n*sh.gp)
		sh.xb = growF(sh.xb, n*sh.gp)
		k := m.Bits
		if j.kind == kindDenseI8 {
			sh.q8 = b.i8LevelsFor(m)
			sh.i8 = i8TablesFor(k)
			sh.i8lut = i8Lut(&sh.q8, k)
			j.maxRead = sh.i8.maxRead(sh.cp)
			if c := b.planesFor(m); c != nil {
				sh.planes = true
				j.codes, j.rowBytes = c, m.Groups*m.GroupSize*3/8
				j.maxRead = j.rowBytes
			}
		} else {
			sh.q8 = newQ8Levels(m.Levels, k)
			for j := 0; j < 8; j++ { // qword lane j takes the k bytes of codes 8j..8j+7
				for t := 0; t < 8; t++ {
					sh.perm[8*j+t] = byte(min(k*j+t, 63))
					sh.ctl[8*j+t] = byte(k * t)
				}
			}
			j.maxRead = 8*m.Bits*(sh.cp/64-1) + 64
		}
		// The tile kernels (q8Tile, i8Tile) do each token's arithmetic in
		// the order of the one-token kernels (TestBatchInvariant).
		if n > 1 && (j.kind == kindDenseQ8 || j.kind == kindDenseI8 && i8Tiled) {
			sh.tiles = (n + tileN - 1) / tileN
			if cap(sh.xqT) < sh.tiles*tileN*sh.cp {
				sh.xqT = make([]int8, sh.tiles*tileN*sh.cp)
			}
			sh.xqT = sh.xqT[:sh.tiles*tileN*sh.cp]
			sh.pvT = growF(sh.pvT, sh.tiles*G*tileN)
			if j.kind == kindDenseI8 {
				sh.qvT = growF(sh.qvT, sh.tiles*G*tileN)
				sh.xbT = growF(sh.xbT, sh.tiles*G*tileN)
			}
		}
	case kindDenseF32:
		k := m.Bits
		clear(sh.tbl[:])
		copy(sh.tbl[:], m.Levels)
		for i := range sh.shift {
			sh.shift[i] = uint32(i * k)
		}
		j.maxRead = k*(sh.cp/8-1) + 4
	}
	// Each token is laid out into its tile as it is prepared (packToken);
	// the padding of the last tile is cleared here. A few tokens of a
	// narrow matrix (a batched decode step of a small model) are prepared
	// sooner by the caller alone than by a pool job (parValues).
	if n*sh.cp >= parValues {
		b.parallelFor(n, 1, b.prepRun)
	} else {
		b.prepRun(0, 0, n)
	}
	for t := n; t < sh.tiles*tileN; t++ {
		b.packToken(t)
	}
}

// prepTokens prepares tokens [lo, hi) of the dense job: copy, pad, rotate,
// group sums (asym float path) and int8 quantization (Q8 path).
func (b *Backend) prepTokens(w, lo, hi int) {
	j := &b.mm
	m := j.dense
	sh := &b.shared
	C, G, gs := m.C, m.Groups, m.GroupSize
	for t := lo; t < hi; t++ {
		xr := sh.xr[t*sh.cp : (t+1)*sh.cp]
		copy(xr, j.x[t*C:(t+1)*C])
		clear(xr[C:])
		if m.Signs != nil {
			rotate(xr[:C], m, b.level)
		}
		if m.Asym && !j.kind.int8() {
			for g := 0; g < G; g++ {
				var s float32
				for _, v := range xr[g*gs : (g+1)*gs] {
					s += v
				}
				sh.xsum[t*sh.gp+g] = s
			}
		}
		if j.kind.int8() {
			clear(sh.pv[t*sh.gp : (t+1)*sh.gp])
			clear(sh.qv[t*sh.gp : (t+1)*sh.gp])
			clear(sh.xb[t*sh.gp : (t+1)*sh.gp])
			for g := 0; g < G; g++ {
				s, sum := quantizeGroup(sh.xq[t*sh.cp+g*gs:t*sh.cp+(g+1)*gs], xr[g*gs:(g+1)*gs], b.level)
				i := t*sh.gp + g
				sh.pv[i] = sh.q8.alpha * s
				sh.xb[i] = s * float32(sum)
				sh.qv[i] = sh.q8.beta * sh.xb[i]
			}
			if j.kind == kindDenseI8 {
				permuteChunks(sh.xq[t*sh.cp:(t+1)*sh.cp], sh.i8.perm[:])
			}
			if sh.tiles > 0 {
				b.packToken(t)
			}
		}
	}
}

// int8 reports whether the kind's kernels take int8-quantized activations.
func (k mmKind) int8() bool { return k == kindDenseQ8 || k == kindDenseI8 }

// packToken lays token t out in its tile for the tile kernels (q8Tile,
// i8Tile): per 64-column chunk (32 for i8Tile) the tileN tokens'
// activations in a row, and per group the tokens' factors; a t ≥ n (the
// padding of the last tile) gets zeros.
func (b *Backend) packToken(t int) {
	j := &b.mm
	sh := &b.shared
	G := j.dense.Groups
	cs := 64 // chunk bytes: 64 (q8Tile), 32 (i8Tile)
	if j.kind == kindDenseI8 {
		cs = 32
	}
	chunks := sh.cp / cs
	tile, u := t/tileN, t%tileN
	dst := sh.xqT[tile*tileN*sh.cp : (tile+1)*tileN*sh.cp]
	f0 := tile * G * tileN
	if t >= j.n {
		for c := 0; c < chunks; c++ {
			clear(dst[(c*tileN+u)*cs : (c*tileN+u+1)*cs])
		}
		for g := 0; g < G; g++ {
			sh.pvT[f0+g*tileN+u] = 0
			if j.kind == kindDenseI8 {
				sh.qvT[f0+g*tileN+u], sh.xbT[f0+g*tileN+u] = 0, 0
			}
		}
		return
	}
	src := sh.xq[t*sh.cp : (t+1)*sh.cp]
	for c := 0; c < chunks; c++ {
		copy(dst[(c*tileN+u)*cs:(c*tileN+u+1)*cs], src[c*cs:(c+1)*cs])
	}
	for g := 0; g < G; g++ {
		i := t*sh.gp + g
		sh.pvT[f0+g*tileN+u] = sh.pv[i]
		if j.kind == kindDenseI8 {
			sh.qvT[f0+g*tileN+u], sh.xbT[f0+g*tileN+u] = sh.qv[i], sh.xb[i]
		}
	}
}

// quantizeGroup writes q = round(x/s) with s = max|x|/127 and returns s and Σq.
// Groups of a multiple of 16 values use the kernels of level lv (AVX-512,
// AVX2 or NEON), which round identically to the portable loop.
func quantizeGroup(q []int8, x []float32, lv Level) (float32, int) {
	n := len(x)
	fast := n > 0 && n%16 == 0
	avx512 := fast && lv == LevelAVX512 && hasAVX512
	avx2 := fast && !avx512 && (lv == LevelAVX2 || lv == LevelAVX512) && hasAVX2
	neon := fast && lv == LevelNEON && hasNEON
	var amax float32
	switch {
	case avx512:
		amax = absMax16(&x[0], n)
	case avx2:
		amax = absMaxAVX2(&x[0], n)
	case neon:
		amax = absMaxNEON(&x[0], n)
	default:
		for _, v := range x {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
		}
	}
	if amax == 0 {
		clear(q)
		return 0, 0
	}
	s := amax / 127
	inv := 127 / amax
	q = q[:len(x)]
	switch {
	case avx512:
		return s, quant16(&q[0], &x[0], n, inv)
	case avx2:
		return s, quantAVX2(&q[0], &x[0], n, inv)
	case neon:
		return s, quantNEON(&q[0], &x[0], n, inv)
	}
	return s, quantizeGo(q, x, inv)
}

// quantizeGo writes q = round(x·inv) (ties to even), clamped to ±127, and
// returns Σq.
func quantizeGo(q []int8, x []float32, inv float32) int {
	sum := 0
	const magic = 12582912 // 1.5·2^23: adding it rounds to the nearest integer (ties to even)
	for i, v := range x {
		r := int32(math.Float32bits(v*inv+magic)&0x7fffff) - 0x400000
		r = min(max(r, -127), 127)
		q[i] = int8(r)
		sum += int(r)
	}
	return sum
}

// runMatMul is one worker's share (rows [lo, hi)) of the job in b.mm.
func (b *Backend) runMatMul(w, lo, hi int) {
	j := &b.mm
	j.k.rows(b, &b.ws[w], lo, hi)
}

// denseRows runs the dense kernel over rows [lo, hi) for every token,
// in blocks of rows so that the codes of a block stay in cache across tokens.
func (b *Backend) denseRows(ws *workerState, lo, hi int) {
	j := &b.mm
	m := j.dense
	if j.kind == kindDenseGo {
		denseRowsGo(j, &b.shared, ws, lo, hi)
		return
	}
	// Rows whose kernel reads would run past the end of the code section
	// go through a zero-padded copy.
	codes, rb := j.codes, j.rowBytes
	safe := m.R
	if n := len(codes) - j.maxRead; n < 0 {
		safe = 0
	} else {
		safe = min(m.R, n/rb+1)
	}
	block := rowBlock
	if j.n == 1 {
		block = hi - lo
	} else if b.shared.tiles > 0 {
		block = 4 * rowBlock // codes of 64 rows and a token tile stay in L2
	}
	units := j.n // tokens, or tiles of tokens for q8Tile
	if b.shared.tiles > 0 {
		units = b.shared.tiles
	}
	for r0 := lo; r0 < hi; r0 += block {
		r1 := min(r0+block, hi)
		for t := 0; t < units; t++ {
			for r := r0; r < r1; {
				if r < safe {
					e := min(r1, safe)
					b.denseCall(ws, t, r, e-r, &codes[r*rb])
					r = e
					continue
				}
				if len(ws.pad) < j.maxRead+rb {
					ws.pad = make([]byte, j.maxRead+rb)
				}
				clear(ws.pad)
				copy(ws.pad, codes[r*rb:])
				b.denseCall(ws, t, r, 1, &ws.pad[0])
				r++
			}
		}
	}
}

// denseCall runs the assembly kernel on nrows rows from r for token t
// (for tile t when the job is tiled).
func (b *Backend) denseCall(ws *workerState, t, r, nrows int, codes *byte) {
	j := &b.mm
	m := j.dense
	sh := &b.shared
	if j.kind == kindDenseI8 {
		b.i8Call(ws, t, r, nrows, codes)
		return
	}
	if sh.tiles > 0 {
		a := &ws.qt
		*a = q8TileArgs{
			xq: &sh.xqT[t*tileN*sh.cp], pv: &sh.pvT[t*m.Groups*tileN], qv: &sh.qv[t*tileN*sh.gp],
			xb: &sh.xb[t*tileN*sh.gp], scales: &m.Scales[2*r*m.Groups], perm: &sh.perm[0], ctl: &sh.ctl[0],
			mask: uint64(1<<m.Bits-1) * 0x0101010101010101, rowBytes: m.RowBytes, groups: m.Groups,
			chunks: m.GroupSize / 64, cbytes: 8 * m.Bits, outStride: 4 * m.R, nt: min(tileN, j.n-t*tileN),
			scratch: &ws.tsc[0], gpBytes: 4 * sh.gp, tailMask: 0xffff, pfNear: prefetch.near, red: ws.redBuf(),
		}
		if m.Groups%16 != 0 {
			a.tailMask = 1<<(m.Groups%16) - 1
		}
		if m.Asym {
			a.offs = &m.Offsets[2*r*m.Groups]
		}
		if sh.q8.useLut {
			a.lut = &sh.q8.lut[0]
		}
		q8Tile(&j.dst[t*tileN*m.R+r], codes, nrows, a)
		return
	}
	out := &j.dst[t*m.R+r]
	if j.kind == kindDenseQ8 {
		if len(ws.sws) < sh.gp {
			ws.sws = make([]float32, sh.gp)
		}
		a := &ws.q8
		*a = q8Args{
			xq: &sh.xq[t*sh.cp], pv: &sh.pv[t*sh.gp], qv: &sh.qv[t*sh.gp], xb: &sh.xb[t*sh.gp],
			scales: &m.Scales[2*r*m.Groups], sws: &ws.sws[0], perm: &sh.perm[0], ctl: &sh.ctl[0],
			rowBytes: m.RowBytes, groups: m.Groups, chunks: m.GroupSize / 64, cbytes: 8 * m.Bits,
			mask: uint64(1<<m.Bits-1) * 0x0101010101010101, tailMask: 0xffff,
			pfNear: prefetch.near, pfFar: prefetch.far,
		}
		if m.Groups%16 != 0 {
			a.tailMask = 1<<(m.Groups%16) - 1
		}
		if m.Asym {
			a.offs = &m.Offsets[2*r*m.Groups]
		}
		if sh.q8.useLut {
			a.lut = &sh.q8.lut[0]
		}
		q8Rows(out, codes, nrows, a)
		return
	}
	a := &ws.fa
	*a = f32Args{
		x: &sh.xr[t*sh.cp], scales: &m.Scales[2*r*m.Groups], tbl: &sh.tbl[0], shifts: &sh.shift[0],
		rowBytes: m.RowBytes, groups: m.Groups, iters: m.GroupSize / 16, kbytes: m.Bits,
		mask: 1<<m.Bits - 1,
	}
	if m.Bits == 4 {
		a.k4 = 1
	}
	if m.Asym {
		a.offs = &m.Offsets[2*r*m.Groups]
		a.xsum = &sh.xsum[t*sh.gp]
	}
	f32Rows(out, codes, nrows, a)
}

// overlayRows adds the overlay corrections Σ δ·x_rot[c] to rows [lo, hi).
func (b *Backend) overlayRows(lo, hi int) {
	j := &b.mm
	ov := j.overlay
	sh := &b.shared
	R, K := ov.Base.R, ov.K
	for r := lo; r < hi; r++ {
		idx := ov.Idx[2*r*K : 2*(r+1)*K]
		vals := ov.Vals[2*r*K : 2*(r+1)*K]
		for t := 0; t < j.n; t++ {
			x := sh.xr[t*sh.cp : (t+1)*sh.cp]
			var s float32
			for i := 0; i < K; i++ {
				c := int(idx[2*i]) | int(idx[2*i+1])<<8
				s += f16(vals, i) * x[c]
			}
			j.dst[t*R+r] += s
		}
	}
}

// f16 reads the i-th little-endian fp16 value of b.
func f16(b []byte, i int) float32 {
	return tensor.F16ToF32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
}

// denseRowsGo is the portable fused kernel: per row and group, unpack the
// codes and dot them through the level table with every token.
func denseRowsGo(j *mmJob, sh *sharedState, ws *workerState, lo, hi int) {
	m := j.dense
	if cap(ws.u8) < m.GroupSize {
		ws.u8 = make([]uint8, m.GroupSize)
	}
	codes := ws.u8[:m.GroupSize]
	L := m.Levels
	for r := lo; r < hi; r++ {
		for t := 0; t < j.n; t++ {
			j.dst[t*m.R+r] = 0
		}
		for g := 0; g < m.Groups; g++ {
			c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, m.C)
			cs := codes[:c1-c0]
			m.GroupCodes(cs, r, g)
			d, off := m.GroupScale(r, g)
			for t := 0; t < j.n; t++ {
				x := sh.xr[t*sh.cp+c0 : t*sh.cp+c1]
				x = x[:len(cs)]
				var a0, a1 float32
				i := 0
				for ; i+2 <= len(cs); i += 2 {
					a0 += L[cs[i]] * x[i]
					a1 += L[cs[i+1]] * x[i+1]
				}
				if i < len(cs) {
					a0 += L[cs[i]] * x[i]
				}
				s := d * (a0 + a1)
				if m.Asym {
					s += off * sh.xsum[t*sh.gp+g]
				}
				j.dst[t*m.R+r] += s
			}
		}
	}
}

// decodeDenseRow writes row r of the stored (rotated-domain) matrix into dst.
func decodeDenseRow(dst []float32, m *codec.DenseMatrix, r int, ws *workerState) {
	if cap(ws.u8) < m.GroupSize {
		ws.u8 = make([]uint8, m.GroupSize)
	}
	m.DecodeRowRotated(dst, r, ws.u8[:m.GroupSize])
}

// sparseRows: per row, gather the kept entries once and dot them with every token.
func sparseRows(j *mmJob, ws *workerState, lo, hi int) {
	m := j.sparse
	if len(ws.cols) < m.K {
		ws.cols = make([]int32, m.K)
		ws.vals = make([]float32, m.K)
	}
	cols, vals := ws.cols[:m.K], ws.vals[:m.K]
	for r := lo; r < hi; r++ {
		m.RowEntries(r, cols, vals)
		for t := 0; t < j.n; t++ {
			x := j.x[t*m.C : (t+1)*m.C]
			var s float32
			for i, c := range cols {
				if int(c) < m.C {
					s += vals[i] * x[c]
				}
			}
			j.dst[t*m.R+r] = s
		}
	}
}

// plainRows multiplies an uncompressed f32/f16/bf16 matrix.
func plainRows(j *mmJob, ws *workerState, lo, hi int) {
	d := j.plain
	R, C := d.R, d.C
	if d.F32Data != nil || d.DType == tensor.F32 && uintptr(unsafe.Pointer(unsafe.SliceData(d.Data)))%4 == 0 {
		data := d.F32Data
		if data == nil {
			data = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(d.Data))), R*C)
		}
		for r := lo; r < hi; r++ {
			row := data[r*C : (r+1)*C]
			for t := 0; t < j.n; t++ {
				j.dst[t*R+r] = dot(j.lv, row, j.x[t*C:(t+1)*C])
			}
		}
		return
	}
	genericRows(j, ws, lo, hi)
}

// genericRows decodes blocks of rows with DecodeRows and dots them.
func genericRows(j *mmJob, ws *workerState, lo, hi int) {
	w := j.w
	R, C := w.Rows(), w.Cols()
	buf := ws.grow(rowBlock * C)
	for r0 := lo; r0 < hi; r0 += rowBlock {
		r1 := min(r0+rowBlock, hi)
		w.DecodeRows(buf, r0, r1)
		for r := r0; r < r1; r++ {
			row := buf[(r-r0)*C : (r-r0+1)*C]
			for t := 0; t < j.n; t++ {
				j.dst[t*R+r] = dot(j.lv, row, j.x[t*C:(t+1)*C])
			}
		}
	}
}
