package cpu

import (
	"reflect"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// kernel is what the CPU backend knows about one matrix type (one codec's
// tensor.Matrix): how to set up a multiply (prepare fills b.mm), how a
// worker runs its rows, and how to decode one row without allocating (for
// embedding lookups; nil means the matrix's own DecodeRows). A new codec
// is one register call here; matrices of unregistered types go through
// DecodeRows.
type kernel struct {
	prepare   func(b *Backend, w tensor.Matrix)
	rows      func(b *Backend, ws *workerState, lo, hi int)
	decodeRow func(b *Backend, ws *workerState, dst []float32, w tensor.Matrix, r int)
}

var kernels = map[reflect.Type]*kernel{}

func register[T tensor.Matrix](k *kernel) { kernels[reflect.TypeFor[T]()] = k }

// generic multiplies any tensor.Matrix through DecodeRows.
var generic = &kernel{
	prepare: func(b *Backend, w tensor.Matrix) {},
	rows:    func(b *Backend, ws *workerState, lo, hi int) { genericRows(&b.mm, ws, lo, hi) },
}

func kernelFor(w tensor.Matrix) *kernel {
	if k := kernels[reflect.TypeOf(w)]; k != nil {
		return k
	}
	return generic
}

func init() {
	denseRows := func(b *Backend, ws *workerState, lo, hi int) {
		b.denseRows(ws, lo, hi)
		if b.mm.overlay != nil {
			b.overlayRows(lo, hi)
		}
	}
	register[*codec.DenseMatrix](&kernel{
		prepare: func(b *Backend, w tensor.Matrix) { b.prepareDense(w.(*codec.DenseMatrix), nil) },
		rows:    denseRows,
		decodeRow: func(b *Backend, ws *workerState, dst []float32, w tensor.Matrix, r int) {
			m := w.(*codec.DenseMatrix)
			decodeDenseRow(dst[:m.C], m, r, ws)
			if m.Signs != nil {
				b.unrotate(dst[:m.C], m)
			}
		},
	})
	register[*codec.OverlayMatrix](&kernel{
		prepare: func(b *Backend, w tensor.Matrix) {
			m := w.(*codec.OverlayMatrix)
			b.prepareDense(m.Base, m)
		},
		rows: denseRows,
		decodeRow: func(b *Backend, ws *workerState, dst []float32, w tensor.Matrix, r int) {
			m := w.(*codec.OverlayMatrix)
			bm := m.Base
			decodeDenseRow(dst[:bm.C], bm, r, ws)
			for i := 0; i < m.K; i++ {
				j := r*m.K + i
				c := int(m.Idx[2*j]) | int(m.Idx[2*j+1])<<8
				dst[c] += f16(m.Vals, j)
			}
			if bm.Signs != nil {
				b.unrotate(dst[:bm.C], bm)
			}
		},
	})
	register[*codec.TrellisMatrix](&kernel{
		prepare: func(b *Backend, w tensor.Matrix) { b.prepareTrellis(w.(*codec.TrellisMatrix)) },
		rows:    func(b *Backend, ws *workerState, lo, hi int) { b.trellisRowsRun(ws, lo, hi) },
		decodeRow: func(b *Backend, ws *workerState, dst []float32, w tensor.Matrix, r int) {
			b.decodeTrellisRow(dst, w.(*codec.TrellisMatrix), r)
		},
	})
	register[*codec.SparseMatrix](&kernel{
		prepare: func(b *Backend, w tensor.Matrix) { b.mm.sparse = w.(*codec.SparseMatrix) },
		rows:    func(b *Backend, ws *workerState, lo, hi int) { sparseRows(&b.mm, ws, lo, hi) },
	})
	register[*tensor.Dense](&kernel{
		prepare: func(b *Backend, w tensor.Matrix) { b.mm.plain = w.(*tensor.Dense) },
		rows:    func(b *Backend, ws *workerState, lo, hi int) { plainRows(&b.mm, ws, lo, hi) },
	})
}
