//go:build amd64

#include "textflag.h"

// func q8Rows(out *float32, codes *byte, nrows int, a *q8Args)
//
// For each row: convert the row's fp16 scales (and offsets) 16 at a time,
// premultiplied by the per-group activation factors; then, per group,
// unpack 64 k-bit codes at a time (VPERMB puts the k bytes of codes 8j..8j+7
// into qword j, VPMULTISHIFTQB moves code t to byte t, VPANDQ masks) and
// accumulate code·x_q with VPDPBUSD; the group's int32 lanes are scaled and
// added to a float accumulator, reduced once per row.
TEXT ·q8Rows(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 56(R8), AX
	VMOVDQU64 (AX), Z28
	MOVQ 64(R8), AX
	VMOVDQU64 (AX), Z29
	VPBROADCASTQ 104(R8), Z30
	MOVQ 112(R8), AX
	KMOVW AX, K1
	MOVQ 80(R8), R10
	ADDQ $15, R10
	SHRQ $4, R10
	MOVQ 32(R8), R11
	MOVQ 40(R8), R12
	TESTQ CX, CX
	JZ q8done

q8row:
	VPXORD Z20, Z20, Z20
	MOVQ 48(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 24(R8), BX
	MOVQ R11, AX
	MOVQ R12, DX
	MOVQ R10, R9

q8conv:
	KXNORW K2, K2, K2
	CMPQ R9, $1
	JNE q8convfull
	KMOVW K1, K2

q8convfull:
	VCVTPH2PS.Z (AX), K2, Z0
	VFMADD231PS (R15), Z0, Z20
	VMULPS (R14), Z0, Z0
	VMOVUPS Z0, (R13)
	TESTQ R12, R12
	JZ q8convnext
	VCVTPH2PS.Z (DX), K2, Z1
	VFMADD231PS (BX), Z1, Z20
	ADDQ $32, DX

q8convnext:
	ADDQ $32, AX
	ADDQ $64, R13
	ADDQ $64, R14
	ADDQ $64, R15
	ADDQ $64, BX
	DECQ R9
	JNZ q8conv

	VPXORD Z21, Z21, Z21
	MOVQ 0(R8), R14
	MOVQ 48(R8), R13
	MOVQ SI, AX
	MOVQ 80(R8), R9
	MOVQ 96(R8), BX

q8group:
	VPXORD Z2, Z2, Z2
	VPXORD Z6, Z6, Z6
	MOVQ 88(R8), DX
	TESTQ $1, DX
	JZ q8pair

	// Odd chunk count: one chunk first.
	VPERMB (AX), Z28, Z3
	VPMULTISHIFTQB Z3, Z29, Z3
	VPANDQ Z30, Z3, Z3
	VPDPBUSD (R14), Z3, Z2
	ADDQ BX, AX
	ADDQ $64, R14
	DECQ DX
	JZ q8sum

q8pair:
	// Two chunks into two accumulators (shorter dependency chains).
	PREFETCHT0 2048(AX)
	VPERMB (AX), Z28, Z3
	VPERMB (AX)(BX*1), Z28, Z7
	VPMULTISHIFTQB Z3, Z29, Z3
	VPMULTISHIFTQB Z7, Z29, Z7
	VPANDQ Z30, Z3, Z3
	VPANDQ Z30, Z7, Z7
	VPDPBUSD (R14), Z3, Z2
	VPDPBUSD 64(R14), Z7, Z6
	LEAQ (AX)(BX*2), AX
	ADDQ $128, R14
	SUBQ $2, DX
	JNZ q8pair

q8sum:
	VPADDD Z6, Z2, Z2
	VCVTDQ2PS Z2, Z2
	VFMADD231PS.BCST (R13), Z2, Z21
	ADDQ $4, R13
	DECQ R9
	JNZ q8group

	VADDPS Z20, Z21, Z21
	VEXTRACTF64X4 $1, Z21, Y0
	VADDPS Y21, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ 72(R8), SI
	MOVQ 80(R8), AX
	SHLQ $1, AX
	ADDQ AX, R11
	TESTQ R12, R12
	JZ q8rownext
	ADDQ AX, R12

q8rownext:
	DECQ CX
	JNZ q8row

q8done:
	VZEROUPPER
	RET

// func f32Rows(out *float32, codes *byte, nrows int, a *f32Args)
//
// For each row and group: 8 codes at a time are broadcast, shifted into
// their lanes, masked and looked up in the level table (VPERMPS; two tables
// and a blend for 4-bit codes), then multiplied into two accumulators; the
// group sum is scaled by the fp16 scale; asym offsets add offset·Σx.
TEXT ·f32Rows(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 32(R8), AX
	VMOVUPS (AX), Y10
	VMOVUPS 32(AX), Y11
	MOVQ 40(R8), AX
	VMOVDQU (AX), Y12
	VPBROADCASTD 80(R8), Y13
	MOVQ 16(R8), R11
	MOVQ 24(R8), R12
	MOVQ 72(R8), BX
	TESTQ CX, CX
	JZ fdone

frow:
	VXORPS Y9, Y9, Y9
	VXORPS X8, X8, X8
	MOVQ SI, AX
	MOVQ 0(R8), DX
	MOVQ 56(R8), R9
	MOVQ R11, R13
	MOVQ R12, R14
	MOVQ 8(R8), R15

fgroup:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ 64(R8), R10
	CMPQ 88(R8), $0
	JNE fk4

floop:
	VPBROADCASTD (AX), Y2
	VPSRLVD Y12, Y2, Y2
	VPAND Y13, Y2, Y2
	VPERMPS Y10, Y2, Y3
	VFMADD231PS (DX), Y3, Y0
	ADDQ BX, AX
	VPBROADCASTD (AX), Y4
	VPSRLVD Y12, Y4, Y4
	VPAND Y13, Y4, Y4
	VPERMPS Y10, Y4, Y5
	VFMADD231PS 32(DX), Y5, Y1
	ADDQ BX, AX
	ADDQ $64, DX
	DECQ R10
	JNZ floop
	JMP fscale

fk4:
	VPBROADCASTD (AX), Y2
	VPSRLVD Y12, Y2, Y2
	VPAND Y13, Y2, Y2
	VPERMPS Y10, Y2, Y3
	VPERMPS Y11, Y2, Y6
	VPSLLD $28, Y2, Y2
	VBLENDVPS Y2, Y6, Y3, Y3
	VFMADD231PS (DX), Y3, Y0
	ADDQ BX, AX
	VPBROADCASTD (AX), Y4
	VPSRLVD Y12, Y4, Y4
	VPAND Y13, Y4, Y4
	VPERMPS Y10, Y4, Y5
	VPERMPS Y11, Y4, Y7
	VPSLLD $28, Y4, Y4
	VBLENDVPS Y4, Y7, Y5, Y5
	VFMADD231PS 32(DX), Y5, Y1
	ADDQ BX, AX
	ADDQ $64, DX
	DECQ R10
	JNZ fk4

fscale:
	VADDPS Y1, Y0, Y0
	MOVWLZX (R13), R10
	VMOVD R10, X5
	VCVTPH2PS X5, X5
	VBROADCASTSS X5, Y5
	VFMADD231PS Y5, Y0, Y9
	ADDQ $2, R13
	TESTQ R12, R12
	JZ fnext
	MOVWLZX (R14), R10
	VMOVD R10, X6
	VCVTPH2PS X6, X6
	VFMADD231SS (R15), X6, X8
	ADDQ $2, R14
	ADDQ $4, R15

fnext:
	DECQ R9
	JNZ fgroup
	VEXTRACTF128 $1, Y9, X0
	VADDPS X9, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VADDSS X8, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ 48(R8), SI
	MOVQ 56(R8), AX
	SHLQ $1, AX
	ADDQ AX, R11
	TESTQ R12, R12
	JZ frownext
	ADDQ AX, R12

frownext:
	DECQ CX
	JNZ frow

fdone:
	VZEROUPPER
	RET
