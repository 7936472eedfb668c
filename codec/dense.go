package codec

import (
	"fmt"
	"math"

	"github.com/upg-ai/upg/tensor"
)

// DenseMatrix is the "dense" codec: k-bit group quantization.
//
// Encoded layout (all offsets relative to the start of the tensor data,
// little-endian; every section starts at a multiple of 8 bytes and is
// zero-padded to one):
//
//  1. codebook (Levels "lloyd" only): 2^k float32, ascending.
//  2. scales: R×G fp16, row-major, G = ceil(C/GroupSize).
//  3. offsets (Levels "asym" only): R×G fp16.
//  4. codes: R rows of RowBytes = align8(ceil(C·k/8)) bytes; the code of
//     column c is the k bits at bit c·k of the row's LSB-first bitstream
//     (bit i is bit i%8 of byte i/8); so 3-bit codes pack 8 per 3 bytes,
//     4-bit codes 2 per byte with the low nibble first. Padding bits are 0.
//
// Value: ŵ'[r][c] = Scales[r][g]·Levels[code] (+ Offsets[r][g]), g = c/GroupSize.
// Levels: "uniform" L[q] = q-2^(k-1); "midrise" L[q] = q-(2^k-1)/2;
// "asym" L[q] = q; "lloyd" the stored codebook.
// With Rotate != 0, Ŵ' is the rotated matrix and W = Ŵ'·Q, Q = Hb·D, where D
// = diag(RotationSigns(seed, C)) and Hb is block-diagonal with orthonormal
// Sylvester Hadamard blocks of size RotationBlock(C): y = W·x = Ŵ'·(Q·x), so
// a kernel rotates x once (x ← Hb·(D·x)) and then runs the plain product.
type DenseMatrix struct {
	R, C      int
	Bits      int
	GroupSize int
	Groups    int       // groups per row, ceil(C/GroupSize)
	Levels    []float32 // 2^Bits code values
	Asym      bool
	Scales    []byte // R×Groups fp16
	Offsets   []byte // R×Groups fp16 when Asym, else nil
	Codes     []byte // R×RowBytes
	RowBytes  int
	Signs     []float32 // rotation diagonal D (nil when not rotated)
	RotBlock  int       // Hadamard block size when rotated
}

type denseCodec struct{}

func (denseCodec) Name() string { return "dense" }

// denseLayout is the byte layout of a dense tensor.
type denseLayout struct {
	kind                             string
	k, gs, groups, rowBytes          int
	cbOff, scOff, ofOff, codeOff, sz int64
}

func newDenseLayout(p Params, rows, cols int) (*denseLayout, error) {
	kind, err := levelsKind(p)
	if err != nil {
		return nil, err
	}
	if p.Bits < 2 || p.Bits > 8 {
		return nil, fmt.Errorf("bits %d out of range 2..8", p.Bits)
	}
	gs := p.GroupSize
	if gs == 0 {
		gs = DefaultGroupSize
	}
	if gs < 1 {
		return nil, fmt.Errorf("group size %d < 1", gs)
	}
	if rows <= 0 || cols <= 0 || int64(rows)*int64(cols) > 1<<40 {
		return nil, fmt.Errorf("bad shape %dx%d", rows, cols)
	}
	l := &denseLayout{kind: kind, k: p.Bits, gs: gs, groups: (cols + gs - 1) / gs, rowBytes: rowBytes(cols, p.Bits)}
	var off int64
	if kind == "lloyd" {
		off = align8(4 << p.Bits)
	}
	l.scOff = off
	off += align8(int64(rows) * int64(l.groups) * 2)
	l.ofOff = off
	if kind == "asym" {
		off += align8(int64(rows) * int64(l.groups) * 2)
	}
	l.codeOff = off
	off += int64(rows) * int64(l.rowBytes)
	l.sz = off
	return l, nil
}

func (denseCodec) EncodedSize(p Params, rows, cols int) (int64, error) {
	l, err := newDenseLayout(p, rows, cols)
	if err != nil {
		return 0, fmt.Errorf("codec dense: %v", err)
	}
	return l.sz, nil
}

// denseQuant is the colQuant of the dense codec (and the overlay base).
type denseQuant struct {
	q        *quantizer
	gs, cols int
	groups   int
	imp      []float32 // per-column importance or nil
	skip     []bool    // rows×cols: overlay entries (kept exactly), or nil
	scales   []float32 // rows×groups
	offs     []float32
	codes    []uint8 // rows×cols
}

func (dq *denseQuant) quant(r int, w []float32, c int) float32 {
	g := c / dq.gs
	i := r*dq.groups + g
	if c%dq.gs == 0 {
		c1 := min(c+dq.gs, dq.cols)
		var a []float32
		if dq.imp != nil {
			a = dq.imp[c:c1]
		}
		if dq.skip != nil {
			a2 := make([]float32, c1-c)
			for j := range a2 {
				a2[j] = 1
				if a != nil {
					a2[j] = a[j]
				}
				if dq.skip[r*dq.cols+c+j] {
					a2[j] = 0
				}
			}
			a = a2
		}
		dq.scales[i], dq.offs[i] = dq.q.fit(w[c:c1], a, dq.codes[r*dq.cols+c:r*dq.cols+c1])
	}
	d, m := dq.scales[i], dq.offs[i]
	var inv float32
	if d != 0 {
		inv = 1 / d
	}
	code := dq.q.nearest((w[c] - m) * inv)
	dq.codes[r*dq.cols+c] = code
	if dq.skip != nil && dq.skip[r*dq.cols+c] {
		return w[c]
	}
	return d*dq.q.L[code] + m
}

// encodeDense quantizes w (already copied; modified in place) and returns
// the layout data plus, in w, the rotated-domain values each weight is
// represented by (overlay entries keep their exact value).
// pick, if not nil, is called with the rotated weights and the per-column
// importance (nil without calibration) and returns the rows×cols mask of
// overlay entries.
func encodeDense(w []float32, rows, cols int, p Params, h *Hessian, pick func(w, imp []float32) []bool) ([]byte, *denseQuant, error) {
	l, err := newDenseLayout(p, rows, cols)
	if err != nil {
		return nil, nil, err
	}
	if p.Rotate != 0 {
		signs := RotationSigns(p.Rotate, cols)
		parallelFor(rows, func(r int) { RotateForward(w[r*cols:(r+1)*cols], signs) })
	}
	var prep *prepared
	var imp []float32
	if h != nil && h.H != nil {
		if prep, err = h.factor(p.Rotate, cols, p.Damp); err != nil {
			return nil, nil, err
		}
		imp = prep.Imp
	}
	var skip []bool
	if pick != nil {
		skip = pick(w, imp)
	}
	var L []float32
	if l.kind == "lloyd" {
		L = learnCodebook(w, rows, cols, l.gs, l.k, imp)
	} else {
		L = fixedLevels(l.kind, l.k)
	}
	dq := &denseQuant{q: newQuantizer(l.kind, l.k, L), gs: l.gs, cols: cols, groups: l.groups, imp: imp, skip: skip,
		scales: make([]float32, rows*l.groups), offs: make([]float32, rows*l.groups), codes: make([]uint8, rows*cols)}
	runQuant(w, rows, cols, prep, gptqBlock(l.gs), dq)

	out := make([]byte, l.sz)
	if l.kind == "lloyd" {
		for i, v := range L {
			putF32(out[4*i:], v)
		}
	}
	for i, v := range dq.scales {
		putU16(out[l.scOff+int64(2*i):], tensor.F32ToF16(v))
	}
	if l.kind == "asym" {
		for i, v := range dq.offs {
			putU16(out[l.ofOff+int64(2*i):], tensor.F32ToF16(v))
		}
	}
	for r := 0; r < rows; r++ {
		row := out[l.codeOff+int64(r*l.rowBytes):]
		for c, code := range dq.codes[r*cols : (r+1)*cols] {
			putBits(row, c*l.k, l.k, uint32(code))
		}
	}
	return out, dq, nil
}

func (denseCodec) Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error) {
	work := append([]float32(nil), w...)
	out, _, err := encodeDense(work, rows, cols, p, h, nil)
	if err != nil {
		return nil, fmt.Errorf("codec dense: %v", err)
	}
	return out, nil
}

func (denseCodec) Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error) {
	m, err := openDense(p, rows, cols, data)
	if err != nil {
		return nil, fmt.Errorf("codec dense: %v", err)
	}
	return m, nil
}

func openDense(p Params, rows, cols int, data []byte) (*DenseMatrix, error) {
	l, err := newDenseLayout(p, rows, cols)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != l.sz {
		return nil, fmt.Errorf("%dx%d %d-bit group %d needs %d bytes, have %d", rows, cols, l.k, l.gs, l.sz, len(data))
	}
	m := &DenseMatrix{R: rows, C: cols, Bits: l.k, GroupSize: l.gs, Groups: l.groups, Asym: l.kind == "asym", RowBytes: l.rowBytes}
	if l.kind == "lloyd" {
		m.Levels = make([]float32, 1<<l.k)
		for i := range m.Levels {
			v := getF32(data[4*i:])
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("codebook entry %d is %v", i, v)
			}
			m.Levels[i] = v
		}
	} else {
		m.Levels = fixedLevels(l.kind, l.k)
	}
	n := int64(rows) * int64(l.groups) * 2
	m.Scales = data[l.scOff : l.scOff+n]
	if err := checkF16(m.Scales, "scale"); err != nil {
		return nil, err
	}
	if m.Asym {
		m.Offsets = data[l.ofOff : l.ofOff+n]
		if err := checkF16(m.Offsets, "offset"); err != nil {
			return nil, err
		}
	}
	m.Codes = data[l.codeOff:]
	if p.Rotate != 0 {
		m.Signs = RotationSigns(p.Rotate, cols)
		m.RotBlock = RotationBlock(cols)
	}
	return m, nil
}

// checkF16 rejects Inf/NaN fp16 values (corrupt data).
func checkF16(b []byte, what string) error {
	for i := 0; i+1 < len(b); i += 2 {
		if b[i+1]&0x7c == 0x7c {
			return fmt.Errorf("%s %d is not finite (0x%04x)", what, i/2, uint16(b[i])|uint16(b[i+1])<<8)
		}
	}
	return nil
}

func (m *DenseMatrix) Rows() int { return m.R }
func (m *DenseMatrix) Cols() int { return m.C }

// DecodeRowsRotated writes rows [r0, r1) of the stored (rotated-domain)
// matrix Ŵ' into dst; it equals DecodeRows when the matrix is not rotated.
func (m *DenseMatrix) DecodeRowsRotated(dst []float32, r0, r1 int) {
	codes := make([]uint8, m.GroupSize)
	for r := r0; r < r1; r++ {
		m.DecodeRowRotated(dst[(r-r0)*m.C:(r-r0+1)*m.C], r, codes)
	}
}

// DecodeRowRotated writes row r of Ŵ' into dst (len ≥ C) without
// allocating; codes is scratch of at least GroupSize bytes.
func (m *DenseMatrix) DecodeRowRotated(dst []float32, r int, codes []uint8) {
	for g := 0; g < m.Groups; g++ {
		c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, m.C)
		cs := codes[:c1-c0]
		m.GroupCodes(cs, r, g)
		d, off := m.GroupScale(r, g)
		for i, q := range cs {
			dst[c0+i] = d*m.Levels[q] + off
		}
	}
}

// GroupCodes writes the codes of group g of row r into dst (len = the
// group's width: GroupSize, or less for the last group).
func (m *DenseMatrix) GroupCodes(dst []uint8, r, g int) {
	unpackCodes(dst, m.Codes[r*m.RowBytes:(r+1)*m.RowBytes], g*m.GroupSize*m.Bits, m.Bits)
}

// GroupScale returns the scale and offset (0 unless Asym) of group g of row r.
func (m *DenseMatrix) GroupScale(r, g int) (scale, off float32) {
	scale = f16At(m.Scales, r*m.Groups+g)
	if m.Asym {
		off = f16At(m.Offsets, r*m.Groups+g)
	}
	return scale, off
}

// DecodeRows writes rows [r0, r1) of W (rotation undone) into dst.
func (m *DenseMatrix) DecodeRows(dst []float32, r0, r1 int) {
	m.DecodeRowsRotated(dst, r0, r1)
	if m.Signs != nil {
		for r := r0; r < r1; r++ {
			rotateBackward(dst[(r-r0)*m.C:(r-r0+1)*m.C], m.Signs)
		}
	}
}

// RotateInput applies the input rotation x ← Q·x in place (no-op when the
// matrix is not rotated). x must have length C.
func (m *DenseMatrix) RotateInput(x []float32) {
	if m.Signs != nil {
		RotateForward(x, m.Signs)
	}
}

// rowDot returns Σ_c Ŵ'[r][c]·x[c] (x already rotated); codes is scratch.
func (m *DenseMatrix) rowDot(r int, x []float32, codes []uint8) float32 {
	row := m.Codes[r*m.RowBytes : (r+1)*m.RowBytes]
	var sum float32
	for g := 0; g < m.Groups; g++ {
		c0, c1 := g*m.GroupSize, min((g+1)*m.GroupSize, m.C)
		cs := codes[:c1-c0]
		unpackCodes(cs, row, c0*m.Bits, m.Bits)
		xs := x[c0:c1]
		var acc float32
		for i, q := range cs {
			acc += m.Levels[q] * xs[i]
		}
		s := f16At(m.Scales, r*m.Groups+g) * acc
		if m.Asym {
			var xsum float32
			for _, v := range xs {
				xsum += v
			}
			s += f16At(m.Offsets, r*m.Groups+g) * xsum
		}
		sum += s
	}
	return sum
}

// MatVec computes dst = W·x (dst has R values, x has C) by the scalar fused
// reference path: rotate x once, then decode-and-dot group by group.
func (m *DenseMatrix) MatVec(dst, x []float32) {
	xr := append([]float32(nil), x[:m.C]...)
	m.RotateInput(xr)
	codes := make([]uint8, m.GroupSize)
	for r := 0; r < m.R; r++ {
		dst[r] = m.rowDot(r, xr, codes)
	}
}

// MatMul computes dst[i] = W·x[i] for n input vectors: x is n×C row-major,
// dst is n×R row-major.
func (m *DenseMatrix) MatMul(dst, x []float32, n int) {
	xr := append([]float32(nil), x[:n*m.C]...)
	for i := 0; i < n; i++ {
		m.RotateInput(xr[i*m.C : (i+1)*m.C])
	}
	row := make([]float32, m.C)
	for r := 0; r < m.R; r++ {
		m.DecodeRowsRotated(row, r, r+1)
		for i := 0; i < n; i++ {
			dst[i*m.R+r] = tensor.Dot(row, xr[i*m.C:(i+1)*m.C])
		}
	}
}
