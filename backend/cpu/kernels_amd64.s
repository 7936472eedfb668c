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
	MOVQ 120(R8), AX
	TESTQ AX, AX
	JZ q8nolut
	VMOVDQU64 (AX), Z30

q8nolut:
	MOVQ 112(R8), AX
	KMOVW AX, K1
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
	MOVQ 80(R8), R9
	ADDQ $15, R9
	SHRQ $4, R9

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
	MOVQ 128(R8), R15
	MOVQ 136(R8), R10
	MOVQ 0(R8), R14
	MOVQ 48(R8), R13
	MOVQ SI, AX
	MOVQ 80(R8), R9
	MOVQ 96(R8), BX
	// Groups of 128 codes with a level table (the common encoding) run
	// two groups per iteration: eight unpack uops per group, the rest
	// amortised. Both groups' float sums go into Z21 in group order, the
	// one accumulation order every path (and q8Tile) shares.
	CMPQ 88(R8), $2
	JNE q8group
	CMPQ 120(R8), $0
	JEQ q8group
	LEAQ (BX)(BX*2), DX
	CMPQ R9, $2
	JLT q8g2tail

q8g2:
	// Software prefetch of every code line at two distances (R15 into
	// L1, R10 into L2; see prefetch.go): a step is 32·bits bytes, so two
	// lines per step cover every line for bits ≤ 4.
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT0 64(AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	PREFETCHT2 64(AX)(R10*1)
	VPERMB (AX), Z28, Z3
	VPERMB (AX)(BX*1), Z28, Z4
	VPERMB (AX)(BX*2), Z28, Z5
	VPERMB (AX)(DX*1), Z28, Z6
	VPMULTISHIFTQB Z3, Z29, Z3
	VPMULTISHIFTQB Z4, Z29, Z4
	VPMULTISHIFTQB Z5, Z29, Z5
	VPMULTISHIFTQB Z6, Z29, Z6
	VPERMB Z30, Z3, Z3
	VPERMB Z30, Z4, Z4
	VPERMB Z30, Z5, Z5
	VPERMB Z30, Z6, Z6
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPDPBUSD (R14), Z3, Z8
	VPDPBUSD 128(R14), Z5, Z9
	VPDPBUSD 64(R14), Z4, Z8
	VPDPBUSD 192(R14), Z6, Z9
	VCVTDQ2PS Z8, Z8
	VCVTDQ2PS Z9, Z9
	VFMADD231PS.BCST (R13), Z8, Z21
	VFMADD231PS.BCST 4(R13), Z9, Z21
	LEAQ (AX)(BX*4), AX
	ADDQ $256, R14
	ADDQ $8, R13
	SUBQ $2, R9
	CMPQ R9, $2
	JGE q8g2

q8g2tail:
	TESTQ R9, R9
	JZ q8g2done
	VPERMB (AX), Z28, Z3
	VPERMB (AX)(BX*1), Z28, Z4
	VPMULTISHIFTQB Z3, Z29, Z3
	VPMULTISHIFTQB Z4, Z29, Z4
	VPERMB Z30, Z3, Z3
	VPERMB Z30, Z4, Z4
	VPXORD Z8, Z8, Z8
	VPDPBUSD (R14), Z3, Z8
	VPDPBUSD 64(R14), Z4, Z8
	VCVTDQ2PS Z8, Z8
	VFMADD231PS.BCST (R13), Z8, Z21

q8g2done:
	JMP q8rowend

q8group:
	VPXORD Z2, Z2, Z2
	VPXORD Z6, Z6, Z6
	MOVQ 88(R8), DX
	TESTQ $1, DX
	JZ q8pairs

	// Odd chunk count: one chunk first.
	VPERMB (AX), Z28, Z3
	VPMULTISHIFTQB Z3, Z29, Z3
	CMPQ 120(R8), $0
	JNE q8oddlut
	VPANDQ Z30, Z3, Z3
	JMP q8odddot

q8oddlut:
	VPERMB Z30, Z3, Z3

q8odddot:
	VPDPBUSD (R14), Z3, Z2
	ADDQ BX, AX
	ADDQ $64, R14
	DECQ DX
	JZ q8sum

q8pairs:
	CMPQ 120(R8), $0
	JNE q8pairlut

q8pair:
	// Two chunks into two accumulators (shorter dependency chains).
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
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
	JMP q8sum

q8pairlut:
	// Level table: VPERMB maps the low 6 bits of each byte (the code plus
	// bits of its neighbours, which the replicated table ignores) to u8.
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R10*1)
	VPERMB (AX), Z28, Z3
	VPERMB (AX)(BX*1), Z28, Z7
	VPMULTISHIFTQB Z3, Z29, Z3
	VPMULTISHIFTQB Z7, Z29, Z7
	VPERMB Z30, Z3, Z3
	VPERMB Z30, Z7, Z7
	VPDPBUSD (R14), Z3, Z2
	VPDPBUSD 64(R14), Z7, Z6
	LEAQ (AX)(BX*2), AX
	ADDQ $128, R14
	SUBQ $2, DX
	JNZ q8pairlut

q8sum:
	VPADDD Z6, Z2, Z2
	VCVTDQ2PS Z2, Z2
	VFMADD231PS.BCST (R13), Z2, Z21
	ADDQ $4, R13
	DECQ R9
	JNZ q8group

q8rowend:
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

// TILE_DOT(off, acc) accumulates the code bytes in Z17 times token
// (off/64)'s 64 activations of the current chunk.
#define TILE_DOT(off, acc) VPDPBUSD off(R14), Z17, acc

// TILE_SCALE(t, iacc, facc): facc += float(iacc) · sws[t], exactly the
// operation q8Rows applies to one token's group sums (VFMADD231PS.BCST of
// the scratch copy of scale·pv[g][t]).
#define TILE_SCALE(t, iacc, facc) \
	VCVTDQ2PS iacc, iacc; \
	VFMADD231PS.BCST t(R10), iacc, facc

// TILE_SWS: the group's factors sws[t] = scale·pv[g][t] for the tile's 8
// tokens into the scratch (as q8Rows' VMULPS), and the next group's scale.
#define TILE_SWS \
	VPBROADCASTW (BX), Y20; \
	VCVTPH2PS X20, Y20; \
	VMULPS (R13), Y20, Y21; \
	VMOVUPS Y21, (R10); \
	ADDQ $2, BX

// TILE_KEEP(t, facc): add token t's β vector (scratch, written by the
// pre-pass) and keep the 16 lanes as the current row of the token's 16-row
// block (DX: the row's slot in token 0's block; tokens 1024 bytes apart);
// stops after the valid tokens. Reducing 16 rows at once (REDUCE16) costs a
// third of reducing each alone.
#define TILE_KEEP(t, facc) \
	VADDPS (32+64*t)(R10), facc, Z0; \
	VMOVUPS Z0, (1024*t)(DX); \
	DECQ AX; \
	JZ tkept

// REDUCE16 sums the 16 lanes of each of Z0..Z15 (rows 0..15 of a block)
// into lane r of Z0 for row r, in q8Rows' order for every row: lanes i and
// i+8, then i and i+4 (i < 4), then 0+1 and 2+3, then the two (its
// VEXTRACTF64X4/VEXTRACTF128/VHADDPS tree; IEEE addition is commutative, so
// the sums are bit-identical). Z27 holds redIdx; Z16..Z26 are clobbered.
#define REDUCE_PAIR(a, b, w) \
	VSHUFF64X2 $0x44, b, a, Z24; \
	VSHUFF64X2 $0xEE, b, a, Z25; \
	VADDPS Z25, Z24, w
#define REDUCE_QUAD(a, b, x) \
	VSHUFF32X4 $0x88, b, a, Z24; \
	VSHUFF32X4 $0xDD, b, a, Z25; \
	VADDPS Z25, Z24, x
#define REDUCE_HADD(a, b, y) \
	VSHUFPS $0x88, b, a, Z24; \
	VSHUFPS $0xDD, b, a, Z25; \
	VADDPS Z25, Z24, y
#define REDUCE16 \
	REDUCE_PAIR(Z0, Z1, Z16); \
	REDUCE_PAIR(Z2, Z3, Z17); \
	REDUCE_PAIR(Z4, Z5, Z18); \
	REDUCE_PAIR(Z6, Z7, Z19); \
	REDUCE_PAIR(Z8, Z9, Z20); \
	REDUCE_PAIR(Z10, Z11, Z21); \
	REDUCE_PAIR(Z12, Z13, Z22); \
	REDUCE_PAIR(Z14, Z15, Z23); \
	REDUCE_QUAD(Z16, Z17, Z0); \
	REDUCE_QUAD(Z18, Z19, Z1); \
	REDUCE_QUAD(Z20, Z21, Z2); \
	REDUCE_QUAD(Z22, Z23, Z3); \
	REDUCE_HADD(Z0, Z1, Z4); \
	REDUCE_HADD(Z2, Z3, Z5); \
	REDUCE_HADD(Z4, Z5, Z6); \
	VPERMPS Z6, Z27, Z0

// redIdx: after REDUCE16's last step, lane 4k+j holds row k+4j.
DATA redIdx<>+0(SB)/4, $0
DATA redIdx<>+4(SB)/4, $4
DATA redIdx<>+8(SB)/4, $8
DATA redIdx<>+12(SB)/4, $12
DATA redIdx<>+16(SB)/4, $1
DATA redIdx<>+20(SB)/4, $5
DATA redIdx<>+24(SB)/4, $9
DATA redIdx<>+28(SB)/4, $13
DATA redIdx<>+32(SB)/4, $2
DATA redIdx<>+36(SB)/4, $6
DATA redIdx<>+40(SB)/4, $10
DATA redIdx<>+44(SB)/4, $14
DATA redIdx<>+48(SB)/4, $3
DATA redIdx<>+52(SB)/4, $7
DATA redIdx<>+56(SB)/4, $11
DATA redIdx<>+60(SB)/4, $15
GLOBL redIdx<>(SB), RODATA|NOPTR, $64

// func q8Tile(out *float32, codes *byte, nrows int, a *q8TileArgs)
//
// The prefill and batched-decode kernel: each 64-code chunk is unpacked
// once and multiplied with 8 tokens' activations (interleaved per chunk:
// token t's 64 bytes of chunk c at (8c+t)·64) into 8 int32 accumulators.
// Every token's floating-point arithmetic is exactly q8Rows' for that token
// alone, in the same order, so a token's output does not depend on the
// batch it is in: per group, its 16 int32 lanes are converted and added
// times scale·pv[g][t] into its own 16-lane accumulator; the β/offset terms
// are summed by a per-row pre-pass over 16 groups at a time as q8Rows'
// scale conversion loop does (with at most 16 groups, the row's scales are
// converted once for all tokens); the final reduction is q8Rows' tree,
// applied to 16 rows of a token at once (REDUCE16) from a per-worker buffer
// (a.red) where each row's 16 lanes wait.
TEXT ·q8Tile(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ nrows+16(FP), CX
	MOVQ a+24(FP), R8
	MOVQ 48(R8), AX
	VMOVDQU64 (AX), Z28
	MOVQ 56(R8), AX
	VMOVDQU64 (AX), Z29
	VPBROADCASTQ 72(R8), Z30
	MOVQ 64(R8), AX
	TESTQ AX, AX
	JZ tnolut
	VMOVDQU64 (AX), Z30

tnolut:
	MOVQ 144(R8), AX
	KMOVW AX, K1
	MOVQ 32(R8), R11
	MOVQ 40(R8), R12
	MOVQ 128(R8), R10
	MOVQ $0, 552(R10)
	TESTQ CX, CX
	JZ tdone

trow:
	// Pre-pass: each valid token's β vector (16 lanes, groups g ≡ lane
	// mod 16) into scratch+32+64t.
	XORQ BX, BX
	MOVQ 16(R8), R15
	MOVQ 24(R8), R13
	CMPQ 88(R8), $16
	JGT tbeta

	// At most 16 groups (one block): the row's scales (and offsets) are
	// converted once for all tokens; each token's β is then the same
	// masked FMA (and offset FMA) from zero as below.
	VCVTPH2PS.Z (R11), K1, Z18
	TESTQ R12, R12
	JZ tbfast0
	VCVTPH2PS.Z (R12), K1, Z19

tbfast0:
	MOVQ 136(R8), DX
	LEAQ 32(R10), AX

tbfast:
	VPXORD Z20, Z20, Z20
	VFMADD231PS (R15), Z18, Z20
	TESTQ R12, R12
	JZ tbfaststore
	VFMADD231PS (R13), Z19, Z20

tbfaststore:
	VMOVUPS Z20, (AX)
	ADDQ $64, AX
	ADDQ DX, R15
	ADDQ DX, R13
	INCQ BX
	CMPQ BX, 120(R8)
	JLT tbfast
	JMP tbetadone

tbeta:
	VPXORD Z20, Z20, Z20
	MOVQ R11, AX
	MOVQ R12, DX
	MOVQ R15, R14
	MOVQ R13, R9
	MOVQ CX, 544(R10)
	MOVQ 88(R8), CX
	ADDQ $15, CX
	SHRQ $4, CX

tbetablk:
	KXNORW K2, K2, K2
	CMPQ CX, $1
	JNE tbetafull
	KMOVW K1, K2

tbetafull:
	VCVTPH2PS.Z (AX), K2, Z0
	VFMADD231PS (R14), Z0, Z20
	TESTQ R12, R12
	JZ tbetanext
	VCVTPH2PS.Z (DX), K2, Z1
	VFMADD231PS (R9), Z1, Z20
	ADDQ $32, DX

tbetanext:
	ADDQ $32, AX
	ADDQ $64, R14
	ADDQ $64, R9
	DECQ CX
	JNZ tbetablk
	MOVQ 544(R10), CX
	MOVQ BX, AX
	SHLQ $6, AX
	VMOVUPS Z20, 32(R10)(AX*1)
	ADDQ 136(R8), R15
	ADDQ 136(R8), R13
	INCQ BX
	CMPQ BX, 120(R8)
	JLT tbeta

tbetadone:
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ SI, AX
	MOVQ 0(R8), R14
	MOVQ 8(R8), R13
	MOVQ R11, BX
	MOVQ 88(R8), R9
	MOVQ 152(R8), R15 // software prefetch distance into L1 (prefetch.go)

tgroup:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ 96(R8), DX
	// Tiles of at most 4 valid tokens (batched decoding of a few
	// sequences) run a 4-token copy of the loops: same arithmetic per
	// token, half the dot products; tiles of 1 or 2 (two sequences, or a
	// token and a prompt-lookup draft token) a 2-token copy, whose dot
	// products and scaling take port 0 about as long as the unpacking
	// takes port 5, so that it streams the codes as fast as q8Rows; like
	// q8Rows it also prefetches into L2, at four times the L1 distance
	// (8 KiB by default; no register is left for a distance of its own).
	CMPQ 120(R8), $2
	JLE tgroup2
	CMPQ 120(R8), $4
	JLE tgroup4
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	CMPQ 64(R8), $0
	JNE tchunklut

tchunk:
	PREFETCHT0 (AX)(R15*1)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPANDQ Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	TILE_DOT(128, Z2)
	TILE_DOT(192, Z3)
	TILE_DOT(256, Z4)
	TILE_DOT(320, Z5)
	TILE_DOT(384, Z6)
	TILE_DOT(448, Z7)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunk
	JMP tscale

tchunklut:
	PREFETCHT0 (AX)(R15*1)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPERMB Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	TILE_DOT(128, Z2)
	TILE_DOT(192, Z3)
	TILE_DOT(256, Z4)
	TILE_DOT(320, Z5)
	TILE_DOT(384, Z6)
	TILE_DOT(448, Z7)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunklut

tscale:
	TILE_SWS
	TILE_SCALE(0, Z0, Z8)
	TILE_SCALE(4, Z1, Z9)
	TILE_SCALE(8, Z2, Z10)
	TILE_SCALE(12, Z3, Z11)
	TILE_SCALE(16, Z4, Z12)
	TILE_SCALE(20, Z5, Z13)
	TILE_SCALE(24, Z6, Z14)
	TILE_SCALE(28, Z7, Z15)
	ADDQ $32, R13
	DECQ R9
	JNZ tgroup
	JMP tgroupsdone

tgroup4:
	CMPQ 64(R8), $0
	JNE tchunklut4

tchunk4:
	PREFETCHT0 (AX)(R15*1)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPANDQ Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	TILE_DOT(128, Z2)
	TILE_DOT(192, Z3)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunk4
	JMP tscale4

tchunklut4:
	PREFETCHT0 (AX)(R15*1)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPERMB Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	TILE_DOT(128, Z2)
	TILE_DOT(192, Z3)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunklut4

tscale4:
	TILE_SWS
	TILE_SCALE(0, Z0, Z8)
	TILE_SCALE(4, Z1, Z9)
	TILE_SCALE(8, Z2, Z10)
	TILE_SCALE(12, Z3, Z11)
	ADDQ $32, R13
	DECQ R9
	JNZ tgroup

	JMP tgroupsdone

tgroup2:
	CMPQ 64(R8), $0
	JNE tchunklut2

tchunk2:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R15*4)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPANDQ Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunk2
	JMP tscale2

tchunklut2:
	PREFETCHT0 (AX)(R15*1)
	PREFETCHT2 (AX)(R15*4)
	VPERMB (AX), Z28, Z17
	VPMULTISHIFTQB Z17, Z29, Z17
	VPERMB Z30, Z17, Z17
	TILE_DOT(0, Z0)
	TILE_DOT(64, Z1)
	ADDQ 104(R8), AX
	ADDQ $512, R14
	DECQ DX
	JNZ tchunklut2

tscale2:
	TILE_SWS
	TILE_SCALE(0, Z0, Z8)
	TILE_SCALE(4, Z1, Z9)
	ADDQ $32, R13
	DECQ R9
	JNZ tgroup

tgroupsdone:
	// Keep each valid token's row as row 552(R10) of its 16-row block;
	// reduce and store the block when it is full or at the last row.
	MOVQ 552(R10), DX
	SHLQ $6, DX
	ADDQ 160(R8), DX
	MOVQ 120(R8), AX
	TILE_KEEP(0, Z8)
	TILE_KEEP(1, Z9)
	TILE_KEEP(2, Z10)
	TILE_KEEP(3, Z11)
	TILE_KEEP(4, Z12)
	TILE_KEEP(5, Z13)
	TILE_KEEP(6, Z14)
	TILE_KEEP(7, Z15)

tkept:
	MOVQ 552(R10), AX
	INCQ AX
	MOVQ AX, 552(R10)
	CMPQ AX, $16
	JEQ tflush
	CMPQ CX, $1
	JNE tnext

tflush:
	// K3: the block's AX valid rows.
	MOVQ CX, 544(R10)
	MOVQ AX, CX
	MOVL $1, BX
	SHLL CX, BX
	DECL BX
	KMOVW BX, K3
	MOVQ 544(R10), CX
	MOVQ 160(R8), AX
	MOVQ DI, DX
	MOVQ 120(R8), BX
	VMOVDQU32 redIdx<>(SB), Z27

tflushtok:
	VMOVUPS 0(AX), Z0
	VMOVUPS 64(AX), Z1
	VMOVUPS 128(AX), Z2
	VMOVUPS 192(AX), Z3
	VMOVUPS 256(AX), Z4
	VMOVUPS 320(AX), Z5
	VMOVUPS 384(AX), Z6
	VMOVUPS 448(AX), Z7
	VMOVUPS 512(AX), Z8
	VMOVUPS 576(AX), Z9
	VMOVUPS 640(AX), Z10
	VMOVUPS 704(AX), Z11
	VMOVUPS 768(AX), Z12
	VMOVUPS 832(AX), Z13
	VMOVUPS 896(AX), Z14
	VMOVUPS 960(AX), Z15
	REDUCE16
	VMOVUPS Z0, K3, (DX)
	ADDQ $1024, AX
	ADDQ 112(R8), DX
	DECQ BX
	JNZ tflushtok
	ADDQ $64, DI
	MOVQ $0, 552(R10)

tnext:
	ADDQ 80(R8), SI
	MOVQ 88(R8), AX
	SHLQ $1, AX
	ADDQ AX, R11
	TESTQ R12, R12
	JZ tnextrow
	ADDQ AX, R12

tnextrow:
	DECQ CX
	JNZ trow

tdone:
	VZEROUPPER
	RET

// func fwhtBlock(x *float32, n int, signs *float32, tbl *int32, scale float32)
//
// Pass 1 scales each 16-float vector by signs·scale and applies the four
// Hadamard stages within it (h = 1..8: VPERMPS + FMA with ±1); pass 2 runs
// the stages h = 16..n/2 as add/sub of vector pairs h floats apart.
TEXT ·fwhtBlock(SB), NOSPLIT, $0-36
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ signs+16(FP), SI
	MOVQ tbl+24(FP), AX
	VMOVDQU32 0(AX), Z20
	VMOVDQU32 64(AX), Z21
	VMOVDQU32 128(AX), Z22
	VMOVDQU32 192(AX), Z23
	VMOVUPS 256(AX), Z24
	VMOVUPS 320(AX), Z25
	VMOVUPS 384(AX), Z26
	VMOVUPS 448(AX), Z27
	VBROADCASTSS scale+32(FP), Z31
	MOVQ DI, DX
	MOVQ CX, BX

wp1:
	VMULPS (SI), Z31, Z0
	VMULPS (DX), Z0, Z0
	VPERMPS Z0, Z20, Z1
	VFMADD231PS Z24, Z0, Z1
	VPERMPS Z1, Z21, Z0
	VFMADD231PS Z25, Z1, Z0
	VPERMPS Z0, Z22, Z1
	VFMADD231PS Z26, Z0, Z1
	VPERMPS Z1, Z23, Z0
	VFMADD231PS Z27, Z1, Z0
	VMOVUPS Z0, (DX)
	ADDQ $64, DX
	ADDQ $64, SI
	SUBQ $16, BX
	JNZ wp1

	MOVQ $16, R9           // h in floats
	SHLQ $2, CX            // n in bytes

wp2h:
	MOVQ R9, R10
	SHLQ $2, R10           // h in bytes
	CMPQ R10, CX
	JGE wdone
	MOVQ DI, DX
	LEAQ (DI)(CX*1), R13   // end

wp2blk:
	MOVQ DX, R11
	MOVQ R9, R12

wp2:
	VMOVUPS (R11), Z0
	VMOVUPS (R11)(R10*1), Z1
	VADDPS Z1, Z0, Z2
	VSUBPS Z1, Z0, Z3
	VMOVUPS Z2, (R11)
	VMOVUPS Z3, (R11)(R10*1)
	ADDQ $64, R11
	SUBQ $16, R12
	JNZ wp2
	LEAQ (DX)(R10*2), DX
	CMPQ DX, R13
	JLT wp2blk
	SHLQ $1, R9
	JMP wp2h

wdone:
	VZEROUPPER
	RET

// func absMax16(x *float32, n int) float32
// max |x[i]| over n floats, n a positive multiple of 16 (AVX-512).
TEXT ·absMax16(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z2
	VPXORD Z0, Z0, Z0

amloop:
	VPANDD (SI), Z2, Z1
	VMAXPS Z1, Z0, Z0
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ amloop
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func quant16(q *int8, x *float32, n int, inv float32) int
// q[i] = round-to-nearest-even(x[i]·inv) clamped to ±127; returns Σq.
// n is a positive multiple of 16 (AVX-512).
TEXT ·quant16(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS inv+24(FP), Z3
	MOVL $127, AX
	VPBROADCASTD AX, Z4
	MOVL $-127, AX
	VPBROADCASTD AX, Z5
	VPXORD Z6, Z6, Z6

qloop:
	VMULPS (SI), Z3, Z1
	VCVTPS2DQ Z1, Z1
	VPMINSD Z4, Z1, Z1
	VPMAXSD Z5, Z1, Z1
	VPADDD Z1, Z6, Z6
	VPMOVDB Z1, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
	JNZ qloop
	VEXTRACTI64X4 $1, Z6, Y1
	VPADDD Y1, Y6, Y6
	VEXTRACTI128 $1, Y6, X1
	VPADDD X1, X6, X6
	VPSHUFD $0x4e, X6, X1
	VPADDD X1, X6, X6
	VPSHUFD $0xb1, X6, X1
	VPADDD X1, X6, X6
	VMOVD X6, AX
	MOVLQSX AX, AX
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

// func pause()
TEXT ·pause(SB), NOSPLIT, $0-0
	PAUSE
	RET


// func absMaxAVX2(x *float32, n int) float32
// max |x[i]|, n a positive multiple of 16 (AVX2).
TEXT ·absMaxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X2
	VPBROADCASTD X2, Y2
	VXORPS Y0, Y0, Y0
	VXORPS Y3, Y3, Y3

am2loop:
	VANDPS (SI), Y2, Y1
	VMAXPS Y1, Y0, Y0
	VANDPS 32(SI), Y2, Y1
	VMAXPS Y1, Y3, Y3
	ADDQ $64, SI
	SUBQ $16, CX
	JNZ am2loop
	VMAXPS Y3, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func quantAVX2(q *int8, x *float32, n int, inv float32) int
// quant16 in AVX2: 16 values per step, packed to bytes by VPACKSSDW (the
// lanes reordered by VPERMQ) and VPACKSSWB; the values are within ±127, so
// the saturating packs are exact.
TEXT ·quantAVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS inv+24(FP), Y3
	MOVL $127, AX
	VMOVD AX, X4
	VPBROADCASTD X4, Y4
	MOVL $-127, AX
	VMOVD AX, X5
	VPBROADCASTD X5, Y5
	VPXOR Y6, Y6, Y6

q2loop:
	VMULPS (SI), Y3, Y1
	VMULPS 32(SI), Y3, Y7
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y7, Y7
	VPMINSD Y4, Y1, Y1
	VPMAXSD Y5, Y1, Y1
	VPMINSD Y4, Y7, Y7
	VPMAXSD Y5, Y7, Y7
	VPADDD Y1, Y6, Y6
	VPADDD Y7, Y6, Y6
	VPACKSSDW Y7, Y1, Y1
	VPERMQ $0xd8, Y1, Y1
	VEXTRACTI128 $1, Y1, X7
	VPACKSSWB X7, X1, X1
	VMOVDQU X1, (DI)
	ADDQ $64, SI
	ADDQ $16, DI
	SUBQ $16, CX
	JNZ q2loop
	VEXTRACTI128 $1, Y6, X1
	VPADDD X1, X6, X6
	VPSHUFD $0x4e, X6, X1
	VPADDD X1, X6, X6
	VPSHUFD $0xb1, X6, X1
	VPADDD X1, X6, X6
	VMOVD X6, AX
	MOVLQSX AX, AX
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

// func fwhtBlock8(x *float32, n int, signs *float32, tbl *int32, scale float32)
//
// fwhtBlock in 8-lane registers (AVX2 + FMA): pass 1 scales each 8-float
// vector by signs·scale and applies the stages h = 1, 2, 4 within it
// (VPERMPS + FMA with ±1, tbl = fwhtTable8); pass 2 runs the stages
// h = 8..n/2 as add/sub of vector pairs h floats apart. n is a power of
// two ≥ 8.
TEXT ·fwhtBlock8(SB), NOSPLIT, $0-36
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ signs+16(FP), SI
	MOVQ tbl+24(FP), AX
	VMOVDQU 0(AX), Y8
	VMOVDQU 32(AX), Y9
	VMOVDQU 64(AX), Y10
	VMOVUPS 96(AX), Y11
	VMOVUPS 128(AX), Y12
	VMOVUPS 160(AX), Y13
	VBROADCASTSS scale+32(FP), Y14
	MOVQ DI, DX
	MOVQ CX, BX

hp1:
	VMULPS (SI), Y14, Y0
	VMULPS (DX), Y0, Y0
	VPERMPS Y0, Y8, Y1
	VFMADD231PS Y11, Y0, Y1
	VPERMPS Y1, Y9, Y0
	VFMADD231PS Y12, Y1, Y0
	VPERMPS Y0, Y10, Y1
	VFMADD231PS Y13, Y0, Y1
	VMOVUPS Y1, (DX)
	ADDQ $32, DX
	ADDQ $32, SI
	SUBQ $8, BX
	JNZ hp1

	MOVQ $8, R9            // h in floats
	SHLQ $2, CX            // n in bytes

hp2h:
	MOVQ R9, R10
	SHLQ $2, R10           // h in bytes
	CMPQ R10, CX
	JGE hdone
	MOVQ DI, DX
	LEAQ (DI)(CX*1), R13   // end

hp2blk:
	MOVQ DX, R11
	MOVQ R9, R12

hp2:
	VMOVUPS (R11), Y0
	VMOVUPS (R11)(R10*1), Y1
	VADDPS Y1, Y0, Y2
	VSUBPS Y1, Y0, Y3
	VMOVUPS Y2, (R11)
	VMOVUPS Y3, (R11)(R10*1)
	ADDQ $32, R11
	SUBQ $8, R12
	JNZ hp2
	LEAQ (DX)(R10*2), DX
	CMPQ DX, R13
	JLT hp2blk
	SHLQ $1, R9
	JMP hp2h

hdone:
	VZEROUPPER
	RET
