package codec

import (
	"fmt"
	"sort"

	"github.com/upg-ai/upg/tensor"
)

// OverlayMatrix is the "overlay" codec: a dense low-bit base plus, in every
// row, exactly K = round(OverlayFrac·C) salient weights corrected by fp16
// deltas (SpQR-like).
//
// Encoded layout: the complete "dense" layout of the base (same Bits,
// GroupSize, Levels, Rotate), then at the next multiple of 8 the indices
// R×K uint16 (strictly ascending column numbers within each row), then at
// the next multiple of 8 the deltas R×K fp16. The stored matrix is
// Ŵ'[r][Idx[r][i]] = base + Delta[r][i]; with rotation the indices refer to
// the rotated domain (W = Ŵ'·Q as for DenseMatrix). C must be ≤ 65536.
type OverlayMatrix struct {
	Base *DenseMatrix
	K    int    // overlay entries per row
	Idx  []byte // R×K uint16 column indices
	Vals []byte // R×K fp16 deltas added to the base value
}

type overlayCodec struct{}

func (overlayCodec) Name() string { return "overlay" }

func overlayLayout(p Params, rows, cols int) (base *denseLayout, k int, idxOff, valOff, sz int64, err error) {
	bp := p
	bp.Codec = "dense"
	if base, err = newDenseLayout(bp, rows, cols); err != nil {
		return
	}
	if cols > 65536 {
		err = fmt.Errorf("%d columns exceed the 65536 that uint16 indices address", cols)
		return
	}
	if !(p.OverlayFrac >= 0 && p.OverlayFrac < 1) {
		err = fmt.Errorf("overlay fraction %v outside [0,1)", p.OverlayFrac)
		return
	}
	k = int(p.OverlayFrac*float64(cols) + 0.5)
	idxOff = align8(base.sz)
	valOff = idxOff + align8(int64(rows)*int64(k)*2)
	sz = valOff + int64(rows)*int64(k)*2
	return
}

func (overlayCodec) EncodedSize(p Params, rows, cols int) (int64, error) {
	_, _, _, _, sz, err := overlayLayout(p, rows, cols)
	if err != nil {
		return 0, fmt.Errorf("codec overlay: %v", err)
	}
	return sz, nil
}

func (overlayCodec) Encode(w []float32, rows, cols int, p Params, h *Hessian) ([]byte, error) {
	bl, k, idxOff, valOff, sz, err := overlayLayout(p, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("codec overlay: %v", err)
	}
	idx := make([][]int, rows)
	pick := func(w, imp []float32) []bool {
		skip := make([]bool, rows*cols)
		parallelFor(rows, func(r int) {
			sal := make([]float32, cols)
			order := make([]int, cols)
			for c := range sal {
				v := w[r*cols+c]
				sal[c] = v * v
				if imp != nil {
					sal[c] *= imp[c]
				}
				order[c] = c
			}
			sort.SliceStable(order, func(i, j int) bool { return sal[order[i]] > sal[order[j]] })
			sel := append([]int(nil), order[:k]...)
			sort.Ints(sel)
			idx[r] = sel
			for _, c := range sel {
				skip[r*cols+c] = true
			}
		})
		return skip
	}
	work := append([]float32(nil), w...)
	base, dq, err := encodeDense(work, rows, cols, p, h, pick)
	if err != nil {
		return nil, fmt.Errorf("codec overlay: %v", err)
	}
	out := make([]byte, sz)
	copy(out, base)
	for r := 0; r < rows; r++ {
		for i, c := range idx[r] {
			g := r*bl.groups + c/bl.gs
			bv := dq.scales[g]*dq.q.L[dq.codes[r*cols+c]] + dq.offs[g]
			at := int64(r*k+i) * 2
			putU16(out[idxOff+at:], uint16(c))
			putU16(out[valOff+at:], tensor.F32ToF16(work[r*cols+c]-bv))
		}
	}
	return out, nil
}

func (overlayCodec) Open(p Params, rows, cols int, data []byte) (tensor.Matrix, error) {
	bl, k, idxOff, valOff, sz, err := overlayLayout(p, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("codec overlay: %v", err)
	}
	if int64(len(data)) != sz {
		return nil, fmt.Errorf("codec overlay: %dx%d needs %d bytes, have %d", rows, cols, sz, len(data))
	}
	bp := p
	bp.Codec = "dense"
	base, err := openDense(bp, rows, cols, data[:bl.sz])
	if err != nil {
		return nil, fmt.Errorf("codec overlay: base: %v", err)
	}
	m := &OverlayMatrix{Base: base, K: k, Idx: data[idxOff : idxOff+int64(rows*k*2)], Vals: data[valOff:]}
	for r := 0; r < rows; r++ {
		prev := -1
		for i := 0; i < k; i++ {
			c := int(m.Idx[2*(r*k+i)]) | int(m.Idx[2*(r*k+i)+1])<<8
			if c <= prev || c >= cols {
				return nil, fmt.Errorf("codec overlay: row %d index %d = %d not ascending within %d columns", r, i, c, cols)
			}
			prev = c
		}
	}
	if err := checkF16(m.Vals, "overlay delta"); err != nil {
		return nil, fmt.Errorf("codec overlay: %v", err)
	}
	return m, nil
}

func (m *OverlayMatrix) Rows() int { return m.Base.R }
func (m *OverlayMatrix) Cols() int { return m.Base.C }

// entry returns the column and delta of overlay entry i of row r.
func (m *OverlayMatrix) entry(r, i int) (int, float32) {
	j := r*m.K + i
	return int(m.Idx[2*j]) | int(m.Idx[2*j+1])<<8, f16At(m.Vals, j)
}

// DecodeRows writes rows [r0, r1) of W into dst.
func (m *OverlayMatrix) DecodeRows(dst []float32, r0, r1 int) {
	b := m.Base
	b.DecodeRowsRotated(dst, r0, r1)
	for r := r0; r < r1; r++ {
		out := dst[(r-r0)*b.C : (r-r0+1)*b.C]
		for i := 0; i < m.K; i++ {
			c, v := m.entry(r, i)
			out[c] += v
		}
		if b.Signs != nil {
			rotateBackward(out, b.Signs)
		}
	}
}

// MatVec computes dst = W·x: rotate x, dense base dot, plus the overlay.
func (m *OverlayMatrix) MatVec(dst, x []float32) {
	b := m.Base
	xr := append([]float32(nil), x[:b.C]...)
	b.RotateInput(xr)
	codes := make([]uint8, b.GroupSize)
	for r := 0; r < b.R; r++ {
		s := b.rowDot(r, xr, codes)
		for i := 0; i < m.K; i++ {
			c, v := m.entry(r, i)
			s += v * xr[c]
		}
		dst[r] = s
	}
}

// MatMul computes dst[i] = W·x[i] for n vectors (x n×C, dst n×R).
func (m *OverlayMatrix) MatMul(dst, x []float32, n int) {
	c := m.Base.C
	for i := 0; i < n; i++ {
		m.MatVec(dst[i*m.Base.R:(i+1)*m.Base.R], x[i*c:(i+1)*c])
	}
}
