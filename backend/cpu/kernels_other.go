//go:build !amd64 && !arm64

package cpu

import "github.com/upg-ai/upg/codec"

const (
	hasAVX2    = false
	hasAVX512  = false
	hasNEON    = false
	hasAVXVNNI = false
)

func q8Rows(out *float32, codes *byte, nrows int, a *q8Args) {
	panic("cpu: no AVX-512 kernels on this architecture")
}

func f32Rows(out *float32, codes *byte, nrows int, a *f32Args) {
	panic("cpu: no AVX2 kernels on this architecture")
}

func q8Tile(out *float32, codes *byte, nrows int, a *q8TileArgs) {
	panic("cpu: no AVX-512 kernels on this architecture")
}

func fwhtBlock(x *float32, n int, signs *float32, tbl *int32, scale float32) {
	panic("cpu: no AVX-512 kernels on this architecture")
}

func fwhtBlock8(x *float32, n int, signs *float32, tbl *int32, scale float32) {
	panic("cpu: no AVX2 kernels on this architecture")
}

func absMax16(x *float32, n int) float32 { panic("cpu: no AVX-512 kernels on this architecture") }

func quant16(q *int8, x *float32, n int, inv float32) int {
	panic("cpu: no AVX-512 kernels on this architecture")
}

func pause() {}

func i8Level(Level) bool { return false }

const i8Tiled = false

// i8MaxLevel: the level bytes' bound without AVX-VNNI (q8LevelsI8).
const i8MaxLevel = 127

// i8Tables: no integer kernels on this architecture.
type i8Tables struct{ perm [32]uint8 }

func (*i8Tables) maxRead(int) int                           { return 0 }
func (*i8Tables) planes(bits, group int) bool               { return false }
func repackPlanes3(*codec.DenseMatrix) []byte               { panic("cpu: no i8Plane3 kernel") }
func i8TablesFor(int) *i8Tables                             { return nil }
func i8Supported(bits, group, groups int, linear bool) bool { return false }

type i8Args struct{}
type i8TileArgs struct{}

func (b *Backend) i8Call(ws *workerState, t, r, nrows int, codes *byte) {
	panic("cpu: no integer kernels on this architecture")
}

func absMaxAVX2(x *float32, n int) float32 { panic("cpu: no AVX2 kernels on this architecture") }

func quantAVX2(q *int8, x *float32, n int, inv float32) int {
	panic("cpu: no AVX2 kernels on this architecture")
}

func rotateNEON(x, signs []float32, n int, scale float32) {
	panic("cpu: no NEON kernels on this architecture")
}

func absMaxNEON(x *float32, n int) float32 { panic("cpu: no NEON kernels on this architecture") }

func quantNEON(q *int8, x *float32, n int, inv float32) int {
	panic("cpu: no NEON kernels on this architecture")
}
