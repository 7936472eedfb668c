//go:build amd64

#include "textflag.h"

// AVX2 integer kernels (kernels_i8.go): VPMADDUBSW + VPMADDWD with int8
// activations, codes unpacked 32 at a time by table (i8Tables).

// I8WIN(addr, r, t): 32 codes of a k ≤ 4 window chunk at addr into level
// bytes in r (Y13 ctl, Y12 mulA, Y11 mulB, Y10 maskA, Y9 maskB, Y14 level
// table). Each word w of the window becomes (w >> sA) & maskA in its low
// byte and (w << (8 − sB)) & maskB in its high byte.
#define I8WIN(addr, r, t) \
	VBROADCASTI128 addr, r; \
	VPSHUFB Y13, r, r; \
	VPMULHUW Y12, r, t; \
	VPMULLW Y11, r, r; \
	VPAND Y10, t, t; \
	VPAND Y9, r, r; \
	VPOR t, r, r; \
	VPSHUFB r, Y14, r

// I8WIDE(r, x, t): the same for k = 5, 6 (linear levels, no table): lane 0
// from (AX), lane 1 from (AX)(BX*1), BX = 2k.
#define I8WIDE(r, x, t) \
	VMOVDQU (AX), x; \
	VINSERTI128 $1, (AX)(BX*1), r, r; \
	VPSHUFB Y13, r, r; \
	VPMULHUW Y12, r, t; \
	VPMULLW Y11, r, r; \
	VPAND Y10, t, t; \
	VPAND Y9, r, r; \
	VPOR t, r, r

// I8NIB(addr, r): 32 4-bit codes (Y13 shift counts 0×4, 4×4; Y10 mask).
#define I8NIB(addr, r) \
	VBROADCASTI128 addr, r; \
	VPSRLVD Y13, r, r; \
	VPAND Y10, r, r; \
	VPSHUFB r, Y14, r

// I8CRUMB(addr, r): 32 2-bit codes from 8 bytes (shift counts 0,0,2,2,4,4,6,6).
#define I8CRUMB(addr, r) \
	VPBROADCASTQ addr, r; \
	VPSRLVD Y13, r, r; \
	VPAND Y10, r, r; \
	VPSHUFB r, Y14, r

// I8MACA, I8MACB: Y2 += Y4 · 0(R14) and Y3 += Y6 · 32(R14), the int32
// sums of 4 adjacent products of level bytes (unsigned) and activations
// (signed). Here by VPMADDUBSW (pairs to int16, which saturates: level bytes
// ≤ 127), VPMADDWD with Y15 = int16 ones (pairs to int32) and VPADDD; for
// i8RowsVNNI below by one VPDPBUSD.
#define I8MACA \
	VPMADDUBSW 0(R14), Y4, Y4; \
	VPMADDWD Y15, Y4, Y4; \
	VPADDD Y4, Y2, Y2

#define I8MACB \
	VPMADDUBSW 32(R14), Y6, Y6; \
	VPMADDWD Y15, Y6, Y6; \
	VPADDD Y6, Y3, Y3

// I8SUM: the group's int32 sums (Y2 + Y3) times its factor sws[g] into Y0.
#define I8SUM \
	VPADDD Y3, Y2, Y2; \
	VCVTDQ2PS Y2, Y2; \
	VBROADCASTSS (R13), Y4; \
	VFMADD231PS Y4, Y2, Y0; \
	ADDQ $4, R13

// func i8Rows(out *float32, codes *byte, nrows int, a *i8Args)
//
// Per row: convert the fp16 scales 8 at a time, premultiplied by the
// per-group activation factors (sws), and accumulate the β and offset terms;
// then per group, unpack two 32-code chunks per step, multiply-accumulate
// into two int32 accumulators, convert and scale into the float sum.
// Every code line is prefetched at two distances as in q8Rows (a step reads
// 8·bits ≤ 48 bytes, so one line per step covers them all).
TEXT ·i8Rows(SB), NOSPLIT, $0-32
#include "kernels_i8_rows_amd64.h"

// AVX-VNNI (VEX-encoded VPDPBUSD ymm; Alder Lake and later, Zen 5): one
// instruction per 32 products instead of three, and no int16 intermediate,
// so level bytes may use 0..255. Go's assembler knows only the EVEX form
// (AVX-512 VNNI), hence the bytes: C4 (3-byte VEX), R̄X̄B̄·mmmmm (0F38),
// W0·v̄v̄v̄v̄·L1·pp (66), opcode 50, ModRM (reg = accumulator, rm = R14), disp8.
#undef I8MACA
#undef I8MACB
// I8MACA: VPDPBUSD (R14), Y4, Y2
#define I8MACA \
	BYTE $0xc4; BYTE $0xc2; BYTE $0x5d; BYTE $0x50; BYTE $0x16

// I8MACB: VPDPBUSD 32(R14), Y6, Y3
#define I8MACB \
	BYTE $0xc4; BYTE $0xc2; BYTE $0x4d; BYTE $0x50; BYTE $0x5e; BYTE $0x20

// func i8RowsVNNI(out *float32, codes *byte, nrows int, a *i8Args)
//
// i8Rows with VPDPBUSD: the same unpacking, accumulation order and scaling.
TEXT ·i8RowsVNNI(SB), NOSPLIT, $0-32
#include "kernels_i8_rows_amd64.h"

// Tile unpack macros: tables as memory operands at (R15).
#define I8TWIN \
	VBROADCASTI128 (AX), Y8; \
	VPSHUFB (R15), Y8, Y8; \
	VPMULHUW 32(R15), Y8, Y9; \
	VPMULLW 64(R15), Y8, Y8; \
	VPAND 96(R15), Y9, Y9; \
	VPAND 128(R15), Y8, Y8; \
	VPOR Y9, Y8, Y8; \
	VPSHUFB Y8, Y14, Y8

#define I8TWIDE \
	VMOVDQU (AX), X8; \
	VINSERTI128 $1, (AX)(BX*1), Y8, Y8; \
	VPSHUFB (R15), Y8, Y8; \
	VPMULHUW 32(R15), Y8, Y9; \
	VPMULLW 64(R15), Y8, Y8; \
	VPAND 96(R15), Y9, Y9; \
	VPAND 128(R15), Y8, Y8; \
	VPOR Y9, Y8, Y8

#define I8TNIB \
	VBROADCASTI128 (AX), Y8; \
	VPSRLVD 160(R15), Y8, Y8; \
	VPAND 192(R15), Y8, Y8; \
	VPSHUFB Y8, Y14, Y8

#define I8TCRUMB \
	VPBROADCASTQ (AX), Y8; \
	VPSRLVD 160(R15), Y8, Y8; \
	VPAND 192(R15), Y8, Y8; \
	VPSHUFB Y8, Y14, Y8

// I8TDOT(off, acc): token off/32's activations of the chunk times Y8.
#define I8TDOT(off, acc) \
	VPMADDUBSW off(R14), Y8, Y9; \
	VPMADDWD Y15, Y9, Y9; \
	VPADDD Y9, acc, acc

#define I8TDOTS \
	I8TDOT(0, Y0); \
	I8TDOT(32, Y1); \
	I8TDOT(64, Y2); \
	I8TDOT(96, Y3); \
	I8TDOT(128, Y4); \
	I8TDOT(160, Y5); \
	I8TDOT(192, Y6); \
	I8TDOT(224, Y7); \
	ADDQ $256, R14

#define I8TZERO \
	VPXOR Y0, Y0, Y0; \
	VPXOR Y1, Y1, Y1; \
	VPXOR Y2, Y2, Y2; \
	VPXOR Y3, Y3, Y3; \
	VPXOR Y4, Y4, Y4; \
	VPXOR Y5, Y5, Y5; \
	VPXOR Y6, Y6, Y6; \
	VPXOR Y7, Y7, Y7; \
	MOVQ 80(R8), DX

// func i8Tile(out *float32, codes *byte, nrows int, a *i8TileArgs)
//
// The prefill kernel: each 32-code chunk is unpacked once and multiplied
// with 8 tokens' activations (token t's 32 bytes of chunk c at (8c+t)·32)
// into 8 int32 accumulators; per group they are reduced to one vector of
// 8 token sums (VPHADDD tree), converted, scaled by pv[g][t], plus qv[g][t],
// times the group's scale (and offset·xb[g][t]) into Y11.
TEXT ·i8Tile(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 48(R8), R15
	VMOVDQU 224(R15), Y15
	MOVQ 56(R8), AX
	VMOVDQU (AX), Y14
	MOVQ 32(R8), R11
	MOVQ 40(R8), R12
	MOVQ 120(R8), R10
	MOVQ 88(R8), BX
	CMPQ 96(R8), $1
	JNE i8tbx
	SHRQ $1, BX

i8tbx:
	TESTQ CX, CX
	JZ i8tdone

i8trow:
	VXORPS Y11, Y11, Y11
	MOVQ SI, AX
	MOVQ 0(R8), R14
	XORQ R13, R13
	MOVQ 72(R8), R9

i8tgroup:
	I8TZERO
	CMPQ 96(R8), $0
	JEQ i8twin
	CMPQ 96(R8), $2
	JEQ i8tnib
	CMPQ 96(R8), $3
	JEQ i8tcrumb

i8twide:
	I8TWIDE
	I8TDOTS
	LEAQ (AX)(BX*2), AX
	DECQ DX
	JNZ i8twide
	JMP i8tscale

i8twin:
	I8TWIN
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8twin
	JMP i8tscale

i8tnib:
	I8TNIB
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8tnib
	JMP i8tscale

i8tcrumb:
	I8TCRUMB
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8tcrumb

i8tscale:
	VPHADDD Y1, Y0, Y0
	VPHADDD Y3, Y2, Y2
	VPHADDD Y5, Y4, Y4
	VPHADDD Y7, Y6, Y6
	VPHADDD Y2, Y0, Y0
	VPHADDD Y6, Y4, Y4
	VPERM2I128 $0x20, Y4, Y0, Y2
	VPERM2I128 $0x31, Y4, Y0, Y3
	VPADDD Y3, Y2, Y2
	VCVTDQ2PS Y2, Y2
	MOVQ 16(R8), DX
	VMOVUPS (DX)(R13*1), Y3
	MOVQ 8(R8), DX
	VFMADD231PS (DX)(R13*1), Y2, Y3
	VPBROADCASTW (R11), Y4
	VCVTPH2PS X4, Y4
	VFMADD231PS Y4, Y3, Y11
	ADDQ $2, R11
	TESTQ R12, R12
	JZ i8tnooff
	VPBROADCASTW (R12), Y5
	VCVTPH2PS X5, Y5
	MOVQ 24(R8), DX
	VFMADD231PS (DX)(R13*1), Y5, Y11
	ADDQ $2, R12

i8tnooff:
	ADDQ $32, R13
	DECQ R9
	JNZ i8tgroup

	VMOVUPS Y11, (R10)
	MOVQ DI, DX
	MOVQ 112(R8), R9
	XORQ R13, R13

i8tout:
	MOVL (R10)(R13*4), AX
	MOVL AX, (DX)
	ADDQ 104(R8), DX
	INCQ R13
	CMPQ R13, R9
	JLT i8tout

	ADDQ $4, DI
	ADDQ 64(R8), SI
	DECQ CX
	JNZ i8trow

i8tdone:
	VZEROUPPER
	RET
