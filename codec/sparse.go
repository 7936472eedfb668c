package codec

import (
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/upg-ai/upg/tensor"
)

// SparseMatrix is the "sparse" codec: every row keeps exactly K weights,
// quantized to k-bit codes with one fp16 scale per column group; the rest
// are zero.
//
// Kept set. N:M (N, M > 0, M ≤ 16): each block of M consecutive columns
// keeps N; a last partial block is padded with virtual columns ≥ C whose
// values are ignored, so K = ceil(C/M)·N. Unstructured (N = M = 0):
// K = round(Density·C) and column group g = [c0, c1) keeps exactly
// n_g = cum(c1) - cum(c0) weights, cum(c) = floor((K·c + floor(C/2)) / C).
//
// Encoded layout (offsets relative to the tensor data, each section at a
// multiple of 8, zero-padded):
//
//  1. codebook (Levels "lloyd" only): 2^k float32.
//  2. scales: R×G fp16, G = ceil(C/GroupSize) column groups.
//  3. index: R rows of IdxRowBytes (LSB-first bitstreams, align8):
//     N:M: for block j the IdxBits = ceil(log2 C(M,N)) bit rank, at bit
//     j·IdxBits, of its kept mask among all M-bit masks with N bits set in
//     ascending numeric order (mask bit i = column j·M+i; table Combos);
//     unstructured bitmap mode (Bitmap): bit c set = column c kept;
//     unstructured list mode: for each group in order its n_g kept column
//     offsets within the group, ascending, IdxBits = max(1, ceil(log2
//     GroupSize)) bits each. List mode is used when K·IdxBits < C.
//  4. values: R rows of CodeRowBytes = align8(ceil(K·k/8)): the K codes of
//     the kept columns in column order, k bits each, LSB-first.
//
// Value of kept column c: Scales[r][c/GroupSize]·Levels[code]; Levels as
// for DenseMatrix ("uniform", "midrise", "lloyd"; no "asym").
type SparseMatrix struct {
	R, C, Bits, GroupSize, Groups int
	N, M                          int // both 0 for unstructured
	K                             int // kept entries per row
	Levels                        []float32
	Scales                        []byte
	Index                         []byte
	IdxRowBytes, IdxBits          int
	Bitmap                        bool
	Codes                         []byte
	CodeRowBytes                  int
	Combos                        []uint16 // N:M: rank → mask
}

type sparseCodec struct{}

func (sparseCodec) Name() string { return "sparse" }

type sparseLayout struct {
	kind                              string
	k, gs, groups, n, m, kept         int
	idxBits, idxRowBytes, codeRowByte int
	bitmap                            bool
	scOff, idxOff, codeOff, sz        int64
	combos                            []uint16
}

var comboCache = map[[2]int][]uint16{}

// combos lists the M-bit masks with N bits set in ascending order.
func combos(n, m int) []uint16 {
	if c, ok := comboCache[[2]int{n, m}]; ok {
		return c
	}
	var c []uint16
	for mask := 0; mask < 1<<m; mask++ {
		if bits.OnesCount(uint(mask)) == n {
			c = append(c, uint16(mask))
		}
	}
	return c
}

func init() {
	for m := 2; m <= 16; m *= 2 {
		for n := 1; n < m; n++ {
			comboCache[[2]int{n, m}] = combos(n, m)
		}
	}
}

func newSparseLayout(p Params, rows, cols int) (*sparseLayout, error) {
	kind, err := levelsKind(p)
	if err != nil {
		return nil, err
	}
	if kind == "asym" {
		return nil, fmt.Errorf("levels asym is not supported for sparse")
	}
	if p.Bits < 2 || p.Bits > 8 {
		return nil, fmt.Errorf("bits %d out of range 2..8", p.Bits)
	}
	if rows <= 0 || cols <= 0 || int64(rows)*int64(cols) > 1<<40 {
		return nil, fmt.Errorf("bad shape %dx%d", rows, cols)
	}
	if p.Rotate != 0 {
		return nil, fmt.Errorf("rotate is not supported for sparse")
	}
	gs := p.GroupSize
	if gs == 0 {
		gs = DefaultGroupSize
	}
	l := &sparseLayout{kind: kind, k: p.Bits, gs: gs, n: p.N, m: p.M}
	switch {
	case p.N == 0 && p.M == 0:
		if !(p.Density > 0 && p.Density <= 1) {
			return nil, fmt.Errorf("density %v outside (0,1]", p.Density)
		}
		if gs < 1 {
			return nil, fmt.Errorf("group size %d < 1", gs)
		}
		l.kept = int(p.Density*float64(cols) + 0.5)
		l.idxBits = max(1, bits.Len(uint(gs-1)))
		if l.kept*l.idxBits >= cols {
			l.bitmap, l.idxBits = true, 0
			l.idxRowBytes = rowBytes(cols, 1)
		} else {
			l.idxRowBytes = rowBytes(l.kept, l.idxBits)
		}
	case p.N >= 1 && p.N < p.M && p.M <= 16:
		if gs < p.M || gs%p.M != 0 {
			return nil, fmt.Errorf("group size %d is not a multiple of M=%d", gs, p.M)
		}
		l.combos = combos(p.N, p.M)
		blocks := (cols + p.M - 1) / p.M
		l.kept = blocks * p.N
		l.idxBits = max(1, bits.Len(uint(len(l.combos)-1)))
		l.idxRowBytes = rowBytes(blocks, l.idxBits)
	default:
		return nil, fmt.Errorf("bad N:M %d:%d (need 1 <= N < M <= 16, or 0:0 with density)", p.N, p.M)
	}
	l.groups = (cols + gs - 1) / gs
	l.codeRowByte = rowBytes(l.kept, l.k)
	var off int64
	if kind == "lloyd" {
		off = align8(4 << p.Bits)
	}
	l.scOff = off
	off += align8(int64(rows) * int64(l.groups) * 2)
	l.idxOff = off
	off += int64(rows) * int64(l.idxRowBytes)
	l.codeOff = off
	off += int64(rows) * int64(l.codeRowByte)
	l.sz = off
	return l, nil
}

// cum is the number of kept entries of an unstructured row before column c.
func (l *sparseLayout) cum(c, cols int) int {
	return int((int64(l.kept)*int64(c) + int64(cols/2)) / int64(cols))
}

func (sparseCodec) EncodedSize(p Params, rows, cols int) (int64, error) {
	l, err := newSparseLayout(p, rows, cols)
	if err != nil {
		return 0, fmt.Errorf("codec sparse: %v", err)
	}
	return l.sz, nil
}

// sparseQuant is the colQuant of the sparse codec (SparseGPT-style: the
// mask of a group is chosen when GPTQ reaches it, by w²/U_cc²).
type sparseQuant struct {
	l      *sparseLayout
	q      *quantizer
	cols   int
	imp    []float32 // importance or nil
	ucc    []float32 // diag of U or nil
	kept   [][]int32 // per row: kept columns (N:M pads ≥ cols included)
	codes  [][]uint8 // per row: K codes
	cursor []int     // per row: next slot
	scales []float32 // rows×groups
	mark   [][]bool  // per row: column kept (length cols)
}

func (sq *sparseQuant) quant(r int, w []float32, c int) float32 {
	l := sq.l
	if c%l.gs == 0 {
		sq.startGroup(r, w, c)
	}
	if !sq.mark[r][c] {
		return 0
	}
	slot := sq.cursor[r]
	for sq.kept[r][slot] != int32(c) {
		slot++
	}
	sq.cursor[r] = slot + 1
	d := sq.scales[r*l.groups+c/l.gs]
	var inv float32
	if d != 0 {
		inv = 1 / d
	}
	code := sq.q.nearest(w[c] * inv)
	sq.codes[r][slot] = code
	return d * sq.q.L[code]
}

func (sq *sparseQuant) startGroup(r int, w []float32, c0 int) {
	l := sq.l
	g := c0 / l.gs
	c1 := min(c0+l.gs, sq.cols)
	sal := func(c int) float32 {
		if c >= sq.cols {
			return float32(math.Inf(-1))
		}
		s := w[c] * w[c]
		if sq.ucc != nil {
			s /= sq.ucc[c] * sq.ucc[c]
		}
		return s
	}
	var sel []int
	top := func(lo, hi, n int) {
		cand := make([]int, 0, hi-lo)
		for c := lo; c < hi; c++ {
			cand = append(cand, c)
		}
		sort.SliceStable(cand, func(i, j int) bool { return sal(cand[i]) > sal(cand[j]) })
		s := cand[:n]
		sort.Ints(s)
		sel = append(sel, s...)
	}
	if l.m > 0 {
		for b := c0; b < min(c0+l.gs, (sq.cols+l.m-1)/l.m*l.m); b += l.m {
			top(b, b+l.m, l.n)
		}
	} else {
		top(c0, c1, l.cum(c1, sq.cols)-l.cum(c0, sq.cols))
	}
	x := make([]float32, 0, len(sel))
	var a []float32
	for _, c := range sel {
		sq.kept[r] = append(sq.kept[r], int32(c))
		if c < sq.cols {
			sq.mark[r][c] = true
			x = append(x, w[c])
			if sq.imp != nil {
				a = append(a, sq.imp[c])
			}
		}
	}
	codes := make([]uint8, len(x))
	d, _ := sq.q.fit(x, a, codes)
	sq.scales[r*l.groups+g] = d
	// Pads (never visited by quant) hold the code nearest to 0.
	for _, c := range sel {
		if c >= sq.cols {
			sq.codes[r] = append(sq.codes[r], sq.q.nearest(0))
		} else {
			sq.codes[r] = append(sq.codes[r], 0)
		}
	}
}

func (sparseCodec) Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error) {
	l, err := newSparseLayout(p, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("codec sparse: %v", err)
	}
	if p.Rotate != 0 {
		return nil, fmt.Errorf("codec sparse: rotate is not supported")
	}
	work := append([]float32(nil), w...)
	var prep *prepared
	sq := &sparseQuant{l: l, cols: cols, kept: make([][]int32, rows), codes: make([][]uint8, rows),
		cursor: make([]int, rows), scales: make([]float32, rows*l.groups), mark: make([][]bool, rows)}
	if h != nil && h.H != nil {
		if prep, err = h.factor(0, cols, p.Damp); err != nil {
			return nil, fmt.Errorf("codec sparse: %v", err)
		}
		sq.imp, sq.ucc = prep.Imp, prep.Ucc
	}
	for r := range sq.mark {
		sq.mark[r] = make([]bool, cols)
		sq.kept[r] = make([]int32, 0, l.kept)
		sq.codes[r] = make([]uint8, 0, l.kept)
	}
	var L []float32
	if l.kind == "lloyd" {
		// Learn the codebook on the weights a magnitude mask would keep.
		L = learnCodebook(magnitudeMasked(w, rows, cols, l), rows, cols, l.gs, l.k, nil)
	} else {
		L = fixedLevels(l.kind, l.k)
	}
	sq.q = newQuantizer(l.kind, l.k, L)
	runQuant(work, rows, cols, prep, gptqBlock(l.gs), sq)

	out := make([]byte, l.sz)
	if l.kind == "lloyd" {
		for i, v := range L {
			putF32(out[4*i:], v)
		}
	}
	for i, v := range sq.scales {
		putU16(out[l.scOff+int64(2*i):], tensor.F32ToF16(v))
	}
	for r := 0; r < rows; r++ {
		idx := out[l.idxOff+int64(r*l.idxRowBytes):]
		kept := sq.kept[r]
		switch {
		case l.m > 0:
			for j := 0; j*l.n < len(kept); j++ {
				var mask uint16
				for _, c := range kept[j*l.n : (j+1)*l.n] {
					mask |= 1 << (int(c) - j*l.m)
				}
				rank := sort.Search(len(l.combos), func(i int) bool { return l.combos[i] >= mask })
				putBits(idx, j*l.idxBits, l.idxBits, uint32(rank))
			}
		case l.bitmap:
			for _, c := range kept {
				putBits(idx, int(c), 1, 1)
			}
		default:
			for i, c := range kept {
				putBits(idx, i*l.idxBits, l.idxBits, uint32(int(c)%l.gs))
			}
		}
		vals := out[l.codeOff+int64(r*l.codeRowByte):]
		for i, code := range sq.codes[r] {
			putBits(vals, i*l.k, l.k, uint32(code))
		}
	}
	return out, nil
}

// magnitudeMasked returns, for codebook learning, each group of w with its
// largest-magnitude entries (as many as the layout keeps) packed to the
// front and the rest zeroed.
func magnitudeMasked(w []float32, rows, cols int, l *sparseLayout) []float32 {
	out := make([]float32, len(w))
	for r := 0; r < rows; r++ {
		for c0 := 0; c0 < cols; c0 += l.gs {
			c1 := min(c0+l.gs, cols)
			n := l.cum(c1, cols) - l.cum(c0, cols)
			if l.m > 0 {
				n = min((c1-c0+l.m-1)/l.m*l.n, c1-c0)
			}
			v := append([]float32(nil), w[r*cols+c0:r*cols+c1]...)
			sort.Slice(v, func(i, j int) bool { return abs32(v[i]) > abs32(v[j]) })
			copy(out[r*cols+c0:], v[:n])
		}
	}
	return out
}

func (sparseCodec) Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error) {
	l, err := newSparseLayout(p, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("codec sparse: %v", err)
	}
	if int64(len(data)) != l.sz {
		return nil, fmt.Errorf("codec sparse: %dx%d needs %d bytes, have %d", rows, cols, l.sz, len(data))
	}
	m := &SparseMatrix{R: rows, C: cols, Bits: l.k, GroupSize: l.gs, Groups: l.groups, N: l.n, M: l.m, K: l.kept,
		IdxRowBytes: l.idxRowBytes, IdxBits: l.idxBits, Bitmap: l.bitmap, CodeRowBytes: l.codeRowByte, Combos: l.combos}
	if l.kind == "lloyd" {
		m.Levels = make([]float32, 1<<l.k)
		for i := range m.Levels {
			v := getF32(data[4*i:])
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("codec sparse: codebook entry %d is %v", i, v)
			}
			m.Levels[i] = v
		}
	} else {
		m.Levels = fixedLevels(l.kind, l.k)
	}
	m.Scales = data[l.scOff : l.scOff+int64(rows*l.groups*2)]
	if err := checkF16(m.Scales, "scale"); err != nil {
		return nil, fmt.Errorf("codec sparse: %v", err)
	}
	m.Index = data[l.idxOff:l.codeOff]
	m.Codes = data[l.codeOff:]
	cols32 := make([]int32, m.K)
	for r := 0; r < rows; r++ {
		if err := m.keptCols(r, cols32); err != nil {
			return nil, fmt.Errorf("codec sparse: row %d: %v", r, err)
		}
	}
	return m, nil
}

func (m *SparseMatrix) Rows() int { return m.R }
func (m *SparseMatrix) Cols() int { return m.C }

// keptCols writes the K kept columns of row r (ascending; N:M pads are
// ≥ C) into dst and validates the index.
func (m *SparseMatrix) keptCols(r int, dst []int32) error {
	idx := m.Index[r*m.IdxRowBytes : (r+1)*m.IdxRowBytes]
	switch {
	case m.M > 0:
		for j := 0; j*m.N < m.K; j++ {
			rank := int(getBits(idx, j*m.IdxBits, m.IdxBits))
			if rank >= len(m.Combos) {
				return fmt.Errorf("block %d mask rank %d >= %d", j, rank, len(m.Combos))
			}
			mask := m.Combos[rank]
			i := j * m.N
			for b := 0; b < m.M; b++ {
				if mask>>b&1 == 1 {
					dst[i] = int32(j*m.M + b)
					i++
				}
			}
		}
	case m.Bitmap:
		i := 0
		for c := 0; c < m.C; c++ {
			if getBits(idx, c, 1) == 1 {
				if i == m.K {
					return fmt.Errorf("bitmap has more than %d entries", m.K)
				}
				dst[i] = int32(c)
				i++
			}
		}
		if i != m.K {
			return fmt.Errorf("bitmap has %d entries, want %d", i, m.K)
		}
		// per-group counts are implied by the layout; check them
		for g := 0; g < m.Groups; g++ {
			c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, m.C)
			lo, hi := m.cum(c0), m.cum(c1)
			for _, c := range dst[lo:hi] {
				if int(c) < c0 || int(c) >= c1 {
					return fmt.Errorf("group %d does not hold %d entries", g, hi-lo)
				}
			}
		}
	default:
		i := 0
		for g := 0; g < m.Groups; g++ {
			c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, m.C)
			prev := -1
			for ; i < m.cum(c1); i++ {
				off := int(getBits(idx, i*m.IdxBits, m.IdxBits))
				if off <= prev || c0+off >= c1 {
					return fmt.Errorf("group %d entry offset %d not ascending inside the group", g, off)
				}
				prev = off
				dst[i] = int32(c0 + off)
			}
		}
	}
	return nil
}

// KeptCols writes the K kept columns of row r into dst (ascending; N:M pad
// entries, in the last block, have columns ≥ C). The index was validated
// by Open.
func (m *SparseMatrix) KeptCols(r int, dst []int32) { _ = m.keptCols(r, dst) }

func (m *SparseMatrix) cum(c int) int {
	return int((int64(m.K)*int64(c) + int64(m.C/2)) / int64(m.C))
}

// RowEntries writes the kept columns of row r and their values into cols
// and vals (length K each); N:M pad entries have column ≥ C and must be
// skipped. The index was validated by Open.
func (m *SparseMatrix) RowEntries(r int, cols []int32, vals []float32) {
	_ = m.keptCols(r, cols)
	codes := m.Codes[r*m.CodeRowBytes : (r+1)*m.CodeRowBytes]
	for i, c := range cols[:m.K] {
		g := min(int(c)/m.GroupSize, m.Groups-1)
		vals[i] = f16At(m.Scales, r*m.Groups+g) * m.Levels[getBits(codes, i*m.Bits, m.Bits)]
	}
}

// DecodeRows writes rows [r0, r1) of W into dst.
func (m *SparseMatrix) DecodeRows(dst []float32, r0, r1 int) {
	cols := make([]int32, m.K)
	vals := make([]float32, m.K)
	for r := r0; r < r1; r++ {
		out := dst[(r-r0)*m.C : (r-r0+1)*m.C]
		clear(out)
		m.RowEntries(r, cols, vals)
		for i, c := range cols {
			if int(c) < m.C {
				out[c] = vals[i]
			}
		}
	}
}

// MatVec computes dst = W·x over the kept entries only.
func (m *SparseMatrix) MatVec(dst, x []float32) {
	cols := make([]int32, m.K)
	vals := make([]float32, m.K)
	for r := 0; r < m.R; r++ {
		m.RowEntries(r, cols, vals)
		var s float32
		for i, c := range cols {
			if int(c) < m.C {
				s += vals[i] * x[c]
			}
		}
		dst[r] = s
	}
}

// MatMul computes dst[i] = W·x[i] for n vectors (x n×C, dst n×R).
func (m *SparseMatrix) MatMul(dst, x []float32, n int) {
	for i := 0; i < n; i++ {
		m.MatVec(dst[i*m.R:(i+1)*m.R], x[i*m.C:(i+1)*m.C])
	}
}
