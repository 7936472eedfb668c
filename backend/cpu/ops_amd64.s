//go:build amd64

#include "textflag.h"

// func dotAVX2(a, b *float32, n int) float32   (n a multiple of 32)
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $5, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ CX, CX
	JZ ddone
dloop:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ dloop
ddone:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func axpyAVX2(y *float32, a float32, x *float32, n int)   (n a multiple of 16)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	VBROADCASTSS a+8(FP), Y0
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	TESTQ CX, CX
	JZ adone
aloop:
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ aloop
adone:
	VZEROUPPER
	RET

// func scoresAVX512(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, group, hd int, scale float32, half int)
//
// For each of the n keys k_t (rows ks values apart; float32, or fp16 when
// half is 1) and each of the group's query heads q_g (hd floats each, back
// to back), prob[g*ps+t] = scale·(q_g·k_t). hd is a multiple of 16; the key
// row is re-read from L1 for every head of the group.
TEXT ·scoresAVX512(SB), NOSPLIT, $0-80
	MOVQ prob+0(FP), DI
	MOVQ ps+8(FP), R8
	SHLQ $2, R8
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), DX
	MOVQ half+72(FP), R12
	MOVQ ks+32(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ n+40(FP), CX
	MOVQ group+48(FP), R10
	MOVQ hd+56(FP), R11
	SHRQ $4, R11
	VBROADCASTSS scale+64(FP), X15
	TESTQ CX, CX
	JZ sdone
	TESTQ R11, R11
	JZ sdone

st:
	MOVQ SI, BX
	MOVQ DI, R13
	MOVQ R10, R14

sg:
	VPXORD Z0, Z0, Z0
	MOVQ DX, AX
	MOVQ R11, R15

si:
	TESTQ R12, R12
	JNZ si16
	VMOVUPS (AX), Z1
	ADDQ $64, AX
	JMP sifma

si16:
	VCVTPH2PS (AX), Z1
	ADDQ $32, AX

sifma:
	VFMADD231PS (BX), Z1, Z0
	ADDQ $64, BX
	DECQ R15
	JNZ si
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDPS X1, X0, X0
	VMULSS X15, X0, X0
	VMOVSS X0, (R13)
	ADDQ R8, R13
	DECQ R14
	JNZ sg
	ADDQ R9, DX
	ADDQ $4, DI
	DECQ CX
	JNZ st

sdone:
	VZEROUPPER
	RET

// func valuesAVX512(att, prob *float32, ps int, v unsafe.Pointer, vs, n, group, hd int, half int)
//
// For each query head g < group: att[g*hd : (g+1)*hd] += Σ_t prob[g*ps+t]·v_t
// over the n value rows v_t (vs values apart; float32, or fp16 when half is
// 1). hd is a multiple of 16; the head is done 64 floats at a time in four
// accumulators, then 16 at a time.
TEXT ·valuesAVX512(SB), NOSPLIT, $0-72
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ ps+16(FP), R8
	SHLQ $2, R8
	MOVQ v+24(FP), DX
	MOVQ vs+32(FP), R9
	SHLQ $2, R9
	MOVQ half+64(FP), CX
	SHRQ CX, R9
	MOVQ n+40(FP), CX
	MOVQ group+48(FP), R10
	MOVQ hd+56(FP), R11
	TESTQ CX, CX
	JZ vdone
	TESTQ R10, R10
	JZ vdone

vg:
	MOVQ R11, R12
	MOVQ DX, R13
	MOVQ DI, R14

vb:
	CMPQ R12, $64
	JLT vc
	VMOVUPS (R14), Z0
	VMOVUPS 64(R14), Z1
	VMOVUPS 128(R14), Z2
	VMOVUPS 192(R14), Z3
	MOVQ R13, AX
	MOVQ SI, BX
	MOVQ CX, R15

vbt:
	VBROADCASTSS (BX), Z4
	CMPQ half+64(FP), $0
	JNE vbt16
	VMOVUPS (AX), Z5
	VMOVUPS 64(AX), Z6
	VMOVUPS 128(AX), Z7
	VMOVUPS 192(AX), Z8
	JMP vbtfma

vbt16:
	VCVTPH2PS (AX), Z5
	VCVTPH2PS 32(AX), Z6
	VCVTPH2PS 64(AX), Z7
	VCVTPH2PS 96(AX), Z8

vbtfma:
	VFMADD231PS Z5, Z4, Z0
	VFMADD231PS Z6, Z4, Z1
	VFMADD231PS Z7, Z4, Z2
	VFMADD231PS Z8, Z4, Z3
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ vbt
	VMOVUPS Z0, (R14)
	VMOVUPS Z1, 64(R14)
	VMOVUPS Z2, 128(R14)
	VMOVUPS Z3, 192(R14)
	ADDQ $256, R14
	SUBQ $64, R12
	ADDQ $128, R13
	CMPQ half+64(FP), $0
	JNE vb
	ADDQ $128, R13
	JMP vb

vc:
	CMPQ R12, $16
	JLT vnext
	VMOVUPS (R14), Z0
	MOVQ R13, AX
	MOVQ SI, BX
	MOVQ CX, R15

vct:
	VBROADCASTSS (BX), Z4
	CMPQ half+64(FP), $0
	JNE vct16
	VMOVUPS (AX), Z5
	JMP vctfma

vct16:
	VCVTPH2PS (AX), Z5

vctfma:
	VFMADD231PS Z5, Z4, Z0
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ vct
	VMOVUPS Z0, (R14)
	ADDQ $64, R14
	ADDQ $32, R13
	CMPQ half+64(FP), $0
	JNE vcnext
	ADDQ $32, R13

vcnext:
	SUBQ $16, R12
	JMP vc

vnext:
	MOVQ R11, AX
	SHLQ $2, AX
	ADDQ AX, DI
	ADDQ R8, SI
	DECQ R10
	JNZ vg

vdone:
	VZEROUPPER
	RET

// EXP_CONSTS loads the constants of EXP16 into Z20–Z31.
#define EXP_CONSTS \
	MOVL $0x3fb8aa3b, AX; VPBROADCASTD AX, Z20 \
	MOVL $0x3f318000, AX; VPBROADCASTD AX, Z21 \
	MOVL $0xb95e8083, AX; VPBROADCASTD AX, Z22 \
	MOVL $0x39506967, AX; VPBROADCASTD AX, Z23 \
	MOVL $0x3ab743ce, AX; VPBROADCASTD AX, Z24 \
	MOVL $0x3c088908, AX; VPBROADCASTD AX, Z25 \
	MOVL $0x3d2aa9c1, AX; VPBROADCASTD AX, Z26 \
	MOVL $0x3e2aaaaa, AX; VPBROADCASTD AX, Z27 \
	MOVL $0x3f000000, AX; VPBROADCASTD AX, Z28 \
	MOVL $0x3f800000, AX; VPBROADCASTD AX, Z29 \
	MOVL $0x42b17217, AX; VPBROADCASTD AX, Z30 \
	MOVL $0xc2aeac4f, AX; VPBROADCASTD AX, Z31

// EXP16 computes Z0 ← e^Z0 in 16 lanes, the same algorithm as expf (Go):
// clamp to the float32 range, n = ⌊x·log2e + ½⌋, r = x − n·ln2 (two
// parts), Cephes' polynomial, then VSCALEFPS multiplies by 2^n. Clobbers
// Z1–Z3.
#define EXP16 \
	VMINPS Z30, Z0, Z0; \
	VMAXPS Z31, Z0, Z0; \
	VMOVAPS Z28, Z1; \
	VFMADD231PS Z20, Z0, Z1; \
	VRNDSCALEPS $1, Z1, Z1; \
	VFNMADD231PS Z21, Z1, Z0; \
	VFNMADD231PS Z22, Z1, Z0; \
	VMOVAPS Z23, Z2; \
	VFMADD213PS Z24, Z0, Z2; \
	VFMADD213PS Z25, Z0, Z2; \
	VFMADD213PS Z26, Z0, Z2; \
	VFMADD213PS Z27, Z0, Z2; \
	VFMADD213PS Z28, Z0, Z2; \
	VMULPS Z0, Z0, Z3; \
	VFMADD213PS Z0, Z3, Z2; \
	VADDPS Z29, Z2, Z2; \
	VSCALEFPS Z1, Z2, Z0

// func expSumAVX512(x *float32, n int, mx float32) float32
// x[i] ← e^(x[i]−mx) for n floats (a multiple of 16); returns their sum.
TEXT ·expSumAVX512(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS mx+16(FP), Z5
	EXP_CONSTS
	VXORPS Z4, Z4, Z4
	SHRQ $4, CX
	JZ esdone

esloop:
	VMOVUPS (SI), Z0
	VSUBPS Z5, Z0, Z0
	EXP16
	VMOVUPS Z0, (SI)
	VADDPS Z0, Z4, Z4
	ADDQ $64, SI
	DECQ CX
	JNZ esloop

esdone:
	VEXTRACTF64X4 $1, Z4, Y1
	VADDPS Y1, Y4, Y4
	VEXTRACTF128 $1, Y4, X1
	VADDPS X1, X4, X4
	VPERMILPS $0x4e, X4, X1
	VADDPS X1, X4, X4
	VPERMILPS $0xb1, X4, X1
	VADDPS X1, X4, X4
	VMOVSS X4, ret+24(FP)
	VZEROUPPER
	RET

// func siluMulAVX512(dst, gate, up *float32, n int)
// dst[i] = gate[i]·up[i] / (1 + e^−gate[i]) for n floats (a multiple of 16);
// dst may alias gate.
TEXT ·siluMulAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	EXP_CONSTS
	VXORPS Z6, Z6, Z6
	SHRQ $4, CX
	JZ smdone

smloop:
	VMOVUPS (SI), Z5
	VSUBPS Z5, Z6, Z0
	EXP16
	VADDPS Z29, Z0, Z0
	VMULPS (DX), Z5, Z5
	VDIVPS Z0, Z5, Z5
	VMOVUPS Z5, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ smloop

smdone:
	VZEROUPPER
	RET

// func scores4AVX512(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)
//
// scoresAVX512 for a group of exactly four query heads: each 16-value chunk
// of a key row is loaded (or converted from fp16) once and multiplied into
// four accumulators, and the four dot products are reduced together
// (three VHADDPS) to one vector of four scores.
TEXT ·scores4AVX512(SB), NOSPLIT, $0-72
	MOVQ prob+0(FP), DI
	MOVQ ps+8(FP), R8
	SHLQ $2, R8
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), DX
	MOVQ half+64(FP), R12
	MOVQ ks+32(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11
	MOVQ R11, R13
	SHLQ $2, R13                // bytes per query head
	LEAQ (R13)(R13*2), R14      // 3 heads
	SHRQ $4, R11
	VBROADCASTSS scale+56(FP), X15
	TESTQ CX, CX
	JZ s4done
	TESTQ R11, R11
	JZ s4done

s4t:
	MOVQ R9, R10                // prefetch the key row 8 ahead
	SHLQ $3, R10
	ADDQ DX, R10
	PREFETCHT0 (R10)
	PREFETCHT0 64(R10)
	PREFETCHT0 128(R10)
	PREFETCHT0 192(R10)
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ R11, R15

s4i:
	TESTQ R12, R12
	JNZ s4i16
	VMOVUPS (AX), Z1
	ADDQ $64, AX
	JMP s4fma

s4i16:
	VCVTPH2PS (AX), Z1
	ADDQ $32, AX

s4fma:
	VFMADD231PS (BX), Z1, Z8
	VFMADD231PS (BX)(R13*1), Z1, Z9
	VFMADD231PS (BX)(R13*2), Z1, Z10
	VFMADD231PS (BX)(R14*1), Z1, Z11
	ADDQ $64, BX
	DECQ R15
	JNZ s4i
	VEXTRACTF64X4 $1, Z8, Y0
	VADDPS Y0, Y8, Y8
	VEXTRACTF64X4 $1, Z9, Y0
	VADDPS Y0, Y9, Y9
	VEXTRACTF64X4 $1, Z10, Y0
	VADDPS Y0, Y10, Y10
	VEXTRACTF64X4 $1, Z11, Y0
	VADDPS Y0, Y11, Y11
	VHADDPS Y9, Y8, Y0          // a01 a23 b01 b23 | a45 a67 b45 b67
	VHADDPS Y11, Y10, Y2        // c.. d..
	VHADDPS Y2, Y0, Y0          // a b c d (low half) | a b c d (high half)
	VEXTRACTF128 $1, Y0, X2
	VADDPS X2, X0, X0
	VMULPS X15, X0, X0
	VMOVSS X0, (DI)
	VEXTRACTPS $1, X0, (DI)(R8*1)
	VEXTRACTPS $2, X0, (DI)(R8*2)
	LEAQ (DI)(R8*2), R10
	VEXTRACTPS $3, X0, (R10)(R8*1)
	ADDQ R9, DX
	ADDQ $4, DI
	DECQ CX
	JNZ s4t

s4done:
	VZEROUPPER
	RET

// func values4AVX512(att, prob *float32, ps int, v unsafe.Pointer, vs, n, hd int, half int)
//
// valuesAVX512 for a group of exactly four query heads: 64 values of a
// value row at a time are loaded (or converted) once and multiplied into
// the four heads' sixteen accumulators (then 16 at a time with four).
TEXT ·values4AVX512(SB), NOSPLIT, $0-64
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ ps+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R10        // 3·ps bytes
	MOVQ v+24(FP), DX
	MOVQ vs+32(FP), R9
	SHLQ $2, R9
	MOVQ half+56(FP), CX
	SHRQ CX, R9
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11
	MOVQ R11, R12
	SHLQ $2, R12                // bytes per head of att
	TESTQ CX, CX
	JZ v4done
	MOVQ DI, R14                // att of head 0 at the current column
	MOVQ DX, R13                // value column pointer

v4b:
	CMPQ R11, $64
	JLT v4c
	MOVQ R14, DI
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	VMOVUPS 128(DI), Z18
	VMOVUPS 192(DI), Z19
	ADDQ R12, DI
	VMOVUPS (DI), Z20
	VMOVUPS 64(DI), Z21
	VMOVUPS 128(DI), Z22
	VMOVUPS 192(DI), Z23
	ADDQ R12, DI
	VMOVUPS (DI), Z24
	VMOVUPS 64(DI), Z25
	VMOVUPS 128(DI), Z26
	VMOVUPS 192(DI), Z27
	ADDQ R12, DI
	VMOVUPS (DI), Z28
	VMOVUPS 64(DI), Z29
	VMOVUPS 128(DI), Z30
	VMOVUPS 192(DI), Z31
	MOVQ R13, AX
	MOVQ SI, BX
	MOVQ CX, R15
	MOVQ R9, DI                 // prefetch distance: the value row 8 ahead
	SHLQ $3, DI

v4bt:
	PREFETCHT0 (AX)(DI*1)
	PREFETCHT0 64(AX)(DI*1)
	CMPQ half+56(FP), $0
	JNE v4bt16
	VMOVUPS (AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVUPS 128(AX), Z2
	VMOVUPS 192(AX), Z3
	JMP v4btfma

v4bt16:
	VCVTPH2PS (AX), Z0
	VCVTPH2PS 32(AX), Z1
	VCVTPH2PS 64(AX), Z2
	VCVTPH2PS 96(AX), Z3

v4btfma:
	VBROADCASTSS (BX), Z4
	VBROADCASTSS (BX)(R8*1), Z5
	VBROADCASTSS (BX)(R8*2), Z6
	VBROADCASTSS (BX)(R10*1), Z7
	VFMADD231PS Z0, Z4, Z16
	VFMADD231PS Z1, Z4, Z17
	VFMADD231PS Z2, Z4, Z18
	VFMADD231PS Z3, Z4, Z19
	VFMADD231PS Z0, Z5, Z20
	VFMADD231PS Z1, Z5, Z21
	VFMADD231PS Z2, Z5, Z22
	VFMADD231PS Z3, Z5, Z23
	VFMADD231PS Z0, Z6, Z24
	VFMADD231PS Z1, Z6, Z25
	VFMADD231PS Z2, Z6, Z26
	VFMADD231PS Z3, Z6, Z27
	VFMADD231PS Z0, Z7, Z28
	VFMADD231PS Z1, Z7, Z29
	VFMADD231PS Z2, Z7, Z30
	VFMADD231PS Z3, Z7, Z31
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ v4bt
	MOVQ R14, DI
	VMOVUPS Z16, (DI)
	VMOVUPS Z17, 64(DI)
	VMOVUPS Z18, 128(DI)
	VMOVUPS Z19, 192(DI)
	ADDQ R12, DI
	VMOVUPS Z20, (DI)
	VMOVUPS Z21, 64(DI)
	VMOVUPS Z22, 128(DI)
	VMOVUPS Z23, 192(DI)
	ADDQ R12, DI
	VMOVUPS Z24, (DI)
	VMOVUPS Z25, 64(DI)
	VMOVUPS Z26, 128(DI)
	VMOVUPS Z27, 192(DI)
	ADDQ R12, DI
	VMOVUPS Z28, (DI)
	VMOVUPS Z29, 64(DI)
	VMOVUPS Z30, 128(DI)
	VMOVUPS Z31, 192(DI)
	ADDQ $256, R14
	SUBQ $64, R11
	ADDQ $128, R13
	CMPQ half+56(FP), $0
	JNE v4b
	ADDQ $128, R13
	JMP v4b

v4c:
	CMPQ R11, $16
	JLT v4done
	MOVQ R14, DI
	VMOVUPS (DI), Z16
	VMOVUPS (DI)(R12*1), Z20
	VMOVUPS (DI)(R12*2), Z24
	LEAQ (R12)(R12*2), BX
	VMOVUPS (DI)(BX*1), Z28
	MOVQ R13, AX
	MOVQ SI, BX
	MOVQ CX, R15

v4ct:
	CMPQ half+56(FP), $0
	JNE v4ct16
	VMOVUPS (AX), Z0
	JMP v4ctfma

v4ct16:
	VCVTPH2PS (AX), Z0

v4ctfma:
	VBROADCASTSS (BX), Z4
	VBROADCASTSS (BX)(R8*1), Z5
	VBROADCASTSS (BX)(R8*2), Z6
	VBROADCASTSS (BX)(R10*1), Z7
	VFMADD231PS Z0, Z4, Z16
	VFMADD231PS Z0, Z5, Z20
	VFMADD231PS Z0, Z6, Z24
	VFMADD231PS Z0, Z7, Z28
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ v4ct
	MOVQ R14, DI
	VMOVUPS Z16, (DI)
	VMOVUPS Z20, (DI)(R12*1)
	VMOVUPS Z24, (DI)(R12*2)
	LEAQ (R12)(R12*2), BX
	VMOVUPS Z28, (DI)(BX*1)
	ADDQ $64, R14
	SUBQ $16, R11
	ADDQ $32, R13
	CMPQ half+56(FP), $0
	JNE v4c
	ADDQ $32, R13
	JMP v4c

v4done:
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32
// Returns the largest of n floats (n a positive multiple of 16).
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $4, CX
	VMOVUPS (SI), Z0
	VMOVAPS Z0, Z1

mxloop:
	VMAXPS (SI), Z0, Z0
	ADDQ $64, SI
	DECQ CX
	JZ mxdone
	VMAXPS (SI), Z1, Z1
	ADDQ $64, SI
	DECQ CX
	JNZ mxloop

mxdone:
	VMAXPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// The AVX2 attention kernels (LevelAVX2: AVX2, FMA, F16C): the same
// contracts as scoresAVX512/valuesAVX512 and their four-head variants, in
// 8-lane registers; hd is a multiple of 16. Float32 rows, or fp16 when
// half is 1 (VCVTPH2PS).

// func scoresAVX2(prob *float32, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)
//
// One query head: prob[t] = scale·(q·k_t) for the n keys k_t (rows ks
// values apart), two accumulators of 8 lanes.
TEXT ·scoresAVX2(SB), NOSPLIT, $0-64
	MOVQ prob+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ half+56(FP), R12
	MOVQ ks+24(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R11
	SHRQ $4, R11
	VBROADCASTSS scale+48(FP), X15
	TESTQ CX, CX
	JZ s1done
	TESTQ R11, R11
	JZ s1done

s1t:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ R11, R15
	TESTQ R12, R12
	JNZ s1i16

s1i32:
	VMOVUPS (AX), Y2
	VMOVUPS 32(AX), Y3
	VFMADD231PS (BX), Y2, Y0
	VFMADD231PS 32(BX), Y3, Y1
	ADDQ $64, AX
	ADDQ $64, BX
	DECQ R15
	JNZ s1i32
	JMP s1red

s1i16:
	VCVTPH2PS (AX), Y2
	VCVTPH2PS 16(AX), Y3
	VFMADD231PS (BX), Y2, Y0
	VFMADD231PS 32(BX), Y3, Y1
	ADDQ $32, AX
	ADDQ $64, BX
	DECQ R15
	JNZ s1i16

s1red:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDPS X1, X0, X0
	VMULSS X15, X0, X0
	VMOVSS X0, (DI)
	ADDQ R9, DX
	ADDQ $4, DI
	DECQ CX
	JNZ s1t

s1done:
	VZEROUPPER
	RET

// func scores4AVX2(prob *float32, ps int, q *float32, k unsafe.Pointer, ks, n, hd int, scale float32, half int)
//
// Four query heads (back to back in q): each 16 values of a key row are
// loaded (or converted) once and multiplied into the four heads' two
// accumulators each; prob[g*ps+t] = scale·(q_g·k_t).
TEXT ·scores4AVX2(SB), NOSPLIT, $0-72
	MOVQ prob+0(FP), DI
	MOVQ ps+8(FP), R8
	SHLQ $2, R8
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), DX
	MOVQ half+64(FP), R12
	MOVQ ks+32(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11
	MOVQ R11, R13
	SHLQ $2, R13                // bytes per query head
	LEAQ (R13)(R13*2), R14      // 3 heads
	SHRQ $4, R11
	VBROADCASTSS scale+56(FP), X15
	TESTQ CX, CX
	JZ s4adone
	TESTQ R11, R11
	JZ s4adone

s4at:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ R11, R15

s4ai:
	TESTQ R12, R12
	JNZ s4ai16
	VMOVUPS (AX), Y8
	VMOVUPS 32(AX), Y9
	ADDQ $64, AX
	JMP s4afma

s4ai16:
	VCVTPH2PS (AX), Y8
	VCVTPH2PS 16(AX), Y9
	ADDQ $32, AX

s4afma:
	VFMADD231PS (BX), Y8, Y0
	VFMADD231PS 32(BX), Y9, Y1
	VFMADD231PS (BX)(R13*1), Y8, Y2
	VFMADD231PS 32(BX)(R13*1), Y9, Y3
	VFMADD231PS (BX)(R13*2), Y8, Y4
	VFMADD231PS 32(BX)(R13*2), Y9, Y5
	VFMADD231PS (BX)(R14*1), Y8, Y6
	VFMADD231PS 32(BX)(R14*1), Y9, Y7
	ADDQ $64, BX
	DECQ R15
	JNZ s4ai
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VHADDPS Y2, Y0, Y0          // a01 a23 b01 b23 | a45 a67 b45 b67
	VHADDPS Y6, Y4, Y4          // c.. d..
	VHADDPS Y4, Y0, Y0          // a b c d | a b c d
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMULPS X15, X0, X0
	VMOVSS X0, (DI)
	VEXTRACTPS $1, X0, (DI)(R8*1)
	VEXTRACTPS $2, X0, (DI)(R8*2)
	LEAQ (DI)(R8*2), R10
	VEXTRACTPS $3, X0, (R10)(R8*1)
	ADDQ R9, DX
	ADDQ $4, DI
	DECQ CX
	JNZ s4at

s4adone:
	VZEROUPPER
	RET

// func valuesAVX2(att, prob *float32, v unsafe.Pointer, vs, n, hd int, half int)
//
// One query head: att[0:hd] += Σ_t prob[t]·v_t over the n value rows (vs
// values apart), 32 values at a time in four accumulators, then 16 in two.
TEXT ·valuesAVX2(SB), NOSPLIT, $0-56
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ half+48(FP), R12
	MOVQ vs+24(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ $64, R13               // bytes of v per 16 values
	SHRQ CX, R13
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R11
	TESTQ CX, CX
	JZ v1done

v1b:
	CMPQ R11, $32
	JLT v1c
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ CX, R15

v1bt:
	VBROADCASTSS (BX), Y8
	TESTQ R12, R12
	JNZ v1bt16
	VMOVUPS (AX), Y4
	VMOVUPS 32(AX), Y5
	VMOVUPS 64(AX), Y6
	VMOVUPS 96(AX), Y7
	JMP v1btfma

v1bt16:
	VCVTPH2PS (AX), Y4
	VCVTPH2PS 16(AX), Y5
	VCVTPH2PS 32(AX), Y6
	VCVTPH2PS 48(AX), Y7

v1btfma:
	VFMADD231PS Y4, Y8, Y0
	VFMADD231PS Y5, Y8, Y1
	VFMADD231PS Y6, Y8, Y2
	VFMADD231PS Y7, Y8, Y3
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ v1bt
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	SUBQ $32, R11
	ADDQ R13, DX
	ADDQ R13, DX
	JMP v1b

v1c:
	CMPQ R11, $16
	JLT v1done
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ CX, R15

v1ct:
	VBROADCASTSS (BX), Y8
	TESTQ R12, R12
	JNZ v1ct16
	VMOVUPS (AX), Y4
	VMOVUPS 32(AX), Y5
	JMP v1ctfma

v1ct16:
	VCVTPH2PS (AX), Y4
	VCVTPH2PS 16(AX), Y5

v1ctfma:
	VFMADD231PS Y4, Y8, Y0
	VFMADD231PS Y5, Y8, Y1
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ v1ct
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, DI
	SUBQ $16, R11
	ADDQ R13, DX
	JMP v1c

v1done:
	VZEROUPPER
	RET

// func values4AVX2(att, prob *float32, ps int, v unsafe.Pointer, vs, n, hd int, half int)
//
// Four query heads (att and prob rows back to back, hd and ps apart): 16
// values of a value row at a time are loaded (or converted) once and
// multiplied into the four heads' two accumulators each.
TEXT ·values4AVX2(SB), NOSPLIT, $0-64
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ ps+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R10        // 3·ps bytes
	MOVQ v+24(FP), DX
	MOVQ half+56(FP), R12
	MOVQ vs+32(FP), R9
	SHLQ $2, R9
	MOVQ R12, CX
	SHRQ CX, R9
	MOVQ $64, R13               // bytes of v per 16 values
	SHRQ CX, R13
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11
	MOVQ R11, R14
	SHLQ $2, R14                // bytes per head of att
	TESTQ CX, CX
	JZ v4adone

v4ab:
	CMPQ R11, $16
	JLT v4adone
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS (DI)(R14*1), Y2
	VMOVUPS 32(DI)(R14*1), Y3
	VMOVUPS (DI)(R14*2), Y4
	VMOVUPS 32(DI)(R14*2), Y5
	LEAQ (DI)(R14*2), BX
	VMOVUPS (BX)(R14*1), Y6
	VMOVUPS 32(BX)(R14*1), Y7
	MOVQ DX, AX
	MOVQ SI, BX
	MOVQ CX, R15

v4at:
	TESTQ R12, R12
	JNZ v4at16
	VMOVUPS (AX), Y8
	VMOVUPS 32(AX), Y9
	JMP v4atfma

v4at16:
	VCVTPH2PS (AX), Y8
	VCVTPH2PS 16(AX), Y9

v4atfma:
	VBROADCASTSS (BX), Y10
	VBROADCASTSS (BX)(R8*1), Y11
	VBROADCASTSS (BX)(R8*2), Y12
	VBROADCASTSS (BX)(R10*1), Y13
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ R9, AX
	ADDQ $4, BX
	DECQ R15
	JNZ v4at
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (DI)(R14*1)
	VMOVUPS Y3, 32(DI)(R14*1)
	VMOVUPS Y4, (DI)(R14*2)
	VMOVUPS Y5, 32(DI)(R14*2)
	LEAQ (DI)(R14*2), BX
	VMOVUPS Y6, (BX)(R14*1)
	VMOVUPS Y7, 32(BX)(R14*1)
	ADDQ $64, DI
	SUBQ $16, R11
	ADDQ R13, DX
	JMP v4ab

v4adone:
	VZEROUPPER
	RET

// func siluMulAVX2(dst, gate, up *float32, n int)
// siluMulAVX512 in 8 lanes (n a multiple of 8; dst may alias gate): the
// same e^x (expf's algorithm: clamp, n = ⌊x·log2e + ½⌋, r = x − n·ln2 in
// two parts, Cephes' polynomial), 2^n built in the exponent bits as expf
// does. Constants in Y4–Y15.
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	MOVL $0x3fb8aa3b, AX; VMOVD AX, X4; VPBROADCASTD X4, Y4     // log2e
	MOVL $0x3f318000, AX; VMOVD AX, X5; VPBROADCASTD X5, Y5     // ln2hi
	MOVL $0xb95e8083, AX; VMOVD AX, X6; VPBROADCASTD X6, Y6     // ln2lo
	MOVL $0x39506967, AX; VMOVD AX, X7; VPBROADCASTD X7, Y7     // p0
	MOVL $0x3ab743ce, AX; VMOVD AX, X8; VPBROADCASTD X8, Y8     // p1
	MOVL $0x3c088908, AX; VMOVD AX, X9; VPBROADCASTD X9, Y9     // p2
	MOVL $0x3d2aa9c1, AX; VMOVD AX, X10; VPBROADCASTD X10, Y10  // p3
	MOVL $0x3e2aaaaa, AX; VMOVD AX, X11; VPBROADCASTD X11, Y11  // p4
	MOVL $0x3f000000, AX; VMOVD AX, X12; VPBROADCASTD X12, Y12  // ½ (p5 ≈ ½ too)
	MOVL $0x3f800000, AX; VMOVD AX, X13; VPBROADCASTD X13, Y13  // 1
	MOVL $0x42b17217, AX; VMOVD AX, X14; VPBROADCASTD X14, Y14  // upper clamp
	MOVL $0xc2aeac4f, AX; VMOVD AX, X15; VPBROADCASTD X15, Y15  // lower clamp
	SHRQ $3, CX
	JZ sm2done

sm2loop:
	VXORPS Y0, Y0, Y0
	VSUBPS (SI), Y0, Y0         // x = −gate
	VMINPS Y14, Y0, Y0
	VMAXPS Y15, Y0, Y0
	VMOVAPS Y12, Y1
	VFMADD231PS Y4, Y0, Y1      // x·log2e + ½
	VROUNDPS $1, Y1, Y1         // n = ⌊…⌋
	VFNMADD231PS Y5, Y1, Y0     // r = x − n·ln2hi − n·ln2lo
	VFNMADD231PS Y6, Y1, Y0
	VMOVAPS Y7, Y2
	VFMADD213PS Y8, Y0, Y2
	VFMADD213PS Y9, Y0, Y2
	VFMADD213PS Y10, Y0, Y2
	VFMADD213PS Y11, Y0, Y2
	VFMADD213PS Y12, Y0, Y2
	VMULPS Y0, Y0, Y3
	VFMADD213PS Y0, Y3, Y2      // p·r² + r
	VADDPS Y13, Y2, Y2          // + 1
	VCVTPS2DQ Y1, Y1
	VPSLLD $23, Y1, Y1
	VPADDD Y13, Y1, Y1          // 2^n: (n + 127) << 23
	VMULPS Y1, Y2, Y0           // e^x
	VADDPS Y13, Y0, Y0          // 1 + e^−gate
	VMOVUPS (SI), Y1
	VMULPS (DX), Y1, Y1
	VDIVPS Y0, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ sm2loop

sm2done:
	VZEROUPPER
	RET
