package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

// TestBatchInvariant checks that every token of a batched matrix multiply
// gets bit for bit the result it gets alone, for every encoding and kernel
// level: the single-token kernels and the tiled ones share one
// accumulation order, so a sequence's output does not depend on the other
// sequences in its step.
func TestBatchInvariant(t *testing.T) {
	mats := testMatrices(t)
	rng := rand.New(rand.NewPCG(3, 4))
	// More than 16 groups a row (q8Tile's general β pass) and row counts
	// that leave partial 16-row blocks (its reduction).
	for _, p := range []codec.Params{
		{Codec: "dense", Bits: 3, GroupSize: 64, Levels: "lloyd", Rotate: 5},
		{Codec: "dense", Bits: 4, GroupSize: 64, Levels: "asym"},
	} {
		w := randVec(rng, 70*2112, 0.02)
		mats = append(mats, testMatrix{fmt.Sprintf("70x2112/%s/k%d/g%d", p.Levels, p.Bits, p.GroupSize), encode(t, w, 70, 2112, p)})
	}
	type kernel struct {
		lv   Level
		vnni bool
	}
	var kernels []kernel
	for _, lv := range Levels() {
		kernels = append(kernels, kernel{lv, hasAVXVNNI})
		if lv == LevelAVX2 && hasAVXVNNI { // the VPMADDUBSW kernels too
			kernels = append(kernels, kernel{lv, false})
		}
	}
	for _, k := range kernels {
		lv := k.lv
		b := NewWithLevel(2, lv)
		b.vnni = k.vnni
		defer b.Close()
		for _, tm := range mats {
			R, C := tm.m.Rows(), tm.m.Cols()
			for _, n := range []int{2, 3, 9, 12, 17} { // tiles of 2 and 1 (q8Tile's 2-token loops), 3 and 4, 8
				x := randVec(rng, n*C, 1)
				all := make([]float32, n*R)
				b.MatMulF32(all, x, tm.m, n)
				one := make([]float32, R)
				for tok := 0; tok < n; tok++ {
					b.MatMulF32(one, x[tok*C:(tok+1)*C], tm.m, 1)
					for r := range one {
						if math.Float32bits(one[r]) != math.Float32bits(all[tok*R+r]) {
							t.Fatalf("%v (vnni %v) %s: token %d of %d, row %d: %v alone, %v batched", lv, k.vnni, tm.name, tok, n, r, one[r], all[tok*R+r])
						}
					}
				}
			}
		}
	}
}

// argOffset is a field's offset in an argument block and the one the
// assembly reads.
type argOffset struct {
	name      string
	got, want uintptr
}

// TestArgOffsets pins the offsets the assembly reads from the kernels'
// argument blocks.
func TestArgOffsets(t *testing.T) {
	var q q8Args
	var tl q8TileArgs
	var f f32Args
	for _, c := range append([]argOffset{
		{"q8Args.xq", unsafe.Offsetof(q.xq), 0}, {"q8Args.pv", unsafe.Offsetof(q.pv), 8},
		{"q8Args.qv", unsafe.Offsetof(q.qv), 16}, {"q8Args.xb", unsafe.Offsetof(q.xb), 24},
		{"q8Args.scales", unsafe.Offsetof(q.scales), 32}, {"q8Args.offs", unsafe.Offsetof(q.offs), 40},
		{"q8Args.sws", unsafe.Offsetof(q.sws), 48}, {"q8Args.perm", unsafe.Offsetof(q.perm), 56},
		{"q8Args.ctl", unsafe.Offsetof(q.ctl), 64}, {"q8Args.rowBytes", unsafe.Offsetof(q.rowBytes), 72},
		{"q8Args.groups", unsafe.Offsetof(q.groups), 80}, {"q8Args.chunks", unsafe.Offsetof(q.chunks), 88},
		{"q8Args.cbytes", unsafe.Offsetof(q.cbytes), 96}, {"q8Args.mask", unsafe.Offsetof(q.mask), 104},
		{"q8Args.tailMask", unsafe.Offsetof(q.tailMask), 112}, {"q8Args.lut", unsafe.Offsetof(q.lut), 120},
		{"q8Args.pfNear", unsafe.Offsetof(q.pfNear), 128}, {"q8Args.pfFar", unsafe.Offsetof(q.pfFar), 136},
		{"q8TileArgs.xq", unsafe.Offsetof(tl.xq), 0}, {"q8TileArgs.pv", unsafe.Offsetof(tl.pv), 8},
		{"q8TileArgs.qv", unsafe.Offsetof(tl.qv), 16}, {"q8TileArgs.xb", unsafe.Offsetof(tl.xb), 24},
		{"q8TileArgs.scales", unsafe.Offsetof(tl.scales), 32}, {"q8TileArgs.offs", unsafe.Offsetof(tl.offs), 40},
		{"q8TileArgs.perm", unsafe.Offsetof(tl.perm), 48}, {"q8TileArgs.ctl", unsafe.Offsetof(tl.ctl), 56},
		{"q8TileArgs.lut", unsafe.Offsetof(tl.lut), 64}, {"q8TileArgs.mask", unsafe.Offsetof(tl.mask), 72},
		{"q8TileArgs.rowBytes", unsafe.Offsetof(tl.rowBytes), 80}, {"q8TileArgs.groups", unsafe.Offsetof(tl.groups), 88},
		{"q8TileArgs.chunks", unsafe.Offsetof(tl.chunks), 96}, {"q8TileArgs.cbytes", unsafe.Offsetof(tl.cbytes), 104},
		{"q8TileArgs.outStride", unsafe.Offsetof(tl.outStride), 112}, {"q8TileArgs.nt", unsafe.Offsetof(tl.nt), 120},
		{"q8TileArgs.scratch", unsafe.Offsetof(tl.scratch), 128}, {"q8TileArgs.gpBytes", unsafe.Offsetof(tl.gpBytes), 136},
		{"q8TileArgs.tailMask", unsafe.Offsetof(tl.tailMask), 144}, {"q8TileArgs.pfNear", unsafe.Offsetof(tl.pfNear), 152},
		{"q8TileArgs.red", unsafe.Offsetof(tl.red), 160},
		{"f32Args.x", unsafe.Offsetof(f.x), 0}, {"f32Args.xsum", unsafe.Offsetof(f.xsum), 8},
		{"f32Args.scales", unsafe.Offsetof(f.scales), 16}, {"f32Args.offs", unsafe.Offsetof(f.offs), 24},
		{"f32Args.tbl", unsafe.Offsetof(f.tbl), 32}, {"f32Args.shifts", unsafe.Offsetof(f.shifts), 40},
		{"f32Args.rowBytes", unsafe.Offsetof(f.rowBytes), 48}, {"f32Args.groups", unsafe.Offsetof(f.groups), 56},
		{"f32Args.iters", unsafe.Offsetof(f.iters), 64}, {"f32Args.kbytes", unsafe.Offsetof(f.kbytes), 72},
		{"f32Args.mask", unsafe.Offsetof(f.mask), 80}, {"f32Args.k4", unsafe.Offsetof(f.k4), 88},
	}, archArgOffsets()...) {
		if c.got != c.want {
			t.Errorf("%s at offset %d, the assembly reads %d", c.name, c.got, c.want)
		}
	}
	for _, c := range i8ArgOffsets() { // the integer kernels' blocks and tables (per architecture)
		if c.got != c.want {
			t.Errorf("%s at offset %d, the assembly reads %d", c.name, c.got, c.want)
		}
	}
	if tileScratch*4 < 552+8 {
		t.Errorf("q8Tile scratch of %d bytes; the assembly uses 560", tileScratch*4)
	}
	if tileScratch*4 < 592+28 { // i8TileScratch after up to 7 floats of alignment
		t.Errorf("i8Tile scratch of %d bytes; the assembly uses 592 from an aligned float", tileScratch*4)
	}
	if len(workerState{}.isum)*4 < 256+8+252 {
		t.Errorf("i8Rows scratch of %d bytes; the assembly uses 264 from a 256-byte aligned int32", len(workerState{}.isum)*4)
	}
}
