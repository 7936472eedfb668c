#include "textflag.h"

// One 16×4 strip of a tile: VPERMI2B gathers each qword's source bytes from
// the tile (Z0:Z1) by the strip's index table, two VPMULTISHIFTQB cut the
// hash fields A and B of each weight's window, two GF2P8AFFINEQB and an XOR
// hash them to the 6-bit codebook index, VPERMB looks up the level byte,
// and VPDPBUSD multiplies with the strip's four activation bytes
// (broadcast), lane r accumulating row r.
#define STRIP(perm, xoff) \
	VMOVDQA64 perm, Z2 \
	VPERMI2B Z1, Z0, Z2 \
	VPMULTISHIFTQB Z2, Z24, Z3 \
	VPMULTISHIFTQB Z2, Z25, Z4 \
	VGF2P8AFFINEQB $0, Z26, Z3, Z3 \
	VGF2P8AFFINEQB $0, Z27, Z4, Z4 \
	VPXORQ Z4, Z3, Z3 \
	VPERMB Z30, Z3, Z3 \
	VPDPBUSD.BCST xoff(R13), Z3, Z29

// func trellisRows(out *float32, nbands int, a *trellisArgs)
TEXT ·trellisRows(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ nbands+8(FP), CX
	MOVQ a+16(FP), R8
	MOVQ 40(R8), AX
	VMOVDQU64 (AX), Z30
	MOVQ 48(R8), AX
	VMOVDQU64 (AX), Z20
	VMOVDQU64 64(AX), Z21
	VMOVDQU64 128(AX), Z22
	VMOVDQU64 192(AX), Z23
	MOVQ 56(R8), AX
	VMOVDQU64 (AX), Z24
	VMOVDQU64 64(AX), Z25
	MOVQ 64(R8), AX
	VPBROADCASTQ (AX), Z26
	VPBROADCASTQ 8(AX), Z27
	MOVQ 104(R8), AX
	KMOVQ AX, K4
	MOVQ 24(R8), R11
	MOVQ 32(R8), R12
	TESTQ CX, CX
	JZ done

band:
	VPXORD Z28, Z28, Z28
	MOVQ 0(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 88(R8), R9
	MOVQ R11, BX
	MOVQ R12, SI

group:
	VPXORD Z29, Z29, Z29
	MOVQ 80(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

tile:
	VMOVDQU8 (SI), Z0
	VMOVDQU8.Z 64(SI), K4, Z1
	STRIP(Z20, 0)
	STRIP(Z21, 4)
	STRIP(Z22, 8)
	STRIP(Z23, 12)
	ADDQ 96(R8), SI
	ADDQ $16, R13
	DECQ R10
	JNZ tile

	VCVTDQ2PS Z29, Z29
	VBROADCASTSS (R14), Z5
	VBROADCASTSS (R15), Z6
	VFMADD213PS Z6, Z5, Z29
	VCVTPH2PS (BX), Z7
	VFMADD231PS Z7, Z29, Z28
	ADDQ $4, R14
	ADDQ $4, R15
	ADDQ $32, BX
	TESTQ R9, R9
	JNZ group

	VMOVUPS Z28, (DI)
	ADDQ $64, DI
	ADDQ 112(R8), R12
	MOVQ 72(R8), AX
	SHLQ $5, AX
	ADDQ AX, R11
	DECQ CX
	JNZ band

done:
	VZEROUPPER
	RET
