package tensor

import "fmt"

// Matrix is a read-only 2-D weight matrix, logically row-major
// [Rows][Cols] float32, used as y = W·x (Rows outputs, Cols inputs).
// Plain float arrays and every compressed codec implement it; backends
// recognise the concrete types they have fused kernels for and fall back
// to DecodeRows otherwise. DecodeRows is the reference (oracle) path.
type Matrix interface {
	Rows() int
	Cols() int
	// DecodeRows writes rows [r0, r1) as float32 into dst, which must hold
	// (r1-r0)*Cols() values.
	DecodeRows(dst []float32, r0, r1 int)
}

// Dense is an uncompressed matrix in F32, F16 or BF16, typically a view into
// a memory-mapped file. Data holds Rows*Cols little-endian elements.
type Dense struct {
	DType   DType
	R, C    int
	Data    []byte
	F32Data []float32 // optional: set when DType == F32 and the data is aligned float32 memory
}

// NewDense checks that data holds rows*cols elements of dt and wraps it.
func NewDense(dt DType, rows, cols int, data []byte) (*Dense, error) {
	n, ok := NumElements([]int{rows, cols})
	if !ok || dt.Size() == 0 || len(data) != n*dt.Size() {
		return nil, fmt.Errorf("tensor: %d bytes do not hold a %dx%d %s matrix", len(data), rows, cols, dt)
	}
	return &Dense{DType: dt, R: rows, C: cols, Data: data}, nil
}

// FromF32 wraps a float32 slice as a matrix (no copy).
func FromF32(rows, cols int, data []float32) *Dense {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("tensor.FromF32: %d values for %dx%d", len(data), rows, cols))
	}
	return &Dense{DType: F32, R: rows, C: cols, F32Data: data}
}

func (d *Dense) Rows() int { return d.R }
func (d *Dense) Cols() int { return d.C }

func (d *Dense) DecodeRows(dst []float32, r0, r1 int) {
	n := (r1 - r0) * d.C
	if d.F32Data != nil {
		copy(dst[:n], d.F32Data[r0*d.C:r1*d.C])
		return
	}
	es := d.DType.Size()
	if err := ToFloat32(dst[:n], d.Data[r0*d.C*es:r1*d.C*es], d.DType); err != nil {
		panic(err) // sizes were validated in NewDense
	}
}
