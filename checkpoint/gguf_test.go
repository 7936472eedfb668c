package checkpoint

import (
	"math"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
	"github.com/upg-ai/upg/tensor"
)

// q4km is miniphi-29m quantized by llama.cpp (Q4_K, Q5_K, Q6_K and F32 tensors).
const q4km = "../../shared/gguf/miniphi-29m-Q4_K_M.gguf"

// TestQuantizedGGUF: every weight of a llama.cpp-quantized file opens; the
// eager float32 copy and the row-by-row decoder agree exactly; the values
// are those of the unquantized model up to quantization error.
func TestQuantizedGGUF(t *testing.T) {
	testutil.NeedData(t, q4km)
	ck, err := Open(q4km)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	src := ck.Tensors.(*ggufSource)
	if !src.eager {
		t.Fatal("a 29M-parameter model should be dequantized in memory")
	}
	if d, ok := ck.GGUFDequant(); !ok || !d.Quantized || !d.Eager || d.Float32Bytes < 100e6 || d.Float32Bytes > 4*ck.NumParams() {
		t.Errorf("GGUFDequant() = %+v, %v", d, ok)
	}
	encodings := map[string]int{}
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		encodings[info.Encoding]++
		if len(info.Shape) != 2 {
			if _, err := src.Vector(name); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			continue
		}
		m, err := src.Matrix(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		src.eager = false
		lazy, err := src.Matrix(name)
		src.eager = true
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := lazy.(*quantMatrix); !ok && info.Encoding != "F32" {
			t.Fatalf("%s (%s): lazy matrix is %T", name, info.Encoding, lazy)
		}
		R, C := m.Rows(), m.Cols()
		if R != info.Shape[0] || C != info.Shape[1] {
			t.Fatalf("%s: %dx%d, shape %v", name, R, C, info.Shape)
		}
		a, b := make([]float32, 3*C), make([]float32, 3*C)
		for _, r := range []int{0, R / 2, R - 3} {
			m.DecodeRows(a, r, r+3)
			lazy.DecodeRows(b, r, r+3)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) || math.IsNaN(float64(a[i])) {
					t.Fatalf("%s row %d: eager %v, lazy %v", name, r+i/C, a[i], b[i])
				}
			}
		}
		if _, ok := m.(*tensor.Dense); !ok {
			t.Fatalf("%s: eager matrix is %T", name, m)
		}
	}
	for _, e := range []string{"Q4_K", "Q5_K", "Q6_K", "F32"} {
		if encodings[e] == 0 {
			t.Errorf("no %s tensor found (%v)", e, encodings)
		}
	}
}

// TestGGUFEagerLimit: MaxEagerDequant decides between the float32 copy and
// row-by-row decoding (ggufcache converts the second kind for inference).
func TestGGUFEagerLimit(t *testing.T) {
	testutil.NeedData(t, q4km)
	old := MaxEagerDequant
	defer func() { MaxEagerDequant = old }()
	MaxEagerDequant = 1 << 20
	ck, err := Open(q4km)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	d, _ := ck.GGUFDequant()
	if d.Eager || d.Limit != 1<<20 || !d.Quantized {
		t.Fatalf("GGUFDequant() = %+v, want row by row under a 1 MiB limit", d)
	}
	m, err := ck.Tensors.Matrix("model.layers.0.mlp.down_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*quantMatrix); !ok {
		t.Fatalf("matrix is %T, want the row-by-row decoder", m)
	}
}
