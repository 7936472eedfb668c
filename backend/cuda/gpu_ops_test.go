//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// Device helpers for tests: upload slices, poison and read back.

func devF32(t testing.TB, d *Device, v []float32) DevPtr {
	p, err := d.Alloc(int64(4*max(1, len(v))), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.UploadF32(p, v); err != nil {
		t.Fatal(err)
	}
	return p
}

func devI32(t testing.TB, d *Device, v []int32) DevPtr {
	p, err := d.Alloc(int64(4*max(1, len(v))), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		if err := d.Upload(p, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func devPoisoned(t testing.TB, d *Device, n int) DevPtr {
	p, err := d.Alloc(int64(4*max(1, n)), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fill32(p, poison, n); err != nil {
		t.Fatal(err)
	}
	return p
}

func readF32(t testing.TB, d *Device, p DevPtr, n int) []float32 {
	v := make([]float32, n)
	if err := d.DownloadF32(v, p); err != nil {
		t.Fatal(err)
	}
	return v
}

// kvCache allocates a paged key and value cache of blocks blocks (bs
// positions of H heads of hd values, fp16 or float32).
func kvCache(d *Device, blocks, H, bs, hd int, f16 bool) (kc, vc DevPtr) {
	esz := 4
	if f16 {
		esz = 2
	}
	kc, _ = d.Alloc(int64(blocks*H*bs*hd*esz), "k")
	vc, _ = d.Alloc(int64(blocks*H*bs*hd*esz), "v")
	return kc, vc
}

// storeRandKV stores random keys and values at positions 0..n-1 of the
// sequence whose block table is table (storeKV) and returns them as the
// cache holds them (rounded to fp16 for an fp16 cache), n·H·hd each.
func storeRandKV(t testing.TB, d *Device, rng *rand.Rand, kc, vc DevPtr, f16 bool, table []int32, H, hd, bs, n int) (k, v []float32) {
	k, v = randF(rng, n*H*hd), randF(rng, n*H*hd)
	slots := make([]int32, n)
	for p := range slots {
		slots[p] = table[p/bs]*int32(bs) + int32(p%bs)
	}
	kp, vp, sp := devF32(t, d, k), devF32(t, d, v), devI32(t, d, slots)
	run(t, d, func() error { return d.storeKV(kc, vc, f16, kp, H*hd, vp, H*hd, sp, H, hd, bs, n) })
	for _, p := range []DevPtr{kp, vp, sp} {
		d.Free(p)
	}
	if f16 {
		for i := range k {
			k[i] = tensor.F16ToF32(tensor.F32ToF16(k[i]))
			v[i] = tensor.F16ToF32(tensor.F32ToF16(v[i]))
		}
	}
	return k, v
}

func run(t testing.TB, d *Device, f func() error) {
	if err := d.Do(func() error {
		if err := f(); err != nil {
			return err
		}
		return d.sync()
	}); err != nil {
		t.Fatal(err)
	}
}

// oneTokenIO is a one-token multiply's inputs for a matrix of R × C: a
// random input row x and residual res, uploaded (xd, rd), a poisoned output
// yd and a one-token scratch, all freed when t ends.
func oneTokenIO(t *testing.T, d *Device, rng *rand.Rand, R, C int) (x, res []float32, xd, yd, rd DevPtr, s *Scratch) {
	x, res = randF(rng, C), randF(rng, R)
	xd, yd, rd = devF32(t, d, x), devPoisoned(t, d, R), devF32(t, d, res)
	t.Cleanup(func() { d.Free(xd); d.Free(yd); d.Free(rd) })
	s, err := d.NewScratch(1, C)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Free(d) })
	return x, res, xd, yd, rd, s
}

func randF(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// closeTo checks every element (written, finite) against want within
// atol + rtol·|want|.
func closeTo(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	for i, g := range got {
		if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) || math.Abs(float64(g)-want[i]) > atol+rtol*math.Abs(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, g, want[i])
		}
	}
}

func TestGPUEmbed(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 21))
	for _, c := range append(denseCases()[:8], denseCase{50, 333, codec.Params{Codec: "dense", Bits: 5, GroupSize: 64}}) {
		t.Run(fmt.Sprintf("%dx%d_k%d_%s", c.R, c.C, c.p.Bits, c.p.Levels), func(t *testing.T) {
			w := randF(rng, c.R*c.C)
			data, err := codec.Encode(w, c.R, c.C, c.p, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := codec.Open(c.p, c.R, c.C, data)
			checkEmbed(t, d, m, rng)
		})
	}
}

// checkEmbed uploads m and checks the embedding lookup of its last, first
// and two random rows against DecodeRows (within 1e-5; fp16 fallbacks 1e-3).
func checkEmbed(t *testing.T, d *Device, m tensor.Matrix, rng *rand.Rand) {
	t.Helper()
	R, C := m.Rows(), m.Cols()
	g, err := d.UploadMatrix(m)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free(d)
	toks := []int32{int32(R - 1), 0, int32(rng.IntN(R)), int32(rng.IntN(R))}
	tp := devI32(t, d, toks)
	out := devPoisoned(t, d, len(toks)*C)
	defer d.Free(tp)
	defer d.Free(out)
	run(t, d, func() error { return d.embed(g, tp, out, len(toks)) })
	got := readF32(t, d, out, len(toks)*C)
	row := make([]float32, C)
	tol := 1e-5
	if g.Fallback != "" {
		tol = 1e-3 // fp16
	}
	for i, tok := range toks {
		m.DecodeRows(row, int(tok), int(tok)+1)
		want := make([]float64, C)
		for j, v := range row {
			want[j] = float64(v)
		}
		closeTo(t, fmt.Sprintf("token %d", i), got[i*C:(i+1)*C], want, tol, tol)
	}
}

func TestGPUSmallOps(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 22))
	const n, dim = 5, 333
	x := randF(rng, n*dim)
	w := randF(rng, dim)
	xp, wp := devF32(t, d, x), devF32(t, d, w)
	// RMSNorm over all rows, and over rows {3, 0}
	out := devPoisoned(t, d, n*dim)
	rows := devI32(t, d, []int32{3, 0})
	run(t, d, func() error { return d.rmsnorm(out, xp, wp, 1e-5, dim, 0, n) })
	got := readF32(t, d, out, n*dim)
	ref := func(r int) []float64 {
		var ss float32
		for _, v := range x[r*dim : (r+1)*dim] {
			ss += v * v
		}
		inv := float32(1 / math.Sqrt(float64(ss/float32(dim)+1e-5)))
		o := make([]float64, dim)
		for i, v := range x[r*dim : (r+1)*dim] {
			o[i] = float64(w[i] * (v * inv))
		}
		return o
	}
	for r := 0; r < n; r++ {
		closeTo(t, "rmsnorm", got[r*dim:(r+1)*dim], ref(r), 1e-5, 1e-5)
	}
	run(t, d, func() error { return d.rmsnorm(out, xp, wp, 1e-5, dim, rows, 2) })
	got = readF32(t, d, out, 2*dim)
	closeTo(t, "rmsnorm out row 3", got[:dim], ref(3), 1e-5, 1e-5)
	closeTo(t, "rmsnorm out row 0", got[dim:], ref(0), 1e-5, 1e-5)
	// Add, bias
	y := randF(rng, n*dim)
	yp := devF32(t, d, y)
	run(t, d, func() error { return d.add(yp, xp, n*dim-7) })
	run(t, d, func() error { return d.bias(yp, wp, dim, n) })
	got = readF32(t, d, yp, n*dim)
	want := make([]float64, n*dim)
	for i := range want {
		v := y[i]
		if i < n*dim-7 {
			v += x[i]
		}
		want[i] = float64(v + w[i%dim])
	}
	closeTo(t, "add+bias", got, want, 0, 0)
	// SwiGLU over views of a fused gate_up output (gate | up per row)
	const width = 100
	gu := randF(rng, n*2*width)
	gp := devF32(t, d, gu)
	sw := devPoisoned(t, d, n*width)
	run(t, d, func() error { return d.swiglu(sw, gp, 2*width, gp+4*width, 2*width, width, n, nil) })
	got = readF32(t, d, sw, n*width)
	for i := range n * width {
		tk, f := i/width, i%width
		g, u := gu[tk*2*width+f], gu[tk*2*width+width+f]
		want[i] = float64(g) / (1 + math.Exp(-float64(g))) * float64(u)
	}
	closeTo(t, "swiglu", got, want[:n*width], 1e-6, 1e-5)
	// Argmax (3 parts of a 5,000-logit row) with a tie across parts (the
	// first wins), a NaN, a row of NaNs (0); twice, since each launch must
	// leave the counters at zero for the next
	const vocab = 5000
	lg := randF(rng, 4*vocab)
	lg[vocab+17], lg[vocab+4000] = 9, 9
	lg[2*vocab+3] = float32(math.NaN())
	lg[2*vocab+4999] = 50
	for i := 3 * vocab; i < 4*vocab; i++ {
		lg[i] = float32(math.NaN())
	}
	lp := devF32(t, d, lg)
	op := devI32(t, d, []int32{-1, -1, -1, -1})
	wk := devI32(t, d, make([]int32, argmaxWork(vocab, 4)/4))
	best := 0
	for i, v := range lg[:vocab] {
		if v > lg[best] {
			best = i
		}
	}
	for range 2 {
		run(t, d, func() error { return d.argmax(lp, vocab, op, 4, wk, 4) })
		ids := make([]int32, 4)
		_ = d.Download(unsafe.Slice((*byte)(unsafe.Pointer(&ids[0])), 16), op)
		if ids[0] != int32(best) || ids[1] != 17 || ids[2] != 4999 || ids[3] != 0 {
			t.Fatalf("argmax %v, want [%d 17 4999 0]", ids, best)
		}
	}
	for _, p := range []DevPtr{xp, wp, out, rows, yp, gp, sw, lp, op, wk} {
		d.Free(p)
	}
}

func TestGPURope(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 23))
	for _, il := range []bool{false, true} {
		const n, heads, hd, dim, stride, positions = 3, 4, 64, 48, 4*64 + 2*64, 100
		half := dim / 2
		cos, sin := randF(rng, positions*half), randF(rng, positions*half)
		x := randF(rng, n*stride)
		pos := []int32{99, 0, 37}
		xp, cp, sp, pp := devF32(t, d, x), devF32(t, d, cos), devF32(t, d, sin), devI32(t, d, pos)
		run(t, d, func() error { return d.rope(xp, stride, heads, hd, dim, il, cp, sp, pp, n) })
		got := readF32(t, d, xp, n*stride)
		want := make([]float64, len(x))
		for i, v := range x {
			want[i] = float64(v)
		}
		for tk := 0; tk < n; tk++ {
			cs, sn := cos[int(pos[tk])*half:], sin[int(pos[tk])*half:]
			for h := 0; h < heads; h++ {
				v := x[tk*stride+h*hd:]
				o := want[tk*stride+h*hd:]
				for i := 0; i < half; i++ {
					ia, ib := i, i+half
					if il {
						ia, ib = 2*i, 2*i+1
					}
					a, b := v[ia], v[ib]
					o[ia] = float64(a*cs[i] - b*sn[i])
					o[ib] = float64(b*cs[i] + a*sn[i])
				}
			}
		}
		closeTo(t, fmt.Sprintf("rope interleave=%v", il), got, want, 1e-6, 1e-6)
		for _, p := range []DevPtr{xp, cp, sp, pp} {
			d.Free(p)
		}
	}
}

// TestGPUAttention stores K/V for two sequences with shuffled block
// tables (through StoreKV), then checks paged attention for tokens at
// short and long (several splits) positions against float64.
// TestAttnHeadDim (CPU): NewKV refuses the head sizes whose halves are not
// whole 16-byte pieces of the cache, naming the fix, and takes the others.
func TestAttnHeadDim(t *testing.T) {
	for _, c := range []struct {
		hd  int
		f16 bool
		ok  bool
	}{
		{128, true, true}, {64, true, true}, {16, true, true}, {8, false, true}, {24, false, true},
		{8, true, false}, {24, true, false}, {12, false, false}, {0, false, false}, {72, true, false},
	} {
		err := attnHeadDim(c.hd, c.f16)
		if (err == nil) != c.ok {
			t.Errorf("head %d f16 %v: err %v, want ok %v", c.hd, c.f16, err, c.ok)
		}
		if err != nil && c.f16 && !strings.Contains(err.Error(), "--kv-cache f32") {
			t.Errorf("head %d f16: %q does not name --kv-cache f32", c.hd, err)
		}
	}
}

func TestGPUAttention(t *testing.T) {
	d := gpu(t)
	defer func(on bool) { attnTCOn = on }(attnTCOn)
	rng := rand.New(rand.NewPCG(testSeed(t), 24))
	// head groups of 4, 2, 8 (the grouped kernels) and 3 (the per-head one)
	shapes := [][3]int{{8, 2, 64}, {8, 4, 64}, {8, 1, 64}, {6, 2, 64}, {8, 2, 128}}
	for _, f16 := range []bool{true, false} {
		for _, shp := range shapes {
			heads, H, hd := shp[0], shp[1], shp[2]
			const bs, blocks = 16, 120
			const maxPos = 900
			S := (maxPos + attnChunk - 1) / attnChunk
			perSeq := (maxPos + bs - 1) / bs
			perm := rng.Perm(blocks)
			tables := [][]int32{make([]int32, perSeq), make([]int32, perSeq)}
			for i := 0; i < perSeq; i++ {
				tables[0][i] = int32(perm[i])
				tables[1][i] = int32(perm[blocks-1-i])
			}
			lens := []int{maxPos, 3}
			kc, vc := kvCache(d, blocks, H, bs, hd, f16)
			// host copies of what is stored, rounded like the cache
			keys := [2][][]float32{}
			vals := [2][][]float32{}
			for s := 0; s < 2; s++ {
				n := lens[s]
				k, v := storeRandKV(t, d, rng, kc, vc, f16, tables[s], H, hd, bs, n)
				for p := 0; p < n; p++ {
					keys[s] = append(keys[s], k[p*H*hd:(p+1)*H*hd])
					vals[s] = append(vals[s], v[p*H*hd:(p+1)*H*hd])
				}
			}
			// query tokens: (seq, pos)
			qs := [][2]int{{0, maxPos - 1}, {1, 2}, {0, 255}, {0, 256}, {0, 0}, {0, 600}}
			n := len(qs)
			q := randF(rng, n*heads*hd)
			flat := append(append([]int32{}, tables[0]...), tables[1]...)
			pos, seq := make([]int32, n), make([]int32, n)
			for i, x := range qs {
				seq[i], pos[i] = int32(x[0]), int32(x[1])
			}
			qp, tp, pp, sqp := devF32(t, d, q), devI32(t, d, flat), devI32(t, d, pos), devI32(t, d, seq)
			part, _ := d.Alloc(int64(4*n*heads*S*(hd+2)), "part")
			out := devPoisoned(t, d, n*heads*hd)
			scale := float32(1 / math.Sqrt(float64(hd)))
			want := make([]float64, n*heads*hd)
			for i, x := range qs {
				s := x[0]
				refAttention(want[i*heads*hd:], q[i*heads*hd:], heads, H, hd, x[1]+1, scale,
					func(p int) []float32 { return keys[s][p] }, func(p int) []float32 { return vals[s][p] })
			}
			// both chunks (the split kernel's 64 and 128 positions a block),
			// the output poisoned before each; for groups the grouped kernels
			// take, the tensor-core one (attnTC), the float one and the
			// per-head kernel
			for _, chunk := range []int{attnChunk, attnChunkWide} {
				_, grouped := attnGQA(heads, H, hd, chunk, f16)
				_, tc := attnTC(heads, H, hd, chunk, f16)
				for _, v := range []struct{ gqa, tc bool }{{true, true}, {true, false}, {false, false}} {
					if (v.gqa && !grouped) || (v.tc && !tc) {
						continue
					}
					if err := d.Fill32(out, poison, n*heads*hd); err != nil {
						t.Fatal(err)
					}
					attnTCOn = v.tc
					run(t, d, func() error {
						return d.attention(out, qp, heads*hd, kc, vc, f16, tp, perSeq, pp, sqp, scale, heads, H, hd, bs, chunk, (maxPos+chunk-1)/chunk, part, n, v.gqa, 0)
					})
					got := readF32(t, d, out, n*heads*hd)
					closeTo(t, fmt.Sprintf("attention f16=%v heads %d/%d hd %d chunk %d grouped %v tensor cores %v", f16, heads, H, hd, chunk, v.gqa, v.tc), got, want, 2e-5, 2e-4)
				}
			}
			for _, p := range []DevPtr{kc, vc, qp, tp, pp, sqp, part, out} {
				d.Free(p)
			}
		}
	}
}

// TestGPUAttentionShared checks the tensor-core attention's shared-prefix
// blocks (a split every token's table holds in the same blocks, scored for
// attnSharedCols/G tokens at once): steps of tokens from three sequences whose tables
// share their first blocks, with and without the shared words, poisoned
// outputs; the two must agree bit for bit (a column's operations do not
// depend on its place in the mma tile) and with a float64 reference.
func TestGPUAttentionShared(t *testing.T) {
	d := gpu(t)
	defer func(on, sh, casc bool, order int) {
		attnTCOn, attnSharedOn, attnCascadeOn, attnCascadeOrder = on, sh, casc, order
	}(attnTCOn, attnSharedOn, attnCascadeOn, attnCascadeOrder)
	attnTCOn, attnSharedOn = true, true
	rng := rand.New(rand.NewPCG(testSeed(t), 26))
	// groups of 4 (hd 64, 128; hd 32: two warps' partial value sums), 2 and 8
	for _, shp := range [][3]int{{8, 2, 64}, {8, 2, 128}, {8, 2, 32}, {8, 4, 64}, {8, 1, 64}, {40, 10, 128}} {
		heads, H, hd := shp[0], shp[1], shp[2]
		if _, ok := attnTCShared(heads, H, hd, attnChunk); !ok {
			t.Fatalf("heads %d/%d hd %d: attnTCShared refuses the shape", heads, H, hd)
		}
		const bs, blocks, perSeq, common = 16, 150, 45, 21 // 21 blocks: 336 positions, 5 whole splits of 64
		// tables: the first common blocks the same in all three, then each its own
		perm := rng.Perm(blocks)
		tables := make([][]int32, 3)
		for s := range tables {
			tables[s] = make([]int32, perSeq)
			for i := range tables[s] {
				if i < common {
					tables[s][i] = int32(perm[i])
				} else {
					tables[s][i] = int32(perm[common+s*(perSeq-common)+i-common])
				}
			}
		}
		// every slot of the cache random (rounded to fp16 as stored)
		slots := blocks * bs
		k, v := randF(rng, slots*H*hd), randF(rng, slots*H*hd)
		all := make([]int32, slots)
		for i := range all {
			all[i] = int32(i)
		}
		kc, _ := d.Alloc(int64(slots*H*hd*2), "k")
		vc, _ := d.Alloc(int64(slots*H*hd*2), "v")
		kp, vp, sp := devF32(t, d, k), devF32(t, d, v), devI32(t, d, all)
		run(t, d, func() error { return d.storeKV(kc, vc, true, kp, H*hd, vp, H*hd, sp, H, hd, bs, slots) })
		for _, p := range []DevPtr{kp, vp, sp} {
			d.Free(p)
		}
		for i := range k {
			k[i] = tensor.F16ToF32(tensor.F32ToF16(k[i]))
			v[i] = tensor.F16ToF32(tensor.F32ToF16(v[i]))
		}
		flat := append(append(append([]int32{}, tables[0]...), tables[1]...), tables[2]...)
		tp := devI32(t, d, flat)
		// steps: 21 tokens after the shared blocks (a last group of 5), a
		// token at 200 that bounds the shared positions, two tokens of one
		// sequence, and 40 tokens
		for ci, toks := range [][][2]int{
			func() (x [][2]int) {
				for i := 0; i < 21; i++ {
					x = append(x, [2]int{i % 3, 340 + 17*i})
				}
				return
			}(),
			{{0, 600}, {1, 200}, {2, 701}, {1, 450}},
			{{2, 500}, {2, 501}},
			func() (x [][2]int) {
				for i := 0; i < 40; i++ {
					x = append(x, [2]int{i % 3, 336 + 9*i})
				}
				return
			}(),
		} {
			n := len(toks)
			pos, seq := make([]int32, n), make([]int32, n)
			for i, x := range toks {
				seq[i], pos[i] = int32(x[0]), int32(x[1])
			}
			st := &backend.Step{Tokens: make([]int32, n), Pos: pos, Seq: seq, Tables: tables}
			cb, mp := sharedPrefix(st)
			shw := devI32(t, d, []int32{cb, mp, 0, 0})
			q := randF(rng, n*heads*hd)
			qp, pp, sqp := devF32(t, d, q), devI32(t, d, pos), devI32(t, d, seq)
			S := (perSeq*bs + attnChunk - 1) / attnChunk
			part, _ := d.Alloc(int64(4*n*heads*S*(hd+2)), "part")
			scale := float32(1 / math.Sqrt(float64(hd)))
			// per token, shared-prefix blocks, cascade (hd 64 and 128) with
			// the per-token blocks last split first, and in grid order
			var outs [4][]float32
			for i, shared := range []DevPtr{0, shw, shw, shw} {
				attnCascadeOn, attnCascadeOrder = i >= 2, 2
				if i == 3 {
					attnCascadeOrder = 1
				}
				out := devPoisoned(t, d, n*heads*hd)
				if err := d.Fill32(part, poison, n*heads*S*(hd+2)); err != nil {
					t.Fatal(err)
				}
				run(t, d, func() error {
					return d.attention(out, qp, heads*hd, kc, vc, true, tp, perSeq, pp, sqp, scale, heads, H, hd, bs, attnChunk, S, part, n, true, shared)
				})
				outs[i] = readF32(t, d, out, n*heads*hd)
				d.Free(out)
			}
			want := make([]float64, n*heads*hd)
			for i := range toks {
				s := int(seq[i])
				row := func(x []float32) func(p int) []float32 {
					return func(p int) []float32 {
						slot := int(tables[s][p/bs])*bs + p%bs
						return x[slot*H*hd : (slot+1)*H*hd]
					}
				}
				refAttention(want[i*heads*hd:], q[i*heads*hd:], heads, H, hd, int(pos[i])+1, scale, row(k), row(v))
			}
			what := fmt.Sprintf("heads %d/%d hd %d step %d (shared blocks %d, least position+1 %d)", heads, H, hd, ci, cb, mp)
			closeTo(t, what+" per token", outs[0], want, 2e-5, 2e-4)
			closeTo(t, what+" shared", outs[1], want, 2e-5, 2e-4)
			if d.attnCascades(heads, H, hd, attnChunk) != (hd == 64 || hd == 128) {
				t.Fatalf("%s: attnCascades = %v", what, !(hd == 64 || hd == 128))
			}
			closeTo(t, what+" cascade", outs[2], want, 2e-5, 2e-4)
			for i := range outs[2] {
				if math.Float32bits(outs[2][i]) != math.Float32bits(outs[3][i]) {
					t.Fatalf("%s: cascade output %d is %v last split first, %v in grid order", what, i, outs[2][i], outs[3][i])
				}
			}
			for i := range outs[0] {
				if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
					t.Fatalf("%s: output %d is %v with the shared blocks, %v without", what, i, outs[1][i], outs[0][i])
				}
			}
			for _, p := range []DevPtr{shw, qp, pp, sqp, part} {
				d.Free(p)
			}
		}
		for _, p := range []DevPtr{kc, vc, tp} {
			d.Free(p)
		}
	}
}

// TestSharedPrefix (CPU): the blocks every table of a step's tokens holds
// in common and the least position + 1.
func TestSharedPrefix(t *testing.T) {
	tabs := [][]int32{{5, 6, 7, 8}, {5, 6, 9}, {5, 6, 7, 1}, {4}}
	for _, c := range []struct {
		seq, pos        []int32
		blocks, minPos1 int32
	}{
		{[]int32{0, 1, 2}, []int32{60, 40, 50}, 2, 41},
		{[]int32{0, 2}, []int32{60, 50}, 3, 51},
		{[]int32{0, 0, 0}, []int32{3, 4, 5}, 4, 4},   // one sequence
		{[]int32{0, 1, 3}, []int32{60, 40, 5}, 0, 6}, // a table with another first block
		{[]int32{2}, []int32{60}, 0, 0},              // one token
		{[]int32{0, 7}, []int32{60, 40}, 0, 0},       // a sequence without a table
		{[]int32{1, 0, 0, 2}, []int32{30, 61, 62, 35}, 2, 31},
	} {
		st := &backend.Step{Tokens: make([]int32, len(c.seq)), Seq: c.seq, Pos: c.pos, Tables: tabs}
		if b, m := sharedPrefix(st); b != c.blocks || m != c.minPos1 {
			t.Errorf("sharedPrefix(seq %v, pos %v) = %d, %d; want %d, %d", c.seq, c.pos, b, m, c.blocks, c.minPos1)
		}
	}
}

// TestSharesSplit (CPU): a step passes its shared words to the attention
// (and launches the cascade) only when a whole split lies below both: the
// bench's 32 forked sequences after 512 positions (31 blocks of 16, least
// position 512) share seven splits of 64; distinct prompts (no block in
// common) and a shared run shorter than a split share none.
func TestSharesSplit(t *testing.T) {
	for _, c := range []struct {
		blocks, minPos1, bs, chunk int
		want                       bool
	}{
		{31, 513, 16, 64, true},
		{0, 513, 16, 64, false},
		{3, 513, 16, 64, false}, // 48 positions
		{4, 513, 16, 64, true},  // exactly one split
		{31, 40, 16, 64, false}, // a token at position 39
		{31, 64, 16, 64, true},
		{6, 300, 32, 128, true},
		{6, 300, 32, 0, false},
	} {
		if got := sharesSplit(c.blocks, c.minPos1, c.bs, c.chunk); got != c.want {
			t.Errorf("sharesSplit(%d blocks, least position+1 %d, bs %d, chunk %d) = %v, want %v", c.blocks, c.minPos1, c.bs, c.chunk, got, c.want)
		}
	}
}

// TestAttnTCShared (CPU): the shared-prefix blocks' shared memory.
func TestAttnTCShared(t *testing.T) {
	for _, c := range []struct {
		heads, H, hd, chunk int
		ok                  bool
		smem                int
	}{
		{40, 10, 128, 64, true, 4*8*64 + 4*8*128 + 64*2*136},             // Phi-4, two tokens: 23,552 bytes
		{8, 2, 32, 64, true, 4*8*64 + 4*8*32 + 64*2*40 + 4*2*8*32},       // 4 warps over 2 dim tiles
		{40, 10, 128, 128, true, 4*8*128 + 4*8*128 + 128*2*136},          // 43,008 bytes
		{8, 4, 64, 64, true, 4*8*64 + 4*8*64 + 64*2*72},                  // groups of 2: four tokens
		{16, 2, 128, 64, true, 4*16*64 + 4*16*128 + 64*2*136},            // groups of 8: two tokens, 16 columns
		{8, 1, 64, 128, true, 4*16*128 + 4*16*64 + 128*2*72 + 4*2*16*64}, // 8 warps over 4 dim tiles
		{16, 2, 128, 128, false, 0},                                      // 51,200 bytes
		{6, 2, 64, 64, false, 0},                                         // groups of 3: attnTC's refusal
	} {
		smem, ok := attnTCShared(c.heads, c.H, c.hd, c.chunk)
		if ok != c.ok || (ok && smem != c.smem) {
			t.Errorf("attnTCShared(%d, %d, %d, %d) = %d, %v; want %d, %v", c.heads, c.H, c.hd, c.chunk, smem, ok, c.smem, c.ok)
		}
	}
}

// refAttention writes one token's causal attention in float64 to want
// (heads × hd): its queries q (heads × hd) over positions 0..T-1, whose
// key and value rows (H heads × hd) key(p) and val(p) return.
func refAttention(want []float64, q []float32, heads, H, hd, T int, scale float32, key, val func(p int) []float32) {
	for h := 0; h < heads; h++ {
		kvh := h / (heads / H)
		qv := q[h*hd : (h+1)*hd]
		sc := make([]float64, T)
		mx := math.Inf(-1)
		for p := 0; p < T; p++ {
			kr := key(p)[kvh*hd:]
			var dot float64
			for j, x := range qv {
				dot += float64(x) * float64(kr[j])
			}
			sc[p] = dot * float64(scale)
			mx = math.Max(mx, sc[p])
		}
		var sum float64
		for p := range sc {
			sc[p] = math.Exp(sc[p] - mx)
			sum += sc[p]
		}
		for j := 0; j < hd; j++ {
			var o float64
			for p := 0; p < T; p++ {
				o += sc[p] * float64(val(p)[kvh*hd+j])
			}
			want[h*hd+j] = o / sum
		}
	}
}

func TestAttnGrouped(t *testing.T) {
	d := &Device{SMs: 132}
	defer func(m int) { attnGQAMode = m }(attnGQAMode)
	for _, c := range []struct {
		mode, maxPos, n, heads, H int
		want                      bool
	}{
		{2, 575, 1, 40, 10, false},   // Phi-4, one token after 575: 9 splits × 10 heads = 90 blocks
		{2, 3100, 1, 40, 10, true},   // 49 splits × 10 = 490
		{2, 575, 32, 40, 10, true},   // batch 32
		{2, 575, 2, 40, 10, true},    // 180 blocks
		{2, 4000, 32, 40, 40, false}, // no grouping: the per-head kernel
		{1, 10, 1, 40, 10, true},     // forced
		{0, 4000, 32, 40, 10, false}, // off
	} {
		attnGQAMode = c.mode
		if got := d.attnGrouped(c.heads, c.H, 128, attnChunk, true, c.maxPos, c.n); got != c.want {
			t.Errorf("mode %d, position %d, %d tokens, heads %d/%d: grouped %v, want %v", c.mode, c.maxPos, c.n, c.heads, c.H, got, c.want)
		}
	}
}

// TestAttnTCChoice (CPU): which grouped steps take the tensor-core kernel,
// and its shared memory.
func TestAttnTCChoice(t *testing.T) {
	for _, c := range []struct {
		heads, H, hd, chunk int
		f16, ok             bool
		smem                int
	}{
		{40, 10, 128, 64, true, true, 4*4*64 + 32*128 + 64*2*136},          // Phi-4: 22,528 bytes
		{40, 10, 128, 128, true, true, 4*4*128 + 32*128 + 128*2*136},       // 8 warps, 8 dim tiles
		{8, 2, 64, 128, true, true, 4*4*128 + 32*64 + 128*2*72 + 4*2*4*64}, // 8 warps over 4 tiles: 2 partial sums
		{16, 2, 128, 128, true, true, 4*8*128 + 32*128 + 128*2*136},        // groups of 8
		{40, 10, 128, 64, false, false, 0},                                 // f32 cache
		{6, 2, 64, 64, true, false, 0},                                     // groups of 3
		{8, 2, 48, 64, true, false, 0},                                     // not whole 32-dim steps
		{8, 2, 96, 64, true, false, 0},                                     // 6 dim tiles, 4 warps
		{8, 2, 128, 40, true, false, 0},                                    // not whole 16-position warps
		{8, 2, 256, 128, true, false, 0},                                   // 4·2·128 + 32·256 + 128·528 bytes: over 48 KB
	} {
		smem, ok := attnTC(c.heads, c.H, c.hd, c.chunk, c.f16)
		if ok != c.ok || (ok && smem != c.smem) {
			t.Errorf("attnTC(%d, %d, %d, %d, %v) = %d, %v; want %d, %v", c.heads, c.H, c.hd, c.chunk, c.f16, smem, ok, c.smem, c.ok)
		}
	}
}

// TestAttnChunkFor (CPU): one-token steps take the wide chunk, larger steps
// the narrow one, and UPG_CUDA_ATTN_CHUNK (64 or 128) sets every step's.
func TestAttnChunkFor(t *testing.T) {
	defer func(e int) { attnChunkEnv = e }(attnChunkEnv)
	for _, c := range []struct{ env, n, want int }{
		{0, 1, attnChunkWide}, {0, 2, attnChunk}, {0, 32, attnChunk}, {0, 256, attnChunk},
		{64, 1, attnChunk}, {128, 32, attnChunkWide}, {96, 1, attnChunkWide}, {96, 8, attnChunk},
	} {
		attnChunkEnv = c.env
		if got := attnChunkFor(c.n); got != c.want {
			t.Errorf("UPG_CUDA_ATTN_CHUNK=%d, %d tokens: chunk %d, want %d", c.env, c.n, got, c.want)
		}
	}
}

func TestAttnGQAChoice(t *testing.T) {
	for _, c := range []struct {
		heads, H, hd, chunk int
		f16, ok             bool
		smem                int
	}{
		{40, 10, 128, 64, true, true, 4 * (4*128 + 4*64 + 8*4*128)}, // Phi-4
		{40, 10, 128, 128, true, true, 4 * (4*128 + 4*128 + 16*4*128)},
		{8, 1, 128, 128, true, false, 0}, // 8·(128+128+16·128) floats: over 48 KB
		{8, 1, 64, 64, false, true, 4 * (8*64 + 8*64 + 8*8*64)},
		{6, 2, 64, 64, true, false, 0},  // groups of 3
		{8, 8, 64, 64, true, false, 0},  // no grouping
		{8, 2, 24, 64, true, false, 0},  // half a head is not whole 16-byte loads
		{8, 2, 512, 16, true, false, 0}, // a row needs more lanes than the block has
	} {
		smem, ok := attnGQA(c.heads, c.H, c.hd, c.chunk, c.f16)
		if ok != c.ok || (ok && smem != c.smem) {
			t.Errorf("attnGQA(%d, %d, %d, %d, %v) = %d, %v; want %d, %v", c.heads, c.H, c.hd, c.chunk, c.f16, smem, ok, c.smem, c.ok)
		}
	}
}

// TestGPUAttentionPrefill checks the prefill attention kernels (one
// sequence: 16 queries a block in float, 32 on the tensor cores) against the
// split kernels on runs of consecutive positions, as a prompt's chunks are,
// for fp16 and f32 caches.
func TestGPUAttentionPrefill(t *testing.T) {
	d := gpu(t)
	defer func(on bool) { attnTCOn = on }(attnTCOn)
	rng := rand.New(rand.NewPCG(testSeed(t), 25))
	for _, f16 := range []bool{true, false} {
		for _, hd := range []int{64, 128} {
			const heads, H, bs, blocks, L = 8, 2, 16, 60, 700
			perSeq := (L + bs - 1) / bs
			table := make([]int32, perSeq)
			for i, p := range rng.Perm(blocks)[:perSeq] {
				table[i] = int32(p)
			}
			kc, vc := kvCache(d, blocks, H, bs, hd, f16)
			storeRandKV(t, d, rng, kc, vc, f16, table, H, hd, bs, L)
			tp := devI32(t, d, table)
			for _, c := range [][2]int{{0, 16}, {0, 40}, {600, 100}, {37, 291}} {
				p0, n := c[0], c[1]
				pos, seq := make([]int32, n), make([]int32, n)
				for i := range pos {
					pos[i] = int32(p0 + i)
				}
				q := randF(rng, n*heads*hd)
				qp, pp, sqp := devF32(t, d, q), devI32(t, d, pos), devI32(t, d, seq)
				S := (L + attnChunk - 1) / attnChunk
				part, _ := d.Alloc(int64(4*n*heads*S*(hd+2)), "part")
				want, got := devPoisoned(t, d, n*heads*hd), devPoisoned(t, d, n*heads*hd)
				scale := float32(1 / math.Sqrt(float64(hd)))
				run(t, d, func() error {
					return d.attention(want, qp, heads*hd, kc, vc, f16, tp, perSeq, pp, sqp, scale, heads, H, hd, bs, attnChunk, S, part, n, false, 0)
				})
				w := readF32(t, d, want, n*heads*hd)
				ref := make([]float64, len(w))
				for i, x := range w {
					ref[i] = float64(x)
				}
				// with an fp16 cache, the tensor-core kernel and the float one
				for _, tc := range []bool{true, false} {
					if tc && !f16 {
						continue
					}
					if err := d.Fill32(got, poison, n*heads*hd); err != nil {
						t.Fatal(err)
					}
					attnTCOn = tc
					run(t, d, func() error {
						return d.attentionPrefill(got, qp, heads*hd, kc, vc, f16, tp, perSeq, pp, sqp, scale, heads, H, hd, bs, n)
					})
					g := readF32(t, d, got, n*heads*hd)
					closeTo(t, fmt.Sprintf("f16=%v hd=%d positions %d..%d tensor cores %v", f16, hd, p0, p0+n-1, tc), g, ref, 2e-5, 1e-4)
				}
				for _, p := range []DevPtr{qp, pp, sqp, part, want, got} {
					d.Free(p)
				}
			}
			for _, p := range []DevPtr{kc, vc, tp} {
				d.Free(p)
			}
		}
	}
}

// TestGPUSwigluRotqBlockSizes: upg_swiglu_rotq in blocks of 128 threads
// (swigluThreads' choice where that fits one wave) writes the same bits as
// in blocks of 256 — SwiGLU, rotated and quantized input and group factors
// — for fresh random inputs at odd and even widths and rotation segments;
// and swigluThreads halves the block exactly where that saves a wave.
func TestGPUSwigluRotqBlockSizes(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 23))
	for _, c := range denseCases() {
		if c.p.Bits > 4 {
			continue
		}
		const n = 7
		t.Run(fmt.Sprintf("%dx%d_k%d_g%d_%s_rot%v", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, c.p.Rotate != 0), func(t *testing.T) {
			g, err := d.UploadMatrix(randomDense(t, rng, c))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free(d)
			width := c.C
			gp := devF32(t, d, randF(rng, n*2*width))
			defer d.Free(gp)
			var got [2]rotqOut
			for i, threads := range []int{rotqThreads, rotqThreads / 2} {
				s, act := rotqTarget(t, d, g, n)
				run(t, d, func() error {
					return d.rotqLaunch("upg_swiglu_rotq", threads, g, n, s, Ptr(gp), I32(2*width), Ptr(gp+DevPtr(4*width)), I32(2*width),
						I32(1), I64(0), Ptr(act))
				})
				got[i] = readRotqOut(t, d, g, act, s, n)
				d.Free(act)
				s.Free(d)
			}
			sameRotqOut(t, got[0], got[1], g, n, "in blocks of 256", "of 128")
		})
	}
	var slots [2]int
	const smem = 4 * 512 // Phi-4's FFN input: segments of 512 values
	run(t, d, func() error {
		slots = [2]int{d.blocksPerSM("upg_swiglu_rotq", rotqThreads, smem, 4) * d.SMs, d.blocksPerSM("upg_swiglu_rotq", rotqThreads/2, smem, 8) * d.SMs}
		return nil
	})
	t.Logf("upg_swiglu_rotq block slots: %d at %d threads, %d at %d", slots[0], rotqThreads, slots[1], rotqThreads/2)
	for _, c := range []struct{ blocks, want int }{
		{slots[0], rotqThreads},
		{slots[0] + 1, map[bool]int{true: rotqThreads / 2, false: rotqThreads}[slots[0]+1 <= slots[1]]},
		{slots[1], map[bool]int{true: rotqThreads / 2, false: rotqThreads}[slots[1] > slots[0]]},
		{slots[1] + 1, rotqThreads},
	} {
		var got int
		run(t, d, func() error { got = d.swigluThreads(c.blocks, smem); return nil })
		if got != c.want {
			t.Errorf("swigluThreads(%d) = %d, want %d", c.blocks, got, c.want)
		}
	}
}

// TestGPURotqMatchesEmulation: upg_rotq's int8 codes and group factors are
// emuRotq's bit for bit (the rotation's radix-2 stages in ascending order,
// as tensor.FWHT, then the per-group quantization) for fresh random inputs
// at the segment shapes the step meets: 1,024-value Hadamard blocks in 256
// threads (Phi-4's q|k|v, o and gate|up inputs), 512-value blocks (Phi-4's
// down), and smaller blocks and odd widths. A change to rotq_tail's stages
// must keep their order (NOTES.md runs 174 and 176).
func TestGPURotqMatchesEmulation(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 29))
	for _, c := range []struct{ C, gs int }{{5120, 128}, {1024, 64}, {1536, 128}, {17920, 128}, {640, 128}, {3000, 64}, {96, 32}} {
		const R, n = 32, 3
		p := codec.Params{Codec: "dense", Bits: 3, GroupSize: c.gs, Levels: "lloyd", Rotate: 0x5eed}
		t.Run(fmt.Sprintf("C%d_g%d_rb%d", c.C, c.gs, codec.RotationBlock(c.C)), func(t *testing.T) {
			m := randomDense(t, rng, denseCase{R, c.C, p})
			g, err := d.UploadMatrix(m)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free(d)
			x := randF(rng, n*c.C)
			xd := devF32(t, d, x)
			defer d.Free(xd)
			s, act := rotqTarget(t, d, g, n)
			defer s.Free(d)
			defer d.Free(act)
			run(t, d, func() error { return d.rotq(g, xd, c.C, n, s) })
			got := readRotqOut(t, d, g, act, s, n)
			_, alpha, beta := byteLevels(m.Levels)
			ldq := g.U * unitCodes
			for tk := range n {
				_, xq, fac := emuRotq(g.plan, m.Signs, x[tk*c.C:(tk+1)*c.C], alpha, beta)
				for j := range c.C {
					if got.xq[tk*ldq+j] != byte(xq[j]) {
						t.Fatalf("token %d code %d: %d, emulation %d", tk, j, int8(got.xq[tk*ldq+j]), xq[j])
					}
				}
				for gi := range g.G {
					for k := range 3 {
						if a, b := got.fac[4*(tk*g.G+gi)+k], fac[gi][k]; math.Float32bits(a) != math.Float32bits(b) {
							t.Fatalf("token %d group %d factor %d: %v, emulation %v", tk, gi, k, a, b)
						}
					}
				}
			}
		})
	}
}

// TestGPUSwigluParts: upg_swiglu_rotq summing a GEMM's split-K parts
// (takeParts: the parts a partsOut MatMul left in the scratch) writes the
// same bits — act, the int8 codes and the factors — as upg_splitk_sum into
// y followed by upg_swiglu_rotq on y, for 2-5 parts (two: the kernel's
// load-ahead path; more: its plain loop), every code family, 7 and 33
// tokens; and a plain swiglu after such a GEMM sums them first.
func TestGPUSwigluParts(t *testing.T) {
	d := gpu(t)
	rng := rand.New(rand.NewPCG(testSeed(t), 41))
	for _, c := range denseCases() {
		if c.p.Bits > 4 {
			continue
		}
		for _, sh := range []struct{ n, S int }{{7, 2}, {33, 3}, {7, 5}} {
			n, S := sh.n, sh.S
			t.Run(fmt.Sprintf("%dx%d_k%d_g%d_%s_n%d_S%d", c.R, c.C, c.p.Bits, c.p.GroupSize, c.p.Levels, n, S), func(t *testing.T) {
				g, err := d.UploadMatrix(randomDense(t, rng, c))
				if err != nil {
					t.Fatal(err)
				}
				defer g.Free(d)
				width := c.C
				N := n * 2 * width
				parts := randF(rng, S*N)
				var got [3]rotqOut
				for i := range 3 {
					s, act := rotqTarget(t, d, g, n)
					if S*N > s.partFloats {
						t.Fatalf("%d parts of %d floats do not fit the scratch's %d", S, N, s.partFloats)
					}
					if err := d.UploadF32(s.part, parts); err != nil {
						t.Fatal(err)
					}
					y := devPoisoned(t, d, N)
					run(t, d, func() error {
						switch i {
						case 0: // the sum, then the SwiGLU on its output
							if err := d.splitSum(s.part, S, y, 0, N); err != nil {
								return err
							}
							return d.swigluRotq(g, act, y, 2*width, y+DevPtr(4*width), 2*width, n, s)
						case 1: // the SwiGLU summing the parts
							s.parts = leftParts{y, S, N}
							if err := d.swigluRotq(g, act, y, 2*width, y+DevPtr(4*width), 2*width, n, s); err != nil {
								return err
							}
							if s.parts.S != 0 {
								t.Error("the parts were not taken")
							}
							return nil
						default: // a plain swiglu after such a GEMM, then the rotation of its output
							s.parts = leftParts{y, S, N}
							if err := d.swiglu(act, y, 2*width, y+DevPtr(4*width), 2*width, width, n, s); err != nil {
								return err
							}
							return d.rotq(g, act, width, n, s)
						}
					})
					got[i] = readRotqOut(t, d, g, act, s, n)
					d.Free(act)
					d.Free(y)
					s.Free(d)
				}
				for k := 1; k < 3; k++ {
					sameRotqOut(t, got[k], got[0], g, n, fmt.Sprintf("variant %d", k), "after the sum kernel")
				}
			})
		}
	}
}

// rotqOut is what a *_rotq kernel wrote for the GEMV after it: its
// output act (n rows of g.C), the group factors and the int8 codes.
type rotqOut struct {
	act, fac []float32
	xq       []byte
}

// rotqTarget is a fresh scratch for n tokens of g's input, its factors
// poisoned, and a poisoned act of n rows of g.C: what a *_rotq kernel
// writes, for readRotqOut.
func rotqTarget(t *testing.T, d *Device, g *DenseGPU, n int) (*Scratch, DevPtr) {
	t.Helper()
	s, err := d.NewScratch(n, g.C)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fill32(s.fac, poison, n*g.G*4); err != nil {
		t.Fatal(err)
	}
	return s, devPoisoned(t, d, n*g.C)
}

func readRotqOut(t *testing.T, d *Device, g *DenseGPU, act DevPtr, s *Scratch, n int) rotqOut {
	t.Helper()
	o := rotqOut{act: readF32(t, d, act, n*g.C), fac: readF32(t, d, s.fac, n*g.G*4), xq: make([]byte, n*g.U*unitCodes)}
	if err := d.Download(o.xq, s.xq); err != nil {
		t.Fatal(err)
	}
	return o
}

// sameRotqOut fails t unless a and b hold the same bits (and no NaN
// factor); an and bn name them in the message.
func sameRotqOut(t *testing.T, a, b rotqOut, g *DenseGPU, n int, an, bn string) {
	t.Helper()
	for i := range a.act {
		if math.Float32bits(a.act[i]) != math.Float32bits(b.act[i]) {
			t.Fatalf("act[%d]: %v %s, %v %s", i, a.act[i], an, b.act[i], bn)
		}
	}
	for i := range a.fac {
		if math.Float32bits(a.fac[i]) != math.Float32bits(b.fac[i]) || math.IsNaN(float64(a.fac[i])) {
			t.Fatalf("factor value %d: %v %s, %v %s", i, a.fac[i], an, b.fac[i], bn)
		}
	}
	ldq := g.U * unitCodes
	for tk := range n {
		for j := range g.C {
			if x, y := a.xq[tk*ldq+j], b.xq[tk*ldq+j]; x != y {
				t.Fatalf("token %d code %d: %d %s, %d %s", tk, j, int8(x), an, int8(y), bn)
			}
		}
	}
}

func TestSplitParts(t *testing.T) {
	for _, c := range []struct{ blocks, perSM, sms, U, want int }{
		{560, 5, 132, 40, 2},  // gate_up at 32 tokens: 9 blocks of 20 units against 5 of 40 on the busiest SM
		{560, 6, 132, 40, 2},  // and at 16
		{660, 5, 132, 40, 1},  // a full wave
		{264, 5, 132, 40, 1},  // 2 blocks an SM either way: 2·40 against 4·20
		{100, 5, 132, 40, 1},  // one block an SM: 40 against 20 — but 1 → 2 is 50% fewer
		{560, 5, 132, 6, 1},   // too few units for two parts of splitMinUnits
		{2240, 4, 132, 40, 1}, // more blocks than slots
	} {
		if got := splitParts(c.blocks, c.perSM, c.sms, c.U); got != c.want {
			t.Errorf("splitParts(%d blocks, %d an SM, %d SMs, %d units) = %d, want %d", c.blocks, c.perSM, c.sms, c.U, got, c.want)
		}
	}
}
