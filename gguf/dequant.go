package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dequantization of ggml's quantized tensor types to float32, bit for bit
// what ggml's to_float functions produce (each product rounded to float32
// in ggml's order of operations; no fused multiply-adds).

// dequantizers maps each supported type to its block decoder: it reads one
// block (TypeSize bytes) and writes BlockSize floats.
var dequantizers = map[GGMLType]func(dst []float32, b []byte){
	TypeQ4_0:    deqQ4_0,
	TypeQ4_1:    deqQ4_1,
	TypeQ5_0:    deqQ5_0,
	TypeQ5_1:    deqQ5_1,
	TypeQ8_0:    deqQ8_0,
	TypeQ2_K:    deqQ2K,
	TypeQ3_K:    deqQ3K,
	TypeQ4_K:    deqQ4K,
	TypeQ5_K:    deqQ5K,
	TypeQ6_K:    deqQ6K,
	TypeIQ4_NL:  deqIQ4NL,
	TypeIQ4_XS:  deqIQ4XS,
	TypeIQ3_XXS: deqIQ3XXS,
	TypeIQ3_S:   deqIQ3S,
	TypeIQ2_S:   deqIQ2S,
	TypeTQ1_0:   deqTQ1_0,
	TypeTQ2_0:   deqTQ2_0,
}

// Quantized reports whether t is a block-quantized type that Dequantize
// decodes.
func (t GGMLType) Quantized() bool { _, ok := dequantizers[t]; return ok }

// Dequantize decodes len(dst) elements of type t from src, which must hold
// exactly len(dst)/BlockSize blocks. F32, F16 and BF16 are accepted too.
func Dequantize(t GGMLType, dst []float32, src []byte) error {
	switch t {
	case TypeF32, TypeF16, TypeBF16:
		es := int(t.TypeSize())
		if len(src) != len(dst)*es {
			return fmt.Errorf("%d bytes of %s do not hold %d values", len(src), t, len(dst))
		}
		for i := range dst {
			switch t {
			case TypeF32:
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
			case TypeF16:
				dst[i] = f16(src[2*i:])
			default:
				dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
			}
		}
		return nil
	}
	dec, ok := dequantizers[t]
	if !ok {
		return fmt.Errorf("tensor type %s cannot be dequantized (supported: %s)", t, supportedQuantNames())
	}
	bs, ts := int(t.BlockSize()), int(t.TypeSize())
	if len(dst)%bs != 0 || len(src) != len(dst)/bs*ts {
		return fmt.Errorf("%d bytes of %s do not hold %d values (blocks of %d values in %d bytes)", len(src), t, len(dst), bs, ts)
	}
	for i := 0; i < len(dst)/bs; i++ {
		dec(dst[i*bs:(i+1)*bs:(i+1)*bs], src[i*ts:(i+1)*ts:(i+1)*ts])
	}
	return nil
}

func supportedQuantNames() string {
	s := ""
	for _, t := range []GGMLType{TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0, TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K,
		TypeIQ2_S, TypeIQ3_XXS, TypeIQ3_S, TypeIQ4_NL, TypeIQ4_XS, TypeTQ1_0, TypeTQ2_0} {
		if s != "" {
			s += ", "
		}
		s += t.String()
	}
	return s
}

// f16 decodes an IEEE half-precision value (exactly; every half is a float32).
func f16(b []byte) float32 {
	h := uint32(binary.LittleEndian.Uint16(b))
	sign := (h >> 15) << 31
	exp := (h >> 10) & 0x1f
	man := h & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: normalise
	e := uint32(113)
	for man&0x400 == 0 {
		man <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
}

// mul is a float32 product rounded on its own (never fused into an add).
func mul(a, b float32) float32 { return float32(a * b) }

func deqQ4_0(y []float32, b []byte) {
	d := f16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = mul(float32(int(qs[j]&0xf)-8), d)
		y[j+16] = mul(float32(int(qs[j]>>4)-8), d)
	}
}

func deqQ4_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = mul(float32(qs[j]&0xf), d) + m
		y[j+16] = mul(float32(qs[j]>>4), d) + m
	}
}

func deqQ5_0(y []float32, b []byte) {
	d := f16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		h0 := byte((qh>>j)<<4) & 0x10
		h1 := byte(qh>>(j+12)) & 0x10
		y[j] = mul(float32(int(qs[j]&0xf|h0)-16), d)
		y[j+16] = mul(float32(int(qs[j]>>4|h1)-16), d)
	}
}

func deqQ5_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		h0 := byte((qh>>j)<<4) & 0x10
		h1 := byte(qh>>(j+12)) & 0x10
		y[j] = mul(float32(qs[j]&0xf|h0), d) + m
		y[j+16] = mul(float32(qs[j]>>4|h1), d) + m
	}
}

func deqQ8_0(y []float32, b []byte) {
	d := f16(b)
	for j := 0; j < 32; j++ {
		y[j] = mul(float32(int8(b[2+j])), d)
	}
}

// Q2_K: 16 sub-blocks of 16; 4-bit scale and min per sub-block.
func deqQ2K(y []float32, b []byte) {
	scales, q := b[0:16], b[16:80]
	d, dmin := f16(b[80:]), f16(b[82:])
	is := 0
	for n := 0; n < 2; n++ {
		for shift := uint(0); shift < 8; shift += 2 {
			for half := 0; half < 2; half++ {
				sc := scales[is]
				is++
				dl, ml := mul(d, float32(sc&0xf)), mul(dmin, float32(sc>>4))
				for l := 0; l < 16; l++ {
					y[l] = mul(dl, float32((q[l+16*half]>>shift)&3)) - ml
				}
				y = y[16:]
			}
		}
		q = q[32:]
	}
}

// Q3_K: 16 sub-blocks of 16; 6-bit signed scales; a high-bit mask.
func deqQ3K(y []float32, b []byte) {
	hm, q, sb := b[0:32], b[32:96], b[96:108]
	dAll := f16(b[108:])
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	var aux [4]uint32
	aux[0] = binary.LittleEndian.Uint32(sb[0:])
	aux[1] = binary.LittleEndian.Uint32(sb[4:])
	tmp := binary.LittleEndian.Uint32(sb[8:])
	aux[2] = (aux[0]>>4)&kmask2 | ((tmp>>4)&kmask1)<<4
	aux[3] = (aux[1]>>4)&kmask2 | ((tmp>>6)&kmask1)<<4
	aux[0] = aux[0]&kmask2 | (tmp&kmask1)<<4
	aux[1] = aux[1]&kmask2 | ((tmp>>2)&kmask1)<<4
	var scales [16]int8
	for i := range scales {
		scales[i] = int8(aux[i/4] >> (8 * (i % 4)))
	}
	is := 0
	m := byte(1)
	for n := 0; n < 2; n++ {
		for shift := uint(0); shift < 8; shift += 2 {
			for half := 0; half < 2; half++ {
				dl := mul(dAll, float32(int(scales[is])-32))
				is++
				for l := 0; l < 16; l++ {
					v := int((q[l+16*half] >> shift) & 3)
					if hm[l+16*half]&m == 0 {
						v -= 4
					}
					y[l] = mul(dl, float32(v))
				}
				y = y[16:]
			}
			m <<= 1
		}
		q = q[32:]
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j of Q4_K/Q5_K.
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// Q4_K: 8 sub-blocks of 32; 6-bit scales and mins.
func deqQ4K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	scales, q := b[4:16], b[16:144]
	for is := 0; is < 8; is += 2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := mul(d, float32(sc)), mul(dmin, float32(m))
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := mul(d, float32(sc)), mul(dmin, float32(m))
		for l := 0; l < 32; l++ {
			y[l] = mul(d1, float32(q[l]&0xf)) - m1
			y[l+32] = mul(d2, float32(q[l]>>4)) - m2
		}
		y, q = y[64:], q[32:]
	}
}

// Q5_K: Q4_K plus a fifth bit per value.
func deqQ5K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	scales, qh, ql := b[4:16], b[16:48], b[48:176]
	u1, u2 := byte(1), byte(2)
	for is := 0; is < 8; is += 2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := mul(d, float32(sc)), mul(dmin, float32(m))
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := mul(d, float32(sc)), mul(dmin, float32(m))
		for l := 0; l < 32; l++ {
			v1, v2 := ql[l]&0xf, ql[l]>>4
			if qh[l]&u1 != 0 {
				v1 += 16
			}
			if qh[l]&u2 != 0 {
				v2 += 16
			}
			y[l] = mul(d1, float32(v1)) - m1
			y[l+32] = mul(d2, float32(v2)) - m2
		}
		y, ql = y[64:], ql[32:]
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: 16 sub-blocks of 16; 8-bit signed scales.
func deqQ6K(y []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := f16(b[208:])
	for n := 0; n < 2; n++ {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int(ql[l]&0xf|(qh[l]&3)<<4) - 32
			q2 := int(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
			q3 := int(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
			q4 := int(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
			y[l] = mul(mul(d, float32(int8(sc[is]))), float32(q1))
			y[l+32] = mul(mul(d, float32(int8(sc[is+2]))), float32(q2))
			y[l+64] = mul(mul(d, float32(int8(sc[is+4]))), float32(q3))
			y[l+96] = mul(mul(d, float32(int8(sc[is+6]))), float32(q4))
		}
		y, ql, qh, sc = y[128:], ql[64:], qh[32:], sc[8:]
	}
}

func deqIQ4NL(y []float32, b []byte) {
	d := f16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = mul(d, float32(iq4nlValues[qs[j]&0xf]))
		y[j+16] = mul(d, float32(iq4nlValues[qs[j]>>4]))
	}
}

func deqIQ4XS(y []float32, b []byte) {
	d := f16(b)
	sh := binary.LittleEndian.Uint16(b[2:])
	sl, qs := b[4:8], b[8:136]
	for ib := 0; ib < 8; ib++ {
		ls := int((sl[ib/2]>>(4*(ib%2)))&0xf) | int((sh>>(2*ib))&3)<<4
		dl := mul(d, float32(ls-32))
		for j := 0; j < 16; j++ {
			y[j] = mul(dl, float32(iq4nlValues[qs[j]&0xf]))
			y[j+16] = mul(dl, float32(iq4nlValues[qs[j]>>4]))
		}
		y, qs = y[32:], qs[16:]
	}
}

// signIQ2 expands a 7-bit sign index to 8 signs: the eighth makes the
// number of negative signs even (ggml's ksigns_iq2xs).
func signIQ2(i uint32) byte {
	i &= 127
	s := byte(i)
	for x := i; x != 0; x &= x - 1 {
		s ^= 0x80
	}
	return s
}

// put8 writes 8 grid magnitudes (the bytes of g, low first) times dl with signs.
func put8(y []float32, dl float32, g uint64, signs byte) {
	for j := 0; j < 8; j++ {
		v := mul(dl, float32(byte(g>>(8*j))))
		if signs&(1<<j) != 0 {
			v = -v
		}
		y[j] = v
	}
}

func deqIQ3XXS(y []float32, b []byte) {
	d := f16(b)
	qs, ss := b[2:66], b[66:98]
	for ib := 0; ib < 8; ib++ {
		aux := binary.LittleEndian.Uint32(ss[4*ib:])
		db := mul(mul(d, 0.5+float32(aux>>28)), 0.5)
		for l := 0; l < 4; l++ {
			g := uint64(iq3xxsGrid[qs[2*l]]) | uint64(iq3xxsGrid[qs[2*l+1]])<<32
			put8(y, db, g, signIQ2(aux>>(7*l)))
			y = y[8:]
		}
		qs = qs[8:]
	}
}

func deqIQ3S(y []float32, b []byte) {
	d := f16(b)
	qs, qh, signs, scales := b[2:66], b[66:74], b[74:106], b[106:110]
	for ib := 0; ib < 8; ib += 2 {
		db := [2]float32{mul(d, float32(1+2*int(scales[ib/2]&0xf))), mul(d, float32(1+2*int(scales[ib/2]>>4)))}
		for k := 0; k < 2; k++ {
			h := int(qh[k])
			for l := 0; l < 4; l++ {
				g1 := iq3sGrid[int(qs[2*l])|(h<<(8-2*l))&256]
				g2 := iq3sGrid[int(qs[2*l+1])|(h<<(7-2*l))&256]
				put8(y, db[k], uint64(g1)|uint64(g2)<<32, signs[l])
				y = y[8:]
			}
			qs, signs = qs[8:], signs[4:]
		}
		qh = qh[2:]
	}
}

func deqIQ2S(y []float32, b []byte) {
	d := f16(b)
	qs, signs, qh, scales := b[2:34], b[34:66], b[66:74], b[74:82]
	for ib := 0; ib < 8; ib++ {
		db := [2]float32{
			mul(mul(d, 0.5+float32(scales[ib]&0xf)), 0.25),
			mul(mul(d, 0.5+float32(scales[ib]>>4)), 0.25),
		}
		for l := 0; l < 4; l++ {
			g := iq2sGrid[int(qs[l])|(int(qh[ib])<<(8-2*l))&0x300]
			put8(y, db[l/2], g, signs[l])
			y = y[8:]
		}
		qs, signs = qs[4:], signs[4:]
	}
}

// TQ1_0: ternary values packed five per byte (base 3, most significant
// first, as a fixed-point fraction) and four per byte in qh.
func deqTQ1_0(y []float32, b []byte) {
	qs, qh := b[0:48], b[48:52]
	d := f16(b[52:])
	pow3 := [6]byte{1, 3, 9, 27, 81, 243}
	trit := func(q byte, n int) float32 {
		x := (uint16(q*pow3[n]) * 3) >> 8
		return mul(float32(int(x)-1), d)
	}
	i := 0
	for _, span := range [][2]int{{0, 32}, {32, 48}} {
		for n := 0; n < 5; n++ {
			for m := span[0]; m < span[1]; m++ {
				y[i] = trit(qs[m], n)
				i++
			}
		}
	}
	for n := 0; n < 4; n++ {
		for j := 0; j < 4; j++ {
			y[i] = trit(qh[j], n)
			i++
		}
	}
}

// TQ2_0: ternary values, 2 bits each (0, 1, 2 → -1, 0, 1).
func deqTQ2_0(y []float32, b []byte) {
	qs := b[0:64]
	d := f16(b[64:])
	i := 0
	for j := 0; j < 64; j += 32 {
		for l := uint(0); l < 4; l++ {
			for m := 0; m < 32; m++ {
				y[i] = mul(float32(int((qs[j+m]>>(2*l))&3)-1), d)
				i++
			}
		}
	}
}
