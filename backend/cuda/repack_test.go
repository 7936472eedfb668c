package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// The CPU emulation of the GPU dense path (rotq + gemv_dense over the
// repacked layout) checks the layout and the factor algebra without a GPU;
// the GPU tests compare the device against the same emulation and against
// the codec's reference decoder.

type denseCase struct {
	R, C int
	p    codec.Params
}

func denseCases() []denseCase {
	var cs []denseCase
	for _, sh := range [][2]int{{67, 640}, {64, 1024}, {33, 96}, {40, 1792}, {129, 3000}} {
		for _, p := range []codec.Params{
			{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed},
			{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "lloyd", Rotate: 7},
			{Codec: "dense", Bits: 3, GroupSize: 64, Levels: "uniform"},
			{Codec: "dense", Bits: 4, GroupSize: 32, Levels: "asym"},
			{Codec: "dense", Bits: 4, GroupSize: 256, Levels: "midrise", Rotate: 3},
			{Codec: "dense", Bits: 3, GroupSize: 32, Levels: "asym", Rotate: 11},
			{Codec: "dense", Bits: 4, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed},
			{Codec: "dense", Bits: 4, GroupSize: 64, Levels: "lloyd"},
			// the byte layout (5- to 8-bit codes)
			{Codec: "dense", Bits: 5, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed},
			{Codec: "dense", Bits: 6, GroupSize: 64, Levels: "uniform"},
			{Codec: "dense", Bits: 8, GroupSize: 32, Levels: "asym", Rotate: 9},
		} {
			if p.GroupSize > sh[1] && sh[1]%p.GroupSize != 0 {
				continue
			}
			cs = append(cs, denseCase{sh[0], sh[1], p})
		}
	}
	return cs
}

func randomDense(t testing.TB, rng *rand.Rand, c denseCase) *codec.DenseMatrix {
	return encodeCase(t, rng, c).(*codec.DenseMatrix)
}

// encodeCase encodes a random Gaussian matrix (σ 0.05) of c's shape with
// c's parameters and opens it.
func encodeCase(t testing.TB, rng *rand.Rand, c denseCase) tensor.Matrix {
	t.Helper()
	w := make([]float32, c.R*c.C)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
	}
	data, err := codec.Encode(w, c.R, c.C, c.p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return openAs[tensor.Matrix](t, c.p, c.R, c.C, data)
}

// openAs opens encoded bytes as the matrix type T (T's type assertion
// failing fails the test).
func openAs[T tensor.Matrix](t testing.TB, p codec.Params, R, C int, data []byte) T {
	t.Helper()
	m, err := codec.Open(p, R, C, data)
	if err != nil {
		t.Fatal(err)
	}
	x, ok := m.(T)
	if !ok {
		t.Fatalf("codec.Open gave %T", m)
	}
	return x
}

// emuRotq mirrors upg_rotq for one token.
func emuRotq(p quantPlan, signs []float32, x []float32, alpha, beta float32) (xr []float32, xq []int8, fac [][4]float32) {
	ldq := p.U * unitCodes
	n := p.segments() * p.seg
	v := make([]float32, n)
	for c := 0; c < p.C; c++ {
		v[c] = x[c]
		if signs != nil {
			v[c] *= signs[c]
		}
	}
	if p.rb > 1 {
		tensor.FWHT(v[:p.C], p.rb)
	}
	xr = v[:p.C]
	xq = make([]int8, ldq)
	fac = make([][4]float32, p.G)
	for g0 := 0; g0 < n; g0 += p.gs {
		var amax float32
		for _, a := range v[g0 : g0+p.gs] {
			amax = max(amax, float32(math.Abs(float64(a))))
		}
		s := amax / 127
		var inv float32
		if amax > 0 {
			inv = 127 / amax
		}
		sum := 0
		for i, a := range v[g0 : g0+p.gs] {
			q := int(math.RoundToEven(float64(a * inv)))
			q = min(max(q, -127), 127)
			sum += q
			if g0+i < ldq {
				xq[g0+i] = int8(q)
			}
		}
		if g := g0 / p.gs; g < p.G {
			var xb float32
			if amax > 0 {
				xb = s * float32(sum)
				fac[g] = [4]float32{alpha * s, beta * xb, xb, 0}
			}
		}
	}
	return
}

func u32At(b []byte, o int) uint32 {
	return uint32(b[o]) | uint32(b[o+1])<<8 | uint32(b[o+2])<<16 | uint32(b[o+3])<<24
}

func bytePerm(t0, t1, sel uint32) uint32 {
	src := uint64(t0) | uint64(t1)<<32
	var r uint32
	for i := 0; i < 4; i++ {
		s := sel >> (4 * i) & 7
		r |= uint32(byte(src>>(8*s))) << (8 * i)
	}
	return r
}

// emuGemv mirrors gemv_dense for one token and row r over the packed codes.
func emuGemv(packed []byte, m *codec.DenseMatrix, r int, xq []int8, fac [][4]float32, tb [4]uint32) float32 {
	K, U := layoutBits(m.Bits), (m.C+unitCodes-1)/unitCodes
	lin4 := K == 4 && linearLevels(m.Levels)
	lut16 := K == 4 && !lin4
	ub, _, _ := byteLevels(m.Levels) // the byte layout's table
	lin8 := K == 8 && linearLevels(m.Levels)
	word := func(j, u, comp int) uint32 { return u32At(packed, (((((r/32)*U+u)*K+j)*32+r%32)*4+comp)*4) }
	var acc float32
	for u := 0; u < U; u++ {
		for q := 0; q < 4; q++ {
			c0 := u*128 + q*32
			ia := 0
			if K == 3 { // the selector layout: lane group j's selector of slice q
				for j := 0; j < 4; j++ {
					sel := sel3(word(0, u, j), word(1, u, j), word(2, u, j), q)
					b0, b1 := bytePerm(tb[0], tb[1], sel), bytePerm(tb[0], tb[1], sel>>16)
					for i := 0; i < 4; i++ {
						ia += int(byte(b0>>(8*i))) * int(xq[c0+4*j+i])
						ia += int(byte(b1>>(8*i))) * int(xq[c0+16+4*j+i])
					}
				}
			} else {
				for ch := q * 4; ch < q*4+4; ch++ {
					var nib uint32
					switch K {
					case 2:
						mm, s := ch>>1, 2*(ch&1)
						nib = word(mm>>2, u, mm&3) >> s & 0x33333333
					case 4:
						nib = word(ch>>2, u, ch&3)
					}
					var b0, b1 uint32
					switch {
					case K == 8:
						lut := func(x uint32) uint32 {
							if lin8 {
								return x
							}
							var r uint32
							for i := 0; i < 4; i++ {
								r |= uint32(ub[x>>(8*i)&255]) << (8 * i)
							}
							return r
						}
						b0, b1 = lut(word(ch>>1, u, 2*(ch&1))), lut(word(ch>>1, u, 2*(ch&1)+1))
					case lin4:
						b0, b1 = nib&0x0F0F0F0F, nib>>4&0x0F0F0F0F
					case lut16:
						lut := func(x uint32) uint32 {
							var r uint32
							for i := 0; i < 4; i++ {
								q := x >> (4 * i) & 15
								r |= (tb[q/4] >> (8 * (q % 4)) & 255) << (8 * i)
							}
							return r
						}
						b0, b1 = lut(nib), lut(nib>>16)
					default:
						b0, b1 = bytePerm(tb[0], tb[1], nib), bytePerm(tb[0], tb[1], nib>>16)
					}
					for i := 0; i < 4; i++ {
						ia += int(byte(b0>>(8*i))) * int(xq[u*128+8*ch+i])
						ia += int(byte(b1>>(8*i))) * int(xq[u*128+8*ch+4+i])
					}
				}
			}
			if c0 < m.C {
				g := c0 / m.GroupSize
				sc := tensor.F16ToF32(uint16(m.Scales[2*(r*m.Groups+g)]) | uint16(m.Scales[2*(r*m.Groups+g)+1])<<8)
				f := fac[g]
				acc += sc * f[0] * float32(ia)
				if c0%m.GroupSize == 0 {
					var of float32
					if m.Asym {
						of = tensor.F16ToF32(uint16(m.Offsets[2*(r*m.Groups+g)]) | uint16(m.Offsets[2*(r*m.Groups+g)+1])<<8)
					}
					acc += sc*f[1] + of*f[2]
				}
			}
		}
	}
	return acc
}

// refMatVec is W·x in float64 from the codec's reference decoder.
func refMatVec(m tensor.Matrix, x []float32) []float64 {
	R, C := m.Rows(), m.Cols()
	row := make([]float32, C)
	y := make([]float64, R)
	for r := 0; r < R; r++ {
		m.DecodeRows(row, r, r+1)
		var s float64
		for c, v := range row {
			s += float64(v) * float64(x[c])
		}
		y[r] = s
	}
	return y
}

func relErr(y []float32, ref []float64) float64 {
	var num, den float64
	for i, v := range y {
		d := float64(v) - ref[i]
		num += d * d
		den += ref[i] * ref[i]
	}
	return math.Sqrt(num / den)
}

func TestRepackEmulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range denseCases() {
		t.Run(fmt.Sprintf("%dx%d_k%d_g%d_%s_rot%v", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, c.p.Rotate != 0), func(t *testing.T) {
			m := randomDense(t, rng, c)
			if ok, why := denseFusable(m); !ok {
				t.Fatalf("not fusable: %s", why)
			}
			packed := repackDense(m)
			u, alpha, beta := byteLevels(m.Levels)
			tb := permTable(u)
			x := make([]float32, c.C)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			plan := newQuantPlan(m)
			_, xq, fac := emuRotq(plan, m.Signs, x, alpha, beta)
			y := make([]float32, c.R)
			for r := range y {
				y[r] = emuGemv(packed, m, r, xq, fac, tb)
			}
			ref := refMatVec(m, x)
			// int8 activations (and a 256-step codebook) cost well under 2%.
			e := relErr(y, ref)
			t.Logf("rel err %.3g", e)
			if e > 0.02 || math.IsNaN(e) {
				t.Fatalf("emulated GPU path vs reference decoder: relative error %.4g", e)
			}
		})
	}
}

// BenchmarkRepackDense3 measures the upload's repack of a 3-bit matrix
// (Phi-4's o projection shape, 5120×5120) into the GPU layout, in codes/s.
func BenchmarkRepackDense3(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := randomDense(b, rng, denseCase{R: 5120, C: 5120, p: codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd"}})
	b.SetBytes(int64(m.R * m.C)) // one "byte" a code: codes/s
	b.ResetTimer()
	for b.Loop() {
		repackDense(m)
	}
}
