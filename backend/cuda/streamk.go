//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"os"
)

// The stream-K GEMV (gemv_sk in kernels/gemv.cu) splits a one-token GEMV's
// row groups × units evenly over NW warps, so that a one-wave grid has no
// partial last wave (gate_up's 1,120 row groups) and no SM with one block
// beside SMs with two (the 160 row groups of down and the head). Warps that
// share a row group leave partial rows in a workspace and the last of them
// sums them in warp order, so the result does not depend on timing.
//
// It is opt-in: measured on the H200 (Phi-4-shaped, 3.2 bpw, decode after
// 512 tokens; backend/cuda/NOTES.md, runs 35-36) it decoded at 252.5-254.3
// tok/s against 263.4 for the row-group kernel: gate_up and down together
// took ~49 µs per layer against ~38.5. With down's 140 units split over 28
// warps per row group, the partial rows, fences and counters cost more than
// the even split saves.

// StreamKEnv selects the stream-K GEMV: unset or "0" never, "1" for
// matrices with at least skMinUnits units per warp, "all" for every
// one-token dense GEMV it supports.
const StreamKEnv = "UPG_CUDA_STREAMK"

var streamKMode = os.Getenv(StreamKEnv)

// skMinUnits: below this many 128-column units per warp (the 5120×5120 and
// 7680×5120 matrices of Phi-4 have 1.5 and 2.3) "1" keeps the row-group
// kernel.
const skMinUnits = 4

// skWarpsOverride, when > 0, fixes the number of warps (tests).
var skWarpsOverride = 0

// streamKBufs is the device's workspace: partial rows (floats) and one
// counter per row group, which every launch leaves at zero.
type streamKBufs struct {
	ws, cnt       DevPtr
	wsFloats, cnN int
}

// skPlan returns the warps a one-token stream-K GEMV of g takes and the
// most pieces any row group is split into.
func (d *Device) skPlan(g *DenseGPU) (nw, maxp int) {
	RG := (g.R + 31) / 32
	T := int64(RG) * int64(g.U)
	nw = skWarpsOverride
	if nw <= 0 {
		nw = 32 * max(d.SMs, 1)
	}
	nw = int(min(int64(nw), T))
	warpOf := func(i int64) int64 { return ((i+1)*int64(nw) - 1) / T }
	for rg := int64(0); rg < int64(RG); rg++ {
		maxp = max(maxp, int(warpOf(rg*int64(g.U)+int64(g.U)-1)-warpOf(rg*int64(g.U))+1))
	}
	return nw, maxp
}

// streamK reports whether g's one-token GEMV takes the stream-K kernel.
func (d *Device) streamK(g *DenseGPU) bool {
	if g.nameSK == "" || d.sk.cnt == 0 {
		return false
	}
	if streamKMode == "" || streamKMode == "0" {
		return skWarpsOverride > 0
	}
	if streamKMode == "all" || skWarpsOverride > 0 {
		return true
	}
	RG := (g.R + 31) / 32
	return int64(RG)*int64(g.U) >= int64(skMinUnits)*int64(32*max(d.SMs, 1))
}

// ensureStreamK grows the workspace to what g's GEMV needs (owner thread;
// at upload, before any step graph holds the old buffers).
func (d *Device) ensureStreamK(g *DenseGPU) error {
	_, maxp := d.skPlan(g)
	return d.ensureWorkspace((g.R+31)/32, maxp)
}

// ensureWorkspace grows the workspace to pieces partial rows of 32 floats
// for each of RG row groups and RG counters (zeroed), which the stream-K
// GEMV and the one-token GEMV's split parts (gemvPlan) share: one kernel at
// a time uses them, after its pdl_wait (owner thread).
func (d *Device) ensureWorkspace(RG, pieces int) error {
	if need := RG * pieces * 32; need > d.sk.wsFloats {
		p, err := d.alloc(int64(4*need), "GEMV workspace")
		if err != nil {
			return err
		}
		if d.sk.ws != 0 {
			d.free(d.sk.ws)
		}
		d.sk.ws, d.sk.wsFloats = p, need
	}
	if RG > d.sk.cnN {
		p, err := d.alloc(int64(4*RG), "GEMV counters")
		if err != nil {
			return err
		}
		if err := d.memsetD32(p, 0, RG); err != nil {
			d.free(p)
			return err
		}
		if d.sk.cnt != 0 {
			d.free(d.sk.cnt)
		}
		d.sk.cnt, d.sk.cnN = p, RG
	}
	return d.sync()
}

// freeStreamK releases the workspace (owner thread).
func (d *Device) freeStreamK() {
	for _, p := range []DevPtr{d.sk.ws, d.sk.cnt} {
		if p != 0 {
			d.free(p)
		}
	}
	d.sk = streamKBufs{}
}

// gemvSK launches g's stream-K GEMV for one token (owner thread): blocks of
// 16 warps, two per SM at 64 registers.
func (d *Device) gemvSK(g *DenseGPU, y DevPtr, s *Scratch, res DevPtr) error {
	nw, maxp := d.skPlan(g)
	if RG := (g.R + 31) / 32; RG*maxp*32 > d.sk.wsFloats || RG > d.sk.cnN {
		return fmt.Errorf("cuda: stream-K workspace of %d floats and %d counters is short of %d×%d×32 and %d (uploaded with other settings)", d.sk.wsFloats, d.sk.cnN, RG, maxp, RG)
	}
	const bw = 16
	return d.launchK(g.nameSK, [3]uint32{uint32((nw + bw - 1) / bw), 1, 1}, [3]uint32{32 * bw, 1, 1}, 0,
		Ptr(g.codes), Ptr(g.scales), Ptr(g.offs), Ptr(s.xq), Ptr(s.fac), Ptr(y),
		I32(g.R), I32(g.C), I32(g.U), I32(g.G), I32(g.gsl), U32(g.t[0]), U32(g.t[1]), U32(g.t[2]), U32(g.t[3]),
		Ptr(res), Ptr(d.sk.ws), Ptr(d.sk.cnt), I32(nw), I32(maxp))
}
