package cpu

import (
	"testing"
	"unsafe"
)

// archArgOffsets are the argument-block offsets of this architecture's
// trellis kernel (TestArgOffsets).
func archArgOffsets() []argOffset {
	var i trellisI8Args
	var t trellisNEONTables
	return []argOffset{
		{"trellisI8Args.xq", unsafe.Offsetof(i.xq), 0}, {"trellisI8Args.sx", unsafe.Offsetof(i.sx), 8},
		{"trellisI8Args.sq", unsafe.Offsetof(i.sq), 16}, {"trellisI8Args.scales", unsafe.Offsetof(i.scales), 24},
		{"trellisI8Args.tiles", unsafe.Offsetof(i.tiles), 32}, {"trellisI8Args.tab", unsafe.Offsetof(i.tab), 40},
		{"trellisI8Args.lut", unsafe.Offsetof(i.lut), 48}, {"trellisI8Args.groups", unsafe.Offsetof(i.groups), 56},
		{"trellisI8Args.tpg", unsafe.Offsetof(i.tpg), 64}, {"trellisI8Args.tcols", unsafe.Offsetof(i.tcols), 72},
		{"trellisI8Args.tileBytes", unsafe.Offsetof(i.tileBytes), 80}, {"trellisI8Args.bandBytes", unsafe.Offsetof(i.bandBytes), 88},
		{"trellisI8Args.dot", unsafe.Offsetof(i.dot), 96},
		{"trellisNEONTables.hash", unsafe.Offsetof(t.hash), 0}, {"trellisNEONTables.nib", unsafe.Offsetof(t.nib), 48},
		{"trellisNEONTables.g2", unsafe.Offsetof(t.g2), 64}, {"trellisNEONTables.symctl", unsafe.Offsetof(t.symctl), 288},
		{"trellisNEONTables.symsh", unsafe.Offsetof(t.symsh), 304}, {"trellisNEONTables.mask", unsafe.Offsetof(t.mask), 336},
		{"trellisNEONTables.sym7", unsafe.Offsetof(t.sym7), 352}, {"trellisNEONTables.lag", unsafe.Offsetof(t.lag), 368},
	}
}

// TestTrellisNEONWithoutDotProd runs the trellis kernel tests again with
// SDOT switched off, so that a machine (or emulator) with the dot product
// also checks the SMULL/SADALP fallback.
func TestTrellisNEONWithoutDotProd(t *testing.T) {
	if !hasDotProd {
		t.Skip("no dot product on this machine: TestTrellisKernels already runs the fallback")
	}
	hasDotProd = false
	defer func() { hasDotProd = true }()
	TestTrellisKernels(t)
}
