//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGPUAttentionCluster: upg_attn_cluster_rotq (each KV head's rows
// scored a quarter a block for its four query heads, the merge and the
// output projection's rotation in the cluster's shared memory) against the
// float64 reference for the attention rows and against the split attention
// with the merge and rotation in its last blocks (attnRotq) for the rotated
// int8 input: codes within one step of its codes (the sums' order differs,
// so a value on a rounding edge may land on the other side) and at most 2%
// of them different, the groups' scales within 1e-5. Phi-4's heads (40 of
// 128 values over 10 KV heads, groups of 128), the demo model's (8 of 64 over
// 2, 3-bit groups of 128: two heads a group, 4-bit groups of 256 as its
// layers 1, 2 and 4) and groups of 64, three clusters of 64-value heads (24
// heads: Hadamard blocks of 512); the second sequence of a table, the
// queries inside a q|k|v row; fp16 and fp32 caches, 1 to attnClusterLimit positions,
// every output poisoned first.
func TestGPUAttentionCluster(t *testing.T) {
	d := gpu(t)
	if d.Major != 9 {
		t.Skipf("upg_attn_cluster_rotq needs clusters (sm_90); this GPU is sm_%d%d", d.Major, d.Minor)
	}
	rng := rand.New(rand.NewPCG(testSeed(t), 41))
	for _, shp := range []struct{ heads, H, hd, gs, bits int }{{40, 10, 128, 128, 3}, {8, 2, 64, 128, 3}, {8, 2, 64, 64, 3}, {8, 2, 64, 256, 4}, {24, 6, 64, 128, 3}} {
		for _, f16 := range []bool{true, false} {
			t.Run(fmt.Sprintf("h%d_H%d_hd%d_g%d_k%d_f16=%v", shp.heads, shp.H, shp.hd, shp.gs, shp.bits, f16), func(t *testing.T) {
				checkAttnCluster(t, d, rng, shp.heads, shp.H, shp.hd, shp.gs, shp.bits, f16)
			})
		}
	}
}

func checkAttnCluster(t *testing.T, d *Device, rng *rand.Rand, heads, H, hd, gs, bits int, f16 bool) {
	C := heads * hd
	g, err := d.uploadDense(synthDense(t, rng, 64, C, bits, gs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(d)
	if !attnClusterFits(g, heads, hd) {
		t.Fatalf("the projection's rotation (block %d, groups of %d) does not fit the kernel", g.plan.rb, g.plan.gs)
	}
	s, err := d.NewScratch(1, C)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free(d)
	const bs, maxPos = 16, attnClusterLimit
	blocks := maxPos/bs + 8
	perm := rng.Perm(blocks)
	// the step's sequence is the second of two (seq 1, its table after the
	// first's), as a decoding context's may be
	table := make([]int32, maxPos/bs)
	for i := range table {
		table[i] = int32(perm[i])
	}
	tables := append(make([]int32, len(table)), table...)
	kc, vc := kvCache(d, blocks, H, bs, hd, f16)
	k, v := storeRandKV(t, d, rng, kc, vc, f16, table, H, hd, bs, maxPos)
	key := func(p int) []float32 { return k[p*H*hd : (p+1)*H*hd] }
	val := func(p int) []float32 { return v[p*H*hd : (p+1)*H*hd] }
	chunk := attnChunkWide // attnRotq's: 2·chunk threads = rotqThreads
	S := (maxPos + chunk - 1) / chunk
	tp, seqp := devI32(t, d, tables), devI32(t, d, []int32{1})
	part, _ := d.Alloc(int64(4*heads*S*(hd+2)), "part")
	cnt, _ := d.Alloc(int64(4*heads), "cnt")
	if err := d.Fill32(cnt, 0, heads); err != nil {
		t.Fatal(err)
	}
	dst := devPoisoned(t, d, C)
	defer func() {
		for _, p := range []DevPtr{kc, vc, tp, seqp, part, cnt, dst} {
			d.Free(p)
		}
	}()
	scale := float32(1 / math.Sqrt(float64(hd)))
	ldq := g.U * unitCodes
	qs := C + 2*H*hd // the query heads at the start of a q|k|v row
	for _, T := range []int{1, 2, 10, 13, 77, 255, 513, 1024, 1025, 2047, maxPos} {
		q := randF(rng, qs)
		qp, pp := devF32(t, d, q), devI32(t, d, []int32{int32(T - 1)})
		want := make([]float64, C)
		refAttention(want, q, heads, H, hd, T, scale, key, val)
		outputs := func(f func() error) ([]float32, []byte, []float32) {
			for _, p := range []struct {
				p DevPtr
				n int
			}{{dst, C}, {s.xq, ldq / 4}, {s.fac, 4 * g.G}} {
				if err := d.Fill32(p.p, poison, p.n); err != nil {
					t.Fatal(err)
				}
			}
			run(t, d, f)
			xq := make([]byte, ldq)
			if err := d.Download(xq, s.xq); err != nil {
				t.Fatal(err)
			}
			return readF32(t, d, dst, C), xq, readF32(t, d, s.fac, 4*g.G)
		}
		_, xqRef, facRef := outputs(func() error {
			return d.attnRotq(g, dst, qp, qs, kc, vc, f16, tp, len(table), pp, seqp, scale, heads, H, hd, bs, chunk, S, part, cnt, 1, s)
		})
		got, xq, fac := outputs(func() error {
			return d.attnCluster(g, dst, qp, qs, kc, vc, f16, tp, len(table), pp, seqp, scale, heads, H, hd, bs, s)
		})
		what := fmt.Sprintf("%d positions", T)
		closeTo(t, what+": attention rows", got, want, 2e-5, 2e-4)
		diff := 0
		for c := range xq {
			dq := int(int8(xq[c])) - int(int8(xqRef[c]))
			if dq < -1 || dq > 1 {
				t.Fatalf("%s: code %d = %d, the split path's %d", what, c, int8(xq[c]), int8(xqRef[c]))
			}
			if dq != 0 {
				diff++
			}
		}
		if diff > len(xq)/50 {
			t.Errorf("%s: %d of %d codes differ from the split path's by one", what, diff, len(xq))
		}
		for i := 0; i < g.G; i++ {
			a, b := float64(fac[4*i]), float64(facRef[4*i])
			if math.IsNaN(a) || math.Abs(a-b) > 1e-5*math.Abs(b) {
				t.Fatalf("%s: group %d's scale %v, the split path's %v", what, i, a, b)
			}
		}
		t.Logf("%s: %d of %d codes one step from the split path's", what, diff, len(xq))
		d.Free(qp)
		d.Free(pp)
	}
}
