//go:build amd64

#include "textflag.h"

// func f32ToF16F16C(dst *uint16, src *float32, n int)
// Converts n floats (a multiple of 8) to fp16 with VCVTPS2PH, rounding to
// nearest even (immediate 0).
TEXT ·f32ToF16F16C(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ cdone

cloop:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU X1, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ cloop

cdone:
	VZEROUPPER
	RET
