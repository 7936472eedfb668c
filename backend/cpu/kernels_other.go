//go:build !amd64

package cpu

const (
	hasAVX2   = false
	hasAVX512 = false
)

func q8Rows(out *float32, codes *byte, nrows int, a *q8Args) {
	panic("cpu: no AVX-512 kernels on this architecture")
}

func f32Rows(out *float32, codes *byte, nrows int, a *f32Args) {
	panic("cpu: no AVX2 kernels on this architecture")
}
