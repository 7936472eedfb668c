package cpu

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/upg-ai/upg/codec"
)

// TestTrellisArgOffsets: the offsets trellis_amd64.s reads from trellisArgs.
func TestTrellisArgOffsets(t *testing.T) {
	var a trellisArgs
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"xq", unsafe.Offsetof(a.xq), 0}, {"sx", unsafe.Offsetof(a.sx), 8}, {"sq", unsafe.Offsetof(a.sq), 16},
		{"scales", unsafe.Offsetof(a.scales), 24}, {"tiles", unsafe.Offsetof(a.tiles), 32}, {"lut", unsafe.Offsetof(a.lut), 40},
		{"perm", unsafe.Offsetof(a.perm), 48}, {"ctl", unsafe.Offsetof(a.ctl), 56}, {"aff", unsafe.Offsetof(a.aff), 64},
		{"groups", unsafe.Offsetof(a.groups), 72}, {"tpg", unsafe.Offsetof(a.tpg), 80}, {"tcols", unsafe.Offsetof(a.tcols), 88},
		{"tileBytes", unsafe.Offsetof(a.tileBytes), 96}, {"lastOff", unsafe.Offsetof(a.lastOff), 104},
		{"bandBytes", unsafe.Offsetof(a.bandBytes), 112}, {"bits", unsafe.Offsetof(a.bits), 120},
		{"nt", unsafe.Offsetof(a.nt), 128}, {"outStride", unsafe.Offsetof(a.outStride), 136},
		{"scratch", unsafe.Offsetof(a.scratch), 144},
	} {
		if c.got != c.want {
			t.Errorf("trellisArgs.%s at offset %d, the assembly reads %d", c.name, c.got, c.want)
		}
	}
	if tileScratch < tileN*16 {
		t.Errorf("worker scratch of %d floats; trellisTile uses %d", tileScratch, tileN*16)
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
