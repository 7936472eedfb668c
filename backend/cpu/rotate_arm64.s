//go:build arm64

#include "textflag.h"

// func fwhtNEON(x *float32, n int, signs *float32, tbl *float32, scale float32)
//
// x[:n] ← H_n·(signs ⊙ x[:n])·scale (the orthonormal Sylvester Hadamard
// transform; n a power of two ≥ 4). Pass 1 scales each 4-float vector by
// signs·scale and applies the stages h = 1, 2 within it (v ← perm_h(v) +
// sign_h·v: REV64 swaps neighbours, EXT #8 the halves; tbl holds sign_1 and
// sign_2); pass 2 runs h = 4..n/2 as add/sub of vector pairs h floats apart.
// FMUL, FADD, FSUB and REV64 on vectors are WORD-encoded.
TEXT ·fwhtNEON(SB), NOSPLIT, $0-36
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	MOVD signs+16(FP), R2
	MOVD tbl+24(FP), R3
	FMOVS scale+32(FP), F7
	VDUP V7.S[0], V7.S4
	VLD1 (R3), [V5.S4, V6.S4]
	MOVD R0, R4
	MOVD R1, R5

fp1:
	VLD1.P 16(R2), [V1.S4]
	VLD1 (R4), [V0.S4]
	WORD $0x6e27dc21 // FMUL V1.4S, V1.4S, V7.4S
	WORD $0x6e21dc00 // FMUL V0.4S, V0.4S, V1.4S
	WORD $0x4ea00802 // REV64 V2.4S, V0.4S
	VFMLA V5.S4, V0.S4, V2.S4
	VEXT $8, V2.B16, V2.B16, V3.B16
	VFMLA V6.S4, V2.S4, V3.S4
	VST1.P [V3.S4], 16(R4)
	SUBS $4, R5, R5
	BNE fp1

	MOVD $4, R6           // h in floats
	LSL $2, R1, R8        // n in bytes

fp2h:
	LSL $2, R6, R7        // h in bytes
	CMP R8, R7
	BGE fdone
	MOVD R0, R9           // block start
	ADD R0, R8, R10       // end

fp2blk:
	MOVD R9, R11
	ADD R9, R7, R13
	MOVD R6, R12

fp2:
	VLD1 (R11), [V0.S4]
	VLD1 (R13), [V1.S4]
	WORD $0x4e21d402 // FADD V2.4S, V0.4S, V1.4S
	WORD $0x4ea1d403 // FSUB V3.4S, V0.4S, V1.4S
	VST1.P [V2.S4], 16(R11)
	VST1.P [V3.S4], 16(R13)
	SUBS $4, R12, R12
	BNE fp2
	ADD R7, R9, R9
	ADD R7, R9, R9
	CMP R10, R9
	BLT fp2blk
	LSL $1, R6, R6
	B fp2h

fdone:
	RET
