package codec

import (
	"encoding/binary"
	"math"

	"github.com/upg-ai/upg/tensor"
)

func putU16(b []byte, v uint16)  { binary.LittleEndian.PutUint16(b, v) }
func putF32(b []byte, v float32) { binary.LittleEndian.PutUint32(b, math.Float32bits(v)) }
func getF32(b []byte) float32    { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// f16At reads the i-th little-endian fp16 value of b as float32.
func f16At(b []byte, i int) float32 {
	return tensor.F16ToF32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
}

// roundF16 rounds v to the nearest fp16 value, clamping to the finite range.
func roundF16(v float32) float32 {
	const maxF16 = 65504
	if v > maxF16 {
		v = maxF16
	} else if v < -maxF16 {
		v = -maxF16
	}
	return tensor.F16ToF32(tensor.F32ToF16(v))
}

// align8 rounds n up to a multiple of 8.
func align8(n int64) int64 { return (n + 7) &^ 7 }

// rowBytes is the byte length of a row bitstream holding n codes of k bits,
// padded to a multiple of 8 bytes.
func rowBytes(n, k int) int { return int(align8((int64(n)*int64(k) + 7) / 8)) }

// putBits writes the k-bit value v at bit position pos of the LSB-first
// bitstream b (bit i of the stream is bit i%8 of byte i/8). k <= 16.
func putBits(b []byte, pos, k int, v uint32) {
	for k > 0 {
		i, s := pos>>3, pos&7
		n := 8 - s
		if n > k {
			n = k
		}
		b[i] |= byte((v & (1<<n - 1)) << s)
		v >>= n
		pos += n
		k -= n
	}
}

// getBits reads the k-bit value at bit position pos of the LSB-first
// bitstream b. k <= 16 and the value must lie inside b.
func getBits(b []byte, pos, k int) uint32 {
	i, s := pos>>3, pos&7
	var w uint32
	for j := 0; j < 3 && i+j < len(b); j++ {
		w |= uint32(b[i+j]) << (8 * j)
	}
	return (w >> s) & (1<<k - 1)
}

// unpackCodes decodes n consecutive k-bit codes starting at bit pos into dst.
func unpackCodes(dst []uint8, b []byte, pos, k int) {
	switch k {
	case 8:
		copy(dst, b[pos>>3:])
		return
	case 4:
		if pos&7 == 0 {
			p := pos >> 3
			for i := 0; i+1 < len(dst); i += 2 {
				x := b[p+i>>1]
				dst[i], dst[i+1] = x&15, x>>4
			}
			if len(dst)&1 == 1 {
				dst[len(dst)-1] = b[p+len(dst)>>1] & 15
			}
			return
		}
	case 3:
		if pos&7 == 0 {
			p := pos >> 3
			i := 0
			for ; i+8 <= len(dst); i += 8 {
				x := uint32(b[p]) | uint32(b[p+1])<<8 | uint32(b[p+2])<<16
				p += 3
				d := dst[i : i+8 : i+8]
				d[0], d[1], d[2], d[3] = uint8(x&7), uint8(x>>3&7), uint8(x>>6&7), uint8(x>>9&7)
				d[4], d[5], d[6], d[7] = uint8(x>>12&7), uint8(x>>15&7), uint8(x>>18&7), uint8(x>>21&7)
			}
			pos += 3 * i
			dst = dst[i:]
		}
	case 2:
		if pos&7 == 0 {
			p := pos >> 3
			i := 0
			for ; i+4 <= len(dst); i += 4 {
				x := b[p]
				p++
				dst[i], dst[i+1], dst[i+2], dst[i+3] = x&3, x>>2&3, x>>4&3, x>>6
			}
			pos += 2 * i
			dst = dst[i:]
		}
	}
	for i := range dst {
		dst[i] = uint8(getBits(b, pos, k))
		pos += k
	}
}
