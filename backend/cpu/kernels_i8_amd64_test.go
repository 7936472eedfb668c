//go:build amd64

package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

// i8ArgOffsets are the offsets i8Rows, i8RowsVNNI and i8Tile read from
// their argument blocks and tables (TestArgOffsets).
func i8ArgOffsets() []argOffset {
	var a i8Args
	var tl i8TileArgs
	var tb i8Tables
	return []argOffset{
		{"i8Args.xq", unsafe.Offsetof(a.xq), 0}, {"i8Args.pv", unsafe.Offsetof(a.pv), 8},
		{"i8Args.qv", unsafe.Offsetof(a.qv), 16}, {"i8Args.xb", unsafe.Offsetof(a.xb), 24},
		{"i8Args.scales", unsafe.Offsetof(a.scales), 32}, {"i8Args.offs", unsafe.Offsetof(a.offs), 40},
		{"i8Args.sws", unsafe.Offsetof(a.sws), 48}, {"i8Args.tab", unsafe.Offsetof(a.tab), 56},
		{"i8Args.lut", unsafe.Offsetof(a.lut), 64}, {"i8Args.rowBytes", unsafe.Offsetof(a.rowBytes), 72},
		{"i8Args.groups", unsafe.Offsetof(a.groups), 80}, {"i8Args.chunks", unsafe.Offsetof(a.chunks), 88},
		{"i8Args.cbytes", unsafe.Offsetof(a.cbytes), 96}, {"i8Args.mode", unsafe.Offsetof(a.mode), 104},
		{"i8Args.pfNear", unsafe.Offsetof(a.pfNear), 112}, {"i8Args.pfFar", unsafe.Offsetof(a.pfFar), 120},
		{"i8Args.isum", unsafe.Offsetof(a.isum), 128},
		{"i8TileArgs.xq", unsafe.Offsetof(tl.xq), 0}, {"i8TileArgs.pv", unsafe.Offsetof(tl.pv), 8},
		{"i8TileArgs.qv", unsafe.Offsetof(tl.qv), 16}, {"i8TileArgs.xb", unsafe.Offsetof(tl.xb), 24},
		{"i8TileArgs.scales", unsafe.Offsetof(tl.scales), 32}, {"i8TileArgs.offs", unsafe.Offsetof(tl.offs), 40},
		{"i8TileArgs.tab", unsafe.Offsetof(tl.tab), 48}, {"i8TileArgs.lut", unsafe.Offsetof(tl.lut), 56},
		{"i8TileArgs.rowBytes", unsafe.Offsetof(tl.rowBytes), 64}, {"i8TileArgs.groups", unsafe.Offsetof(tl.groups), 72},
		{"i8TileArgs.chunks", unsafe.Offsetof(tl.chunks), 80}, {"i8TileArgs.cbytes", unsafe.Offsetof(tl.cbytes), 88},
		{"i8TileArgs.mode", unsafe.Offsetof(tl.mode), 96}, {"i8TileArgs.outStride", unsafe.Offsetof(tl.outStride), 104},
		{"i8TileArgs.nt", unsafe.Offsetof(tl.nt), 112}, {"i8TileArgs.scratch", unsafe.Offsetof(tl.scratch), 120},
		{"i8Tables.ctl", unsafe.Offsetof(tb.ctl), 0}, {"i8Tables.mulA", unsafe.Offsetof(tb.mulA), 32},
		{"i8Tables.mulB", unsafe.Offsetof(tb.mulB), 64}, {"i8Tables.maskA", unsafe.Offsetof(tb.maskA), 96},
		{"i8Tables.maskB", unsafe.Offsetof(tb.maskB), 128}, {"i8Tables.shift", unsafe.Offsetof(tb.shift), 160},
		{"i8Tables.mask", unsafe.Offsetof(tb.mask), 192}, {"i8Tables.ones", unsafe.Offsetof(tb.ones), 224},
		{"i8Tables.smask", unsafe.Offsetof(tb.smask), 256}, {"i8Tables.pm6", unsafe.Offsetof(tb.pm6), 288},
		{"i8Tables.pm8", unsafe.Offsetof(tb.pm8), 320}, {"i8Tables.psh", unsafe.Offsetof(tb.psh), 352},
		{"i8Tables.ptc", unsafe.Offsetof(tb.ptc), 384}, {"i8Tables.pm3", unsafe.Offsetof(tb.pm3), 416},
		{"i8Tables.pm1", unsafe.Offsetof(tb.pm1), 448},
	}
}

// TestAVX2WithoutVNNI runs the kernel tests again with AVX-VNNI switched
// off, so that a machine with it also checks the VPMADDUBSW kernels (and
// one without it reports the skip).
func TestAVX2WithoutVNNI(t *testing.T) {
	if !hasAVXVNNI {
		t.Skip("no AVX-VNNI on this machine: the other tests already run the VPMADDUBSW kernels")
	}
	hasAVXVNNI = false
	defer func() { hasAVXVNNI = true }()
	t.Run("oracle", TestKernelsMatchOracle)
	t.Run("batch", TestBatchInvariant)
}

// TestAVXVNNIDispatch checks that UPG_KERNEL=avx2 uses AVX-VNNI where the
// CPU has it and avx2-novnni does not, and that the level bytes follow:
// 255 steps with VPDPBUSD, 64 without (i8MaxLevel: two chunks' VPMADDUBSW
// pair sums add in int16).
func TestAVXVNNIDispatch(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	for _, c := range []struct {
		env  string
		vnni bool
		name string
	}{{"avx2", hasAVXVNNI, "cpu/avx2"}, {"avx2-novnni", false, "cpu/avx2"}} {
		t.Setenv(KernelEnv, c.env)
		b := New(1)
		want := c.name
		if c.vnni {
			want += "+vnni"
		}
		if b.Level() != LevelAVX2 || b.VNNI() != c.vnni || b.Name() != want {
			t.Errorf("%s=%s: level %s, vnni %v, name %s; want avx2, %v, %s", KernelEnv, c.env, b.Level(), b.VNNI(), b.Name(), c.vnni, want)
		}
		b.Close()
	}
	lloyd := []float32{-2.1, -1.3, -0.75, -0.24, 0.25, 0.77, 1.35, 2.2}
	for _, c := range []struct {
		vnni bool
		umax int
	}{{false, 64}, {true, 255}} {
		q := q8LevelsI8(lloyd, 3, c.vnni)
		if q.u(0) > 1 || q.u(7) > c.umax || q.u(7) < c.umax-5 {
			t.Errorf("vnni %v: level bytes %d..%d, want 0 or 1 .. %d at most, %d at least", c.vnni, q.u(0), q.u(7), c.umax, c.umax-5)
		}
		var worst float64
		for i, v := range lloyd {
			worst = max(worst, math.Abs(float64(v-(q.beta+q.alpha*float32(q.u(uint8(i)))))))
		}
		if step := float64(lloyd[7]-lloyd[0]) / float64(c.umax); worst > step/2 {
			t.Errorf("vnni %v: a level is %g from its byte's value, more than half a min–max step (%g)", c.vnni, worst, step/2)
		}
	}
}

// TestI8Plane3Repack checks repackPlanes3 against the layout that
// kernels_i8_amd64.go documents for i8Plane3: lane i of chunk j of a
// 128-code block is column 32j + perm[i], with P and Q as described, for
// rows that are one run of blocks (5120 columns) and rows padded to whole
// groups (333 columns, groups of 128 and of 256).
func TestI8Plane3Repack(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	tb := i8TablesFor(3)
	for _, c := range []struct{ rows, cols, group int }{{7, 5120, 128}, {5, 333, 128}, {3, 333, 256}, {2, 512, 256}} {
		p := codec.Params{Codec: "dense", Bits: 3, GroupSize: c.group, Levels: "lloyd"}
		m := encode(t, randVec(rng, c.rows*c.cols, 1), c.rows, c.cols, p).(*codec.DenseMatrix)
		got := repackPlanes3(m)
		rb := m.Groups * m.GroupSize * 3 / 8
		if len(got) != m.R*rb {
			t.Fatalf("%dx%d: %d bytes, want %d", c.rows, c.cols, len(got), m.R*rb)
		}
		codes := make([]uint8, m.GroupSize)
		for r := 0; r < m.R; r++ {
			for g := 0; g < m.Groups; g++ {
				clear(codes)
				w := min(m.GroupSize, m.C-g*m.GroupSize)
				m.GroupCodes(codes[:w], r, g)
				for b := 0; b < m.GroupSize/128; b++ {
					blk := got[r*rb+(g*m.GroupSize/128+b)*48:]
					P, Q := blk[:32], blk[32:48]
					for i := 0; i < 32; i++ {
						q := Q[i%16] >> (4 * (i / 16))
						var next uint8 // bit 0 of the next byte of P, for the even bytes
						if i%2 == 0 {
							next = P[i+1] & 1
						}
						cc := (P[i]>>6 ^ q>>1&3) | (q>>3&1^next)<<2
						dec := [4]uint8{P[i] & 7, P[i] >> 3 & 7, cc, q & 7}
						for j, v := range dec {
							col := 128*b + 32*j + int(tb.perm[i])
							if v != codes[col] {
								t.Fatalf("%dx%d g%d: row %d column %d: %d, want %d", c.rows, c.cols, c.group, r, g*m.GroupSize+col, v, codes[col])
							}
						}
					}
				}
			}
		}
	}
	if !tb.planes(3, 128) || !tb.planes(3, 256) || tb.planes(3, 64) || i8TablesFor(4).planes(4, 128) {
		t.Error("planes: want 3-bit codes in groups of a multiple of 128 only")
	}
}
