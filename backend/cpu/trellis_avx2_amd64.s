//go:build amd64

#include "textflag.h"

// The AVX2 trellis kernels, one per bit width (trellis_amd64.go). Register
// use: AX tables (trellisAVX2Tables), SI the tile, R13 the tile's
// activations, R14/R15 the group factors, R11 the group's scales, R9/R10
// tiles left in the band and the group, DI the band's 16 outputs (float
// sums kept in memory); Y13-Y15/Y9 the level pieces, Y7/Y8 (k = 2 also
// Y10/Y11) the int32 row sums, Y6 the activation bytes.
//
// A note for later: CPUs with AVX-VNNI could replace VPMADDUBSW + VPMADDWD
// + VPADDD by one VPDPBUSD (ymm), as the AVX-512 kernel does.

// TLEVMAC(v, l, t, acc): the level bytes l of v = 0x40|idx (piece j fires
// while v+16j < 128; trellisPieces), times the strip's activations in Y6,
// pair sums (int16, exact for bytes ≤ 127) and quad sums (int32) into acc.
#define TLEVMAC(v, l, t, acc) \
	VPSHUFB v, Y13, l; \
	VPADDB 96(AX), v, t; \
	VPSHUFB t, Y14, t; \
	VPXOR t, l, l; \
	VPADDB 128(AX), v, t; \
	VPSHUFB t, Y15, t; \
	VPXOR t, l, l; \
	VPADDB 160(AX), v, t; \
	VPSHUFB t, Y9, t; \
	VPXOR t, l, l; \
	VPMADDUBSW Y6, l, l; \
	VPMADDWD 192(AX), l, l; \
	VPADDD l, acc, acc

// TK4STRIP(acc): k = 4, the strip whose bytes are in Y0 and whose bytes
// shifted by one (the byte before first) are in Y1. Position 2m's window is
// the nibbles lo(m-1), hi(m-1), lo(m) and position 2m+1's hi(m-1), lo(m),
// hi(m): no shifts, six lookups for 64 positions. VPUNPCKLBW/HBW put the
// even and odd positions back in order: rows 0-3 | 8-11 (Y0) and 4-7 |
// 12-15 (Y1).
#define TK4STRIP \
	VPSRLW $4, Y0, Y2; \
	VPAND 224(AX), Y2, Y2; \
	VPAND 224(AX), Y0, Y0; \
	VPSRLW $4, Y1, Y3; \
	VPAND 224(AX), Y3, Y3; \
	VPAND 224(AX), Y1, Y1; \
	VPSHUFB Y1, Y10, Y4; \
	VPSHUFB Y3, Y11, Y5; \
	VPXOR Y5, Y4, Y4; \
	VPSHUFB Y0, Y12, Y5; \
	VPXOR Y5, Y4, Y4; \
	VPSHUFB Y3, Y10, Y3; \
	VPSHUFB Y0, Y11, Y1; \
	VPXOR Y1, Y3, Y3; \
	VPSHUFB Y2, Y12, Y1; \
	VPXOR Y1, Y3, Y3; \
	VPUNPCKLBW Y3, Y4, Y0; \
	VPUNPCKHBW Y3, Y4, Y1; \
	TLEVMAC(Y0, Y2, Y3, Y7); \
	TLEVMAC(Y1, Y2, Y3, Y8)

// func trellisRowsAVX2K4(out *float32, nbands int, a *trellisI8Args)
TEXT ·trellisRowsAVX2K4(SB), NOSPLIT, $16-24
	MOVQ out+0(FP), DI
	MOVQ nbands+8(FP), CX
	MOVQ a+16(FP), R8
	MOVQ 40(R8), AX
	MOVQ 48(R8), DX
	VMOVDQU 0(AX), Y10
	VMOVDQU 32(AX), Y11
	VMOVDQU 64(AX), Y12
	VMOVDQU 0(DX), Y13
	VMOVDQU 32(DX), Y14
	VMOVDQU 64(DX), Y15
	VMOVDQU 96(DX), Y9
	MOVQ 24(R8), R11
	MOVQ R11, 0(SP)
	MOVQ 32(R8), SI
	MOVQ SI, 8(SP)
	TESTQ CX, CX
	JZ k4done

k4band:
	VPXOR Y1, Y1, Y1
	VMOVDQU Y1, (DI)
	VMOVDQU Y1, 32(DI)
	MOVQ 0(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 72(R8), R9
	MOVQ 0(SP), R11
	MOVQ 8(SP), SI

k4group:
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	MOVQ 64(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

k4tile:
	// Strip 0: the byte before the first is the tile's last (tail-biting).
	VMOVDQU (SI), Y0
	VMOVDQU 112(SI), X1
	VPALIGNR $15, X1, X0, X1
	VINSERTI128 $1, 15(SI), Y1, Y1
	VPBROADCASTD (R13), Y6
	TK4STRIP
	VMOVDQU 32(SI), Y0
	VMOVDQU 31(SI), Y1
	VPBROADCASTD 4(R13), Y6
	TK4STRIP
	VMOVDQU 64(SI), Y0
	VMOVDQU 63(SI), Y1
	VPBROADCASTD 8(R13), Y6
	TK4STRIP
	VMOVDQU 96(SI), Y0
	VMOVDQU 95(SI), Y1
	VPBROADCASTD 12(R13), Y6
	TK4STRIP
	ADDQ $128, SI
	ADDQ $16, R13
	DECQ R10
	JNZ k4tile

	// Rows 0-7 and 8-15 from the lane-split sums.
	VPERM2I128 $0x20, Y8, Y7, Y0
	VPERM2I128 $0x31, Y8, Y7, Y8
	VCVTDQ2PS Y0, Y7
	VCVTDQ2PS Y8, Y8
	VBROADCASTSS (R14), Y1
	VBROADCASTSS (R15), Y2
	VFMADD213PS Y2, Y1, Y7
	VFMADD213PS Y2, Y1, Y8
	VCVTPH2PS (R11), Y1
	VCVTPH2PS 16(R11), Y2
	VFMADD213PS (DI), Y1, Y7
	VFMADD213PS 32(DI), Y2, Y8
	VMOVUPS Y7, (DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $4, R14
	ADDQ $4, R15
	ADDQ $32, R11
	TESTQ R9, R9
	JNZ k4group

	ADDQ $64, DI
	MOVQ 8(SP), SI
	ADDQ 88(R8), SI
	MOVQ SI, 8(SP)
	MOVQ 56(R8), AX
	SHLQ $5, AX
	ADDQ AX, 0(SP)
	MOVQ 40(R8), AX
	DECQ CX
	JNZ k4band

k4done:
	VZEROUPPER
	RET

// TG(n, src, dst): dst = k = 2 hash table n looked up at src.
#define TG(n, src, dst) \
	VMOVDQU (256+n*32)(AX), dst; \
	VPSHUFB src, dst, dst

// TGX(n, src, dst): dst ^= hash table n looked up at src (Y6 temporary).
#define TGX(n, src, dst) \
	VMOVDQU (256+n*32)(AX), Y6; \
	VPSHUFB src, Y6, Y6; \
	VPXOR Y6, dst, dst

// TK2BLOCK(xoff): k = 2, the 32 bytes m (two strips, one per lane) in Y0,
// the same one byte earlier in Y2 and two bytes earlier in Y4: the column
// hashes e0-e3 from the nibbles (trellisK2Sources), a 4×4 byte transpose to
// rows 0-3, 4-7, 8-11, 12-15 (lane 0 the first strip, lane 1 the second),
// and the level lookups and products with the strips' activations at
// xoff(R13) into Y7, Y8, Y10, Y11.
#define TK2BLOCK(xoff) \
	VPSRLW $4, Y0, Y1; \
	VPAND 224(AX), Y1, Y1; \
	VPAND 224(AX), Y0, Y0; \
	VPSRLW $4, Y2, Y3; \
	VPAND 224(AX), Y3, Y3; \
	VPAND 224(AX), Y2, Y2; \
	VPSRLW $4, Y4, Y4; \
	VPAND 224(AX), Y4, Y4; \
	TG(0, Y4, Y5); \
	TGX(1, Y2, Y5); \
	TGX(2, Y3, Y5); \
	TGX(3, Y0, Y5); \
	TG(4, Y2, Y4); \
	TGX(5, Y3, Y4); \
	TGX(6, Y0, Y4); \
	TG(7, Y2, Y12); \
	TGX(8, Y3, Y12); \
	TGX(9, Y0, Y12); \
	TGX(10, Y1, Y12); \
	TG(11, Y3, Y2); \
	TGX(12, Y0, Y2); \
	TGX(13, Y1, Y2); \
	VPUNPCKLBW Y4, Y5, Y0; \
	VPUNPCKHBW Y4, Y5, Y1; \
	VPUNPCKLBW Y2, Y12, Y3; \
	VPUNPCKHBW Y2, Y12, Y5; \
	VPUNPCKLWD Y3, Y0, Y2; \
	VPUNPCKHWD Y3, Y0, Y4; \
	VPUNPCKLWD Y5, Y1, Y0; \
	VPUNPCKHWD Y5, Y1, Y1; \
	VPBROADCASTQ xoff(R13), Y6; \
	VMOVDQU 704(AX), Y3; \
	VPERMD Y6, Y3, Y6; \
	TLEVMAC(Y2, Y3, Y5, Y7); \
	TLEVMAC(Y4, Y3, Y5, Y8); \
	TLEVMAC(Y0, Y3, Y5, Y10); \
	TLEVMAC(Y1, Y3, Y5, Y11)

// func trellisRowsAVX2K2(out *float32, nbands int, a *trellisI8Args)
//
// Y10/Y11 hold row sums here; the hash tables are read from memory.
TEXT ·trellisRowsAVX2K2(SB), NOSPLIT, $16-24
	MOVQ out+0(FP), DI
	MOVQ nbands+8(FP), CX
	MOVQ a+16(FP), R8
	MOVQ 40(R8), AX
	MOVQ 48(R8), DX
	VMOVDQU 0(DX), Y13
	VMOVDQU 32(DX), Y14
	VMOVDQU 64(DX), Y15
	VMOVDQU 96(DX), Y9
	MOVQ 24(R8), R11
	MOVQ R11, 0(SP)
	MOVQ 32(R8), SI
	MOVQ SI, 8(SP)
	TESTQ CX, CX
	JZ k2done

k2band:
	VPXOR Y1, Y1, Y1
	VMOVDQU Y1, (DI)
	VMOVDQU Y1, 32(DI)
	MOVQ 0(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 72(R8), R9
	MOVQ 0(SP), R11
	MOVQ 8(SP), SI

k2group:
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11
	MOVQ 64(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

k2tile:
	// Block 0: the bytes before the first are the tile's last (tail-biting).
	VMOVDQU (SI), Y0
	VMOVDQU 48(SI), X1
	VPALIGNR $15, X1, X0, X2
	VINSERTI128 $1, 15(SI), Y2, Y2
	VPALIGNR $14, X1, X0, X4
	VINSERTI128 $1, 14(SI), Y4, Y4
	TK2BLOCK(0)
	VMOVDQU 32(SI), Y0
	VMOVDQU 31(SI), Y2
	VMOVDQU 30(SI), Y4
	TK2BLOCK(8)
	ADDQ $64, SI
	ADDQ $16, R13
	DECQ R10
	JNZ k2tile

	// Rows 0-7 and 8-15: the two lanes (strips) of each row sum added.
	VPERM2I128 $0x20, Y8, Y7, Y0
	VPERM2I128 $0x31, Y8, Y7, Y1
	VPADDD Y1, Y0, Y7
	VPERM2I128 $0x20, Y11, Y10, Y0
	VPERM2I128 $0x31, Y11, Y10, Y1
	VPADDD Y1, Y0, Y8
	VCVTDQ2PS Y7, Y7
	VCVTDQ2PS Y8, Y8
	VBROADCASTSS (R14), Y1
	VBROADCASTSS (R15), Y2
	VFMADD213PS Y2, Y1, Y7
	VFMADD213PS Y2, Y1, Y8
	VCVTPH2PS (R11), Y1
	VCVTPH2PS 16(R11), Y2
	VFMADD213PS (DI), Y1, Y7
	VFMADD213PS 32(DI), Y2, Y8
	VMOVUPS Y7, (DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $4, R14
	ADDQ $4, R15
	ADDQ $32, R11
	TESTQ R9, R9
	JNZ k2group

	ADDQ $64, DI
	MOVQ 8(SP), SI
	ADDQ 88(R8), SI
	MOVQ SI, 8(SP)
	MOVQ 56(R8), AX
	SHLQ $5, AX
	ADDQ AX, 0(SP)
	MOVQ 40(R8), AX
	DECQ CX
	JNZ k2band

k2done:
	VZEROUPPER
	RET

// TK3SYM(off, n): the 32 symbols of the chunk at off(SI) in order into n
// (the dense 3-bit unpacking, which leaves each pair swapped, then a
// swap).
#define TK3SYM(off, n) \
	VBROADCASTI128 off(SI), Y0; \
	VPSHUFB 896(AX), Y0, Y1; \
	VPMULHUW 928(AX), Y1, Y2; \
	VPMULLW 960(AX), Y1, Y1; \
	VPAND 992(AX), Y2, Y2; \
	VPAND 1024(AX), Y1, Y1; \
	VPOR Y2, Y1, n; \
	VPSHUFB 864(AX), n, n

// TK3LAG(n, d): v (Y3) ^= lag table d looked up at the symbols d
// positions back: VPALIGNR of the chunk's symbols (n) with M (Y0 = the
// previous chunk's second lane, the chunk's first).
#define TK3LAG(n, d) \
	VPALIGNR $(16-d), Y0, n, Y1; \
	VMOVDQU (736+d*32)(AX), Y2; \
	VPSHUFB Y1, Y2, Y2; \
	VPXOR Y2, Y3, Y3

// TK3CHUNK(off, p, n, acc): the chunk at off(SI) (its symbols into n, the
// previous chunk's in p) into acc, with the activations in Y6.
#define TK3CHUNK(off, p, n, acc) \
	TK3SYM(off, n); \
	VPERM2I128 $0x21, n, p, Y0; \
	VMOVDQU 736(AX), Y3; \
	VPSHUFB n, Y3, Y3; \
	TK3LAG(n, 1); \
	TK3LAG(n, 2); \
	TK3LAG(n, 3); \
	TLEVMAC(Y3, Y4, Y5, acc)

// func trellisRowsAVX2K3(out *float32, nbands int, a *trellisI8Args)
TEXT ·trellisRowsAVX2K3(SB), NOSPLIT, $16-24
	MOVQ out+0(FP), DI
	MOVQ nbands+8(FP), CX
	MOVQ a+16(FP), R8
	MOVQ 40(R8), AX
	MOVQ 48(R8), DX
	VMOVDQU 0(DX), Y13
	VMOVDQU 32(DX), Y14
	VMOVDQU 64(DX), Y15
	VMOVDQU 96(DX), Y9
	MOVQ 24(R8), R11
	MOVQ R11, 0(SP)
	MOVQ 32(R8), SI
	MOVQ SI, 8(SP)
	TESTQ CX, CX
	JZ k3done

k3band:
	VPXOR Y1, Y1, Y1
	VMOVDQU Y1, (DI)
	VMOVDQU Y1, 32(DI)
	MOVQ 0(R8), R13
	MOVQ 8(R8), R14
	MOVQ 16(R8), R15
	MOVQ 72(R8), R9
	MOVQ 0(SP), R11
	MOVQ 8(SP), SI

k3group:
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	MOVQ 64(R8), R10
	CMPQ R10, R9
	CMOVQGT R9, R10
	SUBQ R10, R9

k3tile:
	// The symbols before chunk 0 are chunk 7's (tail-biting).
	TK3SYM(84, Y11)
	VPBROADCASTD (R13), Y6
	TK3CHUNK(0, Y11, Y10, Y7)
	TK3CHUNK(12, Y10, Y11, Y8)
	VPBROADCASTD 4(R13), Y6
	TK3CHUNK(24, Y11, Y10, Y7)
	TK3CHUNK(36, Y10, Y11, Y8)
	VPBROADCASTD 8(R13), Y6
	TK3CHUNK(48, Y11, Y10, Y7)
	TK3CHUNK(60, Y10, Y11, Y8)
	VPBROADCASTD 12(R13), Y6
	TK3CHUNK(72, Y11, Y10, Y7)
	TK3CHUNK(84, Y10, Y11, Y8)
	ADDQ $96, SI
	ADDQ $16, R13
	DECQ R10
	JNZ k3tile

	VCVTDQ2PS Y7, Y7
	VCVTDQ2PS Y8, Y8
	VBROADCASTSS (R14), Y1
	VBROADCASTSS (R15), Y2
	VFMADD213PS Y2, Y1, Y7
	VFMADD213PS Y2, Y1, Y8
	VCVTPH2PS (R11), Y1
	VCVTPH2PS 16(R11), Y2
	VFMADD213PS (DI), Y1, Y7
	VFMADD213PS 32(DI), Y2, Y8
	VMOVUPS Y7, (DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $4, R14
	ADDQ $4, R15
	ADDQ $32, R11
	TESTQ R9, R9
	JNZ k3group

	ADDQ $64, DI
	MOVQ 8(SP), SI
	ADDQ 88(R8), SI
	MOVQ SI, 8(SP)
	MOVQ 56(R8), AX
	SHLQ $5, AX
	ADDQ AX, 0(SP)
	MOVQ 40(R8), AX
	DECQ CX
	JNZ k3band

k3done:
	VZEROUPPER
	RET
