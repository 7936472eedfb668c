//go:build linux && (amd64 || arm64)

package cuda

import (
	"sort"
	"strings"
	"testing"
	"unsafe"
)

// TestLaunchConfigLayout pins the Go mirrors of CUlaunchConfig and
// CUlaunchAttribute to the driver's 64-bit layout (cuda.h): a wrong offset
// would hand cuLaunchKernelEx garbage.
func TestLaunchConfigLayout(t *testing.T) {
	var c launchConfig
	var a launchAttribute
	for _, x := range []struct {
		what      string
		got, want uintptr
	}{
		{"sizeof(CUlaunchConfig)", unsafe.Sizeof(c), 56},
		{"offsetof(sharedMemBytes)", unsafe.Offsetof(c.smem), 24},
		{"offsetof(hStream)", unsafe.Offsetof(c.stream), 32},
		{"offsetof(attrs)", unsafe.Offsetof(c.attrs), 40},
		{"offsetof(numAttrs)", unsafe.Offsetof(c.numAttrs), 48},
		{"sizeof(CUlaunchAttribute)", unsafe.Sizeof(a), 72},
		{"offsetof(value)", unsafe.Offsetof(a.value), 8},
	} {
		if x.got != x.want {
			t.Errorf("%s = %d, want %d", x.what, x.got, x.want)
		}
	}
}

// TestPDLKernels checks which kernels take programmatic dependent launch:
// each must begin with pdl_wait() (kernels/*.cu), so a new kernel whose name
// happens to match must be looked at and added here.
func TestPDLKernels(t *testing.T) {
	var got []string
	for name := range kernelSig {
		if pdlKernel(name) {
			got = append(got, name)
		}
	}
	sort.Strings(got)
	gemv, gemm, other := 0, 0, []string{}
	for _, n := range got {
		switch {
		case strings.HasPrefix(n, "upg_gemv_k"):
			gemv++
		case strings.HasPrefix(n, "upg_gemm"):
			gemm++
		default:
			other = append(other, n)
		}
	}
	want := "upg_argmax upg_attn_cascade_gqa2_h128 upg_attn_cascade_gqa2_h64 upg_attn_cascade_gqa4_h128 upg_attn_cascade_gqa4_h64 upg_attn_cascade_gqa8_h128 upg_attn_cascade_gqa8_h64 upg_attn_f16 upg_attn_f32 upg_attn_gqa2_f16 upg_attn_gqa2_f32 upg_attn_gqa2_tc upg_attn_gqa4_f16 upg_attn_gqa4_f32 upg_attn_gqa4_tc upg_attn_gqa8_f16 upg_attn_gqa8_f32 upg_attn_gqa8_tc upg_attn_prefill_f16 upg_attn_prefill_f32 upg_attn_prefill_tc128 upg_attn_prefill_tc64 upg_combine_rotq upg_rms_rotq upg_rope_kv_f16 upg_rope_kv_f32 upg_rotq upg_splitk_sum upg_swiglu_rotq"
	// 36 row-group GEMVs (k2, k3, k4, k4l, k8, k8l × 3 group widths × t1, t8),
	// 5 two-token ones (k2 × 3, k3 g1 and g2) and 12 stream-K ones (k2, k3,
	// k4, k4l × 3); 36 tensor-core GEMMs (k2,
	// k3, k4, k4l × 3 group widths × 64-, 32- and 16-token tiles)
	if strings.Join(other, " ") != want || gemv != 53 || gemm != 36 {
		t.Errorf("PDL kernels: %d dense GEMVs (want 53), %d GEMMs (want 36) and %v (want %s)", gemv, gemm, other, want)
	}
}
