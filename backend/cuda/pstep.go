//go:build linux && (amd64 || arm64)

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"unsafe"

	"github.com/upg-ai/upg/backend"
)

// The persistent one-token step (backend.WholeStepper): one cooperative
// launch of upg_pstep (experiments/pstep.cu) runs every layer, the final
// norm and the head of a one-token step, one 512-thread block an SM, in
// place of the ~11 launches a layer of the per-op path. It takes models
// whose every matrix is dense 3-bit with 128-wide groups (what `upg synth`
// and the compressor's 3-bit rung write), a full rotary embedding over
// heads of 128 values, at most 4 query heads a key/value head, an fp16
// cache; anything else keeps the per-op path, which stays the reference
// the persistent step is tested against (TestGPUPstepMatchesPerOp).
//
// It is an experiment: correct on an H200 and 2.4x slower than the per-op
// step (NOTES.md run 185: a layer's chain of small ops and hand-offs takes
// ~35 µs in this form, and the weights streamed ahead in shared memory
// cover ~6 µs of it). The kernel is not in the committed fatbin, so it runs
// only with PstepEnv=1 and a fatbin that holds upg_pstep (FatbinEnv; the
// build command is in experiments/pstep.cu).

// PstepEnv set to 1 runs eligible one-token steps as the persistent step,
// captured in the step's graph as every step is; "eager" runs those steps
// without a graph (three launches: Embed, the logits' memset, the step),
// for a driver that refuses to capture a cooperative launch.
const PstepEnv = "UPG_CUDA_PSTEP"

// attrSmemOptin is CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
// funcAttrMaxDynamicSmem CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
const (
	attrSmemOptin          = 97
	funcAttrMaxDynamicSmem = 8
)

// The kernel's compile-time shape (experiments/pstep.cu's PS_* macros).
const (
	psThreads = 512
	psWarps   = psThreads / 32
	psPW      = 6    // units in flight a warp
	psSlot    = 1664 // a unit's bytes in a slot: codes, scales, offsets
	psHD      = 128
	psGMax    = 4
	psCL      = 6 // counters a layer
	// the structs' sizes (static_assert'ed in pstep.cu)
	psMatBytes   = 88
	psLayerBytes = 4*psMatBytes + 16
	psParamBytes = 320
)

// pstep is a bound persistent step: the model's matrices and one context's
// buffers, the workspace, and a parameter block per (KV cache, step
// buffer) it has run over.
type pstep struct {
	b       *Backend
	m       backend.WholeStepModel
	mats    [][4]*DenseGPU // per layer: q|k|v, o, gate|up, down
	head    *DenseGPU
	rope    *rope
	nb, S   int // blocks, attention splits a key/value head
	kmax    int
	nsm     int // the small ops' floats in shared memory
	smem    int // the launch's dynamic shared memory
	layers  DevPtr
	work    DevPtr
	workOff psWork
	params  map[[2]DevPtr]DevPtr // by (keys, step metadata): the parameter block
	eager   bool                 // run its steps without a graph (PstepEnv=eager)
	allocs  []DevPtr
}

// psWork are the workspace's parts, byte offsets into pstep.work.
type psWork struct {
	yqkv, yo, ygu, ydown, hs, att, ws, xg, fg, cnt int64
	size                                           int64
}

// psMatFits says why g cannot be one of the persistent step's matrices
// ("" when it can).
func psMatFits(g *DenseGPU) string {
	switch {
	case g == nil:
		return "a matrix without the dense GPU layout"
	case g.Fallback != "" || g.w16 != 0:
		return "a matrix decoded to fp16 (" + g.Fallback + ")"
	case g.trK != 0 || g.spMW != 0:
		return "a trellis or sparse matrix"
	case g.K != 3 || g.GS != 128:
		return fmt.Sprintf("%d-bit codes in groups of %d (the step takes 3-bit in groups of 128)", g.K, g.GS)
	case g.ovK != 0:
		return "fp16 overlay corrections"
	case g.U*unitCodes != g.C || g.R%32 != 0 || g.G != g.U:
		return fmt.Sprintf("a %d×%d matrix (rows a multiple of 32, columns of 128)", g.R, g.C)
	case g.C%g.plan.seg != 0:
		return fmt.Sprintf("%d columns in rotation segments of %d", g.C, g.plan.seg)
	}
	return ""
}

// psShape checks the model's shapes against the kernel's and returns the
// matrices (why: "" when they fit).
func psShape(m backend.WholeStepModel) (mats [][4]*DenseGPU, head *DenseGPU, why string) {
	D, F, hd, H, heads := m.Hidden, m.FFN, m.HeadDim, m.KVHeads, m.Heads
	switch {
	case hd != psHD:
		return nil, nil, fmt.Sprintf("heads of %d values (the step takes %d)", hd, psHD)
	case H <= 0 || heads%H != 0 || heads/H > psGMax:
		return nil, nil, fmt.Sprintf("%d query heads over %d key/value heads (at most %d a key/value head)", heads, H, psGMax)
	case heads*hd != D:
		return nil, nil, fmt.Sprintf("attention width %d against hidden %d", heads*hd, D)
	case D%4 != 0 || D > 4*4*psThreads:
		return nil, nil, fmt.Sprintf("hidden size %d (a multiple of 4, at most %d)", D, 4*4*psThreads)
	case len(m.Layers) == 0:
		return nil, nil, "no layers"
	}
	mat := func(w backend.Weight, R, C int) (*DenseGPU, string) {
		x, ok := w.(*weight)
		if !ok || x.g == nil {
			return nil, "a matrix that is not the CUDA backend's"
		}
		if why := psMatFits(x.g); why != "" {
			return nil, why
		}
		if x.g.R != R || x.g.C != C {
			return nil, fmt.Sprintf("a %d×%d matrix where %d×%d was expected", x.g.R, x.g.C, R, C)
		}
		return x.g, ""
	}
	vec := func(w backend.Weight) bool {
		x, ok := w.(*weight)
		return ok && x.vec != 0 && x.cols == D
	}
	for _, l := range m.Layers {
		var g [4]*DenseGPU
		for i, s := range []struct {
			w    backend.Weight
			R, C int
		}{{l.QKV, (heads + 2*H) * hd, D}, {l.O, D, heads * hd}, {l.GateUp, 2 * F, D}, {l.Down, D, F}} {
			var why string
			if g[i], why = mat(s.w, s.R, s.C); why != "" {
				return nil, nil, why
			}
		}
		if !vec(l.AttnNorm) || !vec(l.FFNNorm) {
			return nil, nil, "a norm gain that is not a vector of the hidden size"
		}
		mats = append(mats, g)
	}
	if !vec(m.Norm) {
		return nil, nil, "a final norm gain that is not a vector of the hidden size"
	}
	var why2 string
	if head, why2 = mat(m.Output, m.Output.Rows(), D); why2 != "" {
		return nil, nil, "the head: " + why2
	}
	return mats, head, ""
}

// psPlan is the launch's shape for matrices mats and head on sms SMs:
// blocks (at most one an SM, and no more than any matrix has row groups, so
// that a row group's units lie in at most two blocks' ranges), attention
// splits, the most row groups a warp's part touches, the small ops' floats
// and the dynamic shared memory.
func psPlan(mats [][4]*DenseGPU, head *DenseGPU, sms, heads, H int) (nb, S, kmax, nsm, smem int) {
	all := []*DenseGPU{head}
	for _, l := range mats {
		all = append(all, l[:]...)
	}
	nb = sms
	for _, g := range all {
		nb = min(nb, g.R/32)
	}
	// (ps_block_of divides in 32 bits: every matrix's units · nb < 2^31,
	// 16.6 M for Phi-4's head on 132 SMs; BindWholeStep refuses nb = 0)
	for _, g := range all {
		if int64(g.R/32)*int64(g.U)*int64(nb) >= 1<<31 {
			return 0, 0, 0, 0, 0
		}
	}
	S = max(1, nb/H)
	ldq, G := 0, 0
	kmax = 1
	nsm = psWarps / 2 * (heads / H) * (psHD + 2)
	for _, g := range all {
		n := (g.R / 32) * g.U
		part := ((n+nb-1)/nb + psWarps - 1) / psWarps
		kmax = max(kmax, (part+g.U-2)/g.U+1)
		ldq, G = max(ldq, g.U*unitCodes), max(G, g.G)
		nsm = max(nsm, g.plan.seg)
	}
	nsm = max(nsm, head.C/2) // ps_rotq's hand-off of the row's upper float4s (D/2 floats)
	smem = psWarps*psPW*psSlot + (ldq+15)&^15 + 16*G + psWarps*kmax*32*4 + 4*nsm + 4*64
	return
}

// BindWholeStep implements backend.WholeStepper.
func (b *Backend) BindWholeStep(m backend.WholeStepModel) (backend.WholeStep, string) {
	mode := os.Getenv(PstepEnv)
	if mode != "1" && mode != "eager" {
		return nil, PstepEnv + " is not 1 or eager"
	}
	mats, head, why := psShape(m)
	if why != "" {
		return nil, why
	}
	rp, ok := m.Rope.(*rope)
	if !ok || rp.spec.Dim != m.HeadDim {
		return nil, "a rotary embedding over part of a head"
	}
	d := b.d
	if sym.cuLaunchKernelEx == 0 || sym.cuFuncSetAttribute == 0 {
		return nil, "a driver without cuLaunchKernelEx or cuFuncSetAttribute"
	}
	nb, S, kmax, nsm, smem := psPlan(mats, head, d.SMs, m.Heads, m.KVHeads)
	if nb == 0 {
		return nil, "matrices too large for the kernel's 32-bit unit arithmetic"
	}
	var optin int
	err := d.Do(func() error {
		if _, err := d.function("upg_pstep"); err != nil {
			return fmt.Errorf("the loaded kernels lack upg_pstep (build experiments/pstep.cu and name it in %s)", FatbinEnv)
		}
		var x int32
		if err := call("cuDeviceGetAttribute", sym.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&x)), attrSmemOptin, uintptr(d.dev)); err != nil {
			return err
		}
		optin = int(x)
		if smem > optin {
			return fmt.Errorf("it needs %d bytes of shared memory a block, the GPU gives %d", smem, optin)
		}
		f, _ := d.function("upg_pstep")
		return call("cuFuncSetAttribute", sym.cuFuncSetAttribute, f, funcAttrMaxDynamicSmem, uintptr(smem))
	})
	if err != nil {
		return nil, err.Error()
	}
	p := &pstep{b: b, m: m, mats: mats, head: head, rope: rp, nb: nb, S: S, kmax: kmax, nsm: nsm, smem: smem,
		params: map[[2]DevPtr]DevPtr{}, eager: mode == "eager"}
	if err := p.alloc(); err != nil {
		p.Close()
		return nil, err.Error()
	}
	return p, ""
}

// alloc uploads the layers' descriptors and allocates the workspace.
func (p *pstep) alloc() error {
	d, m := p.b.d, p.m
	L := len(p.mats)
	lb := make([]byte, L*psLayerBytes)
	for i, l := range p.mats {
		o := lb[i*psLayerBytes:]
		for j, g := range l {
			putPsMat(o[j*psMatBytes:], g)
		}
		binary.LittleEndian.PutUint64(o[4*psMatBytes:], uint64(m.Layers[i].AttnNorm.(*weight).vec))
		binary.LittleEndian.PutUint64(o[4*psMatBytes+8:], uint64(m.Layers[i].FFNNorm.(*weight).vec))
	}
	var err error
	if p.layers, err = p.allocate(int64(len(lb)), "the persistent step's layers"); err != nil {
		return err
	}
	if err := d.Upload(p.layers, lb); err != nil {
		return err
	}
	w := &p.workOff
	add := func(n int64) int64 {
		o := w.size
		w.size += (n + 255) &^ 255
		return o
	}
	qkv, dn := p.mats[0][0], p.mats[0][3]
	G := m.Heads / m.KVHeads
	w.yqkv = add(int64(L) * int64(qkv.R/32) * 64 * 4)
	w.yo = add(int64(L) * int64(m.Hidden/32) * 64 * 4)
	w.ygu = add(int64(L) * int64(2*m.FFN/32) * 64 * 4)
	w.ydown = add(int64(L) * int64(m.Hidden/32) * 64 * 4)
	w.hs = add(int64(2*L) * int64(m.Hidden) * 4)
	w.att = add(int64(L) * int64(m.Heads*psHD) * 4)
	w.ws = add(int64(L) * int64(m.KVHeads*p.S*G*(psHD+2)) * 4)
	w.xg = add(int64(L) * int64(dn.U*unitCodes))
	w.fg = add(int64(L) * int64(dn.G) * 16)
	w.cnt = add(int64(2+L*psCL+L*m.KVHeads) * 4)
	if p.work, err = p.allocate(w.size, "the persistent step's workspace"); err != nil {
		return err
	}
	// the counters start at zero once; each launch adds a known amount
	return d.Fill32(p.work+DevPtr(w.cnt), 0, 2+L*psCL+L*m.KVHeads)
}

func (p *pstep) allocate(n int64, what string) (DevPtr, error) {
	q, err := p.b.d.Alloc(n, what)
	if err == nil {
		p.allocs = append(p.allocs, q)
	}
	return q, err
}

// putPsMat writes g as the kernel's PsMat (88 bytes, pstep.cu).
func putPsMat(o []byte, g *DenseGPU) {
	le := binary.LittleEndian
	le.PutUint64(o[0:], uint64(g.codes))
	le.PutUint64(o[8:], uint64(g.scales))
	le.PutUint64(o[16:], uint64(g.offs))
	le.PutUint64(o[24:], uint64(g.signs))
	for i, v := range []int{g.R, g.U, g.C, g.G, g.plan.rb, g.plan.seg, g.plan.gs, g.U * unitCodes} {
		le.PutUint32(o[32+4*i:], uint32(int32(v)))
	}
	for i, t := range g.t {
		le.PutUint32(o[64+4*i:], t)
	}
	le.PutUint32(o[80:], math.Float32bits(g.alpha))
	le.PutUint32(o[84:], math.Float32bits(g.beta))
}

// paramsFor is the parameter block for a launch over cache c and step st,
// uploaded the first time (owner thread calls inside; not while capturing:
// Run asks before it queues the launch).
func (p *pstep) paramsFor(c *kvStore, st *stepBuf) (DevPtr, error) {
	key := [2]DevPtr{c.k, st.dev}
	if q, ok := p.params[key]; ok {
		return q, nil
	}
	m, L := p.m, len(p.mats)
	if c.spec.Type != backend.KVF16 || c.spec.Layers < L || c.spec.HeadDim != psHD || c.spec.KVHeads != m.KVHeads {
		return 0, fmt.Errorf("cuda: the persistent step needs an fp16 cache of %d layers × %d heads × %d (got %v, %d × %d × %d)",
			L, m.KVHeads, psHD, c.spec.Type, c.spec.Layers, c.spec.KVHeads, c.spec.HeadDim)
	}
	buf := make([]byte, 16*L+psParamBytes)
	le := binary.LittleEndian
	for l := 0; l < L; l++ {
		le.PutUint64(buf[8*l:], uint64(c.k+DevPtr(int64(l)*c.perLayer)))
		le.PutUint64(buf[8*(L+l):], uint64(c.v+DevPtr(int64(l)*c.perLayer)))
	}
	q, err := p.allocate(int64(len(buf)), "the persistent step's parameters")
	if err != nil {
		return 0, err
	}
	pb := buf[16*L:]
	w, at := p.workOff, func(o int64) uint64 { return uint64(p.work + DevPtr(o)) }
	for i, v := range []uint64{
		uint64(p.layers), uint64(p.m.Norm.(*weight).vec), uint64(q), uint64(q + DevPtr(8*L)),
		uint64(st.tables), uint64(st.seq), uint64(st.pos), uint64(st.slot),
		uint64(p.rope.cos), uint64(p.rope.sin), uint64(bufOf(m.X).p), uint64(bufOf(m.Logits).p),
		at(w.yqkv), at(w.yo), at(w.ygu), at(w.ydown), at(w.hs), at(w.att), at(w.ws), at(w.xg), at(w.fg), at(w.cnt),
	} {
		le.PutUint64(pb[8*i:], v)
	}
	putPsMat(pb[176:], p.head)
	il := 0
	if p.rope.spec.Interleave {
		il = 1
	}
	for i, v := range []int{L, m.Hidden, m.FFN, m.Heads, m.KVHeads, c.spec.BlockSize, st.lim.BlocksPerSeq, il, p.S, p.kmax, p.nsm, 0} {
		le.PutUint32(pb[264+4*i:], uint32(int32(v)))
	}
	le.PutUint32(pb[312:], math.Float32bits(m.Eps))
	le.PutUint32(pb[316:], math.Float32bits(m.Scale))
	if err := p.b.d.Upload(q, buf); err != nil {
		return 0, err
	}
	prm := q + DevPtr(16*L)
	p.params[key] = prm
	return prm, nil
}

// Run implements backend.WholeStep: zero the logits row (the head's two
// partials a row add into it), then the launch.
func (p *pstep) Run(kv backend.KV, s backend.StepBuf) {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	c, st := kvOf(kv), stepOf(s)
	prm, err := p.paramsFor(c, st)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return
	}
	logits, vocab := bufOf(p.m.Logits).p, p.head.R
	if p.eager {
		b.noCapture = true
	}
	q := b.enqueue(opPstep, uint64(prm))
	if q.run == nil {
		nb, smem := p.nb, p.smem
		q.run = func() error {
			if err := b.d.memsetD32(logits, 0, vocab); err != nil {
				return err
			}
			return b.d.launchK("upg_pstep", [3]uint32{uint32(nb), 1, 1}, [3]uint32{psThreads, 1, 1}, uint32(smem), Ptr(prm))
		}
	}
}

// Close implements backend.WholeStep.
func (p *pstep) Close() {
	for _, q := range p.allocs {
		p.b.d.Free(q)
	}
	p.allocs = nil
	clear(p.params)
}
