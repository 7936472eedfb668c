#include "textflag.h"

// A tile is loaded once into Z0 (its first 64 bytes) and Z1 (its last 64
// bytes: the same for k=2, bytes 32-95 for k=3, 64-127 for k=4). Each
// 16×4 strip then gets its source bytes by one permute (VPERMB from the one
// register that holds them, VPERMI2B over both where a strip straddles
// them or wraps around, tail-biting): qword i receives the 8 bytes from 2
// bytes before weight 8i's bits. Two VPMULTISHIFTQB cut the hash fields A
// (window bits 0-7) and B (bits 4-11) of each weight, two GF2P8AFFINEQB and
// an XOR hash them to the 6-bit codebook index, VPERMB looks up the level
// byte, and VPDPBUSD multiplies with the strip's four activation bytes
// (broadcast), lane r accumulating row r; each strip has its own
// accumulator so that the four VPDPBUSD of a tile do not wait on each other.
#define HASH(acc, xoff) \
	VPMULTISHIFTQB Z2, Z24, Z3 \
	VPMULTISHIFTQB Z2, Z25, Z4 \
	VGF2P8AFFINEQB $0, Z26, Z3, Z3 \
	VGF2P8AFFINEQB $0, Z27, Z4, Z4 \
	VPXORQ Z4, Z3, Z3 \
	VPERMB Z30, Z3, Z3 \
	VPDPBUSD.BCST xoff(R13), Z3, acc

// ONE: the strip's bytes are all in src; BOTH: they need Z0 and Z1.
#define ONE(src, idx, acc, xoff) \
	VPERMB src, idx, Z2 \
	HASH(acc, xoff)

#define BOTH(idx, acc, xoff) \
	VMOVDQA64 idx, Z2 \
	VPERMI2B Z1, Z0, Z2 \
	HASH(acc, xoff)

// PROLOGUE loads the arguments and the constant registers both kernels
// use: Z30 the level table, Z20-Z23 the strips' permute indices, Z24/Z25
// the hash fields' shift controls, Z26/Z27 the hash matrices.
#define PROLOGUE \
	MOVQ out+0(FP), DI \
	MOVQ nbands+8(FP), CX \
	MOVQ a+16(FP), R8 \
	MOVQ 40(R8), AX \
	VMOVDQU64 (AX), Z30 \
	MOVQ 48(R8), AX \
	VMOVDQU64 (AX), Z20 \
	VMOVDQU64 64(AX), Z21 \
	VMOVDQU64 128(AX), Z22 \
	VMOVDQU64 192(AX), Z23 \
	MOVQ 56(R8), AX \
	VMOVDQU64 (AX), Z24 \
	VMOVDQU64 64(AX), Z25 \
	MOVQ 64(R8), AX \
	VPBROADCASTQ (AX), Z26 \
	VPBROADCASTQ 8(AX), Z27

// func trellisRows(out *float32, nbands int, a *trellisArgs)
TEXT ·trellisRows(SB), NOSPLIT, $0-24
	PROLOGUE
	MOVQ 104(R8), DX            // offset of a tile's last 64 bytes
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
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	MOVQ 80(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

tile:
	MOVQ 152(R8), AX
	PREFETCHT0 (SI)(AX*1)
	PREFETCHT0 64(SI)(AX*1)
	MOVQ 160(R8), AX
	PREFETCHT2 (SI)(AX*1)
	PREFETCHT2 64(SI)(AX*1)
	VMOVDQU8 (SI), Z0
	VMOVDQU8 (SI)(DX*1), Z1
	MOVQ 120(R8), AX
	CMPQ AX, $3
	JEQ tile3
	JGT tile4
	ONE(Z0, Z20, Z29, 0)
	ONE(Z0, Z21, Z16, 4)
	ONE(Z0, Z22, Z17, 8)
	ONE(Z0, Z23, Z18, 12)
	JMP tiled

tile3:
	BOTH(Z20, Z29, 0)
	ONE(Z0, Z21, Z16, 4)
	ONE(Z1, Z22, Z17, 8)
	ONE(Z1, Z23, Z18, 12)
	JMP tiled

tile4:
	BOTH(Z20, Z29, 0)
	ONE(Z0, Z21, Z16, 4)
	BOTH(Z22, Z17, 8)
	ONE(Z1, Z23, Z18, 12)

tiled:
	ADDQ 96(R8), SI
	ADDQ $16, R13
	DECQ R10
	JNZ tile

	VPADDD Z16, Z29, Z29
	VPADDD Z18, Z17, Z17
	VPADDD Z17, Z29, Z29
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

// The tile kernel: one decode of each strip serves 8 tokens (prefill).
// Activations are packed per 4-column quad: 8 tokens × 4 bytes (32 bytes);
// group factors per group: 8 tokens' α·s_x, then 8 tokens' β·s_x·Σx_q.
// Token t accumulates in Z8+t; at a group's end it is scaled exactly as
// trellisRows scales its sum (same operations, same order: batched tokens
// get what they get alone) into the float scratch[t][16].
#define HASH8 \
	VPMULTISHIFTQB Z2, Z24, Z3 \
	VPMULTISHIFTQB Z2, Z25, Z4 \
	VGF2P8AFFINEQB $0, Z26, Z3, Z3 \
	VGF2P8AFFINEQB $0, Z27, Z4, Z4 \
	VPXORQ Z4, Z3, Z3 \
	VPERMB Z30, Z3, Z3 \
	VPDPBUSD.BCST 0(R13), Z3, Z8 \
	VPDPBUSD.BCST 4(R13), Z3, Z9 \
	VPDPBUSD.BCST 8(R13), Z3, Z10 \
	VPDPBUSD.BCST 12(R13), Z3, Z11 \
	VPDPBUSD.BCST 16(R13), Z3, Z12 \
	VPDPBUSD.BCST 20(R13), Z3, Z13 \
	VPDPBUSD.BCST 24(R13), Z3, Z14 \
	VPDPBUSD.BCST 28(R13), Z3, Z15 \
	ADDQ $32, R13

#define ONE8(src, idx) \
	VPERMB src, idx, Z2 \
	HASH8

#define BOTH8(idx) \
	VMOVDQA64 idx, Z2 \
	VPERMI2B Z1, Z0, Z2 \
	HASH8

#define GEND(acc, o4, o32, o64) \
	VCVTDQ2PS acc, acc \
	VBROADCASTSS o4(R14), Z5 \
	VBROADCASTSS o32(R14), Z6 \
	VFMADD213PS Z6, Z5, acc \
	VMOVUPS o64(R15), Z16 \
	VFMADD231PS Z7, acc, Z16 \
	VMOVUPS Z16, o64(R15)

// func trellisTile(out *float32, nbands int, a *trellisArgs)
TEXT ·trellisTile(SB), NOSPLIT, $0-24
	PROLOGUE
	MOVQ 104(R8), DX
	MOVQ 24(R8), R11
	MOVQ 32(R8), R12
	MOVQ 144(R8), R15           // scratch[8][16]
	TESTQ CX, CX
	JZ tdone

tband:
	VPXORD Z16, Z16, Z16
	VMOVUPS Z16, 0(R15)
	VMOVUPS Z16, 64(R15)
	VMOVUPS Z16, 128(R15)
	VMOVUPS Z16, 192(R15)
	VMOVUPS Z16, 256(R15)
	VMOVUPS Z16, 320(R15)
	VMOVUPS Z16, 384(R15)
	VMOVUPS Z16, 448(R15)
	MOVQ 0(R8), R13
	MOVQ 8(R8), R14
	MOVQ 88(R8), R9
	MOVQ R11, BX
	MOVQ R12, SI

tgroup:
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ 80(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

ttile:
	MOVQ 152(R8), AX
	PREFETCHT0 (SI)(AX*1)
	PREFETCHT0 64(SI)(AX*1)
	MOVQ 160(R8), AX
	PREFETCHT2 (SI)(AX*1)
	PREFETCHT2 64(SI)(AX*1)
	VMOVDQU8 (SI), Z0
	VMOVDQU8 (SI)(DX*1), Z1
	MOVQ 120(R8), AX
	CMPQ AX, $3
	JEQ ttile3
	JGT ttile4
	ONE8(Z0, Z20)
	ONE8(Z0, Z21)
	ONE8(Z0, Z22)
	ONE8(Z0, Z23)
	JMP ttiled

ttile3:
	BOTH8(Z20)
	ONE8(Z0, Z21)
	ONE8(Z1, Z22)
	ONE8(Z1, Z23)
	JMP ttiled

ttile4:
	BOTH8(Z20)
	ONE8(Z0, Z21)
	BOTH8(Z22)
	ONE8(Z1, Z23)

ttiled:
	ADDQ 96(R8), SI
	DECQ R10
	JNZ ttile

	VCVTPH2PS (BX), Z7
	GEND(Z8, 0, 32, 0)
	GEND(Z9, 4, 36, 64)
	GEND(Z10, 8, 40, 128)
	GEND(Z11, 12, 44, 192)
	GEND(Z12, 16, 48, 256)
	GEND(Z13, 20, 52, 320)
	GEND(Z14, 24, 56, 384)
	GEND(Z15, 28, 60, 448)
	ADDQ $64, R14
	ADDQ $32, BX
	TESTQ R9, R9
	JNZ tgroup

	// Store the valid tokens' 16 outputs.
	MOVQ 128(R8), AX            // nt
	MOVQ R15, SI
	MOVQ DI, R10
tstore:
	VMOVUPS (SI), Z16
	VMOVUPS Z16, (R10)
	ADDQ $64, SI
	ADDQ 136(R8), R10
	DECQ AX
	JNZ tstore
	ADDQ $64, DI
	ADDQ 112(R8), R12
	MOVQ 72(R8), AX
	SHLQ $5, AX
	ADDQ AX, R11
	DECQ CX
	JNZ tband

tdone:
	VZEROUPPER
	RET
