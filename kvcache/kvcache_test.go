package kvcache

import (
	"strings"
	"testing"

	"github.com/upg-ai/upg/tensor"
)

func TestContiguousStoreSpan(t *testing.T) {
	const layers, heads, hd, capacity = 2, 2, 2, 100
	const kvDim = heads * hd
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		c, err := New(dt, layers, heads, hd, capacity)
		if err != nil {
			t.Fatal(err)
		}
		// 70 positions: more than the first allocation (64), so the block grows.
		for pos := 0; pos < 70; pos++ {
			for l := 0; l < layers; l++ {
				k := []float32{float32(pos), float32(l), 0.5, -1}
				v := []float32{-float32(pos), float32(l), 0.25, 2}
				if err := c.Store(3, l, pos, k, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		if c.Len(3) != 70 || c.Len(4) != 0 {
			t.Fatalf("%v: Len = %d, %d; want 70, 0", dt, c.Len(3), c.Len(4))
		}
		sp := c.Span(3, 1, 60)
		if sp.N != 10 {
			t.Fatalf("%v: span from 60 has %d positions, want 10", dt, sp.N)
		}
		// Key of head h at the span's position i: element j at h*HeadStride + i*RowStride + j.
		at := func(k []float32, k16 []uint16, h, i, j int) float32 {
			o := h*sp.HeadStride + i*sp.RowStride + j
			if k16 != nil {
				return tensor.F16ToF32(k16[o])
			}
			return k[o]
		}
		for i := 0; i < 10; i++ {
			k0, k1, k2, k3 := at(sp.K, sp.K16, 0, i, 0), at(sp.K, sp.K16, 0, i, 1), at(sp.K, sp.K16, 1, i, 0), at(sp.K, sp.K16, 1, i, 1)
			v0 := at(sp.V, sp.V16, 0, i, 0)
			if k0 != float32(60+i) || k1 != 1 || k2 != 0.5 || k3 != -1 || v0 != -float32(60+i) {
				t.Fatalf("%v: position %d holds k=(%g,%g,%g,%g) v0=%g", dt, 60+i, k0, k1, k2, k3, v0)
			}
		}
		// Overwrite inside, truncate, and continue.
		c.Truncate(3, 20)
		if c.Len(3) != 20 {
			t.Fatalf("%v: Len after Truncate = %d, want 20", dt, c.Len(3))
		}
		if err := c.Store(3, 0, 25, make([]float32, kvDim), make([]float32, kvDim)); err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Fatalf("%v: storing past the end: err = %v", dt, err)
		}
		if err := c.Store(3, 0, capacity, make([]float32, kvDim), make([]float32, kvDim)); err == nil || !strings.Contains(err.Error(), "context size") {
			t.Fatalf("%v: storing beyond capacity: err = %v", dt, err)
		}
		if err := c.Store(3, 2, 0, make([]float32, kvDim), make([]float32, kvDim)); err == nil {
			t.Fatalf("%v: layer out of range accepted", dt)
		}
		if err := c.Store(3, 0, 0, make([]float32, 3), make([]float32, kvDim)); err == nil {
			t.Fatalf("%v: short key accepted", dt)
		}
		c.Truncate(3, 0)
		if c.Len(3) != 0 {
			t.Fatalf("%v: sequence not freed", dt)
		}
	}
	if _, err := New(tensor.BF16, 1, 2, 2, 8); err == nil {
		t.Fatal("bf16 cache accepted")
	}
}

// TestF16Rounding checks that stored values are rounded to half precision
// (to nearest even) and read back exactly as that half.
func TestF16Rounding(t *testing.T) {
	c, _ := New(tensor.F16, 1, 1, 3, 4)
	k := []float32{1 + 1.0/4096, 65504, 1e-8} // halfway case rounds to even (1), max half, underflow to 0
	if err := c.Store(0, 0, 0, k, k); err != nil {
		t.Fatal(err)
	}
	sp := c.Span(0, 0, 0)
	want := []float32{1, 65504, 0}
	for i, w := range want {
		if got := tensor.F16ToF32(sp.K16[i]); got != w {
			t.Errorf("k[%d] = %g, want %g", i, got, w)
		}
	}
}
