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

// I8MACA, I8MACB: the products of two chunks, level bytes (unsigned) in Y4
// and Y6 times the activations (signed) at 0(R14) and 32(R14), summed in
// int32 lanes of 4 adjacent products. Here: VPMADDUBSW each (adjacent pairs
// to int16, which saturates, but not here: level bytes ≤ 64 (i8MaxLevel)),
// VPADDW of the two chunks (|sum| ≤ 4·64·127 = 32512, exact in int16), one
// VPMADDWD with Y15 = int16 ones (pairs to int32) and VPADDD into Y2. For
// i8RowsVNNI below one VPDPBUSD each, into Y2 and Y3. I8MAC1: Y2 += the
// products of one chunk (Y4 times 0(R14)).
#define I8MACA \
	VPMADDUBSW 0(R14), Y4, Y4

#define I8MACB \
	VPMADDUBSW 32(R14), Y6, Y6; \
	VPADDW Y6, Y4, Y4; \
	VPMADDWD Y15, Y4, Y4; \
	VPADDD Y4, Y2, Y2

#define I8MAC1 \
	VPMADDUBSW 0(R14), Y4, Y4; \
	VPMADDWD Y15, Y4, Y4; \
	VPADDD Y4, Y2, Y2

// I8SUM: the group's int32 sums (Y2 + Y3) into its slot (CX) of the block
// of 8 groups at a.isum (256-byte aligned); CX and the sws pointer R13 move
// on; the flags say whether the block is full (CX at a multiple of 256).
#define I8SUM \
	VPADDD Y3, Y2, Y2; \
	VMOVDQU Y2, (CX); \
	ADDQ $32, CX; \
	ADDQ $4, R13; \
	TESTQ $255, CX

// I8SUM1: I8SUM for a group summed in Y2 alone.
#define I8SUM1 \
	VMOVDQU Y2, (CX); \
	ADDQ $32, CX; \
	ADDQ $4, R13; \
	TESTQ $255, CX

// I8RED: a full block of 8 groups (slots at CX−256): each group's 8 int32
// lanes summed (VPHADDD tree, exact) into one vector of the 8 group dots,
// converted and multiplied by the groups' sws into Y0 (lane j: the groups
// ≡ j mod 8, in order; i8Tile does the same per token); CX back to the
// first slot.
#define I8RED \
	VMOVDQU -256(CX), Y2; \
	VPHADDD -224(CX), Y2, Y2; \
	VMOVDQU -192(CX), Y3; \
	VPHADDD -160(CX), Y3, Y3; \
	VMOVDQU -128(CX), Y4; \
	VPHADDD -96(CX), Y4, Y4; \
	VMOVDQU -64(CX), Y5; \
	VPHADDD -32(CX), Y5, Y5; \
	VPHADDD Y3, Y2, Y2; \
	VPHADDD Y5, Y4, Y4; \
	VPERM2I128 $0x20, Y4, Y2, Y3; \
	VPERM2I128 $0x31, Y4, Y2, Y5; \
	VPADDD Y5, Y3, Y3; \
	VCVTDQ2PS Y3, Y3; \
	VFMADD231PS -32(R13), Y3, Y0; \
	SUBQ $256, CX

// I8PLM0..3: the i8Plane3 chunks' products, Y6, Y7, Y4, Y5 times the
// activations at R14 + 0, 32, 64, 96 into Y2: chunks 0 and 1, then 2 and 3,
// summed in int16 as in I8MACA/I8MACB.
#define I8PLM0 \
	VPMADDUBSW 0(R14), Y6, Y6

#define I8PLM1 \
	VPMADDUBSW 32(R14), Y7, Y7; \
	VPADDW Y7, Y6, Y6; \
	VPMADDWD Y15, Y6, Y6; \
	VPADDD Y6, Y2, Y2

// I8PLM1F: I8PLM1 for a group's first block, setting Y2.
#define I8PLM1F \
	VPMADDUBSW 32(R14), Y7, Y7; \
	VPADDW Y7, Y6, Y6; \
	VPMADDWD Y15, Y6, Y2

#define I8PLM2 \
	VPMADDUBSW 64(R14), Y4, Y4

#define I8PLM3 \
	VPMADDUBSW 96(R14), Y5, Y5; \
	VPADDW Y5, Y4, Y4; \
	VPMADDWD Y15, Y4, Y4; \
	VPADDD Y4, Y2, Y2

// I8PLHEAD, I8PLTAIL: one 48-byte i8Plane3 block of i8Rows (kernels_i8_rows_amd64.h)
// around the chunk-1 product (I8PLM1, or I8PLM1F for a group's first block):
// the prefetches, chunks 0 and 1 unpacked and chunk 0's product, then chunks 2
// and 3, the pointers advanced and DX counted down.
#define I8PLHEAD \
	PREFETCHT0 (AX)(R15*1); \
	PREFETCHT2 (AX)(R10*1); \
	VMOVDQU (AX), Y4; \
	VBROADCASTI128 32(AX), Y5; \
	VPSRLVD Y10, Y5, Y5; \
	VPAND Y13, Y4, Y6; \
	VPSHUFB Y6, Y14, Y6; \
	I8PLM0; \
	VPSRLW $3, Y4, Y7; \
	VPAND Y13, Y7, Y7; \
	VPSHUFB Y7, Y14, Y7

#define I8PLTAIL \
	VPSRLW $5, Y4, Y4; \
	VPXOR Y5, Y4, Y4; \
	VPAND Y12, Y4, Y4; \
	VPSHUFB Y4, Y9, Y4; \
	I8PLM2; \
	VPAND Y13, Y5, Y5; \
	VPSHUFB Y5, Y14, Y5; \
	I8PLM3; \
	ADDQ $48, AX; \
	ADDQ $128, R14; \
	DECQ DX

// func i8Rows(out *float32, codes *byte, nrows int, a *i8Args)
//
// Per row: convert the fp16 scales 8 at a time, premultiplied by the
// per-group activation factors (sws), and accumulate the β and offset terms
// (lane j: groups ≡ j mod 8; the last G mod 8 groups in a scalar); then per
// group, unpack two 32-code chunks per step and multiply-accumulate into two
// int32 accumulators; every 8 groups, their exact int32 dots are converted
// and multiplied by their sws into the float sum (I8RED), which i8Tile can
// reproduce token by token.
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
#undef I8MAC1
// I8MACA: VPDPBUSD (R14), Y4, Y2
#define I8MACA \
	BYTE $0xc4; BYTE $0xc2; BYTE $0x5d; BYTE $0x50; BYTE $0x16

// I8MACB: VPDPBUSD 32(R14), Y6, Y3
#define I8MACB \
	BYTE $0xc4; BYTE $0xc2; BYTE $0x4d; BYTE $0x50; BYTE $0x5e; BYTE $0x20

#define I8MAC1 I8MACA

#undef I8PLM0
#undef I8PLM1
#undef I8PLM2
#undef I8PLM3
#undef I8PLM1F
// I8PLM0: VPDPBUSD (R14), Y6, Y2
#define I8PLM0 BYTE $0xc4; BYTE $0xc2; BYTE $0x4d; BYTE $0x50; BYTE $0x16
// I8PLM1: VPDPBUSD 32(R14), Y7, Y2
#define I8PLM1 BYTE $0xc4; BYTE $0xc2; BYTE $0x45; BYTE $0x50; BYTE $0x56; BYTE $0x20
// I8PLM2: VPDPBUSD 64(R14), Y4, Y2
#define I8PLM2 BYTE $0xc4; BYTE $0xc2; BYTE $0x5d; BYTE $0x50; BYTE $0x56; BYTE $0x40
// I8PLM3: VPDPBUSD 96(R14), Y5, Y2
#define I8PLM3 BYTE $0xc4; BYTE $0xc2; BYTE $0x55; BYTE $0x50; BYTE $0x56; BYTE $0x60
#define I8PLM1F I8PLM1

// func i8RowsVNNI(out *float32, codes *byte, nrows int, a *i8Args)
//
// i8Rows with VPDPBUSD: the same unpacking, accumulation order and scaling.
TEXT ·i8RowsVNNI(SB), NOSPLIT, $0-32
#include "kernels_i8_rows_amd64.h"

// Tile unpack macros: 32 codes into level bytes in Y8 (Y9 temporary),
// tables as memory operands at (R15), Y14 the level table.
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

// I8TDOT(off, acc): token off/32's activations of the chunk times the level
// bytes in Y8 into its int32 accumulator (VPMADDUBSW, VPMADDWD with the
// int16 ones in Y15, VPADDD).
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

// I8TPREFETCH4, I8TPREFETCH8: the activations of the chunks 4 (and 5) ahead,
// for both tile variants.
#define I8TPREFETCH4 \
	PREFETCHT0 1024(R14); \
	PREFETCHT0 1088(R14); \
	PREFETCHT0 1152(R14); \
	PREFETCHT0 1216(R14)

// I8TPREFETCH1, I8TPREFETCH2: the same for the first 2 tokens only (one
// line a chunk).
#define I8TPREFETCH1 PREFETCHT0 1024(R14)

#define I8TPREFETCH2 \
	PREFETCHT0 1024(R14); \
	PREFETCHT0 1280(R14)

#define I8TPREFETCH8 \
	I8TPREFETCH4; \
	PREFETCHT0 1280(R14); \
	PREFETCHT0 1344(R14); \
	PREFETCHT0 1408(R14); \
	PREFETCHT0 1472(R14)

// I8TUNPACKAB, I8TUNPACKCD: an i8Plane3 block's chunks A, B and then C, D
// as level bytes in Y8, Y9 (Y12 holds 7 in every byte, Y13 the C table; the
// VPSRLVD counts and the mask 14 at 352(R15) and 480(R15)).
#define I8TUNPACKAB \
	VPAND (AX), Y12, Y8; \
	VPSHUFB Y8, Y14, Y8; \
	VMOVDQU (AX), Y9; \
	VPSRLW $3, Y9, Y9; \
	VPAND Y12, Y9, Y9; \
	VPSHUFB Y9, Y14, Y9

#define I8TUNPACKCD \
	VMOVDQU (AX), Y8; \
	VPSRLW $5, Y8, Y8; \
	VBROADCASTI128 32(AX), Y9; \
	VPSRLVD 352(R15), Y9, Y9; \
	VPXOR Y9, Y8, Y8; \
	VPAND 480(R15), Y8, Y8; \
	VPSHUFB Y8, Y13, Y8; \
	VPAND Y12, Y9, Y9; \
	VPSHUFB Y9, Y14, Y9

// I8TPAIR(a, b, acc): one token's products of two chunks, the level bytes
// in Y8 and Y9 times its activations at a(R14) and b(R14), summed in int16
// (level bytes ≤ 64, as in I8MACA/I8MACB), widened by one VPMADDWD and
// added to its int32 accumulator (Y10, Y11 temporaries).
#define I8TPAIR(a, b, acc) \
	VPMADDUBSW a(R14), Y8, Y10; \
	VPMADDUBSW b(R14), Y9, Y11; \
	VPADDW Y11, Y10, Y10; \
	VPMADDWD Y15, Y10, Y10; \
	VPADDD Y10, acc, acc

// I8TPAIRS: the 8 tokens' products of two consecutive chunks (token t's
// activations of the first at 32t, of the second at 256 + 32t), the
// activations of the chunks 4 and 5 ahead prefetched.
#define I8TPAIRS \
	I8TPREFETCH8; \
	I8TPAIR(0, 256, Y0); \
	I8TPAIR(32, 288, Y1); \
	I8TPAIR(64, 320, Y2); \
	I8TPAIR(96, 352, Y3); \
	I8TPAIR(128, 384, Y4); \
	I8TPAIR(160, 416, Y5); \
	I8TPAIR(192, 448, Y6); \
	I8TPAIR(224, 480, Y7); \
	ADDQ $512, R14

// I8TPLANEP(ab, cd): one i8Plane3 block (kernels_i8_amd64.go) at AX, its
// chunks A and B into Y8, Y9, times the tokens by ab, then C and D by cd
// (I8TPLANE: the 8 tokens, I8TPAIRS). Y12 holds 7 in every byte, Y13 the C
// table; the VPSRLVD counts and the mask 14 are read from the tables at R15.
#define I8TPLANEP(ab, cd) \
	I8TUNPACKAB; \
	ab; \
	I8TUNPACKCD; \
	cd

#define I8TPLANE I8TPLANEP(I8TPAIRS, I8TPAIRS)

// I8TPAIR0, I8TPAIRS0, I8TPLANE1: the same for a group's first block,
// setting the accumulators where I8TPAIR adds to them.
#define I8TPAIR0(a, b, acc) \
	VPMADDUBSW a(R14), Y8, Y10; \
	VPMADDUBSW b(R14), Y9, Y11; \
	VPADDW Y11, Y10, Y10; \
	VPMADDWD Y15, Y10, acc

#define I8TPAIRS0 \
	I8TPREFETCH8; \
	I8TPAIR0(0, 256, Y0); \
	I8TPAIR0(32, 288, Y1); \
	I8TPAIR0(64, 320, Y2); \
	I8TPAIR0(96, 352, Y3); \
	I8TPAIR0(128, 384, Y4); \
	I8TPAIR0(160, 416, Y5); \
	I8TPAIR0(192, 448, Y6); \
	I8TPAIR0(224, 480, Y7); \
	ADDQ $512, R14

#define I8TPLANE1 I8TPLANEP(I8TPAIRS0, I8TPAIRS)

// I8TDOTS2, I8TPLANE2, I8TPLANE12: I8TDOTS, I8TPLANE and I8TPLANE1 for
// the tile's first 2 tokens (tiles of 1 or 2 valid tokens: two sequences
// decoded together, or a token and a prompt-lookup draft token); the other
// accumulators stay zero.
#define I8TDOTS2 \
	I8TDOT(0, Y0); \
	I8TDOT(32, Y1); \
	ADDQ $256, R14

#define I8TPAIRS2 \
	I8TPREFETCH2; \
	I8TPAIR(0, 256, Y0); \
	I8TPAIR(32, 288, Y1); \
	ADDQ $512, R14

#define I8TPAIRS02 \
	I8TPREFETCH2; \
	I8TPAIR0(0, 256, Y0); \
	I8TPAIR0(32, 288, Y1); \
	ADDQ $512, R14

#define I8TPLANE2 I8TPLANEP(I8TPAIRS2, I8TPAIRS2)

#define I8TPLANE12 I8TPLANEP(I8TPAIRS02, I8TPAIRS2)

// func i8Tile(out *float32, codes *byte, nrows int, a *i8TileArgs)
//
// The prefill and batched-decode kernel: each 32-code chunk is unpacked
// once and multiplied with 8 tokens' activations (token t's 32 bytes of
// chunk c at (8c+t)·32) into 8 int32 accumulators, Y0-Y7. Every token's
// floating-point arithmetic is exactly i8Rows' for that token alone, in the
// same order, so a token's output does not depend on the batch it is in:
// per group, the tokens' exact int32 dots (a VPHADDD tree) are converted
// and added times scale·pv[g][t] into F_(g mod 8), the token's share of
// i8Rows' lane g mod 8; the β and offset terms are summed per row by a
// pre-pass as i8Rows' conversion loop sums them; the final reduction is
// i8Rows', done lane-wise across tokens.
TEXT ·i8Tile(SB), NOSPLIT, $0-32
#include "kernels_i8_tile_amd64.h"

#undef I8TDOTS
#undef I8TPLANE
#undef I8TPLANE1
#undef I8TDOTS2
#undef I8TPLANE2
#undef I8TPLANE12
// I8TDOT0: VPDPBUSD 0(R14), Y8, Y0
#define I8TDOT0 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0x06
// I8TDOT1: VPDPBUSD 32(R14), Y8, Y1
#define I8TDOT1 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0x4e; BYTE $0x20
// I8TDOT2: VPDPBUSD 64(R14), Y8, Y2
#define I8TDOT2 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0x56; BYTE $0x40
// I8TDOT3: VPDPBUSD 96(R14), Y8, Y3
#define I8TDOT3 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0x5e; BYTE $0x60
// I8TDOT4: VPDPBUSD 128(R14), Y8, Y4
#define I8TDOT4 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xa6; BYTE $0x80; BYTE $0x00; BYTE $0x00; BYTE $0x00
// I8TDOT5: VPDPBUSD 160(R14), Y8, Y5
#define I8TDOT5 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xae; BYTE $0xa0; BYTE $0x00; BYTE $0x00; BYTE $0x00
// I8TDOT6: VPDPBUSD 192(R14), Y8, Y6
#define I8TDOT6 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xb6; BYTE $0xc0; BYTE $0x00; BYTE $0x00; BYTE $0x00
// I8TDOT7: VPDPBUSD 224(R14), Y8, Y7
#define I8TDOT7 BYTE $0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xbe; BYTE $0xe0; BYTE $0x00; BYTE $0x00; BYTE $0x00

#define I8TDOTS \
	I8TDOT0; \
	I8TDOT1; \
	I8TDOT2; \
	I8TDOT3; \
	I8TDOT4; \
	I8TDOT5; \
	I8TDOT6; \
	I8TDOT7; \
	ADDQ $256, R14

// I8TPLANEV(pf, dots): one i8Plane3 block's four chunks, each unpacked
// into Y8 and multiplied with the tokens' activations (dots: I8TDOTS, or
// I8TDOTS2 for the first 2 tokens; pf the matching activation prefetch);
// Y10 the VPSRLVD counts, Y11 14, Y12 7, Y13 the C table.
#define I8TPLANEV(pf, dots) \
	pf; \
	VPAND (AX), Y12, Y8; \
	VPSHUFB Y8, Y14, Y8; \
	dots; \
	pf; \
	VMOVDQU (AX), Y8; \
	VPSRLW $3, Y8, Y8; \
	VPAND Y12, Y8, Y8; \
	VPSHUFB Y8, Y14, Y8; \
	dots; \
	pf; \
	VMOVDQU (AX), Y8; \
	VPSRLW $5, Y8, Y8; \
	VBROADCASTI128 32(AX), Y9; \
	VPSRLVD Y10, Y9, Y9; \
	VPXOR Y9, Y8, Y8; \
	VPAND Y11, Y8, Y8; \
	VPSHUFB Y8, Y13, Y8; \
	dots; \
	pf; \
	VBROADCASTI128 32(AX), Y8; \
	VPSRLVD Y10, Y8, Y8; \
	VPAND Y12, Y8, Y8; \
	VPSHUFB Y8, Y14, Y8; \
	dots

#define I8TPLANE I8TPLANEV(I8TPREFETCH4, I8TDOTS)

#define I8TPLANE1 I8TPLANE

#define I8TDOTS2 \
	I8TDOT0; \
	I8TDOT1; \
	ADDQ $256, R14

#define I8TPLANE2 I8TPLANEV(I8TPREFETCH1, I8TDOTS2)

#define I8TPLANE12 I8TPLANE2

// func i8TileVNNI(out *float32, codes *byte, nrows int, a *i8TileArgs)
//
// i8Tile with AVX-VNNI's VPDPBUSD (VEX-encoded as BYTEs; i8RowsVNNI).
TEXT ·i8TileVNNI(SB), NOSPLIT, $0-32
#include "kernels_i8_tile_amd64.h"

// I8RAW(addr, r, t): I8WIN without the level lookup: 32 three-bit codes
// as bytes, in the windows' column permutation (tables in Y9-Y13).
#define I8RAW(addr, r, t) \
	VBROADCASTI128 addr, r; \
	VPSHUFB Y13, r, r; \
	VPMULHUW Y12, r, t; \
	VPMULLW Y11, r, r; \
	VPAND Y10, t, t; \
	VPAND Y9, r, r; \
	VPOR t, r, r

// func i8Repack3(dst, src *byte, n int, t *i8Tables)
//
// Per 48-byte block: the four chunks unpacked as the windows unpack them
// (A, B, C, D in Y0-Y3), then P = A | B<<3 | ((C ^ D>>1)&3)<<6 and Q = the
// two lanes of D | h<<3 as nibbles, h = (C>>2) ^ (bit 0 of the next byte's
// A in an even byte: A>>8 as words) (kernels_i8_amd64.go, i8Plane3). Every
// byte is ≤ 7 before the shifts; what a right shift brings in from the next
// byte is masked off, and the left shifts cannot carry across bytes.
TEXT ·i8Repack3(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ t+24(FP), AX
	VMOVDQU 0(AX), Y13
	VMOVDQU 32(AX), Y12
	VMOVDQU 64(AX), Y11
	VMOVDQU 96(AX), Y10
	VMOVDQU 128(AX), Y9
	VMOVDQU 416(AX), Y8
	VMOVDQU 448(AX), Y7
	TESTQ CX, CX
	JZ rpdone

rploop:
	I8RAW(0(SI), Y0, Y4)
	I8RAW(12(SI), Y1, Y4)
	I8RAW(24(SI), Y2, Y4)
	I8RAW(36(SI), Y3, Y4)
	VPSRLW $1, Y3, Y5
	VPXOR Y5, Y2, Y5
	VPAND Y8, Y5, Y5
	VPSLLW $6, Y5, Y5
	VPSLLW $3, Y1, Y1
	VPOR Y1, Y0, Y6
	VPOR Y5, Y6, Y6
	VMOVDQU Y6, (DI)
	VPSRLW $8, Y0, Y5
	VPSRLW $2, Y2, Y2
	VPXOR Y5, Y2, Y2
	VPAND Y7, Y2, Y2
	VPSLLW $3, Y2, Y2
	VPOR Y2, Y3, Y3
	VEXTRACTI128 $1, Y3, X5
	VPSLLW $4, X5, X5
	VPOR X5, X3, X3
	VMOVDQU X3, 32(DI)
	ADDQ $48, SI
	ADDQ $48, DI
	DECQ CX
	JNZ rploop

rpdone:
	VZEROUPPER
	RET
