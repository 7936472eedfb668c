// The body of i8Rows and i8RowsVNNI (kernels_i8_amd64.s), included once
// for each: I8MACA + I8MACB (two chunks' products, Y4 · 0(R14) and
// Y6 · 32(R14)) are two VPMADDUBSW summed in int16, one VPMADDWD and a
// VPADDD into Y2 in one, a VPDPBUSD each into Y2 and Y3 (AVX-VNNI) in the
// other; I8MAC1 is one chunk's (Y4) into Y2.
// Labels are local to each TEXT block, so the two copies do not clash.

	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 56(R8), AX
	VMOVDQU 224(AX), Y15
	MOVQ 64(R8), DX
	VMOVDQU (DX), Y14
	CMPQ 104(R8), $4
	JEQ i8tabplane
	CMPQ 104(R8), $2
	JGE i8tabshift
	VMOVDQU 0(AX), Y13
	VMOVDQU 32(AX), Y12
	VMOVDQU 64(AX), Y11
	VMOVDQU 96(AX), Y10
	VMOVDQU 128(AX), Y9
	JMP i8tabdone

	// i8Plane3: Y13 7, Y12 14, Y10 the VPSRLVD counts, Y9 the C table
	// (the level table's entry i/2 at i).
i8tabplane:
	VMOVDQU 256(AX), Y13
	VMOVDQU 480(AX), Y12
	VMOVDQU 352(AX), Y10
	VMOVDQU 384(AX), Y9
	VPSHUFB Y9, Y14, Y9
	JMP i8tabdone

i8tabshift:
	VMOVDQU 160(AX), Y13
	VMOVDQU 192(AX), Y10

i8tabdone:
	MOVQ 32(R8), R11
	MOVQ 40(R8), R12
	TESTQ CX, CX
	JZ i8done
	MOVQ 128(R8), DX
	MOVQ CX, 256(DX)

i8row:
	VXORPS Y1, Y1, Y1
	VXORPS X8, X8, X8
	MOVQ 48(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 24(R8), BX
	MOVQ R11, AX
	MOVQ R12, DX
	MOVQ 80(R8), R9
	SHRQ $3, R9
	JZ i8convtail

i8conv:
	VCVTPH2PS (AX), Y4
	VFMADD231PS (R15), Y4, Y1
	VMULPS (R14), Y4, Y4
	VMOVUPS Y4, (R13)
	TESTQ R12, R12
	JZ i8convnext
	VCVTPH2PS (DX), Y5
	VFMADD231PS (BX), Y5, Y1
	ADDQ $16, DX

i8convnext:
	ADDQ $16, AX
	ADDQ $32, R13
	ADDQ $32, R14
	ADDQ $32, R15
	ADDQ $32, BX
	DECQ R9
	JNZ i8conv

i8convtail:
	MOVQ 80(R8), R9
	ANDQ $7, R9
	JZ i8convdone

i8convone:
	MOVWLZX (AX), R10
	VMOVD R10, X4
	VCVTPH2PS X4, X4
	VFMADD231SS (R15), X4, X8
	VMULSS (R14), X4, X4
	VMOVSS X4, (R13)
	TESTQ R12, R12
	JZ i8convonenext
	MOVWLZX (DX), R10
	VMOVD R10, X5
	VCVTPH2PS X5, X5
	VFMADD231SS (BX), X5, X8
	ADDQ $2, DX

i8convonenext:
	ADDQ $2, AX
	ADDQ $4, R13
	ADDQ $4, R14
	ADDQ $4, R15
	ADDQ $4, BX
	DECQ R9
	JNZ i8convone

i8convdone:
	// sws of the groups up to the next multiple of 8 are zero (I8FLUSH).
	VXORPS Y4, Y4, Y4
	VMOVUPS Y4, (R13)
	MOVQ 128(R8), CX
	VXORPS Y0, Y0, Y0
	MOVQ 112(R8), R15
	MOVQ 120(R8), R10
	MOVQ 0(R8), R14
	MOVQ 48(R8), R13
	MOVQ SI, AX
	MOVQ 80(R8), R9
	MOVQ 96(R8), BX
	MOVQ 104(R8), DX
	CMPQ DX, $0
	JEQ i8gwin
	CMPQ DX, $2
	JEQ i8gnib
	CMPQ DX, $3
	JEQ i8gcrumb
	CMPQ DX, $4
	JEQ i8gplane
	SHRQ $1, BX
	JMP i8gwide

	// k = 3, i8Plane3: per 48-byte block P = (AX) (32 bytes), Q = 32(AX)
	// (16 bytes), the four chunks' level bytes in Y6, Y7, Y4, Y5 times the
	// activations at R14 + 0, 32, 64, 96 (kernels_i8_amd64.go).
i8gplane:
	VPXOR Y2, Y2, Y2
	MOVQ 88(R8), DX
	SHRQ $2, DX
	// The group's first block: I8PLM1F sets Y2 where I8PLM1 adds to it.
	I8PLHEAD
	I8PLM1F
	I8PLTAIL
	JZ i8gplanesum

i8gplane4:
	I8PLHEAD
	I8PLM1
	I8PLTAIL
	JNZ i8gplane4

i8gplanesum:
	I8SUM1
	JNE i8gplanenext
	I8RED

i8gplanenext:
	DECQ R9
	JNZ i8gplane
	JMP i8rowend

	// k = 3 windows.
i8gwin:
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ 88(R8), DX
	SHRQ $1, DX
	JZ i8gwin1

i8gwin2:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8WIN((AX), Y4, Y5)
	I8WIN((AX)(BX*1), Y6, Y7)
	I8MACA
	I8MACB
	LEAQ (AX)(BX*2), AX
	ADDQ $64, R14
	DECQ DX
	JNZ i8gwin2

i8gwin1:
	TESTQ $1, 88(R8)
	JZ i8gwinsum
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8WIN((AX), Y4, Y5)
	I8MAC1
	ADDQ BX, AX
	ADDQ $32, R14

i8gwinsum:
	I8SUM
	JNE i8gwinnext
	I8RED

i8gwinnext:
	DECQ R9
	JNZ i8gwin
	JMP i8rowend

	// k = 4 nibbles.
i8gnib:
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ 88(R8), DX
	SHRQ $1, DX
	JZ i8gnib1

i8gnib2:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8NIB((AX), Y4)
	I8NIB((AX)(BX*1), Y6)
	I8MACA
	I8MACB
	LEAQ (AX)(BX*2), AX
	ADDQ $64, R14
	DECQ DX
	JNZ i8gnib2

i8gnib1:
	TESTQ $1, 88(R8)
	JZ i8gnibsum
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8NIB((AX), Y4)
	I8MAC1
	ADDQ BX, AX
	ADDQ $32, R14

i8gnibsum:
	I8SUM
	JNE i8gnibnext
	I8RED

i8gnibnext:
	DECQ R9
	JNZ i8gnib
	JMP i8rowend

	// k = 2 crumbs.
i8gcrumb:
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ 88(R8), DX
	SHRQ $1, DX
	JZ i8gcrumb1

i8gcrumb2:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8CRUMB((AX), Y4)
	I8CRUMB((AX)(BX*1), Y6)
	I8MACA
	I8MACB
	LEAQ (AX)(BX*2), AX
	ADDQ $64, R14
	DECQ DX
	JNZ i8gcrumb2

i8gcrumb1:
	TESTQ $1, 88(R8)
	JZ i8gcrumbsum
	I8CRUMB((AX), Y4)
	I8MAC1
	ADDQ BX, AX
	ADDQ $32, R14

i8gcrumbsum:
	I8SUM
	JNE i8gcrumbnext
	I8RED

i8gcrumbnext:
	DECQ R9
	JNZ i8gcrumb
	JMP i8rowend

	// k = 5, 6 wide windows, one chunk per step (BX = half a chunk).
i8gwide:
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ 88(R8), DX

i8gwide1:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	I8WIDE(Y4, X4, Y5)
	I8MAC1
	LEAQ (AX)(BX*2), AX
	ADDQ $32, R14
	DECQ DX
	JNZ i8gwide1
	I8SUM
	JNE i8gwidenext
	I8RED

i8gwidenext:
	DECQ R9
	JNZ i8gwide

i8rowend:
	// A last block of fewer than 8 groups: zero sums (and zero sws) for
	// the rest, then the same reduction.
	TESTQ $255, CX
	JZ i8rowsum
	VPXOR Y2, Y2, Y2

i8pad:
	VMOVDQU Y2, (CX)
	ADDQ $32, CX
	ADDQ $4, R13
	TESTQ $255, CX
	JNZ i8pad
	I8RED

i8rowsum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X4
	VADDPS X4, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VADDSS X8, X0, X0
	VMOVSS X0, (DI)
	ADDQ $4, DI
	ADDQ 72(R8), SI
	MOVQ 80(R8), AX
	SHLQ $1, AX
	ADDQ AX, R11
	TESTQ R12, R12
	JZ i8rownext
	ADDQ AX, R12

i8rownext:
	MOVQ 128(R8), DX
	DECQ 256(DX)
	JNZ i8row

i8done:
	VZEROUPPER
	RET
