//go:build arm64

package cpu

import "golang.org/x/sys/cpu"

const (
	hasAVX2    = false
	hasAVX512  = false
	hasNEON    = true // Advanced SIMD is part of every arm64 core
	hasAVXVNNI = false
)

// hasDotProd reports the Armv8.2 dot product instructions (SDOT); without
// them the NEON kernels multiply with SMULL/SMLAL2/SADALP. A variable so
// that tests can run the fallback on a machine that has SDOT.
var hasDotProd = cpu.ARM64.HasASIMDDP

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

func absMaxAVX2(x *float32, n int) float32 { panic("cpu: no AVX2 kernels on this architecture") }

func quantAVX2(q *int8, x *float32, n int, inv float32) int {
	panic("cpu: no AVX2 kernels on this architecture")
}
