//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/upg-ai/upg/codec"
)

// TestGPUSplitRmsRotq: upg_splitk_rms_rotq writes the same bits as
// upg_splitk_sum followed by upg_rms_rotq — the projection's sum y, the
// residual x += y, the normalized h, the int8 input and its group factors —
// for fresh random parts, residuals and gains at odd and even widths,
// rotation segments (Phi-4's 5120 columns in five 1024-value segments
// among them), 1-11 parts and 1-32 tokens; and rmsRotq takes a pending sum
// exactly where sumNorms says it can (otherwise it launches the sum first,
// with the same results).
func TestGPUSplitRmsRotq(t *testing.T) {
	d := gpu(t)
	if d.Major >= 9 && !d.clusters {
		t.Fatalf("sm_%d%d: the loaded code has no cluster kernels (upg_cluster_probe)", d.Major, d.Minor)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 29))
	cases := append(denseCases(), denseCase{64, 5120, codec.Params{Codec: "dense", Bits: 3, GroupSize: 128, Levels: "lloyd", Rotate: 0x5eed}},
		denseCase{40, 4096, codec.Params{Codec: "dense", Bits: 2, GroupSize: 64, Levels: "lloyd", Rotate: 7}})
	fused := 0
	for _, c := range cases {
		if c.p.Bits > 4 || c.C%4 != 0 {
			continue
		}
		g, err := d.UploadMatrix(randomDense(t, rng, c))
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range [][2]int{{1, 2}, {3, 5}, {32, 8}, {7, 11}} {
			n, S := sh[0], sh[1]
			name := fmt.Sprintf("%dx%d_k%d_g%d_%s_rot%v/n%d_S%d", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, c.p.Rotate != 0, n, S)
			t.Run(name, func(t *testing.T) {
				C := c.C
				parts := randF(rng, S*n*C)
				part := devF32(t, d, parts)
				x0, w := randF(rng, n*C), randF(rng, C)
				wd := devF32(t, d, w)
				defer d.Free(part)
				defer d.Free(wd)
				const eps = 1e-5
				ldq := g.U * unitCodes
				type out struct {
					y, x, h, fac []float32
					xq           []byte
				}
				var got [2]out
				took := false
				for i := range 2 {
					s, err := d.NewScratch(n, C)
					if err != nil {
						t.Fatal(err)
					}
					x, y, h := devF32(t, d, x0), devPoisoned(t, d, n*C), devPoisoned(t, d, n*C)
					if err := d.Fill32(s.fac, poison, n*g.G*4); err != nil {
						t.Fatal(err)
					}
					run(t, d, func() error {
						s.sum = splitSum{part: part, y: y, res: x, S: S, n: n, R: C}
						s.unsummed = &s.sum
						if i == 0 { // the two kernels
							if err := d.flushSum(s); err != nil {
								return err
							}
						} else {
							took = d.sumNorms(g, s.unsummed, x, n)
						}
						if err := d.rmsRotq(g, h, x, wd, eps, n, s); err != nil {
							return err
						}
						if s.unsummed != nil {
							return fmt.Errorf("rmsRotq left the sum pending")
						}
						return nil
					})
					got[i] = out{y: readF32(t, d, y, n*C), x: readF32(t, d, x, n*C), h: readF32(t, d, h, n*C), fac: readF32(t, d, s.fac, n*g.G*4),
						xq: make([]byte, n*ldq)}
					if err := d.Download(got[i].xq, s.xq); err != nil {
						t.Fatal(err)
					}
					d.Free(x)
					d.Free(y)
					d.Free(h)
					s.Free(d)
				}
				if took {
					fused++
				}
				for _, v := range []struct {
					what string
					a, b []float32
				}{{"y", got[0].y, got[1].y}, {"x", got[0].x, got[1].x}, {"h", got[0].h, got[1].h}, {"factor", got[0].fac, got[1].fac}} {
					for i := range v.a {
						if math.Float32bits(v.a[i]) != math.Float32bits(v.b[i]) || math.IsNaN(float64(v.a[i])) {
							t.Fatalf("%s[%d]: %v by the two kernels, %v fused (fused: %v)", v.what, i, v.a[i], v.b[i], took)
						}
					}
				}
				for tk := range n {
					for j := range C {
						if a, b := got[0].xq[tk*ldq+j], got[1].xq[tk*ldq+j]; a != b {
							t.Fatalf("token %d code %d: %d by the two kernels, %d fused (fused: %v)", tk, j, int8(a), int8(b), took)
						}
					}
				}
				// the reference: x + Σ parts in float64, against the two kernels' x
				for tk := range n {
					for j := 0; j < C; j += 97 {
						want := float64(x0[tk*C+j])
						sum := 0.0
						for z := range S {
							sum += float64(parts[(z*n+tk)*C+j])
						}
						if e := math.Abs(float64(got[0].x[tk*C+j]) - (want + sum)); e > 1e-4*(1+math.Abs(want+sum)) {
							t.Fatalf("x[%d,%d] = %v, want %v", tk, j, got[0].x[tk*C+j], want+sum)
						}
					}
				}
			})
		}
		g.Free(d)
	}
	t.Logf("%d cases fused in one launch", fused)
	if d.clusters && fused == 0 {
		t.Error("no case took the fused kernel")
	}
}
