//go:build amd64

package tensor

import "golang.org/x/sys/cpu"

var hasF16C = cpu.X86.HasF16C && cpu.X86.HasAVX

//go:noescape
func f32ToF16F16C(dst *uint16, src *float32, n int)

// f32ToF16Fast converts the leading multiple of 8 of src with F16C and
// returns how many it converted.
func f32ToF16Fast(dst []uint16, src []float32) int {
	n := len(src) &^ 7
	if !hasF16C || n == 0 {
		return 0
	}
	_ = dst[n-1]
	f32ToF16F16C(&dst[0], &src[0], n)
	return n
}
