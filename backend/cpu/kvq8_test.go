package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/tensor"
)

// TestQuantQ8 checks the row quantizer: every value within half a step
// of its group's scale, codes within ±127, the largest magnitude of a
// group coded ±127 (or one fp16 step less), zeros and tiny rows exact
// or harmless.
func TestQuantQ8(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{1, 8, 31, 32, 33, 64, 80, 96, 128, 200} {
		x := make([]float32, hd)
		for i := range x {
			x[i] = float32(rng.NormFloat64()) * float32(math.Pow(10, float64(rng.IntN(7)-3)))
		}
		if hd > 2 {
			x[1] = 0
			x[2] = -x[0] * 40 // an outlier channel
		}
		G := backend.KVQ8Groups(hd)
		codes, sc := make([]int8, hd), make([]uint16, G)
		quantQ8(codes, sc, x)
		back := make([]float32, hd)
		dequantQ8(back, codes, sc)
		for j := 0; j < G; j++ {
			d := tensor.F16ToF32(sc[j])
			var amax float32
			for i := j * 32; i < min(hd, (j+1)*32); i++ {
				amax = max(amax, float32(math.Abs(float64(x[i]))))
			}
			if d < amax/127 || d > amax/127*1.001+1e-7 {
				t.Fatalf("hd %d group %d: scale %g for largest magnitude %g", hd, j, d, amax)
			}
			for i := j * 32; i < min(hd, (j+1)*32); i++ {
				if codes[i] < -127 {
					t.Fatalf("hd %d: code %d", hd, codes[i])
				}
				if e := math.Abs(float64(back[i] - x[i])); e > float64(d)/2*1.0001 {
					t.Fatalf("hd %d [%d]: %g back as %g, error %g > half step %g", hd, i, x[i], back[i], e, d/2)
				}
			}
		}
	}
	zero := make([]float32, 40)
	codes, sc := make([]int8, 40), make([]uint16, 2)
	quantQ8(codes, sc, zero)
	for i, c := range codes {
		if c != 0 {
			t.Fatalf("zero row: code %d = %d", i, c)
		}
	}
	nan := []float32{float32(math.NaN()), 1, float32(math.Inf(1))}
	quantQ8(codes[:3], sc[:1], nan) // must not panic
}

// TestAttnKernelsQ8 checks the int8 attention kernels of every level the
// machine has (AVX-512, AVX2, NEON: Go) against the plain Go loops, and both against float32
// attention over the dequantized rows.
func TestAttnKernelsQ8(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, hd := range []int{8, 32, 48, 64, 96, 128, 160, 256} {
		G := backend.KVQ8Groups(hd)
		for _, group := range []int{1, 3, 4, 8} {
			for _, n := range []int{1, 5, 17, 32, 130} {
				k := vec(n * hd)
				k8, ks := make([]int8, n*hd), make([]uint16, n*G)
				for r := 0; r < n; r++ {
					quantQ8(k8[r*hd:(r+1)*hd], ks[r*G:(r+1)*G], k[r*hd:(r+1)*hd])
				}
				deq := make([]float32, n*hd)
				for r := 0; r < n; r++ {
					dequantQ8(deq[r*hd:(r+1)*hd], k8[r*hd:(r+1)*hd], ks[r*G:(r+1)*G])
				}
				q := vec(group * hd)
				ps := n + 3
				ref, want, got := make([]float32, group*ps), make([]float32, group*ps), make([]float32, group*ps)
				attnScoresGo(LevelGeneric, ref, ps, q, deq, hd, n, group, hd, 0.125)
				attnScoresQ8Go(want, ps, q, k8, ks, n, group, hd, 0.125)
				for _, lv := range Levels() {
					attnScoresQ8(lv, got, ps, q, k8, ks, n, group, hd, 0.125)
					for g := 0; g < group; g++ {
						for i := g * ps; i < g*ps+n; i++ {
							if d := math.Abs(float64(ref[i] - want[i])); d > 1e-5*(1+math.Abs(float64(ref[i]))) {
								t.Fatalf("Go q8 scores hd=%d group=%d n=%d: [%d] = %g, dequantized float32 gives %g", hd, group, n, i, want[i], ref[i])
							}
							if d := math.Abs(float64(want[i] - got[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
								t.Fatalf("%v q8 scores hd=%d group=%d n=%d: [%d] = %g, want %g", lv, hd, group, n, i, got[i], want[i])
							}
						}
					}
				}
				prob := vec(group * ps)
				att0 := vec(group * hd)
				refA := append([]float32(nil), att0...)
				wantA := append([]float32(nil), att0...)
				attnValuesGo(LevelGeneric, refA, prob, ps, deq, hd, n, group, hd)
				attnValuesQ8Go(wantA, prob, ps, k8, ks, n, group, hd)
				for i := range wantA {
					if d := math.Abs(float64(refA[i] - wantA[i])); d > 1e-4*(1+math.Abs(float64(refA[i]))) {
						t.Fatalf("Go q8 values hd=%d group=%d n=%d: [%d] = %g, dequantized float32 gives %g", hd, group, n, i, wantA[i], refA[i])
					}
				}
				for _, lv := range Levels() {
					gotA := append([]float32(nil), att0...)
					attnValuesQ8(lv, gotA, prob, ps, k8, ks, n, group, hd)
					for i := range wantA {
						if d := math.Abs(float64(wantA[i] - gotA[i])); d > 1e-4*(1+math.Abs(float64(wantA[i]))) {
							t.Fatalf("%v q8 values hd=%d group=%d n=%d: [%d] = %g, want %g", lv, hd, group, n, i, gotA[i], wantA[i])
						}
					}
				}
			}
		}
	}
}

// kvAttention stores T positions of keys and values (T rows of kvHeads×hd)
// into layer 1 of a fresh cache of type typ through a scattered block
// table, and returns the attention output of every position over its
// prefix, with the cache.
func kvAttention(t *testing.T, b *Backend, lv Level, typ backend.KVType, k, v, q []float32, T, heads, kvHeads, hd int) ([]float32, *kvStore, backend.StepBuf) {
	t.Helper()
	const bs = 16
	spec := backend.KVSpec{Layers: 2, KVHeads: kvHeads, HeadDim: hd, BlockSize: bs, Blocks: 8, Type: typ}
	kv, err := b.NewKV(spec)
	if err != nil {
		t.Fatal(err)
	}
	table := []int32{5, 2, 7, 0}[:(T+bs-1)/bs]
	st := backend.Step{Tables: [][]int32{table}}
	for p := 0; p < T; p++ {
		st.Tokens = append(st.Tokens, 0)
		st.Pos = append(st.Pos, int32(p))
		st.Seq = append(st.Seq, 0)
		st.Slot = append(st.Slot, table[p/bs]*bs+int32(p%bs))
	}
	if err := st.Validate(spec, 1); err != nil {
		t.Fatal(err)
	}
	sb, err := b.NewStep(backend.StepLimits{Tokens: T, Seqs: 1, BlocksPerSeq: len(table)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetStep(sb, &st); err != nil {
		t.Fatal(err)
	}
	kb, vb, qb := &Buf{F: k}, &Buf{F: v}, &Buf{F: q}
	b.StoreKV(kv, 1, backend.Whole(kb, kvHeads*hd), backend.Whole(vb, kvHeads*hd), sb)
	out := &Buf{F: make([]float32, T*heads*hd)}
	b.level = lv
	b.Attention(out, backend.Whole(qb, heads*hd), heads, 1/float32(math.Sqrt(float64(hd))), kv, 1, sb)
	return out.F, kvOf(kv), sb
}

// TestKVQ8Attention compares attention over an int8 cache with attention
// over a float32 cache on the same keys and values (with an outlier
// channel, as real keys have), for the kernels of this machine and the Go
// fallback; checks that StoreKV's rows read back within half a step of
// their scale, land in their slot of their layer only, and that
// CopyKVBlock copies codes and scales.
func TestKVQ8Attention(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	b := New(2)
	defer b.Close()
	best := b.level
	for _, c := range []struct{ heads, kvHeads, hd int }{{8, 2, 64}, {6, 2, 128}, {4, 4, 32}, {2, 1, 40}} {
		const T = 50
		w := c.kvHeads * c.hd
		gen := func(n, width int, outlier bool) []float32 {
			x := make([]float32, n*width)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
				if outlier && i%c.hd == 3 {
					x[i] *= 12
				}
			}
			return x
		}
		k, v, q := gen(T, w, true), gen(T, w, false), gen(T, c.heads*c.hd, false)
		ref, _, _ := kvAttention(t, b, best, backend.KVF32, k, v, q, T, c.heads, c.kvHeads, c.hd)
		// The same attention in float32 over the rows as q8 stores them: what
		// the q8 kernels must compute up to float32 rounding.
		G := backend.KVQ8Groups(c.hd)
		deq := func(x []float32) []float32 {
			out := make([]float32, len(x))
			codes, sc := make([]int8, c.hd), make([]uint16, G)
			for r := 0; r < len(x)/c.hd; r++ {
				quantQ8(codes, sc, x[r*c.hd:(r+1)*c.hd])
				dequantQ8(out[r*c.hd:(r+1)*c.hd], codes, sc)
			}
			return out
		}
		exact, _, _ := kvAttention(t, b, best, backend.KVF32, deq(k), deq(v), q, T, c.heads, c.kvHeads, c.hd)
		f16, _, _ := kvAttention(t, b, best, backend.KVF16, k, v, q, T, c.heads, c.kvHeads, c.hd)
		var rms float64
		for _, x := range ref {
			rms += float64(x) * float64(x)
		}
		rms = math.Sqrt(rms / float64(len(ref)))
		errs := func(got, want []float32) (maxErr, relRMS float64) {
			var sumSq float64
			for i := range want {
				d := float64(got[i] - want[i])
				maxErr = max(maxErr, math.Abs(d))
				sumSq += d * d
			}
			return maxErr, math.Sqrt(sumSq/float64(len(want))) / rms
		}
		_, f16Rel := errs(f16, ref)
		for _, lv := range Levels() {
			got, st, _ := kvAttention(t, b, lv, backend.KVQ8, k, v, q, T, c.heads, c.kvHeads, c.hd)
			maxErr, relRMS := errs(got, ref)
			t.Logf("heads %d/%d hd %d %v: vs the f32 cache: q8 max error %.2e, relative RMS error %.2e (f16: %.2e; output RMS %.3f)",
				c.heads, c.kvHeads, c.hd, lv, maxErr, relRMS, f16Rel, rms)
			// The quantization's own cost, keys with a 12× outlier channel: about
			// 1-2% (a wrong scale, group, row or block would be O(1)).
			if relRMS > 0.05 || maxErr > 0.3*rms {
				t.Errorf("heads %d/%d hd %d %v: q8 attention differs from f32: relative RMS error %.3g, max error %.3g", c.heads, c.kvHeads, c.hd, lv, relRMS, maxErr)
			}
			// The kernels themselves: float32 rounding away from attention over
			// the dequantized rows.
			if maxErr, _ := errs(got, exact); maxErr > 1e-4*rms {
				t.Errorf("heads %d/%d hd %d %v: q8 attention is %.3g from float32 attention over the dequantized rows", c.heads, c.kvHeads, c.hd, lv, maxErr)
			}

			// Round trip: layer 1's rows read back within half a step.
			table := []int{5, 2, 7, 0}
			row := make([]float32, c.hd)
			for p := 0; p < T; p++ {
				for h := 0; h < c.kvHeads; h++ {
					r := (table[p/16]*c.kvHeads+h)*16 + p%16
					for _, kv := range []struct {
						codes []int8
						sc    []uint16
						src   []float32
					}{{st.k8[1], st.ks8[1], k}, {st.v8[1], st.vs8[1], v}} {
						sc := kv.sc[r*G : (r+1)*G]
						dequantQ8(row, kv.codes[r*c.hd:(r+1)*c.hd], sc)
						src := kv.src[p*w+h*c.hd : p*w+(h+1)*c.hd]
						for i := range row {
							if e := math.Abs(float64(row[i] - src[i])); e > float64(tensor.F16ToF32(sc[i/32]))/2*1.0001 {
								t.Fatalf("position %d head %d [%d]: stored %g reads back %g", p, h, i, src[i], row[i])
							}
						}
					}
				}
			}
			for i, x := range st.k8[0] {
				if x != 0 {
					t.Fatalf("layer 0 written at %d", i)
				}
			}
			// Copy-on-write copies codes and scales.
			b.CopyKVBlock(st, 3, 2)
			per, sper := c.kvHeads*16*c.hd, c.kvHeads*16*G
			for l := 0; l < 2; l++ {
				for i := 0; i < per; i++ {
					if st.k8[l][3*per+i] != st.k8[l][2*per+i] || st.v8[l][3*per+i] != st.v8[l][2*per+i] {
						t.Fatalf("CopyKVBlock: layer %d code %d differs", l, i)
					}
				}
				for i := 0; i < sper; i++ {
					if st.ks8[l][3*sper+i] != st.ks8[l][2*sper+i] || st.vs8[l][3*sper+i] != st.vs8[l][2*sper+i] {
						t.Fatalf("CopyKVBlock: layer %d scale %d differs", l, i)
					}
				}
			}
		}
	}
}

// BenchmarkAttentionDecode is one decode token's attention over one layer
// of Phi-4's shape (40 query heads, 10 KV heads of 128) at 4,096 cached
// positions, per KV cache type; bytes are the cache bytes read.
func BenchmarkAttentionDecode(b *testing.B) {
	const (
		heads, kvHeads, hd, T, bs = 40, 10, 128, 4096, 32
	)
	for _, typ := range []backend.KVType{backend.KVF32, backend.KVF16, backend.KVQ8} {
		b.Run(typ.String(), func(b *testing.B) {
			be := New(0)
			defer be.Close()
			spec := backend.KVSpec{Layers: 1, KVHeads: kvHeads, HeadDim: hd, BlockSize: bs, Blocks: T / bs, Type: typ}
			kv, err := be.NewKV(spec)
			if err != nil {
				b.Fatal(err)
			}
			table := make([]int32, T/bs)
			for i := range table {
				table[i] = int32(len(table) - 1 - i)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			w := kvHeads * hd
			k, v := make([]float32, T*w), make([]float32, T*w)
			for i := range k {
				k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			fill := backend.Step{Tables: [][]int32{table}}
			for p := 0; p < T; p++ {
				fill.Tokens = append(fill.Tokens, 0)
				fill.Pos = append(fill.Pos, int32(p))
				fill.Seq = append(fill.Seq, 0)
				fill.Slot = append(fill.Slot, table[p/bs]*bs+int32(p%bs))
			}
			sb, err := be.NewStep(backend.StepLimits{Tokens: T, Seqs: 1, BlocksPerSeq: len(table)})
			if err != nil {
				b.Fatal(err)
			}
			if err := be.SetStep(sb, &fill); err != nil {
				b.Fatal(err)
			}
			be.StoreKV(kv, 0, backend.Whole(&Buf{F: k}, w), backend.Whole(&Buf{F: v}, w), sb)
			last := len(fill.Tokens) - 1
			dec := backend.Step{Tokens: fill.Tokens[last:], Pos: fill.Pos[last:], Seq: fill.Seq[last:], Slot: fill.Slot[last:], Tables: fill.Tables}
			if err := be.SetStep(sb, &dec); err != nil {
				b.Fatal(err)
			}
			q := &Buf{F: make([]float32, heads*hd)}
			for i := range q.F {
				q.F[i] = float32(rng.NormFloat64())
			}
			out := &Buf{F: make([]float32, heads*hd)}
			b.SetBytes(2 * T * kvHeads * typ.RowBytes(hd))
			b.ResetTimer()
			for range b.N {
				be.Attention(out, backend.Whole(q, heads*hd), heads, 0.088, kv, 0, sb)
			}
		})
	}
}
