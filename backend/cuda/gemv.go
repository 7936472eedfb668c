//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math/bits"
	"os"
	"unsafe"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// LoadKernels loads the kernel module into the device's context.
func (d *Device) LoadKernels() error {
	img, _, err := kernelImage()
	if err != nil {
		return err
	}
	return d.Do(func() error { return d.loadModule(img) })
}

// Launch enqueues kernel name after checking the arguments against its
// declared parameter list. Runs on the owner thread (inside Do).
func (d *Device) launchK(name string, grid, block [3]uint32, smem uint32, args ...Arg) error {
	kinds, ok := kernelKinds[name]
	if !ok {
		return fmt.Errorf("cuda: unknown kernel %s", name)
	}
	if len(kinds) != len(args) {
		return fmt.Errorf("cuda: %s takes %d arguments, got %d", name, len(kinds), len(args))
	}
	for i, a := range args {
		if a.kind != kinds[i] {
			return fmt.Errorf("cuda: %s argument %d is %c, want %c (%s)", name, i, a.kind, kinds[i], kernelSig[name])
		}
	}
	f, err := d.function(name)
	if err != nil {
		return err
	}
	if d.trace != nil {
		d.trace.saw(d.traceLabel(name, grid, block, smem), name, grid)
	}
	return d.launch(name, f, grid, block, smem, args)
}

// traceLabel names a launch in the step trace: the kernel, its blocks and
// the waves they take (launchWaves). The occupancy answer is the one the
// launch's first, uncaptured run asked for (a queue runs op by op before
// it is captured).
func (d *Device) traceLabel(name string, grid, block [3]uint32, smem uint32) string {
	blocks := int(grid[0]) * int(grid[1]) * int(grid[2])
	perSM := d.blocksPerSM(name, int(block[0]*block[1]*block[2]), int(smem), 0)
	return name + " (" + launchWaves(blocks, perSM, d.SMs) + ")"
}

// DenseGPU is a dense (or overlay) matrix uploaded for the fused kernels,
// or, for encodings without one, decoded to fp16 (Fallback).
type DenseGPU struct {
	R, C          int
	K, U, G, GS   int
	plan          quantPlan
	codes, scales DevPtr
	offs, signs   DevPtr
	levels        DevPtr // 2^K float32 code values (embedding lookups)
	lut           DevPtr // byte layout with any levels: the 256 level bytes
	alpha, beta   float32
	t             [4]uint32         // byte-level table for PRMT
	embedK        int               // K as upg_embed_dense reads it (20: 4-bit nibble layout)
	trK, trTC     int               // trellis: bits per weight (0: not trellis) and tiles per band (trellis.go)
	tr1           trellis1Plan      // trellis: the one-token kernel without bank conflicts (name "" where there is none)
	tr1s          trellis1Plan      // its plan by planTrellis1Split where trellis1Split asks for one (name "" otherwise)
	trMMA         trellisMMAKernels // trellis: the tensor-core kernels for steps of trellisMMAMin tokens or more (none where the fatbin has none)
	spMW, spCW    int               // sparse: mask and code words per row (0: not sparse; sparse.go)
	spMask        DevPtr            // sparse: the kept-set bitmap
	// overlay corrections
	name1, name8 string // fused kernels for 1 and up to 8 tokens
	name2        string // fused kernel for steps of 2 tokens ("" for the byte layout and older fatbins)
	nameRope1    string // the one-token kernel with rope_kv's epilogue (ropeEpilogue.fusesGemv), "" for the byte layout and older fatbins
	nameSelfQ1   string // nameRope1 quantizing its own input (selfQuant), "" where there is none
	nameMMA      string // tensor-core kernel for many tokens (kernels/mma.cu)
	nameMMA32    string // its 32-token-tile variant, for steps of ≤ 32 tokens
	nameMMA16    string // its 16-token-tile variant, for steps of ≤ 16 tokens ("" in older fatbins)
	nameSK       string // stream-K one-token kernel (streamk.go), "" for the byte layout
	gsl          int
	ovK          int
	ovIdx, ovVal DevPtr
	// fallback: W decoded to fp16, R rows of ldw halves
	Fallback string
	w16      DevPtr
	ldw      int
	Bytes    int64 // device bytes held
}

// FloatEnv, when set, makes every matrix take the fp16-weight, float32-
// activation path (no int8 activations): to compare with the CPU's float
// kernels (UPG_KERNEL=avx2). It costs 4-5x the weight memory.
const FloatEnv = "UPG_CUDA_FLOAT"

// UploadMatrix uploads m: dense and overlay matrices the fused kernels
// handle are repacked, trellis matrices keep their bytes (trellis.go),
// sparse ones their codes with the kept set as a bitmap (sparse.go);
// anything else is decoded with DecodeRows to fp16 (a correct but 4-5x
// larger fallback; Fallback says why).
func (d *Device) UploadMatrix(m tensor.Matrix) (*DenseGPU, error) {
	if os.Getenv(FloatEnv) != "" {
		return d.uploadF16(m, FloatEnv+" is set")
	}
	ok, why := false, "codec without a fused kernel"
	switch x := m.(type) {
	case *codec.DenseMatrix:
		if ok, why = denseFusable(x); ok {
			return d.uploadDense(x, nil)
		}
	case *codec.OverlayMatrix:
		if ok, why = denseFusable(x.Base); ok {
			return d.uploadDense(x.Base, x)
		}
	case *codec.TrellisMatrix:
		if ok, why = trellisFusable(x); ok {
			return d.uploadTrellis(x)
		}
	case *codec.SparseMatrix:
		if ok, why = sparseFusable(x); ok {
			return d.uploadSparse(x)
		}
	}
	return d.uploadF16(m, why)
}

func (d *Device) uploadDense(m *codec.DenseMatrix, ov *codec.OverlayMatrix) (*DenseGPU, error) {
	g := &DenseGPU{R: m.R, C: m.C, K: m.Bits, U: (m.C + unitCodes - 1) / unitCodes, G: m.Groups, GS: m.GroupSize, plan: newQuantPlan(m)}
	u, alpha, beta := byteLevels(m.Levels)
	g.alpha, g.beta = alpha, beta
	g.t = permTable(u)
	kname := fmt.Sprintf("k%d", m.Bits)
	g.embedK = m.Bits
	lin := linearLevels(m.Levels)
	switch {
	case m.Bits == 4 && !lin:
		kname, g.embedK = "k4l", 20
	case m.Bits > 4: // the byte layout
		kname, g.embedK = "k8", 8
		if !lin {
			kname = "k8l"
		}
	}
	gp := max(1, unitCodes/m.GroupSize)
	g.name1 = fmt.Sprintf("upg_gemv_%s_g%d_t1", kname, gp)
	g.name8 = fmt.Sprintf("upg_gemv_%s_g%d_t8", kname, gp)
	if m.Bits <= 4 { // no tensor-core kernel for the byte layout: steps take the t8 kernel
		g.nameMMA = fmt.Sprintf("upg_gemm_%s_g%d", kname, gp)
		g.nameMMA32 = fmt.Sprintf("upg_gemm32_%s_g%d", kname, gp)
		g.nameMMA16 = fmt.Sprintf("upg_gemm16_%s_g%d", kname, gp)
		g.nameSK = fmt.Sprintf("upg_gemv_%s_g%d_sk", kname, gp)
		if n2 := fmt.Sprintf("upg_gemv_%s_g%d_t2", kname, gp); kernelSig[n2] != "" {
			g.name2 = n2 // the codes with a 2-token GEMV (those that do not spill: kernels/gemv.cu)
		}
		if nq := g.name1 + "q"; kernelSig[nq] != "" {
			g.nameSelfQ1 = nq // groups of 128 with 2- and 3-bit codes
		}
		if nr := g.name1 + "r"; kernelSig[nr] != "" {
			g.nameRope1 = nr // the codes with the rope epilogue (the same set)
		}
	}
	g.gsl = bits.Len(uint(m.GroupSize)) - 1
	packed := repackDense(m)
	var err error
	up := d.uploader(g, &err)
	g.codes = up("weights", packed)
	g.scales = up("scales", interleaveRows(m.Scales, m.R, m.Groups))
	if m.Asym {
		g.offs = up("offsets", interleaveRows(m.Offsets, m.R, m.Groups))
	}
	if m.Signs != nil {
		g.signs = up("rotation", f32Bytes(m.Signs))
	}
	g.levels = up("levels", f32Bytes(m.Levels))
	if kname == "k8l" {
		g.lut = up("levels", append(u, make([]byte, 256-len(u))...))
	}
	if ov != nil && ov.K > 0 {
		g.ovK = ov.K
		g.ovIdx = up("overlay", ov.Idx[:2*m.R*ov.K])
		g.ovVal = up("overlay", ov.Vals[:2*m.R*ov.K])
	}
	if err == nil {
		// ask the occupancy calculator now, not while a step is captured:
		// for the SwiGLU rotation that may feed this matrix (swigluThreads)
		_ = d.Do(func() error {
			d.blocksPerSM("upg_swiglu_rotq", rotqThreads, 4*g.plan.seg, 0)
			d.blocksPerSM("upg_swiglu_rotq", rotqThreads/2, 4*g.plan.seg, 0)
			return nil
		})
	}
	if err == nil && g.nameMMA != "" {
		// and for the tensor-core tiles (mmaSplits)
		_ = d.Do(func() error {
			d.blocksPerSM(g.nameMMA, 128, 0, mmaBlocksPerSM(mmaTokens))
			d.blocksPerSM(g.nameMMA32, 128, 0, mmaBlocksPerSM(mmaTokens/2))
			if _, e := d.function(g.nameMMA16); e != nil {
				g.nameMMA16 = "" // an older fatbin (FatbinEnv) without the 16-token tiles
			} else {
				d.blocksPerSM(g.nameMMA16, 128, 0, mmaBlocksPerSM(mmaTokens/4))
			}
			if g.name2 != "" {
				if _, e := d.function(g.name2); e != nil {
					g.name2 = "" // an older fatbin without the 2-token GEMV
				}
			}
			if g.nameSelfQ1 != "" {
				if _, e := d.function(g.nameSelfQ1); e != nil {
					g.nameSelfQ1 = "" // an older fatbin without it
				}
			}
			if g.nameRope1 != "" {
				if _, e := d.function(g.nameRope1); e != nil {
					g.nameRope1 = "" // an older fatbin without the rope epilogue
				}
			}
			return nil
		})
	}
	if err == nil && g.nameSK != "" {
		err = d.Do(func() error {
			if _, e := d.function(g.nameSK); e != nil {
				g.nameSK = "" // an older fatbin (FatbinEnv) without the stream-K kernels
				return nil
			}
			return d.ensureStreamK(g)
		})
	}
	if err == nil { // the one- and two-token kernels' split parts (gemvPlan), per token
		tokens := 1
		if g.name2 != "" {
			tokens = 2
		}
		err = d.Do(func() error { return d.ensureWorkspace(tokens*((g.R+31)/32), gemvMaxSplit) })
	}
	if err != nil {
		g.Free(d)
		return nil, err
	}
	return g, nil
}

// uploader returns a function that allocates and fills one of g's device
// buffers, counting its bytes in g.Bytes, until the first error (kept in
// *err, after which it does nothing); empty data allocates nothing.
func (d *Device) uploader(g *DenseGPU, err *error) func(what string, b []byte) DevPtr {
	return func(what string, b []byte) DevPtr {
		if *err != nil || len(b) == 0 {
			return 0
		}
		p, e := d.Alloc(int64(len(b)), what)
		if e == nil {
			g.Bytes += int64(len(b))
			e = d.Upload(p, b)
		}
		*err = e
		return p
	}
}

func (d *Device) uploadF16(m tensor.Matrix, why string) (*DenseGPU, error) {
	R, C := m.Rows(), m.Cols()
	ldw := (C + 7) &^ 7
	g := &DenseGPU{R: R, C: C, Fallback: why, ldw: ldw}
	p, err := d.Alloc(int64(R)*int64(ldw)*2, "fp16 weights")
	if err != nil {
		return nil, err
	}
	g.w16, g.Bytes = p, int64(R)*int64(ldw)*2
	const block = 256
	row := make([]float32, block*C)
	buf := make([]byte, block*ldw*2)
	for r0 := 0; r0 < R; r0 += block {
		r1 := min(r0+block, R)
		m.DecodeRows(row[:(r1-r0)*C], r0, r1)
		clear(buf)
		for r := r0; r < r1; r++ {
			for c := 0; c < C; c++ {
				h := tensor.F32ToF16(row[(r-r0)*C+c])
				o := ((r-r0)*ldw + c) * 2
				buf[o], buf[o+1] = byte(h), byte(h>>8)
			}
		}
		if err := d.Upload(p+DevPtr(r0*ldw*2), buf[:(r1-r0)*ldw*2]); err != nil {
			g.Free(d)
			return nil, err
		}
	}
	return g, nil
}

// Free releases the matrix's device memory.
func (g *DenseGPU) Free(d *Device) {
	for _, p := range []DevPtr{g.codes, g.scales, g.offs, g.signs, g.levels, g.lut, g.ovIdx, g.ovVal, g.w16, g.spMask} {
		if p != 0 {
			d.Free(p)
		}
	}
	*g = DenseGPU{}
}

// Scratch is the activation workspace of the dense path: rotated input,
// int8 input and group factors for up to Tokens tokens of Cols columns,
// and the split-K partial products of the tensor-core kernels.
type Scratch struct {
	Tokens, Cols int
	xr, xq, fac  DevPtr
	part         DevPtr
	partFloats   int
	// leaveParts asks the next gemv to leave its split-K parts unsummed
	// for the op after it (a SwiGLU that sums them: partsOut); parts says
	// what that gemv left: its output y, S parts of N floats at part (S 0
	// or 1: y was written).
	leaveParts bool
	parts      leftParts
	// ssq: ssqN floats for the row groups' sums of squares of the residual
	// a one-token GEMV's epilogue last added to (res_write); ssqOf is that
	// residual (0: none), for a self-quantizing reader (selfQuant)
	ssq, ssqOf DevPtr
	ssqN       int
}

// leftParts is what a gemv left unsummed: S split-K parts of N floats at
// the scratch's part, in place of its output y (S < 2: nothing left).
type leftParts struct {
	y    DevPtr
	S, N int
}

// NewScratch allocates a workspace.
func (d *Device) NewScratch(tokens, cols int) (*Scratch, error) {
	s := &Scratch{Tokens: tokens, Cols: cols}
	cp := (cols + unitCodes - 1) / unitCodes * unitCodes
	// split-K's partial sums: room for maxSplits parts of a step that has
	// fewer tile blocks than SMs, and for a step's tokens × cols outputs in
	// all (three parts of a 5120-row matrix at 256 tokens; mmaSplits takes
	// fewer parts where they would not fit)
	s.partFloats = max(maxSplits*max(d.SMs, 1)*mmaRows*mmaTokens, tokens*cols)
	// two parts of a 32-token step's widest output (gate_up: twice cols)
	// left for the SwiGLU after it (splitParts)
	s.partFloats = max(s.partFloats, 2*mmaTokens*cols)
	if splitMinParts > 1 { // the measurement's parts of a 32-token step's widest outputs (gate_up: twice cols)
		s.partFloats = max(s.partFloats, splitMinParts*2*mmaTokens/2*cols)
	}
	var err error
	for _, a := range []struct {
		p *DevPtr
		n int
	}{{&s.xr, tokens * cols * 4}, {&s.xq, tokens * cp}, {&s.fac, tokens * cp / 32 * 16}, {&s.part, 4 * s.partFloats},
		{&s.ssq, 4 * ((cols + 31) / 32)}} {
		if *a.p, err = d.Alloc(int64(a.n), "activations"); err != nil {
			s.Free(d)
			return nil, err
		}
	}
	s.ssqN = (cols + 31) / 32
	return s, nil
}

// Free releases the workspace's device memory.
func (s *Scratch) Free(d *Device) {
	for _, p := range []DevPtr{s.xr, s.xq, s.fac, s.part, s.ssq} {
		if p != 0 {
			d.Free(p)
		}
	}
	*s = Scratch{}
}

// warpsOverride, when > 0, fixes warpsFor's answer, and so the warps per
// block of every GEMV plan, each caller capping it at its kernel's width
// (tests; UPG_CUDA_GEMV_WARPS for measurements: each width's block life
// and tail against the step trace).
var warpsOverride = envInt("UPG_CUDA_GEMV_WARPS", 0)

// warpsFor picks how many warps of a block split a row group's units (the
// block's rows are one row group; RG groups, U units of 128 codes per row).
//
// One token: the W that minimises waves × units per warp, the time of a
// grid whose warps each stream ceil(U/W) units one after another, where a
// wave is as many blocks as fit the SMs at once (the kernel's 64 registers
// leave room for 32 warps per SM: 32/W blocks); ties take more warps (more
// loads in flight). Phi-4 on 132 SMs: qkv, o and down 16 warps (every block
// resident at once), gate_up 10 (3 waves of 4 units, where 6 warps gave 2
// waves of 7), the output head 8. Eight tokens: about 48 warps per SM over
// the grid, at most 8.
func warpsFor(U, RG, sms, nt int) int {
	if warpsOverride > 0 {
		return max(1, min(warpsOverride, 32, U))
	}
	if nt > 1 || sms <= 0 {
		return max(1, min((48*max(sms, 1)+RG-1)/RG, 8, U))
	}
	w, _ := searchGemvPlan(U, RG, sms, 32, 1, 1)
	return w
}

// gemvMaxSplit is the most parts a one-token GEMV splits a row group's
// units into (GEMV_MAX_SPLIT in kernels/gemv.cu).
const gemvMaxSplit = 4

// gemvXsUnits is the most units a one-token GEMV's part takes: the room for
// its activations in shared memory (XS_UNITS in kernels/gemv.cu; 8 KB).
const gemvXsUnits = 64

// gemv8MaxWarps is the most warps a block of the eight-token kernels
// (upg_gemv_*_t8: __launch_bounds__(256)) takes.
const gemv8MaxWarps = 8

// eightTokenWarps is the eight-token kernel's warps per block, for its
// steps of 3-8 tokens and for one token whose row is too wide for the
// one-token kernel (gemvPlan's 0 parts): warpsFor's multi-token width,
// capped at maxW and at the kernel's 256 threads also under
// UPG_CUDA_GEMV_WARPS (run 148 launched it at a one-token width and failed).
func eightTokenWarps(U, RG, sms, maxW int) int {
	return max(1, min(warpsFor(U, RG, sms, 2), maxW, gemv8MaxWarps))
}

// gemvMinParts is the fewest parts that keep a GEMV's parts within room
// units (0: any number; more than gemvMaxSplit: the kernel cannot take the
// matrix).
func gemvMinParts(U, room int) int {
	if room <= 0 {
		return 1
	}
	return max(1, (U+room-1)/room)
}

// gemvSplitOverride, when > 0, fixes gemvPlan's parts (tests;
// UPG_CUDA_GEMV_SPLIT=1 sets it to one part, for measurements).
var gemvSplitOverride = envInt("UPG_CUDA_GEMV_SPLIT", 0)

// gemvSplitCost is what a split's reduction costs in gemvPlan, in units of
// one unit's time (UPG_CUDA_GEMV_SPLIT_COST; 0 lets o's 40 units at one
// token take two parts of two units a warp rather than one part of three,
// for measurements).
var gemvSplitCost = envIntZero("UPG_CUDA_GEMV_SPLIT_COST", 1)

// gemvPlan picks a one- or two-token GEMV's warps per block W (at most
// maxW) and parts P of at most room units each (gemvXsUnits for the one-token
// kernel, whose part's activations are staged in shared memory; 0 for the
// two-token kernel, which reads them through L1; 0 parts when room needs
// more than gemvMaxSplit): blocks (row group, part) take units [U·p/P, U·(p+1)/P) of their
// row group, and the last part of a row group to finish sums the parts'
// rows in part order (split_finish in kernels/gemv.cu). The cost is
// warpsFor's, waves × ceil(U/(P·W)), plus one unit's time for a split's
// extra reduction (partial rows, a fence and a counter); a split must fit
// one wave; ties take fewer parts, then more warps. Phi-4 on 132 SMs: down (140 units, 160 row
// groups) 3 parts of 8 warps, 480 blocks in one wave with 6 units per warp,
// where one part of 16 warps gave 9 on 160 blocks; qkv, o, gate_up and
// the head one part (warpsFor's widths).
func gemvPlan(U, RG, sms, maxW, room int) (W, P int) {
	pmin := gemvMinParts(U, room)
	if pmin > gemvMaxSplit {
		return max(1, min(warpsFor(U, RG, sms, 1), maxW)), 0
	}
	if sms <= 0 || warpsOverride > 0 || gemvSplitOverride > 0 {
		return max(1, min(warpsFor(U, RG, sms, 1), maxW)), max(pmin, min(gemvSplitOverride, gemvMaxSplit))
	}
	return searchGemvPlan(U, RG, sms, maxW, pmin, gemvMaxSplit)
}

// searchGemvPlan is gemvPlan's search over W ≤ maxW and pmin ≤ P ≤ maxP (sms > 0);
// with pmin = maxP = 1 it is warpsFor's one-token rule. Parts beyond one come
// only as one wave of shorter warps, unless the fewest parts (pmin > 1, for
// the activations' room) fit no wave: then those take as many as they need.
func searchGemvPlan(U, RG, sms, maxW, pmin, maxP int) (W, P int) {
	maxW = max(1, min(maxW, 32))
	W, P = 1, pmin
	best := -1
	for pass := 0; pass < 2 && best < 0; pass++ {
		for p := pmin; p <= maxP; p++ {
			for w := 1; w <= min(maxW, U); w++ {
				slots := (32 / w) * sms
				waves := (RG*p + slots - 1) / slots
				if p > 1 && waves > 1 && (pass == 0 || p > pmin) {
					continue
				}
				cost := waves * ((U + p*w - 1) / (p * w))
				if p > 1 {
					cost += gemvSplitCost
				}
				if best < 0 || cost < best || cost == best && p == P {
					W, P, best = w, p, cost
				}
			}
		}
	}
	return W, P
}

// matMul enqueues y[t*R + r] = Σ_c W[r][c]·x[t*ldx + c] for n tokens.
// Runs on the owner thread.
func (d *Device) matMul(g *DenseGPU, y, x DevPtr, ldx, n int, s *Scratch) error {
	if g.w16 != 0 {
		for t0 := 0; t0 < n; t0 += 8 {
			nt := min(8, n-t0)
			if err := d.launchK("upg_gemv_f16", [3]uint32{uint32((g.R*32 + 255) / 256), 1, 1}, [3]uint32{256, 1, 1}, 0,
				Ptr(g.w16), I32(g.ldw), Ptr(x+DevPtr(4*t0*ldx)), I32(ldx), Ptr(y+DevPtr(4*t0*g.R)), I32(g.R), I32(g.C), I32(nt)); err != nil {
				return err
			}
		}
		return nil
	}
	if g.spMW != 0 {
		return d.sparseMatMul(g, y, x, ldx, n)
	}
	if n > s.Tokens || g.C > s.Cols {
		return fmt.Errorf("cuda: scratch holds %d tokens of %d columns, need %d of %d", s.Tokens, s.Cols, n, g.C)
	}
	if g.trK != 0 {
		return d.trellisMatMul(g, y, x, ldx, n, s, 0)
	}
	if err := d.rotq(g, x, ldx, n, s); err != nil {
		return err
	}
	return d.gemv(g, y, n, s, 0, nil)
}

// fusable reports whether the fused step kernels can feed or finish g's
// GEMV: the dense int8 path (not the fp16 fallback) whose input fits s.
func (g *DenseGPU) fusable(n int, s *Scratch) bool {
	return g.w16 == 0 && g.trK == 0 && g.spMW == 0 && s != nil && n <= s.Tokens && g.C <= s.Cols
}

// rotqTail is the rotation+quantization arguments for g's input (the
// rotq_tail parameters of the *_rotq kernels, kernels/fused.cu).
func (g *DenseGPU) rotqTail(s *Scratch, rotate bool) []Arg {
	p := g.plan
	signs, rb := g.rotation(rotate)
	return []Arg{Ptr(signs), I32(rb), I32(p.gs), I32(p.seg), I32(g.C), I32(g.G), F32(g.alpha), F32(g.beta),
		Ptr(g.rotXr(s)), Ptr(s.xq), I32(g.U * unitCodes), Ptr(s.fac)}
}

// rotation is the signs and Hadamard block size a rotation kernel applies
// to g's input: g's own, or none (no signs, blocks of 1) when rotate is
// false (Device.rotates: a measurement that leaves the rotation out).
func (g *DenseGPU) rotation(rotate bool) (signs DevPtr, rb int) {
	if !rotate {
		return 0, 1
	}
	return g.signs, g.plan.rb
}

// rotates reports whether kernel name applies its rotation: false only when
// AblateEnv names "<name>:rotation" (a measurement; the results are wrong).
func (d *Device) rotates(name string) bool {
	return d.ablate == nil || !d.ablated(name+":rotation")
}

// rotXr is where the rotation kernels write g's rotated float input: the
// scratch's xr when g has fp16 overlay corrections (upg_overlay reads it),
// 0 (not written) otherwise.
func (g *DenseGPU) rotXr(s *Scratch) DevPtr {
	if g.ovK > 0 {
		return s.xr
	}
	return 0
}

// rotqThreads is the block size of the rotation+quantization kernels: 256
// (their launch bounds). Run 42 measured blocks of up to 1,024 threads (one
// per column of Phi-4's 1,024-column segments): decode unchanged, prefill 9%
// slower; the latency of these kernels is not in their warp count.
const rotqThreads = 256

// rotqLaunch launches a *_rotq kernel for n tokens of g's input (blocks
// of threads): head arguments, then the rotq_tail ones.
func (d *Device) rotqLaunch(name string, threads int, g *DenseGPU, n int, s *Scratch, head ...Arg) error {
	p := g.plan
	return d.launchK(name, [3]uint32{uint32(p.segments()), uint32(n), 1}, [3]uint32{uint32(threads), 1, 1}, uint32(4*p.seg), append(head, g.rotqTail(s, d.rotates(name))...)...)
}

// rotqHalfOn is UPG_CUDA_ROTQ_HALF: 0 keeps upg_swiglu_rotq at rotqThreads
// a block in every step (comparisons).
var rotqHalfOn = os.Getenv("UPG_CUDA_ROTQ_HALF") != "0"

// swigluThreads is upg_swiglu_rotq's block size for a launch of blocks
// blocks with smem bytes of dynamic shared memory each: rotqThreads, or
// half that when the launch then fits one wave of the SMs' block slots
// and would not at rotqThreads. Phi-4's SwiGLU at 32 tokens is 35
// segments × 32 = 1,120 blocks; at 256 threads and 56 registers an H200
// SM holds 4 (528 slots: three waves), at 128 threads 9 (1,188: one).
// Every value is computed by the same float operations whatever the block
// size (no sum across threads: a segment's rotation is butterflies in
// shared memory, its quantization a maximum and an integer sum), so the
// results are the same bits. The occupancy answers are asked at upload
// (uploadDense), not while a step is captured.
func (d *Device) swigluThreads(blocks, smem int) int {
	const name = "upg_swiglu_rotq"
	if !rotqHalfOn || blocks <= d.blocksPerSM(name, rotqThreads, smem, 4)*d.SMs {
		return rotqThreads
	}
	if blocks <= d.blocksPerSM(name, rotqThreads/2, smem, 8)*d.SMs {
		return rotqThreads / 2
	}
	return rotqThreads
}

// rmsRotq is rmsnorm (x rows of g.C, rows 0..n-1) into h fused with the
// rotation+quantization of h for g.
func (d *Device) rmsRotq(g *DenseGPU, h, x, w DevPtr, eps float32, n int, s *Scratch) error {
	if n == 0 {
		return nil
	}
	return d.rotqLaunch("upg_rms_rotq", rotqThreads, g, n, s, Ptr(x), Ptr(w), F32(eps), Ptr(h))
}

// swigluRotq is swiglu (width g.C) into act fused with the rotation+
// quantization of act for g.
func (d *Device) swigluRotq(g *DenseGPU, act, gate DevPtr, gs int, up DevPtr, us, n int, s *Scratch) error {
	if n == 0 {
		return nil
	}
	S, N := 1, 0
	if p := takeParts(s, gate, up); p.S > 1 { // the GEMM before left its parts: summed here
		gate, up = s.part+(gate-p.y), s.part+(up-p.y)
		S, N = p.S, p.N
	}
	return d.rotqLaunch("upg_swiglu_rotq", d.swigluThreads(g.plan.segments()*n, 4*g.plan.seg), g, n, s, Ptr(gate), I32(gs), Ptr(up), I32(us),
		I32(S), I64(int64(N)), Ptr(act))
}

// takeParts returns (and clears) the split-K parts the gemv before left in
// s when gate and up are views of its output y (S 0 otherwise).
func takeParts(s *Scratch, gate, up DevPtr) (p leftParts) {
	if s == nil || s.parts.S < 2 {
		return p
	}
	p, s.parts = s.parts, leftParts{}
	end := p.y + DevPtr(4*p.N)
	if gate < p.y || gate >= end || up < p.y || up >= end {
		p.S = 0 // not its views: nothing to take
	}
	return p
}

// combineRotq is attention's combine (into dst, heads·hd = g.C) fused with
// the rotation+quantization of dst for g.
func (d *Device) combineRotq(g *DenseGPU, dst, part, pos DevPtr, chunk, S, heads, hd, n int, s *Scratch) error {
	if n == 0 {
		return nil
	}
	return d.rotqLaunch("upg_combine_rotq", rotqThreads, g, n, s, Ptr(part), Ptr(pos), I32(chunk), I32(S), I32(heads), I32(hd), Ptr(dst))
}

// gemvArgs is the GEMV kernels' leading parameters (gemvSig) for nt tokens
// of input xq, fac into y (res: the residual its epilogue adds to, or 0).
func (g *DenseGPU) gemvArgs(xq, fac, y DevPtr, nt int, res DevPtr) []Arg {
	return []Arg{Ptr(g.codes), Ptr(g.scales), Ptr(g.offs), Ptr(xq), Ptr(fac), Ptr(y),
		I32(g.R), I32(g.C), I32(g.U), I32(g.G), I32(g.gsl), I32(g.U * unitCodes), I32(nt), U32(g.t[0]), U32(g.t[1]), U32(g.t[2]), U32(g.t[3]),
		Ptr(res), Ptr(g.lut)}
}

// gemvRope launches g's one-token GEMV with rope_kv's epilogue (one part,
// W warps a block), its _t1q form quantizing its own input when sq is set
// (selfQuant).
func (d *Device) gemvRope(g *DenseGPU, y DevPtr, s *Scratch, rope *ropeEpilogue, W int, sq *selfQuant) error {
	name := g.nameRope1
	args := append(append(g.gemvArgs(s.xq, s.fac, y, 1, 0), Ptr(d.sk.ws), Ptr(d.sk.cnt), Ptr(0)), rope.gemvArgs()...)
	if sq != nil {
		name, args = g.nameSelfQ1, append(args, sq.args(g, s)...)
	}
	return d.launchK(name, [3]uint32{uint32((g.R + 31) / 32), 1, 1}, [3]uint32{uint32(32 * W), 1, 1}, 0, args...)
}

// selfQuant is an RMSNorm whose reader may quantize its input itself (the
// _t1q GEMVs' GemvSelfQ, kernels/gemv.cu): x the residual it normalizes, h
// its output (still written), eps its epsilon; the gain is all ones (a
// --rotate-residual file folds it into the readers). Run 219: the norm
// kernel costs the step ~5 µs a call on the H100 as a chain of dependent
// round trips, the reader's own quantization ~1.9 µs where its grid is
// one wave (q|k|v), more than the kernel where it is three (gate|up).
type selfQuant struct {
	x, h DevPtr
	eps  float32
}

// useSelfQuant is UPG_CUDA_SELFQ: 0 keeps the norm kernel before q|k|v
// (comparisons).
var useSelfQuant = os.Getenv("UPG_CUDA_SELFQ") != "0"

// args is GemvSelfQ's parameters for reader g.
func (sq *selfQuant) args(g *DenseGPU, s *Scratch) []Arg {
	return []Arg{Ptr(sq.x), Ptr(s.ssq), I32((g.C + 31) / 32), F32(sq.eps), F32(g.alpha), F32(g.beta), Ptr(sq.h)}
}

// selfQuantable reports whether g's input can be quantized by its rope
// GEMV (GemvSelfQ): groups of 128 (a unit a group), no input rotation, no
// overlay corrections.
func (g *DenseGPU) selfQuantable() bool {
	signs, rb := g.rotation(true)
	return g.nameSelfQ1 != "" && g.nameRope1 != "" && g.gsl == 7 && g.C == g.U*unitCodes && signs == 0 && rb <= 1 && g.ovK == 0
}

// ropeOne reports whether g's one-token step with rope's epilogue runs as
// the rope GEMV (not a tensor-core tile, stream-K or split plan), and with
// how many warps a block: gemv's choice and gemvSelfQ's.
func (d *Device) ropeOne(g *DenseGPU, rope *ropeEpilogue) (W int, ok bool) {
	if rope == nil || (d.mmaFor(1) && g.nameMMA != "") || d.streamK(g) || !rope.fusesGemv(g) {
		return 0, false
	}
	W, P := gemvPlan(g.U, (g.R+31)/32, d.SMs, g.maxWarps(), gemvXsUnits)
	return W, P == 1
}

// maxWarps is the most warps a block of g's one-token GEMV takes.
func (g *DenseGPU) maxWarps() int {
	if g.embedK == 8 {
		return 8 // the byte-layout kernels take at most 256 threads
	}
	return 32
}

// gemvSelfQ runs g's one-token step on RMSNorm(sq.x) with the rope
// epilogue and no norm kernel when it can: the residual's row-group sums
// of squares are in s (the GEMV that last added to sq.x left them) and gemv
// would take the rope GEMV. It reports false, launching nothing, otherwise.
// g is selfQuantable: fuseMatMul queues sq only for such a reader.
func (d *Device) gemvSelfQ(g *DenseGPU, y DevPtr, s *Scratch, rope *ropeEpilogue, sq *selfQuant) (bool, error) {
	if s == nil || s.ssqOf != sq.x {
		return false, nil
	}
	W, ok := d.ropeOne(g, rope)
	if !ok {
		return false, nil
	}
	s.parts = leftParts{}
	d.selfQuants++
	return true, d.gemvRope(g, y, s, rope, W, sq)
}

// rotq enqueues the rotation and int8 quantization of n input rows.
func (d *Device) rotq(g *DenseGPU, x DevPtr, ldx, n int, s *Scratch) error {
	return d.rotqLaunch("upg_rotq", rotqThreads, g, n, s, Ptr(x), I32(ldx))
}

// gemv enqueues the fused multiply of the quantized input in s (and the
// overlay corrections). res, when not 0, also gets y added (the residual
// add fused into the epilogue; not with overlay corrections, which are
// added to y after). rope, when not nil, runs rope_kv on y after it
// (ropeEpilogue; inside the split-K sum when there is one).
func (d *Device) gemv(g *DenseGPU, y DevPtr, n int, s *Scratch, res DevPtr, rope *ropeEpilogue) error {
	if (res != 0 || rope != nil) && g.ovK > 0 {
		return fmt.Errorf("cuda: epilogue with overlay corrections")
	}
	if res != 0 && rope != nil {
		return fmt.Errorf("cuda: residual and rope epilogues together")
	}
	roped := false
	if s != nil { // what an earlier GEMM left unsummed is gone (takeParts)
		s.parts = leftParts{}
		if res != 0 {
			s.ssqOf = 0 // set below when this launch leaves res's sums of squares
		}
	}
	if n == 1 {
		if W, ok := d.ropeOne(g, rope); ok {
			// the one-token plan with rope_kv as its epilogue (one part: a
			// row's sum is whole in the block that writes it)
			return d.gemvRope(g, y, s, rope, W, nil)
		}
	}
	ldq := g.U * unitCodes
	RG := (g.R + 31) / 32
	tail := func(name string, grid, block [3]uint32, xq, fac, y DevPtr, nt int, res DevPtr, more ...Arg) error {
		return d.launchK(name, grid, block, 0, append(g.gemvArgs(xq, fac, y, nt, res), more...)...)
	}
	if n == 2 && g.name2 != "" && useGemv2 {
		// gemvPlan as for the one-token kernel (64 registers: 32 warps per
		// SM) without its parts' room limit (the activations come through
		// L1), split parts too unless UPG_CUDA_GEMV2_SPLIT=0; the workspace
		// holds both tokens' parts (ensureWorkspace at upload)
		W, P := gemvPlan(g.U, RG, d.SMs, 32, 0)
		if !useGemv2Split {
			W, P = min(warpsFor(g.U, RG, d.SMs, 1), 32), 1
		}
		if err := tail(g.name2, [3]uint32{uint32(RG), uint32(P), 1}, [3]uint32{uint32(32 * W), 1, 1}, s.xq, s.fac, y, 2, res,
			Ptr(d.sk.ws), Ptr(d.sk.cnt), Ptr(0)); err != nil {
			return err
		}
	} else if d.mmaFor(n) && g.nameMMA != "" {
		name, tile := g.nameMMA, mmaTokens
		switch {
		case n <= mmaTokens/4 && g.nameMMA16 != "" && useMMA16:
			name, tile = g.nameMMA16, mmaTokens/4
		case n <= mmaTokens/2:
			name, tile = g.nameMMA32, mmaTokens/2
		}
		grid := [3]uint32{uint32((g.R + mmaRows - 1) / mmaRows), uint32((n + tile - 1) / tile), 1}
		perSM := d.blocksPerSM(name, 128, 0, mmaBlocksPerSM(tile))
		S := d.mmaSplits(int(grid[0]*grid[1]), perSM, g.U, g.R*n, s)
		leave := s.leaveParts && rope == nil && res == 0
		if leave && S == 1 && 2*g.R*n <= s.partFloats { // (leaveParts: partsOut, which checks useSplitParts)
			S = splitParts(int(grid[0]*grid[1]), perSM, d.SMs, g.U)
		}
		if leave && S > 1 {
			// the parts stay in s.part; the SwiGLU after sums them
			grid[2] = uint32(S)
			if err := tail(name, grid, [3]uint32{128, 1, 1}, s.xq, s.fac, s.part, n, 0); err != nil {
				return err
			}
			s.parts = leftParts{y, S, n * g.R}
			return nil
		}
		if S == 1 {
			if err := tail(name, grid, [3]uint32{128, 1, 1}, s.xq, s.fac, y, n, res); err != nil {
				return err
			}
		} else {
			grid[2] = uint32(S)
			if err := tail(name, grid, [3]uint32{128, 1, 1}, s.xq, s.fac, s.part, n, 0); err != nil {
				return err
			}
			if rope != nil && rope.fusesSplit() {
				if err := rope.splitSum(d, s.part, S, y, n); err != nil {
					return err
				}
				roped = true
			} else if err := d.splitSum(s.part, S, y, res, n*g.R); err != nil {
				return err
			}
		}
	} else if n == 1 && d.streamK(g) {
		if err := d.gemvSK(g, y, s, res); err != nil {
			return err
		}
	} else {
		maxW := g.maxWarps()
		W1, P1 := 0, 0
		if n == 1 { // the workspace holds gemvMaxSplit parts of g's row groups (ensureWorkspace at upload)
			W1, P1 = gemvPlan(g.U, RG, d.SMs, maxW, gemvXsUnits)
		}
		oneToken := P1 > 0 // else the eight-token kernel (also one token whose parts would exceed gemvXsUnits)
		if oneToken {
			ssq := DevPtr(0)
			if res != 0 && s != nil && s.ssq != 0 && RG <= s.ssqN {
				ssq = s.ssq // the residual's row-group sums of squares (res_write)
			}
			if err := tail(g.name1, [3]uint32{uint32(RG), uint32(P1), 1}, [3]uint32{uint32(32 * W1), 1, 1},
				s.xq, s.fac, y, 1, res, Ptr(d.sk.ws), Ptr(d.sk.cnt), Ptr(ssq)); err != nil {
				return err
			}
			if ssq != 0 {
				s.ssqOf = res
			}
		}
		W := eightTokenWarps(g.U, RG, d.SMs, maxW)
		for t0 := 0; !oneToken && t0 < n; t0 += 8 { // up to 8 tokens a launch
			nt := min(8, n-t0)
			if err := tail(g.name8, [3]uint32{uint32(RG), 1, 1}, [3]uint32{uint32(32 * W), 1, 1},
				s.xq+DevPtr(t0*ldq), s.fac+DevPtr(16*t0*g.G), y+DevPtr(4*t0*g.R), nt, resAt(res, 4*t0*g.R)); err != nil {
				return err
			}
		}
	}
	if rope != nil && !roped {
		return rope.run(d, y, g.R, n)
	}
	if g.ovK > 0 {
		if err := d.launchK("upg_overlay", [3]uint32{uint32((g.R*32 + 255) / 256), 1, 1}, [3]uint32{256, 1, 1}, 0,
			Ptr(g.ovIdx), Ptr(g.ovVal), I32(g.ovK), Ptr(s.xr), Ptr(y), I32(g.R), I32(g.C), I32(n)); err != nil {
			return err
		}
	}
	return nil
}

// The tensor-core kernels (kernels/mma.cu) take steps of mmaMinTokens or
// more on sm_80 and later: blocks of mmaRows rows × mmaTokens tokens.
// UPG_CUDA_MMA=0 keeps every step on the dp4a kernels (comparisons).
const (
	mmaRows   = 64
	mmaTokens = 64
)

// mmaMinTokens is the smallest step the tensor-core kernels take (smaller
// ones, and every step before sm_80, take the dp4a kernels, up to 8 tokens
// a launch). Two: the tiles pay from two tokens on (run 53, a Phi-4 layer's
// four projections at 3 bits: 2 tokens 131 µs on the 16-token tiles
// against 180 on the dp4a kernel, 8 tokens 136 against 471; batch 8
// 1,125 tok/s against 378). UPG_CUDA_MMA_MIN sets it for measurements.
var mmaMinTokens = envInt("UPG_CUDA_MMA_MIN", 2)

var useMMA = os.Getenv("UPG_CUDA_MMA") != "0"

// useGemv2 is UPG_CUDA_GEMV2 (default on): steps of 2 tokens take the
// 2-token GEMV (upg_gemv_*_t2), which reads the weights once with twice the
// one-token kernel's integer products (1.48x its time a call on the H200,
// NOTES.md run 87); 0 gives them the 16-token tiles (comparisons).
var useGemv2 = os.Getenv("UPG_CUDA_GEMV2") != "0"

// useGemv2Split is UPG_CUDA_GEMV2_SPLIT (default on): the 2-token GEMV
// splits a row group's units into gemvPlan's parts as the one-token one
// does; 0 gives it one part of warpsFor's width (comparisons).
var useGemv2Split = os.Getenv("UPG_CUDA_GEMV2_SPLIT") != "0"

// useMMA16 is UPG_CUDA_MMA16 (default on): 0 gives steps of ≤ 16 tokens the
// 32-token tiles (comparisons).
var useMMA16 = os.Getenv("UPG_CUDA_MMA16") != "0"

// maxSplits bounds split-K: a tensor-core step whose tile blocks leave
// block slots free splits each block's units into up to this many parts,
// summed by upg_splitk_sum in a fixed order; up to maxSplitsOneWave while
// all the parts fit one wave of block slots. UPG_CUDA_SPLITK=0 turns it off.
const (
	maxSplits        = 4
	maxSplitsOneWave = 8
)

var useSplitK = os.Getenv("UPG_CUDA_SPLITK") != "0"

// splitCap is UPG_CUDA_SPLITK_MAX, a lower cap on the parts for
// comparisons (the default allows maxSplitsOneWave).
var splitCap = envInt("UPG_CUDA_SPLITK_MAX", maxSplitsOneWave)

// mmaBlocksPerSM is how many blocks of the tile's kernel an SM holds when
// the driver cannot say (blocksPerSM): the launch bounds' minimum in
// kernels/mma.cu (UPG_GEMM64_MINB, UPG_GEMM32_MINB, UPG_GEMM16_MINB), which an H100/H200
// meets; cards with less shared memory per SM (RTX 30: 100 KB) hold fewer.
func mmaBlocksPerSM(tile int) int {
	switch tile {
	case mmaTokens:
		return 4
	case mmaTokens / 2:
		return 5
	}
	return 6
}

// mmaSplits is how many split-K parts a step of blocks tile blocks over U
// units takes on SMs that hold perSM blocks each (the partial sums, parts ×
// out floats, within the scratch): splitMMA on the device's SMs.
func (d *Device) mmaSplits(blocks, perSM, U, out int, s *Scratch) int {
	if !useSplitK {
		return 1
	}
	S := splitMMA(blocks, perSM*d.SMs, U)
	for S > 1 && S*out > s.partFloats {
		S--
	}
	return S
}

// splitMinUnits is the fewest units a split-K part takes (tests lower it so
// that the demo model's 512-column matrices split too; UPG_CUDA_SPLIT_MIN_UNITS
// sets it for measurements).
var splitMinUnits = envInt("UPG_CUDA_SPLIT_MIN_UNITS", 4)

// splitMMA picks the split-K parts (1 to maxSplitsOneWave, each ≥ 4 units) for
// blocks tile blocks of U units on slots resident blocks. The GEMM is
// latency-bound, so a block's time hardly depends on how many share its SM:
// the step takes about waves × units per block, ceil(blocks·S/slots) ×
// ceil(U/S), and S minimizes that when it gains ≥ 10%. Phi-4's 5120-row
// matrices at 256 tokens (320 blocks on 528 slots: 2.4 per SM) take 3 parts,
// two waves of 47 units instead of one of 140 (down); at 32 tokens their 80
// blocks take 8, one wave of 640 blocks (down: 18 units each instead of 140).
// Parts beyond maxSplits only count in one wave: across several, the
// latency-bound model is the least sure.
func splitMMA(blocks, slots, U int) int {
	if slots <= 0 || blocks >= slots {
		return 1
	}
	if splitMinParts > 1 && U/splitMinParts >= splitMinUnits {
		// a measurement: the step's tiles in at least splitMinParts parts
		// (gate_up at 32 tokens: 560 row blocks on 660 slots take 1)
		return max(splitMinParts, splitMMAByWaves(blocks, slots, U))
	}
	return splitMMAByWaves(blocks, slots, U)
}

// splitMinParts is UPG_CUDA_SPLITK_MIN_PARTS: the fewest parts splitMMA
// gives a step whose tiles leave block slots free (measurements of the
// latency-bound model: 0 or 1 leaves it to the model).
var splitMinParts = envInt("UPG_CUDA_SPLITK_MIN_PARTS", 0)

func splitMMAByWaves(blocks, slots, U int) int {
	cost := func(S int) int { return (blocks*S + slots - 1) / slots * ((U + S - 1) / S) }
	best, S := cost(1), 1
	for z := 2; z <= min(maxSplitsOneWave, splitCap) && U/z >= splitMinUnits; z++ {
		if z > maxSplits && blocks*z > slots {
			break
		}
		if c := cost(z); 10*c <= 9*cost(1) && c < best {
			best, S = c, z
		}
	}
	return S
}

// useSplitParts is UPG_CUDA_SPLITK_SWIGLU (default on): 0 sums a
// SwiGLU's input GEMM in one part, as the one-wave model chooses
// (comparisons).
var useSplitParts = os.Getenv("UPG_CUDA_SPLITK_SWIGLU") != "0"

// splitParts is the parts of a GEMM whose consumer sums them (a SwiGLU:
// no upg_splitk_sum launch): 2 where the blocks, spread over the SMs,
// take ≥ 5% fewer unit-times on the busiest SM than in one part — gate_up
// at 32 tokens, 560 blocks on 132 SMs: 9 blocks of 20 units against 5 of
// 40 (run 119 measured its GEMM 63.8 → 58.4 µs in two parts), else 1.
// splitMMA's model counts waves of resident blocks instead, which holds
// where a sum kernel's launch and reads are paid.
func splitParts(blocks, perSM, sms, U int) int {
	if sms <= 0 || blocks >= perSM*sms || U/2 < splitMinUnits {
		return 1
	}
	busiest := func(S int) int { return (blocks*S + sms - 1) / sms * ((U + S - 1) / S) }
	if 100*busiest(2) <= 95*busiest(1) {
		return 2
	}
	return 1
}

// splitSum adds S split-K parts of N floats at part into y (and y into
// res when res is not 0): upg_splitk_sum.
func (d *Device) splitSum(part DevPtr, S int, y, res DevPtr, N int) error {
	return d.launchK("upg_splitk_sum", grid1(N, 256), b256, 0, Ptr(part), I32(S), Ptr(y), Ptr(res), I32(N))
}

func (d *Device) mmaFor(n int) bool { return useMMA && n >= mmaMinTokens && d.Major >= 8 }

func resAt(res DevPtr, off int) DevPtr {
	if res == 0 {
		return 0
	}
	return res + DevPtr(off)
}

// MatMul runs matMul and waits for it.
func (d *Device) MatMul(g *DenseGPU, y, x DevPtr, ldx, n int, s *Scratch) error {
	return d.Do(func() error {
		if err := d.matMul(g, y, x, ldx, n, s); err != nil {
			return err
		}
		return d.sync()
	})
}

func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// cloneDense copies g's device buffers into new ones (benchmarks that need
// more distinct weights than fit in L2).
func (d *Device) cloneDense(g *DenseGPU) (*DenseGPU, error) {
	c := *g
	var err error
	dup := func(p DevPtr, n int64) DevPtr {
		if p == 0 || err != nil {
			return 0
		}
		var q DevPtr
		if q, err = d.Alloc(n, "weights"); err == nil {
			err = d.Do(func() error { // on the stream, in order with the kernels (htod)
				return call("cuMemcpyDtoDAsync", sym.cuMemcpyDtoDAsync, uintptr(q), uintptr(p), uintptr(n), d.stream)
			})
		}
		return q
	}
	rp := int64((g.R + 31) / 32 * 32)
	c.codes = dup(g.codes, rp*int64(g.K*g.U*16))
	c.scales = dup(g.scales, 2*rp*int64(g.G))
	c.offs = dup(g.offs, 2*rp*int64(g.G))
	c.signs = dup(g.signs, int64(4*g.C))
	c.levels = dup(g.levels, int64(4<<g.K))
	c.ovIdx = dup(g.ovIdx, int64(2*g.R*g.ovK))
	c.ovVal = dup(g.ovVal, int64(2*g.R*g.ovK))
	c.w16 = dup(g.w16, int64(2*g.R*g.ldw))
	return &c, err
}
