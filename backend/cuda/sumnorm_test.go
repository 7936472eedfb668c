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

// TestGPUSplitRopeKV: upg_splitk_rope_kv (ropeEpilogue.splitSum) writes the
// same bits as upg_splitk_sum followed by upg_rope_kv (ropeEpilogue.run) —
// the projection's rows y with rotated queries and keys, and the key and
// value cache rows — for random parts, positions and slots, fp16 and fp32
// caches, both rotary layouts, 1-11 parts, 1-33 tokens.
func TestGPUSplitRopeKV(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 31))
	for _, sh := range []struct{ heads, H, hd, n, S int }{{8, 2, 64, 48, 4}, {40, 10, 128, 32, 8}, {4, 4, 32, 1, 2}, {6, 2, 16, 33, 11}, {40, 10, 128, 3, 3}} {
		for _, f16 := range []bool{true, false} {
			for _, il := range []bool{false, true} {
				t.Run(fmt.Sprintf("h%d_H%d_hd%d_n%d_S%d_f16=%v_il=%v", sh.heads, sh.H, sh.hd, sh.n, sh.S, f16, il), func(t *testing.T) {
					R, n, S, bs := (sh.heads+2*sh.H)*sh.hd, sh.n, sh.S, 16
					const positions = 300
					part := devF32(t, d, randF(rng, S*n*R))
					cos, sin := devF32(t, d, randF(rng, positions*sh.hd/2)), devF32(t, d, randF(rng, positions*sh.hd/2))
					pos, slots := make([]int32, n), make([]int32, n)
					for i := range n {
						pos[i] = int32(rng.IntN(positions))
						slots[i] = int32(i*3 + 1) // distinct slots
					}
					posd, slotd := devI32(t, d, pos), devI32(t, d, slots)
					defer func() {
						for _, p := range []DevPtr{part, cos, sin, posd, slotd} {
							d.Free(p)
						}
					}()
					cacheFloats := (3*n/bs + 2) * bs * sh.H * sh.hd
					esz := 4
					if f16 {
						esz = 2
					}
					type out struct {
						y      []float32
						kc, vc []byte
					}
					var got [2]out
					for i := range 2 {
						y := devPoisoned(t, d, n*R)
						kc, err := d.Alloc(int64(cacheFloats*esz), "test cache")
						if err != nil {
							t.Fatal(err)
						}
						vc, err := d.Alloc(int64(cacheFloats*esz), "test cache")
						if err != nil {
							t.Fatal(err)
						}
						for _, c := range []DevPtr{kc, vc} {
							if err := d.Fill32(c, 0, cacheFloats*esz/4); err != nil {
								t.Fatal(err)
							}
						}
						e := &ropeEpilogue{heads: sh.heads, H: sh.H, hd: sh.hd, bs: bs, dim: sh.hd, interleave: il, f16: f16,
							kc: kc, vc: vc, slots: slotd, cos: cos, sin: sin, pos: posd}
						run(t, d, func() error {
							if i == 1 {
								return e.splitSum(d, part, S, y, n)
							}
							if err := d.launchK("upg_splitk_sum", [3]uint32{uint32((n*R + 255) / 256), 1, 1}, b256, 0,
								Ptr(part), I32(S), Ptr(y), Ptr(0), I32(n*R)); err != nil {
								return err
							}
							return e.run(d, y, R, n)
						})
						got[i].y = readF32(t, d, y, n*R)
						got[i].kc, got[i].vc = make([]byte, cacheFloats*esz), make([]byte, cacheFloats*esz)
						if err := d.Download(got[i].kc, kc); err != nil {
							t.Fatal(err)
						}
						if err := d.Download(got[i].vc, vc); err != nil {
							t.Fatal(err)
						}
						d.Free(y)
						d.Free(kc)
						d.Free(vc)
					}
					for i := range got[0].y {
						if math.Float32bits(got[0].y[i]) != math.Float32bits(got[1].y[i]) {
							t.Fatalf("y[%d] (token %d column %d): %v by the two kernels, %v fused", i, i/R, i%R, got[0].y[i], got[1].y[i])
						}
					}
					for i := range got[0].kc {
						if got[0].kc[i] != got[1].kc[i] || got[0].vc[i] != got[1].vc[i] {
							t.Fatalf("cache byte %d differs: key %d/%d, value %d/%d", i, got[0].kc[i], got[1].kc[i], got[0].vc[i], got[1].vc[i])
						}
					}
				})
			}
		}
	}
}
