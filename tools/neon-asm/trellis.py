#!/usr/bin/env python3
# Generates backend/cpu/trellis_arm64.s, the NEON trellis kernel, with the
# instructions Go's arm64 assembler does not spell WORD-encoded (Arm ARM
# encodings; each WORD carries the instruction in its comment).
#
#   python3 tools/neon-asm/trellis.py backend/cpu/trellis_arm64.s
import sys

def enc3(base, d, n, m): return base | (m << 16) | (n << 5) | d
def enc2(base, d, n): return base | (n << 5) | d
def W(code, text): return f"\tWORD ${code:#08x} // {text}"
def USHLH(d, n, m): return W(enc3(0x6E604400, d, n, m), f"USHL V{d}.8H, V{n}.8H, V{m}.8H")
def SDOT(d, n, m): return W(enc3(0x4E809400, d, n, m), f"SDOT V{d}.4S, V{n}.16B, V{m}.16B")
def SMULL(d, n, m): return W(enc3(0x0E20C000, d, n, m), f"SMULL V{d}.8H, V{n}.8B, V{m}.8B")
def SMULL2(d, n, m): return W(enc3(0x4E20C000, d, n, m), f"SMULL2 V{d}.8H, V{n}.16B, V{m}.16B")
def SADALP(d, n): return W(enc2(0x4E606800, d, n), f"SADALP V{d}.4S, V{n}.8H")
def SCVTF(d, n): return W(enc2(0x4E21D800, d, n), f"SCVTF V{d}.4S, V{n}.4S")
def FCVTL(d, n): return W(enc2(0x0E217800, d, n), f"FCVTL V{d}.4S, V{n}.4H")

L = []
a = L.append
a("""//go:build arm64

#include "textflag.h"

// The NEON trellis kernel (trellisNEONTables in trellis_arm64.go), generated
// by tools/neon-asm/trellis.py; do not edit by hand. Go's assembler does not
// spell USHL, SDOT, SMULL, SMULL2, SADALP, SCVTF (vector) or FCVTL; they
// are WORD-encoded, each with the instruction in its comment.
//
// Register use: R3 tables, R4 the tile, R5 the tile's activations, R6/R7
// the group factors, R8 the group's scales, R9/R10 tiles left in the band
// and the group, R11 the tile's size, R13/R16 addresses, R0 the band's 16
// outputs (float sums kept in memory), R14/R15 the band's scales and tiles,
// R20 1 = SDOT, R21 1 = k = 4, R22 1 = k = 2 (else k = 3). V16-V18 the k = 4
// hash tables, V19 0x0f; k = 3: V6 the TBL indices of each halfword's two
// bytes, V7/V8 their USHL counts, V9 0x00ff, V10 0x07, V11-V14 the hash
// tables of the symbols p..p-3, V16/V17 this and the previous step's
// symbols; V20-V23 the 64 level bytes, V24-V27 the int32 sums of rows 0-3,
// 4-7, 8-11, 12-15 (without SDOT also V28-V31: V24+q holds two rows' pair
// sums, V28+q the other two).

// func trellisRowsNEON(out *float32, nbands int, a *trellisI8Args)
TEXT ·trellisRowsNEON(SB), NOSPLIT, $0-24
	MOVD out+0(FP), R0
	MOVD nbands+8(FP), R1
	MOVD a+16(FP), R2
	MOVD 40(R2), R3
	VLD1 (R3), [V16.B16, V17.B16, V18.B16, V19.B16]
	ADD $288, R3, R13
	VLD1 (R13), [V6.B16, V7.B16, V8.B16, V9.B16]
	ADD $352, R3, R13
	VLD1 (R13), [V10.B16, V11.B16, V12.B16, V13.B16]
	ADD $416, R3, R13
	VLD1 (R13), [V14.B16]
	MOVD 48(R2), R13
	VLD1 (R13), [V20.B16, V21.B16, V22.B16, V23.B16]
	MOVD 80(R2), R11
	MOVD 24(R2), R14
	MOVD 32(R2), R15
	MOVD 96(R2), R20
	CMP $128, R11
	CSET EQ, R21 // k = 4
	CMP $64, R11
	CSET EQ, R22 // k = 2
	CBZ R1, tdone

tband:
	VEOR V1.B16, V1.B16, V1.B16
	VST1 [V1.B16], (R0)
	ADD $16, R0, R13
	VST1 [V1.B16], (R13)
	ADD $32, R0, R13
	VST1 [V1.B16], (R13)
	ADD $48, R0, R13
	VST1 [V1.B16], (R13)
	MOVD 0(R2), R5
	MOVD 8(R2), R6
	MOVD 16(R2), R7
	MOVD 72(R2), R9
	MOVD R14, R8
	MOVD R15, R4

tgroup:""")
for v in range(24, 32):
    a(f"\tVEOR V{v}.B16, V{v}.B16, V{v}.B16")
a("""	MOVD 64(R2), R10
	CMP R9, R10
	CSEL GT, R9, R10, R10
	SUB R10, R9, R9
	CBZ R20, ttiles
	CBNZ R21, t4dtile
	CBNZ R22, t2dtile""")

def tile3(dot, lbl):
    # k = 3: position p's window is the 3-bit symbols p-3..p. A step unpacks
    # its 16 symbols (bytes 6s..: TBL gathers each halfword's two bytes, USHL
    # brings the even symbol to bit 0 and the odd one to bit 8, BIT merges,
    # AND masks) and EXT against the previous step's gives the three earlier
    # versions; four TBL lookups hash them. The symbols before step 0 are
    # step 15's (tail-biting).
    def unpack(off, dst):
        return [f"\tADD ${off}, R4, R13",
                "\tVLD1 (R13), [V0.B16]",
                "\tVTBL V6.B16, [V0.B16], V1.B16",
                USHLH(2, 1, 8),
                USHLH(1, 1, 7),
                "\tVBIT V9.B16, V1.B16, V2.B16",
                f"\tVAND V10.B16, V2.B16, V{dst}.B16"]
    out = [f"\n{lbl}:"] + unpack(90, 17)
    for s in range(16):
        q = s % 4
        cur, prev = (16, 17) if s % 2 == 0 else (17, 16)
        out += unpack(6 * s, cur)
        if q == 0:
            out.append(f"\tADD ${4*(s//4)}, R5, R16")
            out.append("\tVLD1R (R16), [V18.S4]")
        out.append(f"\tVTBL V{cur}.B16, [V11.B16], V3.B16")
        for d in (1, 2, 3):
            out += [f"\tVEXT ${16-d}, V{cur}.B16, V{prev}.B16, V4.B16",
                    f"\tVTBL V4.B16, [V{11+d}.B16], V4.B16",
                    "\tVEOR V4.B16, V3.B16, V3.B16"]
        out.append("\tVTBL V3.B16, [V20.B16, V21.B16, V22.B16, V23.B16], V3.B16")
        if dot:
            out.append(SDOT(24 + q, 3, 18))
        else:
            out.append(SMULL(0, 3, 18))
            out.append(SMULL2(1, 3, 18))
            out.append(SADALP(24 + q, 0))
            out.append(SADALP(28 + q, 1))
    out += ["\tADD $96, R4, R4",
            "\tADD $16, R5, R5",
            "\tSUB $1, R10, R10",
            f"\tCBNZ R10, {lbl}"]
    return out

def tile4(dot, lbl):
    # k = 4: position p's window is the stream nibbles p-2, p-1, p, so 16
    # bytes m (32 positions) and the same bytes one earlier give the even
    # positions 2m (lo(m-1), hi(m-1), lo(m)) and the odd ones 2m+1 (hi(m-1),
    # lo(m), hi(m)) with six TBL lookups and no shifts; ZIP1/ZIP2 put them
    # back in order (rows 0-3 and 4-7 of the step's half strip).
    out = [f"\n{lbl}:"]
    for s in range(8):
        h = s % 2
        if s == 0:
            out += ["\tVLD1 (R4), [V0.B16]",
                    "\tADD $112, R4, R13",
                    "\tVLD1 (R13), [V1.B16]",
                    "\tVEXT $15, V0.B16, V1.B16, V1.B16 // the byte before the first: the tile's last"]
        else:
            out += [f"\tADD ${16*s-1}, R4, R13",
                    "\tVLD1 (R13), [V1.B16]",
                    "\tADD $1, R13, R13",
                    "\tVLD1 (R13), [V0.B16]"]
        if h == 0:
            out.append(f"\tADD ${4*(s//2)}, R5, R16")
            out.append("\tVLD1R (R16), [V6.S4]")
        out += ["\tVAND V19.B16, V0.B16, V2.B16",
                "\tVUSHR $4, V0.B16, V3.B16",
                "\tVAND V19.B16, V1.B16, V4.B16",
                "\tVUSHR $4, V1.B16, V1.B16",
                "\tVTBL V4.B16, [V16.B16], V0.B16",
                "\tVTBL V1.B16, [V17.B16], V5.B16",
                "\tVEOR V5.B16, V0.B16, V0.B16",
                "\tVTBL V2.B16, [V18.B16], V5.B16",
                "\tVEOR V5.B16, V0.B16, V0.B16",
                "\tVTBL V1.B16, [V16.B16], V1.B16",
                "\tVTBL V2.B16, [V17.B16], V5.B16",
                "\tVEOR V5.B16, V1.B16, V1.B16",
                "\tVTBL V3.B16, [V18.B16], V5.B16",
                "\tVEOR V5.B16, V1.B16, V1.B16",
                "\tVZIP1 V1.B16, V0.B16, V2.B16",
                "\tVZIP2 V1.B16, V0.B16, V3.B16",
                "\tVTBL V2.B16, [V20.B16, V21.B16, V22.B16, V23.B16], V2.B16",
                "\tVTBL V3.B16, [V20.B16, V21.B16, V22.B16, V23.B16], V3.B16"]
        for r, q in ((2, 2 * h), (3, 2 * h + 1)):
            if dot:
                out.append(SDOT(24 + q, r, 6))
            else:
                out.append(SMULL(4, r, 6))
                out.append(SMULL2(5, r, 6))
                out.append(SADALP(24 + q, 4))
                out.append(SADALP(28 + q, 5))
    out += ["\tADD $128, R4, R4",
            "\tADD $16, R5, R5",
            "\tSUB $1, R10, R10",
            f"\tCBNZ R10, {lbl}"]
    return out

def tile2(dot, lbl):
    # k = 2: 16 bytes m (one strip, positions 4m+e: row m, column e); column
    # e's windows are hashed from whole nibbles of bytes m, m-1 and m-2
    # (trellisK2Sources: 14 TBL lookups per 64 positions, no shifts), and a
    # 4×4 byte transpose (ZIP1/ZIP2 on bytes, then halfwords) puts each
    # row's four columns together.
    out = [f"\n{lbl}:"]
    for s in range(4):
        if s == 0:
            out += ["\tVLD1 (R4), [V0.B16]",
                    "\tADD $48, R4, R13",
                    "\tVLD1 (R13), [V3.B16]",
                    "\tVEXT $15, V0.B16, V3.B16, V2.B16 // the bytes before the first: the tile's last",
                    "\tVEXT $14, V0.B16, V3.B16, V4.B16"]
        else:
            out += [f"\tADD ${16*s-2}, R4, R13",
                    "\tVLD1 (R13), [V4.B16]",
                    "\tADD $1, R13, R13",
                    "\tVLD1 (R13), [V2.B16]",
                    "\tADD $1, R13, R13",
                    "\tVLD1 (R13), [V0.B16]"]
        out += [f"\tADD ${4*s}, R5, R16",
                "\tVLD1R (R16), [V18.S4]",
                "\tVUSHR $4, V0.B16, V1.B16",
                "\tVAND V19.B16, V0.B16, V0.B16",
                "\tVUSHR $4, V2.B16, V3.B16",
                "\tVAND V19.B16, V2.B16, V2.B16",
                "\tVUSHR $4, V4.B16, V4.B16"]
        # sources: V4 hi(m-2), V2 lo(m-1), V3 hi(m-1), V0 lo(m), V1 hi(m)
        src = {-12: 4, -8: 2, -4: 3, 0: 0, 4: 1}
        srcs = [[-12, -8, -4, 0], [-8, -4, 0], [-8, -4, 0, 4], [-4, 0, 4]]
        dst = [5, 13, 14, 15]
        off = 64
        for e in range(4):
            n = len(srcs[e])
            tr = [6, 7, 8, 9] if e % 2 == 0 else [10, 11, 12]
            out.append(f"\tADD ${off}, R3, R13")
            out.append("\tVLD1 (R13), [" + ", ".join(f"V{r}.B16" for r in tr[:n]) + "]")
            for i, o in enumerate(srcs[e]):
                if i == 0:
                    out.append(f"\tVTBL V{src[o]}.B16, [V{tr[i]}.B16], V{dst[e]}.B16")
                else:
                    out.append(f"\tVTBL V{src[o]}.B16, [V{tr[i]}.B16], V17.B16")
                    out.append(f"\tVEOR V17.B16, V{dst[e]}.B16, V{dst[e]}.B16")
            off += 16 * n
        out += ["\tVZIP1 V13.B16, V5.B16, V0.B16",
                "\tVZIP2 V13.B16, V5.B16, V1.B16",
                "\tVZIP1 V15.B16, V14.B16, V2.B16",
                "\tVZIP2 V15.B16, V14.B16, V3.B16",
                "\tVZIP1 V2.H8, V0.H8, V4.H8",
                "\tVZIP2 V2.H8, V0.H8, V5.H8",
                "\tVZIP1 V3.H8, V1.H8, V6.H8",
                "\tVZIP2 V3.H8, V1.H8, V7.H8"]
        for q in range(4):
            r = 4 + q
            out.append(f"\tVTBL V{r}.B16, [V20.B16, V21.B16, V22.B16, V23.B16], V{r}.B16")
            if dot:
                out.append(SDOT(24 + q, r, 18))
            else:
                out.append(SMULL(0, r, 18))
                out.append(SMULL2(1, r, 18))
                out.append(SADALP(24 + q, 0))
                out.append(SADALP(28 + q, 1))
    out += ["\tADD $64, R4, R4",
            "\tADD $16, R5, R5",
            "\tSUB $1, R10, R10",
            f"\tCBNZ R10, {lbl}"]
    return out

L += tile3(True, "t3dtile")
a("\tB tgroupend")
L += tile4(True, "t4dtile")
a("\tB tgroupend")
L += tile2(True, "t2dtile")
a("\tB tgroupend")
a("\nttiles:")
a("\tCBNZ R21, t4stile")
a("\tCBNZ R22, t2stile")
L += tile3(False, "t3stile")
a("\tB tpairs")
L += tile4(False, "t4stile")
a("\tB tpairs")
L += tile2(False, "t2stile")
a("\ntpairs:")
for q in range(4):
    a(f"\tVADDP V{28+q}.S4, V{24+q}.S4, V{24+q}.S4")

a("""
tgroupend:
	// out[r] += scale[r]·(α·s_x·dot_r + β·s_x·Σx_q)
	VLD1R (R6), [V1.S4]
	ADD $4, R6
	VLD1R (R7), [V2.S4]
	ADD $4, R7""")
for q in range(4):
    a(SCVTF(24 + q, 24 + q))
    a(f"\tVMOV V2.B16, V3.B16")
    a(f"\tVFMLA V1.S4, V{24+q}.S4, V3.S4")
    a(f"\tFMOVD {8*q}(R8), F4")
    a(FCVTL(4, 4))
    a(f"\tADD ${16*q}, R0, R13")
    a("\tVLD1 (R13), [V0.S4]")
    a("\tVFMLA V3.S4, V4.S4, V0.S4")
    a("\tVST1 [V0.S4], (R13)")
a("""	ADD $32, R8
	CBNZ R9, tgroup

	ADD $64, R0
	MOVD 88(R2), R13
	ADD R13, R15, R15
	MOVD 56(R2), R13
	ADD R13<<5, R14, R14
	SUB $1, R1
	CBNZ R1, tband

tdone:
	RET""")
open(sys.argv[1], "w").write("\n".join(L) + "\n")
