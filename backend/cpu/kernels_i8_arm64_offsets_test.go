//go:build arm64

package cpu

import "unsafe"

// i8ArgOffsets are the offsets neonRows reads from its argument block and
// tables (TestArgOffsets).
func i8ArgOffsets() []argOffset {
	var a i8Args
	var tb i8Tables
	return []argOffset{
		{"i8Args.xq", unsafe.Offsetof(a.xq), 0}, {"i8Args.pv", unsafe.Offsetof(a.pv), 8},
		{"i8Args.qv", unsafe.Offsetof(a.qv), 16}, {"i8Args.xb", unsafe.Offsetof(a.xb), 24},
		{"i8Args.scales", unsafe.Offsetof(a.scales), 32}, {"i8Args.offs", unsafe.Offsetof(a.offs), 40},
		{"i8Args.sws", unsafe.Offsetof(a.sws), 48}, {"i8Args.tab", unsafe.Offsetof(a.tab), 56},
		{"i8Args.lut", unsafe.Offsetof(a.lut), 64}, {"i8Args.rowBytes", unsafe.Offsetof(a.rowBytes), 72},
		{"i8Args.groups", unsafe.Offsetof(a.groups), 80}, {"i8Args.chunks", unsafe.Offsetof(a.chunks), 88},
		{"i8Args.cbytes", unsafe.Offsetof(a.cbytes), 96}, {"i8Args.bits", unsafe.Offsetof(a.bits), 104},
		{"i8Args.dot", unsafe.Offsetof(a.dot), 112},
		{"i8Tables.idx", unsafe.Offsetof(tb.idx), 0}, {"i8Tables.idxHi", unsafe.Offsetof(tb.idxHi), 64},
		{"i8Tables.sh", unsafe.Offsetof(tb.sh), 80}, {"i8Tables.shHi", unsafe.Offsetof(tb.shHi), 144},
		{"i8Tables.mask", unsafe.Offsetof(tb.mask), 160},
	}
}
