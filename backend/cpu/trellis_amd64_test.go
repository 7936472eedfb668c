package cpu

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

// archArgOffsets are the argument-block offsets of this architecture's
// trellis kernels (TestArgOffsets).
func archArgOffsets() []argOffset {
	var a trellisArgs
	var i trellisI8Args
	var t trellisAVX2Tables
	return []argOffset{
		{"trellisArgs.xq", unsafe.Offsetof(a.xq), 0}, {"trellisArgs.sx", unsafe.Offsetof(a.sx), 8},
		{"trellisArgs.sq", unsafe.Offsetof(a.sq), 16}, {"trellisArgs.scales", unsafe.Offsetof(a.scales), 24},
		{"trellisArgs.tiles", unsafe.Offsetof(a.tiles), 32}, {"trellisArgs.lut", unsafe.Offsetof(a.lut), 40},
		{"trellisArgs.perm", unsafe.Offsetof(a.perm), 48}, {"trellisArgs.ctl", unsafe.Offsetof(a.ctl), 56},
		{"trellisArgs.aff", unsafe.Offsetof(a.aff), 64}, {"trellisArgs.groups", unsafe.Offsetof(a.groups), 72},
		{"trellisArgs.tpg", unsafe.Offsetof(a.tpg), 80}, {"trellisArgs.tcols", unsafe.Offsetof(a.tcols), 88},
		{"trellisArgs.tileBytes", unsafe.Offsetof(a.tileBytes), 96}, {"trellisArgs.lastOff", unsafe.Offsetof(a.lastOff), 104},
		{"trellisArgs.bandBytes", unsafe.Offsetof(a.bandBytes), 112}, {"trellisArgs.bits", unsafe.Offsetof(a.bits), 120},
		{"trellisArgs.nt", unsafe.Offsetof(a.nt), 128}, {"trellisArgs.outStride", unsafe.Offsetof(a.outStride), 136},
		{"trellisArgs.scratch", unsafe.Offsetof(a.scratch), 144}, {"trellisArgs.pfNear", unsafe.Offsetof(a.pfNear), 152},
		{"trellisArgs.pfFar", unsafe.Offsetof(a.pfFar), 160},
		{"trellisI8Args.xq", unsafe.Offsetof(i.xq), 0}, {"trellisI8Args.sx", unsafe.Offsetof(i.sx), 8},
		{"trellisI8Args.sq", unsafe.Offsetof(i.sq), 16}, {"trellisI8Args.scales", unsafe.Offsetof(i.scales), 24},
		{"trellisI8Args.tiles", unsafe.Offsetof(i.tiles), 32}, {"trellisI8Args.tab", unsafe.Offsetof(i.tab), 40},
		{"trellisI8Args.pieces", unsafe.Offsetof(i.pieces), 48}, {"trellisI8Args.groups", unsafe.Offsetof(i.groups), 56},
		{"trellisI8Args.tpg", unsafe.Offsetof(i.tpg), 64}, {"trellisI8Args.tcols", unsafe.Offsetof(i.tcols), 72},
		{"trellisI8Args.tileBytes", unsafe.Offsetof(i.tileBytes), 80}, {"trellisI8Args.bandBytes", unsafe.Offsetof(i.bandBytes), 88},
		{"trellisAVX2Tables.hash", unsafe.Offsetof(t.hash), 0}, {"trellisAVX2Tables.add", unsafe.Offsetof(t.add), 96},
		{"trellisAVX2Tables.ones", unsafe.Offsetof(t.ones), 192}, {"trellisAVX2Tables.nib", unsafe.Offsetof(t.nib), 224},
		{"trellisAVX2Tables.g2", unsafe.Offsetof(t.g2), 256}, {"trellisAVX2Tables.lanes", unsafe.Offsetof(t.lanes), 704},
		{"trellisAVX2Tables.lag", unsafe.Offsetof(t.lag), 736}, {"trellisAVX2Tables.swap", unsafe.Offsetof(t.swap), 864},
		{"trellisAVX2Tables.sym", unsafe.Offsetof(t.sym), 896}, {"i8Tables.mulA", unsafe.Offsetof(i8Tab[3].mulA), 32},
		{"i8Tables.maskB", unsafe.Offsetof(i8Tab[3].maskB), 128},
	}
}

// TestTrellisBatchInvariant: every token of a batch (the tile kernel, full
// and partial tiles) gets bit for bit what it gets alone (trellisRows).
func TestTrellisBatchInvariant(t *testing.T) {
	if !hasTrellisAsm {
		t.Skip("no AVX-512 GFNI on this machine")
	}
	rng := rand.New(rand.NewPCG(31, 32))
	b := NewWithLevel(2, LevelAVX512)
	defer b.Close()
	for _, k := range []int{2, 3, 4} {
		rows, cols := 53, 320
		m := encode(t, randVec(rng, rows*cols, 0.02), rows, cols, codec.Params{Codec: "trellis", Bits: k, GroupSize: 64, Rotate: 5}).(*codec.TrellisMatrix)
		const n = 11
		x := randVec(rng, n*cols, 1)
		batch := make([]float32, n*rows)
		b.MatMulF32(batch, x, m, n)
		one := make([]float32, rows)
		for tok := 0; tok < n; tok++ {
			b.MatMulF32(one, x[tok*cols:(tok+1)*cols], m, 1)
			for r, v := range one {
				if batch[tok*rows+r] != v {
					t.Fatalf("k=%d token %d row %d: batched %v, alone %v", k, tok, r, batch[tok*rows+r], v)
				}
			}
		}
	}
}
