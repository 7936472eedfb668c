//go:build amd64

package cpu

import "golang.org/x/sys/cpu"

var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512VBMI && cpu.X86.HasAVX512VNNI
)

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
