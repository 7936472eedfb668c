package cpu

import (
	"github.com/upg-ai/upg/codec"
)

// The trellis codec's kernels. A multiply rotates and pads each token's
// input once, quantizes it to int8 per column group (as the dense int8
// path does), and then decodes every 16×16 tile exactly once per token:
// 64 weights at a time are cut out of the tile's bitstream, hashed to
// codebook indices and looked up as level bytes, and multiplied with
// VPDPBUSD into sixteen row accumulators (trellisRows, AVX-512 with VBMI
// and GFNI). AVX2 (trellisRowsAVX2K2/K3/K4: VPSHUFB hash of whole nibbles
// or 3-bit symbols, VPMADDUBSW) and NEON (trellisRowsNEON: TBL hash, SDOT
// or SMULL+SADALP) do the same with level bytes ≤ 127. Other machines run
// the portable Go kernel on float inputs.

// trellisState is the per-call preparation of a trellis multiply.
type trellisState struct {
	m      *codec.TrellisMatrix
	cp     int // padded columns (16·TileCols)
	levels q8Levels
	pieces [4][32]byte // AVX2: the level table as four XOR-telescoped VPSHUFB pieces (trellisPieces)
	last   []byte      // AVX2, NEON, k = 3: the last band's tiles and 32 bytes of padding (trellisPadLast)
	xr     []float32   // n × cp rotated input (Go kernel)
	xq     []int8      // n × cp quantized input (assembly kernel)
	sx, sq []float32   // n × groups: α·s_x and β·s_x·Σx_q
	// Token tiles of the AVX-512 tile kernel (trellisTile), tileN tokens
	// each, the last zero-padded: xqT[tile][quad][token][4] (quad: 4
	// columns) and gfT[tile][group][α·s_x of 8 tokens, β·s_x·Σx_q of 8].
	tiles int
	xqT   []int8
	gfT   []float32
}

// trellisAsm reports whether an assembly kernel runs at level lv.
func trellisAsm(lv Level) bool { return trellisUmax(lv) > 0 }

// trellisQ8Levels is the level table of the int8 kernels with level bytes
// ≤ umax. Unlike newQ8LevelsMax it always fills lut (the kernels always look
// the 64 indices up, also for a linear codebook).
func trellisQ8Levels(cb []float32, umax int) q8Levels {
	q := newQ8LevelsMax(cb, 6, umax)
	if !q.useLut {
		for i := range q.lut {
			q.lut[i] = byte(i)
		}
		q.useLut = true
	}
	return q
}

// trellisPadLast reports whether the kernel at level lv for k-bit codes
// runs the matrix's last band from a padded copy (st.last): the AVX2 and
// NEON kernels for k = 3 load 16 bytes per 32 (16) symbols and read up to 4
// (10) bytes past a tile, which must not run past the end of the tiles.
func trellisPadLast(lv Level, k int) bool { return lv != LevelAVX512 && k == 3 }

// trellisPieces splits a 64-entry table into the four 16-entry VPSHUFB
// tables the AVX2 kernel XORs: with v = 0x40|idx, the lookup at v+16j has
// its bit 7 clear exactly when idx < 64-16j, so piece j must be L[3-j] ^
// L[4-j] (L[4] = 0) for the XOR over the pieces that fire to telescope to
// L[idx>>4]. Each piece is replicated over both 128-bit lanes.
func trellisPieces(lut *[64]byte) (p [4][32]byte) {
	for j := 0; j < 4; j++ {
		for i := 0; i < 32; i++ {
			v := lut[16*(3-j)+i%16]
			if j > 0 {
				v ^= lut[16*(4-j)+i%16]
			}
			p[j][i] = v
		}
	}
	return p
}

func (b *Backend) prepareTrellis(m *codec.TrellisMatrix) {
	j := &b.mm
	st := &b.shared.trellis
	st.m = m
	asm := trellisAsm(b.level)
	st.cp = 16 * m.TileCols
	n := j.n
	st.xr = growF(st.xr, n*st.cp)
	if asm {
		st.levels = trellisQ8Levels(m.Codebook, trellisUmax(b.level))
		st.pieces = trellisPieces(&st.levels.lut)
		if trellisPadLast(b.level, m.Bits) {
			bb := m.TileCols * m.TileBytes
			st.last = append(st.last[:0], m.Tiles[(m.Bands-1)*bb:m.Bands*bb]...)
			st.last = append(st.last, make([]byte, 32)...)
		}
		if cap(st.xq) < n*st.cp {
			st.xq = make([]int8, n*st.cp)
		}
		st.xq = st.xq[:n*st.cp]
		st.sx = growF(st.sx, n*m.Groups)
		st.sq = growF(st.sq, n*m.Groups)
	}
	st.tiles = 0
	if b.level == LevelAVX512 && asm && n > 1 {
		st.tiles = (n + tileN - 1) / tileN
		if cap(st.xqT) < st.tiles*tileN*st.cp {
			st.xqT = make([]int8, st.tiles*tileN*st.cp)
		}
		st.xqT = st.xqT[:st.tiles*tileN*st.cp]
		st.gfT = growF(st.gfT, st.tiles*m.Groups*2*tileN)
	}
	b.parallelFor(n, 1, b.trellisPrepRun)
	if st.tiles > 0 {
		b.parallelFor(st.tiles, 1, b.trellisPackRun)
	}
}

// trellisPack lays token tiles [lo, hi) out for trellisTile.
func (b *Backend) trellisPack(w, lo, hi int) {
	st := &b.shared.trellis
	n, cp, G := b.mm.n, st.cp, st.m.Groups
	for tile := lo; tile < hi; tile++ {
		dst := st.xqT[tile*tileN*cp : (tile+1)*tileN*cp]
		gf := st.gfT[tile*G*2*tileN : (tile+1)*G*2*tileN]
		for u := 0; u < tileN; u++ {
			t := tile*tileN + u
			if t >= n {
				for q := 0; q < cp/4; q++ {
					clear(dst[(q*tileN+u)*4 : (q*tileN+u+1)*4])
				}
				for g := 0; g < G; g++ {
					gf[g*2*tileN+u], gf[g*2*tileN+tileN+u] = 0, 0
				}
				continue
			}
			src := st.xq[t*cp : (t+1)*cp]
			for q := 0; q < cp/4; q++ {
				copy(dst[(q*tileN+u)*4:(q*tileN+u+1)*4], src[4*q:4*q+4])
			}
			for g := 0; g < G; g++ {
				gf[g*2*tileN+u], gf[g*2*tileN+tileN+u] = st.sx[t*G+g], st.sq[t*G+g]
			}
		}
	}
}

// trellisPrep prepares tokens [lo, hi): copy, pad, rotate, quantize.
func (b *Backend) trellisPrep(w, lo, hi int) {
	j := &b.mm
	st := &b.shared.trellis
	m := st.m
	C, cp, G, gs := m.C, st.cp, m.Groups, m.GroupSize
	for t := lo; t < hi; t++ {
		xr := st.xr[t*cp : (t+1)*cp]
		copy(xr, j.x[t*C:(t+1)*C])
		clear(xr[C:])
		if m.Signs != nil {
			rotateBy(xr[:C], m.Signs, m.RotBlock, b.level)
		}
		if !trellisAsm(b.level) {
			continue
		}
		for g := 0; g < G; g++ {
			c0, c1 := g*gs, min((g+1)*gs, cp)
			s, sum := quantizeGroup(st.xq[t*cp+c0:t*cp+c1], xr[c0:c1], b.level)
			st.sx[t*G+g] = st.levels.alpha * s
			st.sq[t*G+g] = st.levels.beta * s * float32(sum)
		}
	}
}

// trellisRowsRun multiplies rows [lo, hi) (lo a multiple of 16) for every token.
func (b *Backend) trellisRowsRun(ws *workerState, lo, hi int) {
	j := &b.mm
	st := &b.shared.trellis
	m := st.m
	b0, b1 := lo/16, (hi+15)/16
	for t := 0; t < j.n; t++ {
		out := j.dst[t*m.R : (t+1)*m.R]
		full := min(b1, m.R/16) // bands whose 16 rows all exist
		if trellisAsm(b.level) {
			if st.tiles > 0 {
				if t%tileN != 0 {
					continue // the tile kernel did this token with the tile's first
				}
				tile := t / tileN
				nt := min(tileN, j.n-t)
				if full > b0 {
					b.trellisCall(ws, tile, b0, full-b0, &out[16*b0], m.R)
				}
				if full < b1 {
					// The last band's rows end early: through scratch.
					var part [tileN * 16]float32
					b.trellisCall(ws, tile, full, 1, &part[0], 16)
					for u := 0; u < nt; u++ {
						copy(j.dst[(t+u)*m.R+16*full:(t+u+1)*m.R], part[16*u:])
					}
				}
				continue
			}
			if full > b0 {
				b.trellisCall(ws, t, b0, full-b0, &out[16*b0], m.R)
			}
			if full < b1 {
				var part [16]float32
				b.trellisCall(ws, t, full, 1, &part[0], 16)
				copy(out[16*full:], part[:m.R-16*full])
			}
			continue
		}
		xr := st.xr[t*st.cp : (t+1)*st.cp]
		for band := b0; band < b1; band++ {
			var acc [16]float32
			trellisBandGo(&acc, m, band, xr)
			copy(out[16*band:min(16*band+16, m.R)], acc[:])
		}
	}
}

// trellisBandGo computes the 16 row dot products of band b with the rotated
// input xr by decoding the codes (the portable kernel).
func trellisBandGo(acc *[16]float32, m *codec.TrellisMatrix, b int, xr []float32) {
	var part [16]float32
	for t := 0; t < m.TileCols; t++ {
		c0 := 16 * t
		if c0%m.GroupSize == 0 {
			part = [16]float32{}
		}
		tile := m.Tile(b, t)
		for c := 0; c < 16; c++ {
			x := xr[c0+c]
			if x == 0 {
				continue
			}
			for r := 0; r < 16; r++ {
				idx := codec.TrellisIndex(codec.TrellisWindow(tile, codec.TrellisPos(r, c), m.Bits))
				part[r] += m.Codebook[idx] * x
			}
		}
		if end := c0 + 16; end%m.GroupSize == 0 || t == m.TileCols-1 {
			g := c0 / m.GroupSize
			for r := 0; r < 16; r++ {
				if row := 16*b + r; row < m.R {
					acc[r] += m.Scale(row, g) * part[r]
				}
			}
		}
	}
}

// decodeTrellisRow writes row r of W (rotation undone) into dst.
func (b *Backend) decodeTrellisRow(dst []float32, m *codec.TrellisMatrix, r int) {
	m.DecodeRowRotated(dst[:m.C], r)
	if m.Signs != nil {
		b.unrotateBy(dst[:m.C], m.Signs, m.RotBlock)
	}
}

// trellisK2Sources are, for the k = 2 kernel, the nibbles each column e of
// a strip hashes, as bit offsets from the byte m that holds positions
// 4m..4m+3: position 4m+e's window is stream bits 8m+2e-10 .. 8m+2e+1, which
// overlap the high nibble of byte m-2 (-12), both of byte m-1 (-8, -4) and
// of byte m (0, 4); the nibbles that lie outside are left out, the ones
// that lie partly outside contribute their bits inside.
var trellisK2Sources = [4][]int{{-12, -8, -4, 0}, {-8, -4, 0}, {-8, -4, 0, 4}, {-4, 0, 4}}

// trellisK2First are the indices of trellisK2Hash's tables that start a
// column (where the AVX2 kernel sets bit 6, see trellisPieces).
var trellisK2First = []int{0, 4, 7, 11}

// trellisK2Hash are the 14 hash tables of the k = 2 kernels, column by
// column and source by source (trellisK2Sources): entry v of the table of
// the nibble at bit offset o from byte m, for column e, is the hash of v's
// bits placed where they lie in the window of position 4m+e (bits outside
// the window left out).
func trellisK2Hash() (t [14][16]byte) {
	n := 0
	for e, srcs := range trellisK2Sources {
		for _, o := range srcs {
			for v := 0; v < 16; v++ {
				var h byte
				for b := 0; b < 4; b++ {
					if j := o + b - (2*e - 10); v>>b&1 == 1 && j >= 0 && j < 12 {
						h ^= byte(codec.TrellisIndex(1 << j))
					}
				}
				t[n][v] = h
			}
			n++
		}
	}
	return t
}
