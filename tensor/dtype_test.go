package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// f16Cases are float32 values around every fp16 boundary: subnormals, the
// smallest normal, rounding ties, the largest finite value, overflow,
// signed zeros, infinities and NaN.
func f16Cases() []float32 {
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519, 65520, -65520, 1e9,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		6.103515625e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08, 1e-10,
		1 + 1.0/2048, 1 + 3.0/2048, 1 + 1.0/4096, 2049, 2051}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		e := rng.IntN(50) - 30 // 2^-30 .. 2^19
		m := 1 + rng.Float64()
		if rng.IntN(2) == 0 {
			m = -m
		}
		v = append(v, float32(math.Ldexp(m, e)))
		v = append(v, math.Float32frombits(rng.Uint32())) // any bit pattern
	}
	return v
}

// TestF32ToF16sMatchesScalar checks the vector conversion (F16C on amd64)
// bit for bit against the scalar F32ToF16 on every length's tail handling.
func TestF32ToF16sMatchesScalar(t *testing.T) {
	src := f16Cases()
	for _, n := range []int{len(src), 7, 8, 9, 17} {
		dst := make([]uint16, n)
		F32ToF16s(dst, src[:n])
		for i, f := range src[:n] {
			want := F32ToF16(f)
			if f != f { // NaN: any NaN encoding, sign kept
				if dst[i]&0x7c00 != 0x7c00 || dst[i]&0x3ff == 0 || dst[i]&0x8000 != want&0x8000 {
					t.Fatalf("n=%d [%d] NaN %08x -> %04x, not a NaN of the same sign", n, i, math.Float32bits(f), dst[i])
				}
				continue
			}
			if dst[i] != want {
				t.Fatalf("n=%d [%d] %g (%08x) -> %04x, want %04x", n, i, f, math.Float32bits(f), dst[i], want)
			}
		}
	}
}

// TestF32ToF16Known checks fixed conversions from the IEEE 754 tables.
func TestF32ToF16Known(t *testing.T) {
	for _, c := range []struct {
		f     float32
		h     uint16
		exact bool // f is an fp16 value, so F16ToF32(h) == f
	}{
		{1, 0x3c00, true}, {-2, 0xc000, true}, {65504, 0x7bff, true}, {65520, 0x7c00, false},
		{6.103515625e-05, 0x0400, true}, {5.9604645e-08, 0x0001, true}, {2.9802322e-08, 0x0000, false},
		{0.333333343, 0x3555, false}, {1 + 1.0/2048, 0x3c00, false}, {1 + 3.0/2048, 0x3c02, false},
	} {
		if h := F32ToF16(c.f); h != c.h {
			t.Errorf("F32ToF16(%g) = %04x, want %04x", c.f, h, c.h)
		}
		if f := F16ToF32(c.h); c.exact && f != c.f {
			t.Errorf("F16ToF32(%04x) = %g, want %g", c.h, f, c.f)
		}
	}
}

func BenchmarkF32ToF16s(b *testing.B) {
	src := make([]float32, 5120)
	for i := range src {
		src[i] = float32(i) * 0.37
	}
	dst := make([]uint16, len(src))
	b.SetBytes(int64(4 * len(src)))
	for i := 0; i < b.N; i++ {
		F32ToF16s(dst, src)
	}
}
