//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"os"

	"github.com/upg-ai/upg/codec"
)

// The trellis codec on the GPU (kernels/trellis.cu). A trellis matrix is a
// DenseGPU whose codes are the file's tiles, scales the file's band-major
// scales, and levels the 4096-entry table vtab[window] =
// codebook[hash(window)] followed by the codebook's 64 values (the
// one-token kernel's); trK is its bits per weight (0: not trellis).

// trellisFusable reports whether the trellis kernels handle m, and why not.
func trellisFusable(m *codec.TrellisMatrix) (bool, string) {
	if m.Bits < 2 || m.Bits > 4 {
		return false, "trellis bits without a kernel"
	}
	if m.GroupSize%16 != 0 {
		return false, "trellis group not a multiple of 16"
	}
	if m.Signs != nil && m.RotBlock > maxSeg {
		return false, "rotation block larger than the kernels' segment"
	}
	return true, ""
}

// trellisTable is vtab, the value of every 12-bit window, and then the
// codebook.
func trellisTable(m *codec.TrellisMatrix) []float32 {
	n := 1 << codec.TrellisStateBits
	t := make([]float32, n+codec.TrellisCodebookSize)
	for w := range n {
		t[w] = m.Codebook[codec.TrellisIndex(uint32(w))]
	}
	copy(t[n:], m.Codebook)
	return t
}

// trellis1Plan is how upg_gemv_trellis1_k* runs a matrix: blocks of
// threads lanes, each lane tpl consecutive tiles of a row band's split-K
// part (splits parts, summed by upg_splitk_sum where more than one),
// blocks × splits blocks going over the bands.
type trellis1Plan struct {
	name                         string
	threads, tpl, blocks, splits int
}

// trellis1Split (UPG_CUDA_TRELLIS1_SPLIT) is how the one-token trellis
// kernel's plan is chosen: -1 ("auto", the default) by planTrellis1Split's
// estimate, which weighs split-K parts and the grid's last, partial round;
// 0 by planTrellis1's whole-band estimate, no split-K; n ≥ 2 the split
// estimate's best plan of n parts. On an H100 the Phi-4-shaped file decoded
// at 105.3-105.4 tok/s with "auto" against 103.0-103.5 with 0, and at 97.4 with 2
// parts for every matrix (NOTES.md, runs 250, 252 and 253).
// ("auto", "-1" and anything else not a count ≥ 0 keep the default.)
var trellis1Split = envIntZero("UPG_CUDA_TRELLIS1_SPLIT", -1)

// trellis1On (UPG_CUDA_TRELLIS1, on unless "0"): one-token steps on
// upg_gemv_trellis1_k* rather than upg_gemv_trellis_k*_t1 (NOTES.md, run
// 243: the Phi-4-shaped trellis file decodes at 103.6 tok/s against 67.3 on
// an H200).
var trellis1On = os.Getenv("UPG_CUDA_TRELLIS1") != "0"

// trellisMMA (UPG_CUDA_TRELLIS_MMA) is the tensor-core kernel steps of
// trellisMMAMin tokens or more take: bf16 upg_gemm_trellis_bf* (the
// default), "tf32" upg_gemm_trellis_k*, "0" none (8-token passes of
// upg_gemv_trellis_k*_t8).
var trellisMMA = os.Getenv("UPG_CUDA_TRELLIS_MMA")

// trellisTok (UPG_CUDA_TRELLIS_TOK: 64 or 128; default 0, pick's choice
// by the step's tokens) forces the bf16 kernel's tokens a block; a
// measurement switch.
var trellisTok = envInt("UPG_CUDA_TRELLIS_TOK", 0)

// trellisMMAMin (UPG_CUDA_TRELLIS_MMA_MIN, default 3, at least 2) is the
// fewest tokens a step sends to the tensor-core kernels; a measurement
// switch (steps of 2-8 tokens: the GEMM against one pass of the t8 kernel.
// Without split-K the GEMM lost at 2, 4 and 8, NOTES.md run 246; with it,
// on an H100: batch 8 295.0 tok/s against 177.6, batch 4 148.6 against
// 139.5 (run 249), batch 3 139.8 against 122.5, but batch 2 93.6 against
// 100.8 (run 250)).
var trellisMMAMin = max(2, envInt("UPG_CUDA_TRELLIS_MMA_MIN", 3))

// planTrellis1 chooses the warps W a band takes: its lanes' tiles each
// (tpl = ceil(TC / 32W)) against how many bands the SMs hold at once, by
// est = tpl · max(1, bands·W / resident warps), the least W within 2% of
// the best (fewer lanes to sum). perSM answers how many blocks of t
// threads an SM holds. (Counting whole rounds of the grid instead, ceil
// rather than the fraction, decoded 7% slower: NOTES.md run 246 — the
// blocks of a last, partial round run faster for having the SMs to
// themselves.)
func planTrellis1(name string, bands, TC, SMs int, perSM func(t int) int) trellis1Plan {
	best, bestEst := trellis1Plan{}, 0.0
	for W := 1; W <= 16; W++ {
		t := 32 * W
		per := perSM(t)
		if per <= 0 {
			continue
		}
		tpl := (TC + t - 1) / t
		est := float64(tpl) * max(1, float64(bands)/float64(per*SMs))
		if best.name == "" || est < bestEst*0.98 {
			best, bestEst = trellis1Plan{name: name, threads: t, tpl: tpl, blocks: min(bands, per*SMs), splits: 1}, est
		}
	}
	return best
}

// planTrellis1Split chooses W warps a band and S split-K parts (S from 1
// to 4, or only force when it is 2 or more) by an estimate fitted to ncu's
// times of the four Phi-4 projections and the head (NOTES.md, run 249):
// each of a block's rounds over the bands costs tpl tile times plus a
// fixed half of one (the band's first loads and its sum over the warps);
// a last round that holds only some of the blocks costs less where its
// warps an SM are few (0.5 of a full round at 2 warps, a full round from
// 12), and split-K parts cost their sum's launch (0.3). So down (320
// bands of 1,120 tiles) takes 2 parts of 96-lane blocks in one round
// rather than 224-lane blocks in 1.2 rounds, whose last round took as
// long as the first (TestPlanTrellis1Split). Not yet timed end to end.
func planTrellis1Split(name string, bands, TC, SMs, force int, perSM func(t int) int) trellis1Plan {
	best, bestEst := trellis1Plan{}, 0.0
	for S := 1; S <= 4; S++ {
		if force >= 2 && S != force {
			continue
		}
		for W := 1; W <= 16; W++ {
			t := 32 * W
			per := perSM(t)
			if per <= 0 {
				continue
			}
			cols := (TC + S - 1) / S
			tpl := (cols + t - 1) / t
			bx := min(bands, max(1, per*SMs/S)) // blocks a part
			full, rem := bands/bx, bands%bx
			rounds := float64(full)
			if rem > 0 {
				w := (rem*S + SMs - 1) / SMs * W // warps an SM holds in the last round
				rounds += min(1, 0.5+0.05*float64(w-2))
			}
			est := float64(tpl)*rounds + 0.5*math.Ceil(float64(bands)/float64(bx))
			if S > 1 {
				est += 0.3
			}
			if best.name == "" || est < bestEst*0.98 {
				best, bestEst = trellis1Plan{name: name, threads: t, tpl: tpl, blocks: bx, splits: S}, est
			}
		}
	}
	return best
}

// trellisPlan is the rotation the input needs (upg_rotq writes the rotated
// float input to the scratch's xr; its int8 output goes unused).
func trellisPlan(m *codec.TrellisMatrix) quantPlan {
	rb := 1
	if m.Signs != nil {
		rb = m.RotBlock
	}
	U := (m.C + unitCodes - 1) / unitCodes
	gs := 32
	return quantPlan{rb: rb, gs: gs, seg: max(rb, gs), C: m.C, G: U * unitCodes / gs, U: U}
}

func (d *Device) uploadTrellis(m *codec.TrellisMatrix) (*DenseGPU, error) {
	g := &DenseGPU{R: m.R, C: m.C, K: m.Bits, G: m.Groups, GS: m.GroupSize, trK: m.Bits, trTC: m.TileCols,
		plan: trellisPlan(m), U: (m.C + unitCodes - 1) / unitCodes}
	g.name1 = fmt.Sprintf("upg_gemv_trellis_k%d_t1", m.Bits)
	g.name8 = fmt.Sprintf("upg_gemv_trellis_k%d_t8", m.Bits)
	var err error
	up := d.uploader(g, &err)
	g.codes = up("weights", m.Tiles[:m.Bands*m.TileCols*m.TileBytes])
	g.scales = up("scales", m.Scales[:m.Bands*m.Groups*32])
	g.levels = up("levels", f32Bytes(trellisTable(m)))
	if err == nil {
		_ = d.Do(func() error { // driver calls: on the context's thread; a fatbin older than a kernel has none
			if name := fmt.Sprintf("upg_gemv_trellis1_k%d", m.Bits); trellis1On {
				if _, ferr := d.function(name); ferr == nil {
					perSM := func(t int) int { return d.blocksPerSM(name, t, 0, max(1, 512/t)) }
					if g.tr1 = planTrellis1(name, (m.R+15)/16, m.TileCols, d.SMs, perSM); trellis1Split != 0 {
						g.tr1s = planTrellis1Split(name, (m.R+15)/16, m.TileCols, d.SMs, trellis1Split, perSM)
					}
				}
			}
			g.trMMA = d.trellisMMAKernels(m.Bits)
			return nil
		})
	}
	if m.Signs != nil {
		g.signs = up("rotation", f32Bytes(m.Signs))
	}
	if err != nil {
		g.Free(d)
		return nil, err
	}
	return g, nil
}

// trellisMMAKernel is a tensor-core trellis kernel: warps (a row band
// each) × tok tokens a block, perSM blocks an SM, unit tile columns a
// stage (split-K parts take whole stages).
type trellisMMAKernel struct {
	name                    string
	warps, tok, perSM, unit int
}

// trellisSplit (UPG_CUDA_TRELLIS_SPLIT, on unless "0"): the tensor-core
// trellis kernels split K where their blocks leave SMs idle, as the dense
// GEMM does (mmaSplits), the parts summed by upg_splitk_sum.
var trellisSplit = os.Getenv("UPG_CUDA_TRELLIS_SPLIT") != "0"

// trellisMMAKernels are the tensor-core kernels a matrix of k bits may
// use (trellisMMA; none where the fatbin has none). Call on the context's
// thread.
func (d *Device) trellisMMAKernels(k int) trellisMMAKernels {
	var ks trellisMMAKernels
	add := func(name string, warps, tok, unit int) {
		if _, err := d.function(name); err == nil {
			ks = append(ks, trellisMMAKernel{name: name, warps: warps, tok: tok, perSM: d.blocksPerSM(name, 32*warps, 0, 1), unit: unit})
		}
	}
	switch trellisMMA {
	case "0":
	case "tf32":
		add(fmt.Sprintf("upg_gemm_trellis_k%d", k), 4, 64, 2)
	default:
		add(fmt.Sprintf("upg_gemm_trellis_bf64_k%d", k), 4, 64, 1)
		add(fmt.Sprintf("upg_gemm_trellis_bf128_k%d", k), 8, 128, 1)
	}
	return ks
}

// trellisMMAKernels is a matrix's tensor-core kernels, fewest tokens a
// block first.
type trellisMMAKernels []trellisMMAKernel

// pick is the kernel for a step of n tokens: the one of fewest tokens a
// block that takes all n in one token block, else the one of most
// (trellisTok, when set, names it; the first kernel where none has it). Split-K (trellisMatMul)
// fills the SMs either way, so the choice is about each decoded weight
// serving the most tokens without idle token tiles: on an H100 (run 247)
// a 512-token prefill ran at 2,660 tok/s on 128-token blocks against
// 2,420 on 64-token ones, and 32-sequence decode at 1,286 tok/s on 64-token
// blocks against 785 on 128-token ones.
func (ks trellisMMAKernels) pick(n int) trellisMMAKernel {
	if trellisTok != 0 {
		for _, k := range ks {
			if k.tok == trellisTok {
				return k
			}
		}
		return ks[0]
	}
	for _, k := range ks[:len(ks)-1] {
		if k.tok >= n {
			return k
		}
	}
	return ks[len(ks)-1]
}

// trellisMatMul enqueues y = W·x for n tokens of a trellis matrix: the
// input rotation (into s.xr), then the fused kernel: upg_gemv_trellis1 for
// one token, one launch of the tensor-core kernel for trellisMMAMin tokens
// or more (and upg_splitk_sum after it where it splits K), else up to 8
// tokens a launch. res, when not 0, gets y added too.
func (d *Device) trellisMatMul(g *DenseGPU, y, x DevPtr, ldx, n int, s *Scratch, res DevPtr) error {
	p := g.plan
	if err := d.launchK("upg_rotq", [3]uint32{uint32(p.segments()), uint32(n), 1}, b256, uint32(4*p.seg),
		Ptr(x), I32(ldx), Ptr(g.signs), I32(p.rb), I32(p.gs), I32(p.seg), I32(g.C), I32(p.G), F32(1), F32(0),
		Ptr(s.xr), Ptr(s.xq), I32(g.U*unitCodes), Ptr(s.fac)); err != nil {
		return err
	}
	if n == 1 && g.tr1.name != "" {
		p := g.tr1
		if q := g.tr1s; q.name != "" && (q.splits == 1 || q.splits*g.R <= s.partFloats) {
			p = q
		}
		return d.splitLaunch(p.splits, y, res, g.R, s, func(out, r DevPtr) error {
			return d.launchK(p.name, [3]uint32{uint32(p.blocks), uint32(p.splits), 1}, [3]uint32{uint32(p.threads), 1, 1}, 0,
				Ptr(g.codes), Ptr(g.scales), Ptr(g.levels), Ptr(s.xr), Ptr(out),
				I32(g.R), I32(g.C), I32(g.trTC), I32(g.G), I32(g.GS/16), I32(p.tpl), Ptr(r))
		})
	}
	bands := (g.R + 15) / 16
	if n >= trellisMMAMin && len(g.trMMA) > 0 {
		k := g.trMMA.pick(n)
		grid := [3]uint32{uint32((bands + k.warps - 1) / k.warps), uint32((n + k.tok - 1) / k.tok), 1}
		S := 1
		if trellisSplit {
			S = d.mmaSplits(int(grid[0]*grid[1]), k.perSM, (g.trTC+k.unit-1)/k.unit, g.R*n, s)
		}
		grid[2] = uint32(S)
		return d.splitLaunch(S, y, res, n*g.R, s, func(out, r DevPtr) error {
			return d.launchK(k.name, grid, [3]uint32{uint32(32 * k.warps), 1, 1}, 0,
				Ptr(g.codes), Ptr(g.scales), Ptr(g.levels), Ptr(s.xr), Ptr(out),
				I32(g.R), I32(g.C), I32(g.trTC), I32(g.G), I32(g.GS/16), I32(n), Ptr(r))
		})
	}
	for t0 := 0; t0 < n; {
		name, nt := g.name8, min(8, n-t0)
		if nt == 1 {
			name = g.name1
		}
		if err := d.launchK(name, [3]uint32{uint32(bands), 1, 1}, b256, 0,
			Ptr(g.codes), Ptr(g.scales), Ptr(g.levels), Ptr(s.xr+DevPtr(4*t0*g.C)), Ptr(y+DevPtr(4*t0*g.R)),
			I32(g.R), I32(g.C), I32(g.trTC), I32(g.G), I32(g.GS/16), I32(nt), Ptr(resAt(res, 4*t0*g.R))); err != nil {
			return err
		}
		t0 += nt
	}
	return nil
}

// splitLaunch runs launch into y with the residual res, or, for S > 1
// split-K parts, into the scratch's parts (what an earlier GEMM left there
// is overwritten: takeParts) and then upg_splitk_sum, which adds the N-float
// parts into y, and y into res, in a fixed order.
func (d *Device) splitLaunch(S int, y, res DevPtr, N int, s *Scratch, launch func(out, r DevPtr) error) error {
	if S <= 1 {
		return launch(y, res)
	}
	s.parts = leftParts{}
	if err := launch(s.part, 0); err != nil {
		return err
	}
	return d.splitSum(s.part, S, y, res, N)
}

// embedTrellis writes rows tokens[0..n) of a trellis matrix into dst.
func (d *Device) embedTrellis(g *DenseGPU, tokens, dst DevPtr, n int) error {
	rb := g.plan.rb
	seg := max(rb, 256)
	return d.launchK("upg_embed_trellis", [3]uint32{uint32((g.C + seg - 1) / seg), uint32(n), 1}, b256, uint32(4*seg),
		Ptr(g.codes), Ptr(g.scales), Ptr(g.levels), Ptr(g.signs), Ptr(tokens), Ptr(dst),
		I32(g.C), I32(g.trTC), I32(g.G), I32(g.GS), I32(g.trK), I32(rb), I32(seg))
}
