package gguf

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

// quantVectors holds, for 17 types, ggml's own quantization of a 4x512
// float32 tensor (q.TYPE) and ggml's own dequantization of it (ref.TYPE).
const quantVectors = "../../shared/gguf/ggml-quant-vectors.gguf"

// TestDequantizeMatchesGGML decodes every q.TYPE of the vectors file and
// requires ggml's floats bit for bit; one subtest per type.
func TestDequantizeMatchesGGML(t *testing.T) {
	testutil.NeedData(t, quantVectors)
	f, err := Open(quantVectors)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	types := 0
	for _, ti := range f.Tensors {
		name, ok := strings.CutPrefix(ti.Name, "q.")
		if !ok {
			continue
		}
		types++
		t.Run(name, func(t *testing.T) {
			if ti.Type.String() != name {
				t.Fatalf("tensor %s has type %s", ti.Name, ti.Type)
			}
			if !ti.Type.Quantized() {
				t.Fatalf("%s: not supported", name)
			}
			_, q, err := f.TensorData(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			rinfo, ref, err := f.TensorData("ref." + name)
			if err != nil || rinfo.Type != TypeF32 || rinfo.Elements() != ti.Elements() {
				t.Fatalf("ref.%s: %v %v", name, rinfo, err)
			}
			got := make([]float32, ti.Elements())
			if err := Dequantize(ti.Type, got, q); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, g := range got {
				want := binary.LittleEndian.Uint32(ref[4*i:])
				if math.Float32bits(g) != want {
					if bad < 5 {
						t.Errorf("%s[%d] = %v (%#08x), ggml %v (%#08x)", name, i, g, math.Float32bits(g), math.Float32frombits(want), want)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s: %d of %d values differ from ggml", name, bad, len(got))
			}
			// Also close to the source: a wrong layout would be far off.
			_, src, _ := f.TensorData("src")
			var se, ss float64
			for i, g := range got {
				s := float64(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:])))
				se += (float64(g) - s) * (float64(g) - s)
				ss += s * s
			}
			limit := 0.5
			if strings.HasPrefix(name, "TQ") {
				limit = 0.85 // ternary codes for Gaussian data: 0.81
			}
			if rel := math.Sqrt(se / ss); rel > limit {
				t.Errorf("%s: relative error %.3f against the source", name, rel)
			}
		})
	}
	if types != 17 {
		t.Errorf("%d quantized types in %s, want 17", types, quantVectors)
	}
}

// TestDequantizeBadSizes: sizes that do not match are errors, not panics.
func TestDequantizeBadSizes(t *testing.T) {
	for ty := range dequantizers {
		bs, ts := int(ty.BlockSize()), int(ty.TypeSize())
		if err := Dequantize(ty, make([]float32, bs), make([]byte, ts-1)); err == nil {
			t.Errorf("%s: a short block was accepted", ty)
		}
		if err := Dequantize(ty, make([]float32, bs+1), make([]byte, ts)); err == nil {
			t.Errorf("%s: a partial block was accepted", ty)
		}
		// Any bytes decode to finite or well-defined values without panicking.
		b := make([]byte, ts)
		for i := range b {
			b[i] = byte(i*37 + 11)
		}
		if err := Dequantize(ty, make([]float32, bs), b); err != nil {
			t.Errorf("%s: %v", ty, err)
		}
	}
	if err := Dequantize(TypeIQ1_M, make([]float32, 256), make([]byte, 56)); err == nil || !strings.Contains(err.Error(), "IQ1_M") {
		t.Errorf("IQ1_M: %v, want an error naming the type", err)
	}
}

// TestF16 checks the half decoder on every bit pattern against the
// definition (sign, exponent, mantissa).
func TestF16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		b := []byte{byte(h), byte(h >> 8)}
		got := f16(b)
		e, m := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(1)
		case e == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: %v, want NaN", h, got)
			}
			continue
		case e == 0:
			want = math.Ldexp(float64(m), -24)
		default:
			want = math.Ldexp(float64(m|0x400), e-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("%#04x: %v, want %v", h, got, want)
		}
	}
}
