//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSKPlan: the pieces per row group that the kernel's warp_of implies.
func TestSKPlan(t *testing.T) {
	d := &Device{SMs: 132}
	for _, c := range []struct{ R, C, nw, wantNW, wantP int }{
		{17920 * 2, 5120, 0, 4224, 5}, // gate_up: 1,120 row groups of 40 units, ~10.6 units per warp
		{5120, 17920, 0, 4224, 28},    // down: 160 row groups of 140 units
		{64, 256, 7, 4, 2},            // 2 row groups × 2 units: at most T = 4 warps, a unit each
		{96, 384, 4, 4, 2},            // 3 row groups of 3 units over 4 warps
	} {
		skWarpsOverride = c.nw
		g := &DenseGPU{R: c.R, C: c.C, U: (c.C + 127) / 128}
		nw, maxp := d.skPlan(g)
		if nw != c.wantNW || maxp != c.wantP {
			t.Errorf("%dx%d, override %d: %d warps, %d pieces; want %d, %d", c.R, c.C, c.nw, nw, maxp, c.wantNW, c.wantP)
		}
	}
	skWarpsOverride = 0
}

// TestGPUStreamKGemv checks the stream-K GEMV against the CPU emulation of
// the int8 algebra at warp counts that split row groups in every way (one
// warp for all, pieces of odd sizes, a warp per unit), with the residual
// epilogue, and twice in a row: the counters return to zero, so the second
// launch gives the first one's bits.
func TestGPUStreamKGemv(t *testing.T) {
	d := gpu(t)
	defer func() { skWarpsOverride = 0 }()
	rng := rand.New(rand.NewPCG(testSeed(t), 21))
	for _, c := range denseCases() {
		if c.p.Bits > 4 {
			continue
		}
		for _, nw := range []int{1, 3, 17, 100, 1 << 20} {
			t.Run(fmt.Sprintf("%dx%d_k%d_g%d_%s_nw%d", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, nw), func(t *testing.T) {
				skWarpsOverride = nw
				m := randomDense(t, rng, c)
				g, err := d.UploadMatrix(m)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Free(d)
				if g.nameSK == "" || !d.streamK(g) {
					t.Fatalf("no stream-K kernel for %s", g.name1)
				}
				x, r0, xd, yd, rd, s := oneTokenIO(t, d, rng, c.R, c.C)
				var ys [2][]float32
				for i := range ys {
					if err := d.Fill32(yd, poison, c.R); err != nil {
						t.Fatal(err)
					}
					if err := d.Do(func() error {
						if err := d.rotq(g, xd, c.C, 1, s); err != nil {
							return err
						}
						if err := d.gemv(g, yd, 1, s, rd, nil); err != nil {
							return err
						}
						return d.sync()
					}); err != nil {
						t.Fatal(err)
					}
					ys[i] = readF32(t, d, yd, c.R)
				}
				res := readF32(t, d, rd, c.R)
				packed := repackDense(m)
				u, alpha, beta := byteLevels(m.Levels)
				_, xq, fac := emuRotq(g.plan, m.Signs, x, alpha, beta)
				emu := make([]float64, c.R)
				for r := range emu {
					emu[r] = float64(emuGemv(packed, m, r, xq, fac, permTable(u)))
				}
				if e := relErr(ys[0], emu); e > 1e-5 || math.IsNaN(e) {
					t.Fatalf("relative error vs emulation %.3g (want ≤ 1e-5)", e)
				}
				for r := range ys[0] {
					if math.Float32bits(ys[0][r]) != math.Float32bits(ys[1][r]) {
						t.Fatalf("row %d: second launch %v, first %v", r, ys[1][r], ys[0][r])
					}
					if want := (r0[r] + ys[0][r]) + ys[1][r]; res[r] != want {
						t.Fatalf("row %d: residual %v, want %v", r, res[r], want)
					}
				}
			})
		}
	}
}
