//go:build amd64

package cpu

import "golang.org/x/sys/cpu"

var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512VBMI && cpu.X86.HasAVX512VNNI
)

const hasNEON = false

// hasAVXVNNI reports AVX-VNNI (VEX-encoded VPDPBUSD on ymm registers,
// CPUID.(EAX=7,ECX=1):EAX[4]; Alder Lake and later, Zen 5), which the AVX2
// integer kernels use when present (i8RowsVNNI). A variable so that tests
// can run the VPMADDUBSW kernels on a machine that has it.
var hasAVXVNNI = hasAVX2 && cpu.X86.HasAVXVNNI

// q8Rows computes out[i] for nrows code rows from codes (stride a.rowBytes)
// with int8 activations (AVX-512 VBMI + VNNI).
//
//go:noescape
func q8Rows(out *float32, codes *byte, nrows int, a *q8Args)

// f32Rows computes out[i] for nrows code rows with float activations
// (AVX2 + FMA + F16C), bits ≤ 4.
//
//go:noescape
func f32Rows(out *float32, codes *byte, nrows int, a *f32Args)

// q8Tile is q8Rows for a tile of 8 tokens (a.nt of them valid) sharing
// each unpacked chunk of codes; out[t·R+i] gets token t's row i.
//
//go:noescape
func q8Tile(out *float32, codes *byte, nrows int, a *q8TileArgs)

// fwhtBlock computes x[:n] ← H_n·(signs ⊙ x[:n]) with the orthonormal
// Sylvester Hadamard matrix (scale = 1/√n); n is a power of two ≥ 16.
//
//go:noescape
func fwhtBlock(x *float32, n int, signs *float32, tbl *int32, scale float32)

// fwhtBlock8 is fwhtBlock in 8-lane AVX2 registers (tbl = fwhtTable8); n
// is a power of two ≥ 8.
//
//go:noescape
func fwhtBlock8(x *float32, n int, signs *float32, tbl *int32, scale float32)

// absMax16 returns max |x[i]| over n floats (n a multiple of 16).
//
//go:noescape
func absMax16(x *float32, n int) float32

// quant16 writes q[i] = round(x[i]·inv) clamped to ±127 and returns Σq
// (n a multiple of 16).
//
//go:noescape
func quant16(q *int8, x *float32, n int, inv float32) int

// pause is the x86 spin-wait hint (PAUSE), a few dozen cycles.
//
//go:noescape
func pause()

// i8Rows is q8Rows for AVX2 (VPMADDUBSW; kernels_i8.go): out[i] for nrows
// code rows with int8 activations in the chunk permutation of a.tab.
//
//go:noescape
func i8Rows(out *float32, codes *byte, nrows int, a *i8Args)

// i8RowsVNNI is i8Rows with AVX-VNNI's VPDPBUSD in place of VPMADDUBSW +
// VPMADDWD + VPADDD; level bytes may use 0..255.
//
//go:noescape
func i8RowsVNNI(out *float32, codes *byte, nrows int, a *i8Args)

// i8Tile is i8Rows for a tile of 8 tokens (a.nt of them valid) sharing each
// unpacked chunk of codes; out[t·R+i] gets token t's row i.
//
//go:noescape
func i8Tile(out *float32, codes *byte, nrows int, a *i8TileArgs)

// i8TileVNNI is i8Tile with AVX-VNNI's VPDPBUSD.
//
//go:noescape
func i8TileVNNI(out *float32, codes *byte, nrows int, a *i8TileArgs)

// i8Repack3 writes n blocks of 128 three-bit codes (48 bytes each, the
// codec's layout) from src into dst in the i8Plane3 layout
// (kernels_i8_amd64.go). It reads 4 bytes past src's last block.
//
//go:noescape
func i8Repack3(dst, src *byte, n int, t *i8Tables)

// absMaxAVX2 is absMax16 in AVX2 (n a multiple of 16).
//
//go:noescape
func absMaxAVX2(x *float32, n int) float32

// quantAVX2 is quant16 in AVX2 (n a multiple of 16): the same rounding
// (VCVTPS2DQ, to nearest even) and clamping, so the same bytes.
//
//go:noescape
func quantAVX2(q *int8, x *float32, n int, inv float32) int

func rotateNEON(x, signs []float32, n int, scale float32) {
	panic("cpu: no NEON kernels on this architecture")
}

func absMaxNEON(x *float32, n int) float32 { panic("cpu: no NEON kernels on this architecture") }

func quantNEON(q *int8, x *float32, n int, inv float32) int {
	panic("cpu: no NEON kernels on this architecture")
}
