// The body of i8Tile and i8TileVNNI (kernels_i8_amd64.s), included once for
// each: I8TDOTS is VPMADDUBSW + VPMADDWD + VPADDD per token in one and
// VPDPBUSD (AVX-VNNI) in the other; I8TPLANE and I8TPLANE1 (i8Plane3
// blocks) multiply two chunks per token step, summed in int16, in one and
// run I8TDOTS per chunk in the other; the ...2 macros do the same for the
// first 2 tokens (tiles of at most 2 valid tokens). Labels are local to
// each TEXT block.
//
// Registers: DI out, SI the row's codes, R8 args, R10 scratch, R11 the
// row's fp16 scales; in the group loop AX codes, BX chunk stride, DX chunks
// left, R9 groups left, CX scale pointer, R12 the float sum slot of the
// group (32·(g mod 8)), R13 the group's scale·pv[g] (sws, written by the
// pre-pass), R14 activations, R15 unpack tables, Y14
// level table, Y15 int16 ones, Y0-Y7 the 8 tokens' int32 sums, Y8/Y9
// unpacked codes and temporaries. Each chunk step prefetches the
// activations 4 chunks ahead into L1 (a tile's activations, 8 bytes per
// column, outgrow L1 at 17920 columns: +6-8% there).
//
// Vectors here run over the tile's 8 tokens. Scratch (R10): 0 F_j, the
// float sums of groups ≡ j mod 8 (i8Rows' lane j of Y0); 256 B_j, the β and
// offset terms (i8Rows' lane j of Y1); 512 T, the tail β (i8Rows' X8); 544
// the outputs; 576 rows left; 584 the row's fp16 offsets or 0.

	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 48(R8), R15
	VMOVDQU 224(R15), Y15
	MOVQ 56(R8), AX
	VMOVDQU (AX), Y14
	// i8Plane3 (zeros for other tables): Y10 the VPSRLVD counts, Y11 14,
	// Y12 7, Y13 the C table.
	VMOVDQU 352(R15), Y10
	VMOVDQU 480(R15), Y11
	VMOVDQU 256(R15), Y12
	VMOVDQU 384(R15), Y13
	VPSHUFB Y13, Y14, Y13
	MOVQ 32(R8), R11
	MOVQ 40(R8), R12
	MOVQ 120(R8), R10
	TESTQ CX, CX
	JZ i8tdone
	MOVQ CX, 576(R10)
	MOVQ R12, 584(R10)

i8trow:
	// β pre-pass: B_j in Y0-Y7 over blocks of 8 groups (scale·qv, then
	// offset·xb, per group as i8Rows' conversion loop), the rest into T (Y8);
	// the groups' factors scale·pv[g] (8 tokens) into the sws scratch.
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	MOVQ R11, AX
	MOVQ 584(R10), DX
	MOVQ 16(R8), BX
	MOVQ 24(R8), R9
	MOVQ 8(R8), R13
	MOVQ 128(R8), R14
	MOVQ 72(R8), CX
	SHRQ $3, CX
	JZ i8tbtail

i8tbblk:
	VPBROADCASTW 0(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 0(BX), Y9, Y0
	VMULPS 0(R13), Y9, Y9
	VMOVUPS Y9, 0(R14)
	VPBROADCASTW 2(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 32(BX), Y9, Y1
	VMULPS 32(R13), Y9, Y9
	VMOVUPS Y9, 32(R14)
	VPBROADCASTW 4(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 64(BX), Y9, Y2
	VMULPS 64(R13), Y9, Y9
	VMOVUPS Y9, 64(R14)
	VPBROADCASTW 6(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 96(BX), Y9, Y3
	VMULPS 96(R13), Y9, Y9
	VMOVUPS Y9, 96(R14)
	VPBROADCASTW 8(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 128(BX), Y9, Y4
	VMULPS 128(R13), Y9, Y9
	VMOVUPS Y9, 128(R14)
	VPBROADCASTW 10(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 160(BX), Y9, Y5
	VMULPS 160(R13), Y9, Y9
	VMOVUPS Y9, 160(R14)
	VPBROADCASTW 12(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 192(BX), Y9, Y6
	VMULPS 192(R13), Y9, Y9
	VMOVUPS Y9, 192(R14)
	VPBROADCASTW 14(AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 224(BX), Y9, Y7
	VMULPS 224(R13), Y9, Y9
	VMOVUPS Y9, 224(R14)
	TESTQ DX, DX
	JZ i8tbnext
	VPBROADCASTW 0(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 0(R9), Y9, Y0
	VPBROADCASTW 2(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 32(R9), Y9, Y1
	VPBROADCASTW 4(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 64(R9), Y9, Y2
	VPBROADCASTW 6(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 96(R9), Y9, Y3
	VPBROADCASTW 8(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 128(R9), Y9, Y4
	VPBROADCASTW 10(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 160(R9), Y9, Y5
	VPBROADCASTW 12(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 192(R9), Y9, Y6
	VPBROADCASTW 14(DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS 224(R9), Y9, Y7
	ADDQ $16, DX

i8tbnext:
	ADDQ $16, AX
	ADDQ $256, BX
	ADDQ $256, R9
	ADDQ $256, R13
	ADDQ $256, R14
	DECQ CX
	JNZ i8tbblk

i8tbtail:
	MOVQ 72(R8), CX
	ANDQ $7, CX
	JZ i8tbdone

i8tbone:
	VPBROADCASTW (AX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS (BX), Y9, Y8
	VMULPS (R13), Y9, Y9
	VMOVUPS Y9, (R14)
	TESTQ DX, DX
	JZ i8tbonenext
	VPBROADCASTW (DX), X9
	VCVTPH2PS X9, Y9
	VFMADD231PS (R9), Y9, Y8
	ADDQ $2, DX

i8tbonenext:
	ADDQ $2, AX
	ADDQ $32, BX
	ADDQ $32, R9
	ADDQ $32, R13
	ADDQ $32, R14
	DECQ CX
	JNZ i8tbone

i8tbdone:
	VMOVUPS Y0, 256(R10)
	VMOVUPS Y1, 288(R10)
	VMOVUPS Y2, 320(R10)
	VMOVUPS Y3, 352(R10)
	VMOVUPS Y4, 384(R10)
	VMOVUPS Y5, 416(R10)
	VMOVUPS Y6, 448(R10)
	VMOVUPS Y7, 480(R10)
	VMOVUPS Y8, 512(R10)
	VXORPS Y0, Y0, Y0
	VMOVUPS Y0, 0(R10)
	VMOVUPS Y0, 32(R10)
	VMOVUPS Y0, 64(R10)
	VMOVUPS Y0, 96(R10)
	VMOVUPS Y0, 128(R10)
	VMOVUPS Y0, 160(R10)
	VMOVUPS Y0, 192(R10)
	VMOVUPS Y0, 224(R10)

	MOVQ SI, AX
	MOVQ 0(R8), R14
	MOVQ 128(R8), R13
	MOVQ R11, CX
	XORQ R12, R12
	MOVQ 72(R8), R9
	MOVQ 88(R8), BX
	CMPQ 96(R8), $1
	JNE i8tgroup
	SHRQ $1, BX

i8tgroup:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7
	MOVQ 80(R8), DX
	CMPQ 112(R8), $2
	JLE i8tgroup2
	CMPQ 96(R8), $0
	JEQ i8twin
	CMPQ 96(R8), $2
	JEQ i8tnib
	CMPQ 96(R8), $3
	JEQ i8tcrumb
	CMPQ 96(R8), $4
	JEQ i8tplane

i8twide:
	PREFETCHT0 1024(R14)
	PREFETCHT0 1088(R14)
	PREFETCHT0 1152(R14)
	PREFETCHT0 1216(R14)
	I8TWIDE
	I8TDOTS
	LEAQ (AX)(BX*2), AX
	DECQ DX
	JNZ i8twide
	JMP i8tscale

i8twin:
	PREFETCHT0 1024(R14)
	PREFETCHT0 1088(R14)
	PREFETCHT0 1152(R14)
	PREFETCHT0 1216(R14)
	I8TWIN
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8twin
	JMP i8tscale

i8tnib:
	PREFETCHT0 1024(R14)
	PREFETCHT0 1088(R14)
	PREFETCHT0 1152(R14)
	PREFETCHT0 1216(R14)
	I8TNIB
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8tnib
	JMP i8tscale

	// i8Plane3: a 48-byte block's four chunks per step (kernels_i8_amd64.go).
i8tplane:
	SHRQ $2, DX
	// The group's first block: I8TPLANE1 may set the accumulators.
	I8TPLANE1
	ADDQ $48, AX
	DECQ DX
	JZ i8tscale

i8tplane4:
	I8TPLANE
	ADDQ $48, AX
	DECQ DX
	JNZ i8tplane4
	JMP i8tscale

i8tcrumb:
	PREFETCHT0 1024(R14)
	PREFETCHT0 1088(R14)
	PREFETCHT0 1152(R14)
	PREFETCHT0 1216(R14)
	I8TCRUMB
	I8TDOTS
	ADDQ BX, AX
	DECQ DX
	JNZ i8tcrumb

	JMP i8tscale

	// Tiles of 1 or 2 valid tokens: the same loops with the first 2
	// tokens' products only (I8TDOTS2, I8TPLANE2); the same arithmetic per
	// token.
i8tgroup2:
	CMPQ 96(R8), $0
	JEQ i8twin2
	CMPQ 96(R8), $2
	JEQ i8tnib2
	CMPQ 96(R8), $3
	JEQ i8tcrumb2
	CMPQ 96(R8), $4
	JEQ i8tplane2

i8twide2:
	PREFETCHT0 1024(R14)
	I8TWIDE
	I8TDOTS2
	LEAQ (AX)(BX*2), AX
	DECQ DX
	JNZ i8twide2
	JMP i8tscale2

i8twin2:
	PREFETCHT0 1024(R14)
	I8TWIN
	I8TDOTS2
	ADDQ BX, AX
	DECQ DX
	JNZ i8twin2
	JMP i8tscale2

i8tnib2:
	PREFETCHT0 1024(R14)
	I8TNIB
	I8TDOTS2
	ADDQ BX, AX
	DECQ DX
	JNZ i8tnib2
	JMP i8tscale2

i8tplane2:
	SHRQ $2, DX
	I8TPLANE12
	ADDQ $48, AX
	DECQ DX
	JZ i8tscale2

i8tplane42:
	I8TPLANE2
	ADDQ $48, AX
	DECQ DX
	JNZ i8tplane42
	JMP i8tscale2

i8tcrumb2:
	PREFETCHT0 1024(R14)
	I8TCRUMB
	I8TDOTS2
	ADDQ BX, AX
	DECQ DX
	JNZ i8tcrumb2

	// The 2 tokens' group dots: each token's lanes summed (exact int32
	// sums, as the 8-token tree's), then the same conversion and
	// multiply-add into F_j (i8tscaleadd); lanes 2-7 carry copies nothing
	// reads.
i8tscale2:
	VPHADDD Y1, Y0, Y0
	VPHADDD Y0, Y0, Y0
	VPERM2I128 $0x01, Y0, Y0, Y2
	VPADDD Y2, Y0, Y2
	JMP i8tscaleadd


i8tscale:
	// The 8 tokens' group dots (exact int32 sums of their lanes, the
	// VPHADDD tree of I8RED) times sws = scale·pv[g][t] into F_j.
	VPHADDD Y1, Y0, Y0
	VPHADDD Y3, Y2, Y2
	VPHADDD Y5, Y4, Y4
	VPHADDD Y7, Y6, Y6
	VPHADDD Y2, Y0, Y0
	VPHADDD Y6, Y4, Y4
	VPERM2I128 $0x20, Y4, Y0, Y2
	VPERM2I128 $0x31, Y4, Y0, Y3
	VPADDD Y3, Y2, Y2

i8tscaleadd:
	VCVTDQ2PS Y2, Y2
	VMOVUPS (R13), Y9
	VFMADD213PS (R10)(R12*1), Y9, Y2
	VMOVUPS Y2, (R10)(R12*1)
	ADDQ $32, R12
	ANDQ $255, R12
	ADDQ $2, CX
	ADDQ $32, R13
	DECQ R9
	JNZ i8tgroup

	// i8Rows' reduction, lane by lane: V_j = F_j + B_j, V_i + V_(i+4),
	// (W0 + W1) + (W2 + W3), + T.
	VMOVUPS 0(R10), Y0
	VADDPS 256(R10), Y0, Y0
	VMOVUPS 32(R10), Y1
	VADDPS 288(R10), Y1, Y1
	VMOVUPS 64(R10), Y2
	VADDPS 320(R10), Y2, Y2
	VMOVUPS 96(R10), Y3
	VADDPS 352(R10), Y3, Y3
	VMOVUPS 128(R10), Y4
	VADDPS 384(R10), Y4, Y4
	VMOVUPS 160(R10), Y5
	VADDPS 416(R10), Y5, Y5
	VMOVUPS 192(R10), Y6
	VADDPS 448(R10), Y6, Y6
	VMOVUPS 224(R10), Y7
	VADDPS 480(R10), Y7, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VADDPS 512(R10), Y0, Y0
	VMOVUPS Y0, 544(R10)
	MOVQ DI, DX
	XORQ CX, CX

i8tout:
	MOVL 544(R10)(CX*4), AX
	MOVL AX, (DX)
	ADDQ 104(R8), DX
	INCQ CX
	CMPQ CX, 112(R8)
	JLT i8tout

	ADDQ $4, DI
	ADDQ 64(R8), SI
	MOVQ 72(R8), AX
	SHLQ $1, AX
	ADDQ AX, R11
	CMPQ 584(R10), $0
	JEQ i8tnextrow
	ADDQ AX, 584(R10)

i8tnextrow:
	DECQ 576(R10)
	JNZ i8trow

i8tdone:
	VZEROUPPER
	RET
