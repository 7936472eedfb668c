package cuda

import (
	"math"
	"runtime"
	"sync"

	"github.com/upg-ai/upg/codec"
)

// unitCodes is the number of codes per GPU unit (one lane's work item).
const unitCodes = 128

// maxSeg bounds the rotation+quantization segment (shared memory floats).
const maxSeg = 8192

// denseFusable reports whether the fused dense GEMV handles m, and why not.
func denseFusable(m *codec.DenseMatrix) (bool, string) {
	// as the CPU's int8 kernels (backend/cpu denseKind): any levels up to 6
	// bits, linear levels up to 8; 7- and 8-bit codebooks stay float there
	switch {
	case m.Bits >= 2 && m.Bits <= 6:
	case m.Bits <= 8 && linearLevels(m.Levels):
	default:
		return false, "bits/levels without a fused kernel"
	}
	if m.GroupSize < 32 || m.GroupSize&(m.GroupSize-1) != 0 {
		return false, "group size not a power of two ≥ 32"
	}
	rb := 1
	if m.Signs != nil {
		rb = m.RotBlock
	}
	seg := max(rb, m.GroupSize)
	if seg%rb != 0 || seg%m.GroupSize != 0 || seg > maxSeg {
		return false, "rotation block and group size do not nest"
	}
	return true, ""
}

// linearLevels reports whether L[q] = L[0] + q (uniform, midrise, asym).
func linearLevels(L []float32) bool {
	for q, v := range L {
		if v != L[0]+float32(q) {
			return false
		}
	}
	return true
}

// byteLevels maps a codebook onto bytes: L[q] ≈ alpha·u[q] + beta, exactly
// for linear levels (u = q), else 256 steps between the smallest and the
// largest entry (the CPU AVX-512 kernels' q8Levels, same rounding).
func byteLevels(L []float32) (u []byte, alpha, beta float32) {
	u = make([]byte, len(L))
	if linearLevels(L) {
		for q := range u {
			u[q] = byte(q)
		}
		return u, 1, L[0]
	}
	lo, hi := L[0], L[0]
	for _, v := range L {
		lo, hi = min(lo, v), max(hi, v)
	}
	alpha, beta = (hi-lo)/255, lo
	for q, v := range L {
		if alpha > 0 {
			x := math.Round(float64((v - lo) / alpha))
			u[q] = byte(min(max(x, 0), 255))
		}
	}
	return u, alpha, beta
}

// permTable packs the byte levels of codes 0..15 into PRMT's registers.
func permTable(u []byte) (t [4]uint32) {
	var b [16]byte
	copy(b[:], u)
	for i := range t {
		t[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return
}

// repackDense lays m's codes out for the GPU kernel (see kernels/gemv.cu):
// rows in groups of 32; row r = 32·rg + lane, unit u, plane word j (0..K-1)
// is the 16 bytes at (((rg·U + u)·K + j)·32 + lane)·16. Rows are padded to
// a multiple of 32 with zero codes.
func repackDense(m *codec.DenseMatrix) []byte {
	K := layoutBits(m.Bits)
	U := (m.C + unitCodes - 1) / unitCodes
	RG := (m.R + 31) / 32
	out := make([]byte, RG*32*K*U*16)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			q := make([]uint8, U*unitCodes)
			for r := w; r < m.R; r += workers {
				row := m.Codes[r*m.RowBytes : (r+1)*m.RowBytes]
				clear(q)
				for c := 0; c < m.C; c++ {
					q[c] = uint8(getBits(row, c*m.Bits, m.Bits))
				}
				packRow(out, r, q, K, U, K == 4 && !linearLevels(m.Levels))
			}
		}(w)
	}
	wg.Wait()
	return out
}

// packRow writes row r's units (codes q, U·128 of them) in plane layout
// (K = 3: the selector layout, sel3Col). nib4 selects the 4-bit nibble
// layout (nibble i of word c = code 8c+i, for the 16-entry table kernel)
// instead of the byte-split one.
func packRow(dst []byte, r int, q []uint8, K, U int, nib4 bool) {
	rg, lane := r/32, r%32
	put := func(j, u, comp int, v uint32) {
		o := ((((rg*U+u)*K+j)*32+lane)*4 + comp) * 4
		dst[o] |= byte(v)
		dst[o+1] |= byte(v >> 8)
		dst[o+2] |= byte(v >> 16)
		dst[o+3] |= byte(v >> 24)
	}
	for u := 0; u < U; u++ {
		qu := q[u*unitCodes : (u+1)*unitCodes]
		if K == 3 {
			// selector layout (kernels/gemv.cu sel3): word j of plane p
			// holds selector (p, j) in its nibbles' bits 0-2, and bit p of
			// selector (3, j)'s nibble n in bit 3 of its nibble n
			for j := 0; j < 4; j++ {
				var w [3]uint32
				for n := 0; n < 8; n++ {
					v3 := uint32(qu[sel3Col(3, j, n)])
					for p := range w {
						w[p] |= (uint32(qu[sel3Col(p, j, n)])&7 | (v3>>p&1)<<3) << (4 * n)
					}
				}
				for p, v := range w {
					put(p, u, j, v)
				}
			}
			continue
		}
		for c := 0; c < 16; c++ {
			cs := qu[8*c : 8*c+8]
			switch K {
			case 2:
				m, s := c>>1, 2*(c&1)
				var lo uint32
				for i, v := range cs {
					lo |= uint32(v&3) << (4*i + s)
				}
				put(m>>2, u, m&3, lo)
			case 8:
				for h := 0; h < 2; h++ {
					x := uint32(cs[4*h]) | uint32(cs[4*h+1])<<8 | uint32(cs[4*h+2])<<16 | uint32(cs[4*h+3])<<24
					put(c>>1, u, 2*(c&1)+h, x)
				}
			case 4:
				var x uint32
				for i := 0; i < 4; i++ {
					if nib4 {
						x |= uint32(cs[i]&15)<<(4*i) | uint32(cs[i+4]&15)<<(4*i+16)
					} else {
						x |= uint32(cs[i]&15)<<(8*i) | uint32(cs[i+4]&15)<<(8*i+4)
					}
				}
				put(c>>2, u, c&3, x)
			}
		}
	}
}

// sel3Col is the unit column whose code is nibble n (0..7) of the 3-bit
// layout's selector (ks, j): nibbles 0-3 are columns 32·ks + 4j .. +3, the
// ones an mma.sync m16n8k32 A register of lane group j (tig) takes in
// k-slice ks, nibbles 4-7 columns 32·ks + 16 + 4j .. +3 (its second
// register), so one selector gives a lane both of a row's registers.
func sel3Col(ks, j, n int) int { return 32*ks + 16*(n>>2) + 4*j + n&3 }

// layoutBits is the plane words per unit the GPU layout gives k-bit codes:
// k for k ≤ 4, 8 (one byte per code, the byte layout) for 5 to 8 bits.
func layoutBits(k int) int {
	if k > 4 {
		return 8
	}
	return k
}

// getBits reads the k-bit value at bit pos of an LSB-first bitstream.
func getBits(b []byte, pos, k int) uint32 {
	i, s := pos>>3, pos&7
	var w uint32
	for j := 0; j < 3 && i+j < len(b); j++ {
		w |= uint32(b[i+j]) << (8 * j)
	}
	return (w >> s) & (1<<k - 1)
}

// quantPlan is how the rotation+quantization kernel runs for a matrix.
type quantPlan struct {
	rb, gs, seg, C, G, U int
}

func newQuantPlan(m *codec.DenseMatrix) quantPlan {
	rb := 1
	seg := m.GroupSize
	if m.Signs != nil {
		rb = m.RotBlock
		seg = max(rb, m.GroupSize)
	} else if w := min(codec.RotationBlock(m.C), maxSeg); w > seg {
		// no rotation: segments as wide as a rotated matrix's would be (a
		// power of two dividing C), not one group wide, since upg_rms_rotq
		// reads the whole row in every block: 40 blocks a token at Phi-4's
		// width and groups of 128 cost prefill 12% (run 212)
		seg = w
	}
	U := (m.C + unitCodes - 1) / unitCodes
	return quantPlan{rb: rb, gs: m.GroupSize, seg: seg, C: m.C, G: m.Groups, U: U}
}

// segments is the number of rotq blocks per token (covering U·128 columns).
func (p quantPlan) segments() int { return (p.U*unitCodes + p.seg - 1) / p.seg }

// interleaveRows re-lays an R×G fp16 array (scales, offsets) as the kernel
// reads it: element (r, g) at (rg·G + g)·32 + lane, rows padded to 32.
func interleaveRows(src []byte, R, G int) []byte {
	RG := (R + 31) / 32
	out := make([]byte, RG*32*G*2)
	for r := 0; r < R; r++ {
		rg, lane := r/32, r%32
		for g := 0; g < G; g++ {
			o := ((rg*G+g)*32 + lane) * 2
			out[o], out[o+1] = src[2*(r*G+g)], src[2*(r*G+g)+1]
		}
	}
	return out
}
