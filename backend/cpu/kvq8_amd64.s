//go:build amd64

#include "textflag.h"

// The int8 KV cache's attention kernels. Rows of hd int8 codes (hd a
// multiple of 32) lie back to back, and so do their fp16 scales, one per 32
// codes; walking a row's groups in order therefore also walks the next
// row's. A group of 16 codes is widened (VPMOVSXBD), converted to float32
// and multiplied by its scale (broadcast and converted from fp16) before it
// meets the queries or probabilities: dequantization fused into the dot
// products and multiply-adds.

// SCALE16(mem, Y, Z) broadcasts the fp16 scale at mem to 16 float32 lanes.
#define SCALE16(mem, y, z) \
	VPBROADCASTW mem, y; \
	VCVTPH2PS y, z

// CODES16(mem, Z) widens 16 int8 codes at mem to float32.
#define CODES16(mem, z) \
	VPMOVSXBD mem, z; \
	VCVTDQ2PS z, z

// func scoresQ8AVX512(prob *float32, q *float32, k *int8, sc *uint16, n, hd int, scale float32)
//
// prob[t] = scale·(q·k_t) for the n key rows k_t of one query head q.
TEXT ·scoresQ8AVX512(SB), NOSPLIT, $0-52
	MOVQ prob+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), AX
	MOVQ sc+24(FP), DX
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R11
	SHRQ $5, R11                // groups per row
	VBROADCASTSS scale+48(FP), X15
	TESTQ CX, CX
	JZ sq1done
	TESTQ R11, R11
	JZ sq1done

sq1t:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ SI, BX
	MOVQ R11, R15

sq1g:
	SCALE16((DX), Y2, Z2)
	CODES16((AX), Z3)
	CODES16(16(AX), Z4)
	VMULPS Z2, Z3, Z3
	VMULPS Z2, Z4, Z4
	VFMADD231PS (BX), Z3, Z0
	VFMADD231PS 64(BX), Z4, Z1
	ADDQ $32, AX
	ADDQ $2, DX
	ADDQ $128, BX
	DECQ R15
	JNZ sq1g
	VADDPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDPS X1, X0, X0
	VMULSS X15, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ CX
	JNZ sq1t

sq1done:
	VZEROUPPER
	RET

// func scores4Q8AVX512(prob *float32, ps int, q *float32, k *int8, sc *uint16, n, hd int, scale float32)
//
// scoresQ8AVX512 for four query heads (hd floats apart in q; their scores
// ps floats apart in prob): each group of codes is dequantized once for
// all four.
TEXT ·scores4Q8AVX512(SB), NOSPLIT, $0-60
	MOVQ prob+0(FP), DI
	MOVQ ps+8(FP), R8
	SHLQ $2, R8
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), AX
	MOVQ sc+32(FP), DX
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11
	MOVQ R11, R9                // bytes per key row
	MOVQ R11, R13
	SHLQ $2, R13                // bytes per query head
	LEAQ (R13)(R13*2), R14      // 3 heads
	SHRQ $5, R11
	VBROADCASTSS scale+56(FP), X15
	TESTQ CX, CX
	JZ sq4done
	TESTQ R11, R11
	JZ sq4done

sq4t:
	PREFETCHT0 (AX)(R9*8)       // the key row 8 ahead
	PREFETCHT0 64(AX)(R9*8)
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	MOVQ SI, BX
	MOVQ R11, R15

sq4g:
	SCALE16((DX), Y2, Z2)
	CODES16((AX), Z3)
	CODES16(16(AX), Z4)
	VMULPS Z2, Z3, Z3
	VMULPS Z2, Z4, Z4
	VFMADD231PS (BX), Z3, Z8
	VFMADD231PS (BX)(R13*1), Z3, Z9
	VFMADD231PS (BX)(R13*2), Z3, Z10
	VFMADD231PS (BX)(R14*1), Z3, Z11
	VFMADD231PS 64(BX), Z4, Z8
	VFMADD231PS 64(BX)(R13*1), Z4, Z9
	VFMADD231PS 64(BX)(R13*2), Z4, Z10
	VFMADD231PS 64(BX)(R14*1), Z4, Z11
	ADDQ $32, AX
	ADDQ $2, DX
	ADDQ $128, BX
	DECQ R15
	JNZ sq4g
	VEXTRACTF64X4 $1, Z8, Y0
	VADDPS Y0, Y8, Y8
	VEXTRACTF64X4 $1, Z9, Y0
	VADDPS Y0, Y9, Y9
	VEXTRACTF64X4 $1, Z10, Y0
	VADDPS Y0, Y10, Y10
	VEXTRACTF64X4 $1, Z11, Y0
	VADDPS Y0, Y11, Y11
	VHADDPS Y9, Y8, Y0
	VHADDPS Y11, Y10, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X2
	VADDPS X2, X0, X0
	VMULPS X15, X0, X0
	VMOVSS X0, (DI)
	VEXTRACTPS $1, X0, (DI)(R8*1)
	VEXTRACTPS $2, X0, (DI)(R8*2)
	LEAQ (DI)(R8*2), R12
	VEXTRACTPS $3, X0, (R12)(R8*1)
	ADDQ $4, DI
	DECQ CX
	JNZ sq4t

sq4done:
	VZEROUPPER
	RET

// func valuesQ8AVX512(att, prob *float32, v *int8, sc *uint16, n, hd int)
//
// att[0:hd] += Σ_t prob[t]·v_t over the n value rows: 64 columns at a time
// in four accumulators (then 32 in two), each row's probability multiplied
// into the two scales of those columns.
TEXT ·valuesQ8AVX512(SB), NOSPLIT, $0-48
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ v+16(FP), DX           // codes of row 0 at the current column
	MOVQ sc+24(FP), R8          // scales of row 0 at the current column
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9          // bytes per row of codes
	MOVQ R9, R10
	SHRQ $4, R10                // bytes per row of scales
	MOVQ R9, R11                // columns left
	TESTQ CX, CX
	JZ vq1done

vq1b:
	CMPQ R11, $64
	JLT vq1c
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	MOVQ DX, AX
	MOVQ R8, BX
	MOVQ SI, R12
	MOVQ CX, R15

vq1bt:
	VBROADCASTSS (R12), Z4
	SCALE16((BX), Y5, Z5)
	SCALE16(2(BX), Y6, Z6)
	VMULPS Z4, Z5, Z5
	VMULPS Z4, Z6, Z6
	CODES16((AX), Z7)
	CODES16(16(AX), Z8)
	CODES16(32(AX), Z9)
	CODES16(48(AX), Z10)
	VFMADD231PS Z7, Z5, Z0
	VFMADD231PS Z8, Z5, Z1
	VFMADD231PS Z9, Z6, Z2
	VFMADD231PS Z10, Z6, Z3
	ADDQ R9, AX
	ADDQ R10, BX
	ADDQ $4, R12
	DECQ R15
	JNZ vq1bt
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $64, DX
	ADDQ $4, R8
	SUBQ $64, R11
	JMP vq1b

vq1c:
	CMPQ R11, $32
	JLT vq1done
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	MOVQ DX, AX
	MOVQ R8, BX
	MOVQ SI, R12
	MOVQ CX, R15

vq1ct:
	VBROADCASTSS (R12), Z4
	SCALE16((BX), Y5, Z5)
	VMULPS Z4, Z5, Z5
	CODES16((AX), Z7)
	CODES16(16(AX), Z8)
	VFMADD231PS Z7, Z5, Z0
	VFMADD231PS Z8, Z5, Z1
	ADDQ R9, AX
	ADDQ R10, BX
	ADDQ $4, R12
	DECQ R15
	JNZ vq1ct
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)

vq1done:
	VZEROUPPER
	RET

// func values4Q8AVX512(att, prob *float32, ps int, v *int8, sc *uint16, n, hd int)
//
// valuesQ8AVX512 for four query heads (outputs hd floats apart in att,
// probabilities ps floats apart in prob): 64 values of a row are
// dequantized once and multiplied into the four heads' sixteen
// accumulators (then 32 at a time with eight).
TEXT ·values4Q8AVX512(SB), NOSPLIT, $0-56
	MOVQ att+0(FP), R14         // head 0's output at the current column
	MOVQ ps+16(FP), R8
	SHLQ $2, R8
	LEAQ (R8)(R8*2), R10        // 3·ps bytes
	MOVQ v+24(FP), DX           // codes of row 0 at the current column
	MOVQ sc+32(FP), R13         // scales of row 0 at the current column
	MOVQ n+40(FP), CX
	MOVQ hd+48(FP), R11         // columns left
	MOVQ R11, R9                // bytes per row of codes
	MOVQ R11, SI
	SHRQ $4, SI                 // bytes per row of scales
	MOVQ R11, R12
	SHLQ $2, R12                // bytes per head of att
	TESTQ CX, CX
	JZ v4qdone

v4qb:
	CMPQ R11, $64
	JLT v4qc
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
	MOVQ DX, AX
	MOVQ R13, DI                // scales
	MOVQ prob+8(FP), BX
	MOVQ CX, R15

v4qbt:
	PREFETCHT0 (AX)(R9*8)       // the row 8 ahead
	SCALE16((DI), Y8, Z8)
	SCALE16(2(DI), Y9, Z9)
	CODES16((AX), Z0)
	CODES16(16(AX), Z1)
	CODES16(32(AX), Z2)
	CODES16(48(AX), Z3)
	VMULPS Z8, Z0, Z0
	VMULPS Z8, Z1, Z1
	VMULPS Z9, Z2, Z2
	VMULPS Z9, Z3, Z3
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
	ADDQ SI, DI
	ADDQ $4, BX
	DECQ R15
	JNZ v4qbt
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
	ADDQ $64, DX
	ADDQ $4, R13
	SUBQ $64, R11
	JMP v4qb

v4qc:
	CMPQ R11, $32
	JLT v4qdone
	MOVQ R14, DI
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	ADDQ R12, DI
	VMOVUPS (DI), Z20
	VMOVUPS 64(DI), Z21
	ADDQ R12, DI
	VMOVUPS (DI), Z24
	VMOVUPS 64(DI), Z25
	ADDQ R12, DI
	VMOVUPS (DI), Z28
	VMOVUPS 64(DI), Z29
	MOVQ DX, AX
	MOVQ R13, DI
	MOVQ prob+8(FP), BX
	MOVQ CX, R15

v4qct:
	SCALE16((DI), Y8, Z8)
	CODES16((AX), Z0)
	CODES16(16(AX), Z1)
	VMULPS Z8, Z0, Z0
	VMULPS Z8, Z1, Z1
	VBROADCASTSS (BX), Z4
	VBROADCASTSS (BX)(R8*1), Z5
	VBROADCASTSS (BX)(R8*2), Z6
	VBROADCASTSS (BX)(R10*1), Z7
	VFMADD231PS Z0, Z4, Z16
	VFMADD231PS Z1, Z4, Z17
	VFMADD231PS Z0, Z5, Z20
	VFMADD231PS Z1, Z5, Z21
	VFMADD231PS Z0, Z6, Z24
	VFMADD231PS Z1, Z6, Z25
	VFMADD231PS Z0, Z7, Z28
	VFMADD231PS Z1, Z7, Z29
	ADDQ R9, AX
	ADDQ SI, DI
	ADDQ $4, BX
	DECQ R15
	JNZ v4qct
	MOVQ R14, DI
	VMOVUPS Z16, (DI)
	VMOVUPS Z17, 64(DI)
	ADDQ R12, DI
	VMOVUPS Z20, (DI)
	VMOVUPS Z21, 64(DI)
	ADDQ R12, DI
	VMOVUPS Z24, (DI)
	VMOVUPS Z25, 64(DI)
	ADDQ R12, DI
	VMOVUPS Z28, (DI)
	VMOVUPS Z29, 64(DI)

v4qdone:
	VZEROUPPER
	RET

// func scoresQ8AVX2(prob *float32, q *float32, k *int8, sc *uint16, n, hd int, scale float32)
//
// scoresQ8AVX512 in 8-lane registers (AVX2 + FMA + F16C).
TEXT ·scoresQ8AVX2(SB), NOSPLIT, $0-52
	MOVQ prob+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), AX
	MOVQ sc+24(FP), DX
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R11
	SHRQ $5, R11                // groups per row
	VBROADCASTSS scale+48(FP), X15
	TESTQ CX, CX
	JZ sa2done
	TESTQ R11, R11
	JZ sa2done

sa2t:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ SI, BX
	MOVQ R11, R15

sa2g:
	VPBROADCASTW (DX), X2
	VCVTPH2PS X2, Y2
	VPMOVSXBD (AX), Y3
	VPMOVSXBD 8(AX), Y4
	VPMOVSXBD 16(AX), Y5
	VPMOVSXBD 24(AX), Y6
	VCVTDQ2PS Y3, Y3
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VMULPS Y2, Y3, Y3
	VMULPS Y2, Y4, Y4
	VMULPS Y2, Y5, Y5
	VMULPS Y2, Y6, Y6
	VFMADD231PS (BX), Y3, Y0
	VFMADD231PS 32(BX), Y4, Y1
	VFMADD231PS 64(BX), Y5, Y0
	VFMADD231PS 96(BX), Y6, Y1
	ADDQ $32, AX
	ADDQ $2, DX
	ADDQ $128, BX
	DECQ R15
	JNZ sa2g
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDPS X1, X0, X0
	VMULSS X15, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ CX
	JNZ sa2t

sa2done:
	VZEROUPPER
	RET

// func valuesQ8AVX2(att, prob *float32, v *int8, sc *uint16, n, hd int)
//
// valuesQ8AVX512 in 8-lane registers: 32 columns (one scale) at a time in
// four accumulators.
TEXT ·valuesQ8AVX2(SB), NOSPLIT, $0-48
	MOVQ att+0(FP), DI
	MOVQ prob+8(FP), SI
	MOVQ v+16(FP), DX           // codes of row 0 at the current column
	MOVQ sc+24(FP), R8          // scales of row 0 at the current column
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9          // bytes per row of codes
	MOVQ R9, R10
	SHRQ $4, R10                // bytes per row of scales
	MOVQ R9, R11
	SHRQ $5, R11                // column groups left
	TESTQ CX, CX
	JZ va2done
	TESTQ R11, R11
	JZ va2done

va2b:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ DX, AX
	MOVQ R8, BX
	MOVQ SI, R12
	MOVQ CX, R15

va2t:
	VBROADCASTSS (R12), Y4
	VPBROADCASTW (BX), X5
	VCVTPH2PS X5, Y5
	VMULPS Y4, Y5, Y5
	VPMOVSXBD (AX), Y6
	VPMOVSXBD 8(AX), Y7
	VPMOVSXBD 16(AX), Y8
	VPMOVSXBD 24(AX), Y9
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VCVTDQ2PS Y8, Y8
	VCVTDQ2PS Y9, Y9
	VFMADD231PS Y6, Y5, Y0
	VFMADD231PS Y7, Y5, Y1
	VFMADD231PS Y8, Y5, Y2
	VFMADD231PS Y9, Y5, Y3
	ADDQ R9, AX
	ADDQ R10, BX
	ADDQ $4, R12
	DECQ R15
	JNZ va2t
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $32, DX
	ADDQ $2, R8
	DECQ R11
	JNZ va2b

va2done:
	VZEROUPPER
	RET
