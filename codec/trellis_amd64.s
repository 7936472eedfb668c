#include "textflag.h"

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA, $64

// func trellisStepAVX512(k int, cost, next, m, mt *float32, bp, idx *uint8, d *float32)
// The AVX-512 version of trellisStepGo (same results, bit for bit).
TEXT ·trellisStepAVX512(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ $1, R8
	SHLQ CX, R8                 // nj = 2^k
	MOVQ $4096, R9
	SHRQ CX, R9                 // U
	MOVQ R9, R10
	SHRQ CX, R10                // A = U/nj
	MOVQ R9, R11
	SHLQ $2, R11                // row stride in bytes
	MOVQ cost+8(FP), SI
	MOVQ m+24(FP), DI
	MOVQ bp+40(FP), BX
	MOVL $1, AX
	VPBROADCASTD AX, Z31

	// 1. m[v] = min_j cost[j·U+v], bp[v] = the first j reaching it.
	XORQ DX, DX
minloop:
	VMOVUPS (SI)(DX*4), Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z4, Z4, Z4
	LEAQ (SI)(DX*4), R12
	MOVQ R8, R13
	DECQ R13
jloop:
	ADDQ R11, R12
	VPADDD Z31, Z4, Z4
	VMOVUPS (R12), Z2
	VCMPPS $1, Z0, Z2, K1       // K1 = cost_j < best
	VMOVAPS Z2, K1, Z0
	VMOVDQA32 Z4, K1, Z1
	DECQ R13
	JNZ jloop
	VMOVUPS Z0, (DI)(DX*4)
	VPMOVDB Z1, (BX)(DX*1)
	ADDQ $16, DX
	CMPQ DX, R9
	JLT minloop

	// 2. mt[r·A+a] = m[a·nj+r].
	MOVQ mt+32(FP), R14
	VMOVDQU32 iota16<>(SB), Z6
	VPBROADCASTD R8, Z7
	VPMULLD Z7, Z6, Z5          // i·nj
	XORQ R15, R15
rloop:
	XORQ DX, DX
aloop:
	MOVQ DX, AX
	IMULQ R8, AX
	ADDQ R15, AX
	VPBROADCASTD AX, Z8
	VPADDD Z5, Z8, Z8
	KXNORW K2, K2, K2
	VPGATHERDD (DI)(Z8*4), K2, Z9
	MOVQ R15, AX
	IMULQ R10, AX
	ADDQ DX, AX
	VMOVUPS Z9, (R14)(AX*4)
	ADDQ $16, DX
	CMPQ DX, R10
	JLT aloop
	INCQ R15
	CMPQ R15, R8
	JLT rloop

	// 3. next[r·U+b·A+a] = mt[r·A+a] + d[idx[r·U+b·A+a]].
	MOVQ d+56(FP), AX
	VMOVUPS (AX), Z10
	VMOVUPS 64(AX), Z11
	VMOVUPS 128(AX), Z12
	VMOVUPS 192(AX), Z13
	MOVL $32, AX
	VPBROADCASTD AX, Z14
	MOVQ next+16(FP), SI
	MOVQ idx+48(FP), BX
	XORQ R15, R15
r3:
	XORQ DX, DX
a3:
	MOVQ R15, AX
	IMULQ R10, AX
	ADDQ DX, AX
	VMOVUPS (R14)(AX*4), Z15
	MOVQ R15, R12
	IMULQ R9, R12
	ADDQ DX, R12
	MOVQ R8, R13
b3:
	VPMOVZXBD (BX)(R12*1), Z16
	VMOVDQA32 Z16, Z17
	VPERMI2PS Z11, Z10, Z17
	VMOVDQA32 Z16, Z18
	VPERMI2PS Z13, Z12, Z18
	VPTESTMD Z14, Z16, K3
	VMOVAPS Z18, K3, Z17
	VADDPS Z15, Z17, Z17
	VMOVUPS Z17, (SI)(R12*4)
	ADDQ R10, R12
	DECQ R13
	JNZ b3
	ADDQ $16, DX
	CMPQ DX, R10
	JLT a3
	INCQ R15
	CMPQ R15, R8
	JLT r3
	VZEROUPPER
	RET
