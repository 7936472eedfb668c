//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"os"
	"strconv"
)

// Launch wrappers of kernels/ops.cu. They run on the owner thread (inside
// Do) and only enqueue work.

func grid1(n, per int) [3]uint32 { return [3]uint32{uint32((n + per - 1) / per), 1, 1} }

var b256 = [3]uint32{256, 1, 1}

// embed writes rows tokens[0..n) of g into dst (n × g.C floats).
func (d *Device) embed(g *DenseGPU, tokens, dst DevPtr, n int) error {
	if g.w16 != 0 {
		return d.launchK("upg_embed_f16", [3]uint32{uint32((g.C + 255) / 256), uint32(n), 1}, b256, 0,
			Ptr(g.w16), I32(g.ldw), Ptr(tokens), Ptr(dst), I32(g.C))
	}
	if g.trK != 0 {
		return d.embedTrellis(g, tokens, dst, n)
	}
	if g.spMW != 0 {
		return d.embedSparse(g, tokens, dst, n)
	}
	rb := g.plan.rb
	seg := max(rb, 256)
	return d.launchK("upg_embed_dense", [3]uint32{uint32((g.C + seg - 1) / seg), uint32(n), 1}, b256, uint32(4*seg),
		Ptr(g.codes), Ptr(g.scales), Ptr(g.offs), Ptr(g.levels), Ptr(g.signs), Ptr(tokens), Ptr(dst),
		I32(g.C), I32(g.U), I32(g.G), I32(g.gsl), I32(g.embedK), I32(rb), I32(seg))
}

// rmsnorm normalises n rows of d values (rows lists the source rows, or 0
// for rows 0..n-1).
func (d *Device) rmsnorm(dst, x, w DevPtr, eps float32, dim int, rows DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	return d.launchK("upg_rmsnorm", [3]uint32{uint32(n), 1, 1}, b256, 0, Ptr(dst), Ptr(x), Ptr(w), F32(eps), I32(dim), Ptr(rows))
}

func (d *Device) add(dst, src DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	return d.launchK("upg_add", grid1(n, 256), b256, 0, Ptr(dst), Ptr(src), I32(n))
}

func (d *Device) bias(x, b DevPtr, width, n int) error {
	if n == 0 {
		return nil
	}
	return d.launchK("upg_bias", grid1(width*n, 256), b256, 0, Ptr(x), Ptr(b), I32(width), I32(n))
}

// rope rotates heads of n rows (stride floats apart) starting at x.
func (d *Device) rope(x DevPtr, stride, heads, hd, dim int, interleave bool, cos, sin, pos DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	il := 0
	if interleave {
		il = 1
	}
	th := uint32((dim/2 + 31) &^ 31)
	return d.launchK("upg_rope", [3]uint32{uint32(n), uint32(heads), 1}, [3]uint32{th, 1, 1}, 0,
		Ptr(x), I32(stride), I32(hd), I32(dim), I32(il), Ptr(cos), Ptr(sin), Ptr(pos))
}

func (d *Device) storeKV(kc, vc DevPtr, f16 bool, k DevPtr, ks int, v DevPtr, vs int, slots DevPtr, H, hd, bs, n int) error {
	if n == 0 {
		return nil
	}
	name := "upg_store_kv_f32"
	if f16 {
		name = "upg_store_kv_f16"
	}
	th := uint32(min(256, (hd+31)&^31))
	return d.launchK(name, [3]uint32{uint32(n), uint32(H), 1}, [3]uint32{th, 1, 1}, 0,
		Ptr(kc), Ptr(vc), Ptr(k), I32(ks), Ptr(v), I32(vs), Ptr(slots), I32(H), I32(hd), I32(bs))
}

// ropeKV is rope on the heads query heads at q (stride qs) and on the H key
// heads at k (stride ks), then storeKV of k and v: one launch.
func (d *Device) ropeKV(q DevPtr, qs, heads int, k DevPtr, ks int, v DevPtr, vs int, kc, vc DevPtr, f16 bool, slots DevPtr,
	H, hd, bs, dim int, interleave bool, cos, sin, pos DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	name := "upg_rope_kv_f32"
	if f16 {
		name = "upg_rope_kv_f16"
	}
	il := 0
	if interleave {
		il = 1
	}
	th := uint32(min(256, (max(hd, dim/2)+31)&^31))
	return d.launchK(name, [3]uint32{uint32(n), uint32(heads + H), 1}, [3]uint32{th, 1, 1}, 0,
		Ptr(q), I32(qs), I32(heads), Ptr(k), I32(ks), Ptr(v), I32(vs), Ptr(kc), Ptr(vc), Ptr(slots),
		I32(H), I32(hd), I32(bs), I32(dim), I32(il), Ptr(cos), Ptr(sin), Ptr(pos))
}

// ropeEpilogue is rope_kv after a fused q|k|v projection whose output y
// holds, per token, the heads query heads, then the H key heads, then the H
// value heads (hd values each): the arguments of ropeKV but the views,
// which are y's columns. gemv runs it as upg_splitk_rope_kv when the
// projection takes split-K parts (the sum and the rotation in one launch),
// else as ropeKV after the projection.
type ropeEpilogue struct {
	heads, H, hd, bs, dim int
	interleave, f16       bool
	kc, vc                DevPtr
	slots, cos, sin, pos  DevPtr
}

// useSplitRope is UPG_CUDA_SPLITK_ROPE (default on): 0 keeps the split-K sum
// and rope_kv as two launches (comparisons).
var useSplitRope = os.Getenv("UPG_CUDA_SPLITK_ROPE") != "0"

// fusesSplit reports whether the epilogue can run inside the split-K sum:
// full rotary (every column of a query or key head in a rotated pair).
func (e *ropeEpilogue) fusesSplit() bool { return useSplitRope && e.dim == e.hd && e.hd%2 == 0 }

// useGemvRope is UPG_CUDA_GEMV_ROPE (default on): 0 keeps a one-token
// projection's GEMV and rope_kv as two launches (comparisons).
var useGemvRope = os.Getenv("UPG_CUDA_GEMV_ROPE") != "0"

// fusesGemv reports whether the one-token GEMV of g can run the epilogue
// (the _t1r kernels, GemvRope in kernels/gemv.cu): full rotary, heads of a
// multiple of 32 values (a pair's two rows in one warp), an fp16 cache,
// and g the whole projection.
func (e *ropeEpilogue) fusesGemv(g *DenseGPU) bool {
	return useGemvRope && g.nameRope1 != "" && e.f16 && e.dim == e.hd && e.hd%32 == 0 && g.R == (e.heads+2*e.H)*e.hd
}

// gemvArgs is the _t1r kernels' epilogue parameters (gemvRopeSig).
func (e *ropeEpilogue) gemvArgs() []Arg {
	il := 0
	if e.interleave {
		il = 1
	}
	return []Arg{I32(e.heads), I32(e.H), I32(e.hd), Ptr(e.kc), Ptr(e.vc), Ptr(e.slots), I32(e.bs), I32(il),
		Ptr(e.cos), Ptr(e.sin), Ptr(e.pos)}
}

// run is ropeKV over the n tokens of y (row stride R).
func (e *ropeEpilogue) run(d *Device, y DevPtr, R, n int) error {
	qk := DevPtr(4 * e.heads * e.hd)
	return d.ropeKV(y, R, e.heads, y+qk, R, y+qk+DevPtr(4*e.H*e.hd), R, e.kc, e.vc, e.f16, e.slots, e.H, e.hd, e.bs,
		e.dim, e.interleave, e.cos, e.sin, e.pos, n)
}

// splitSum is upg_splitk_sum's job for y with the epilogue folded in: the
// S parts of n tokens at part summed into y, rotated, and the keys and
// values stored (upg_splitk_rope_kv).
func (e *ropeEpilogue) splitSum(d *Device, part DevPtr, S int, y DevPtr, n int) error {
	name := "upg_splitk_rope_kv_f32"
	if e.f16 {
		name = "upg_splitk_rope_kv_f16"
	}
	il := 0
	if e.interleave {
		il = 1
	}
	pairs := (e.heads + 2*e.H) * e.hd / 2
	return d.launchK(name, [3]uint32{uint32((pairs + 255) / 256), uint32(n), 1}, b256, 0,
		Ptr(part), I32(S), Ptr(y), I32(e.heads), I32(e.H), I32(e.hd), Ptr(e.kc), Ptr(e.vc), Ptr(e.slots), I32(e.bs),
		I32(il), Ptr(e.cos), Ptr(e.sin), Ptr(e.pos), I32(n))
}

// attnSplit enqueues attention's split kernel alone (its combine fused
// into the consumer's rotation: combineRotq); grouped picks the grouped-
// query kernel where attnGQA takes the shape (attnGrouped decides).
//
// shared (0: none) is the step's shared-prefix words (stepBuf.shared): the
// tensor-core kernel reads a split that every token's table holds in the
// same blocks once per group of attnSharedCols/G tokens (attn_tc in
// kernels/attn.cu) when n > 1 and its blocks fit (attnTCShared).
func (d *Device) attnSplit(q DevPtr, qs int, kc, vc DevPtr, f16 bool, tables DevPtr, tstride int, pos, seq DevPtr,
	scale float32, heads, H, hd, bs, chunk, S int, part DevPtr, n int, grouped bool, shared DevPtr) error {
	if n == 0 {
		return nil
	}
	typ := "f32"
	if f16 {
		typ = "f16"
	}
	args := []Arg{Ptr(q), I32(qs), Ptr(kc), Ptr(vc), Ptr(tables), I32(tstride), Ptr(pos), Ptr(seq), F32(scale),
		I32(heads), I32(H), I32(hd), I32(bs), I32(chunk), I32(S), Ptr(part)}
	block := [3]uint32{uint32(2 * chunk), 1, 1}
	smem, ok := attnGQA(heads, H, hd, chunk, f16)
	if !ok || !grouped {
		return d.launchK("upg_attn_"+typ, [3]uint32{uint32(S), uint32(heads), uint32(n)}, block, uint32(4*(hd+chunk)), args...)
	}
	if tsmem, ok := attnTC(heads, H, hd, chunk, f16); ok && attnTCOn {
		typ, smem = "tc", tsmem
		if ssmem, ok := attnTCShared(heads, H, hd, chunk); ok && n > 1 && attnSharedOn {
			smem = max(smem, ssmem)
		} else {
			shared = 0
		}
		cascade := 0
		if shared != 0 && d.attnCascades(heads, H, hd, chunk) {
			// the per-token blocks of shared splits return: none needs the
			// shared-prefix blocks' room
			cascade, smem = attnCascadeOrder, tsmem
			rows := (n*(heads/H) + cascRows - 1) / cascRows
			if err := d.launchK(attnCascadeName(heads/H, hd), [3]uint32{uint32(S), uint32(H), uint32(rows)}, [3]uint32{cascThreads, 1, 1}, 0,
				Ptr(q), I32(qs), Ptr(kc), Ptr(vc), Ptr(tables), I32(tstride), Ptr(pos), Ptr(seq), F32(scale),
				I32(heads), I32(H), I32(bs), I32(S), Ptr(part), Ptr(shared), I32(n)); err != nil {
				return err
			}
		}
		args = append(args, Ptr(shared), I32(cascade))
	}
	return d.launchK(fmt.Sprintf("upg_attn_gqa%d_%s", heads/H, typ), [3]uint32{uint32(S), uint32(H), uint32(n)}, block, uint32(smem), args...)
}

// Cascade attention (upg_attn_cascade_gqa<G>_h<hd>, kernels/attn.cu): the
// splits a step's tokens all share are scored for cascRows query rows a
// block of cascThreads threads, in splits of cascChunk positions.
const (
	cascChunk   = 64
	cascRows    = 32
	cascThreads = 64
)

// attnCascadeOn is UPG_CUDA_ATTN_CASCADE: 0 scores the shared splits in
// attn_tc's shared-prefix blocks instead (comparisons).
var attnCascadeOn = os.Getenv("UPG_CUDA_ATTN_CASCADE") != "0"

// attnCascadeOrder is attn_tc's cascade argument beside the cascade: 2
// dispatches its blocks last split first (the private splits' working blocks
// before the shared splits' returning ones), 1 in grid order
// (UPG_CUDA_ATTN_REVERSE=0, comparisons).
var attnCascadeOrder = cascadeOrder(os.Getenv("UPG_CUDA_ATTN_REVERSE"))

func cascadeOrder(env string) int {
	if env == "0" {
		return 1
	}
	return 2
}

func attnCascadeName(g, hd int) string { return fmt.Sprintf("upg_attn_cascade_gqa%d_h%d", g, hd) }

// attnCascades reports whether a step's shared splits take the cascade
// kernel: the tensor-core attention's shapes (attnTC) with heads of 64 or
// 128 values and splits of cascChunk positions, and a fatbin that has it.
func (d *Device) attnCascades(heads, H, hd, chunk int) bool {
	if !attnCascadeOn || chunk != cascChunk || (hd != 64 && hd != 128) {
		return false
	}
	if _, ok := attnTC(heads, H, hd, chunk, true); !ok {
		return false
	}
	_, err := d.function(attnCascadeName(heads/H, hd))
	return err == nil
}

// attnRotq enqueues the per-head split attention (upg_attn_<type>'s
// operations) with upg_combine_rotq folded into its tail
// (upg_attn_rotq_<type>, kernels/fused.cu: the last block of each segment
// merges it and rotates and quantizes it for g into s, counting in cnt, a
// zeroed int per token and segment that the kernel leaves at zero); dst
// gets the merged rows as combineRotq writes them.
func (d *Device) attnRotq(g *DenseGPU, dst, q DevPtr, qs int, kc, vc DevPtr, f16 bool, tables DevPtr, tstride int, pos, seq DevPtr,
	scale float32, heads, H, hd, bs, chunk, S int, part, cnt DevPtr, n int, s *Scratch) error {
	if n == 0 {
		return nil
	}
	name := "upg_attn_rotq_f32"
	if f16 {
		name = "upg_attn_rotq_f16"
	}
	smem := max(4*(hd+chunk), 4*g.plan.seg)
	args := append([]Arg{Ptr(q), I32(qs), Ptr(kc), Ptr(vc), Ptr(tables), I32(tstride), Ptr(pos), Ptr(seq), F32(scale),
		I32(heads), I32(H), I32(hd), I32(bs), I32(chunk), I32(S), Ptr(part), Ptr(dst)}, g.rotqTail(s, d.rotates(name))...)
	return d.launchK(name, [3]uint32{uint32(S), uint32(heads), uint32(n)}, [3]uint32{uint32(2 * chunk), 1, 1}, uint32(smem),
		append(args, Ptr(cnt))...)
}

// attnRotqOn is UPG_CUDA_ATTN_ROTQ: 0 keeps the merge and rotation in their
// own kernel (upg_combine_rotq) after the per-head attention (comparisons).
// Folded, Phi-4-shaped decode on the H200 gained 0.45% (NOTES.md run 85:
// one launch boundary a layer; the merge's own work, most of the 6.2 µs
// kernels/fused.cu cites from run 83, stays).
var attnRotqOn = os.Getenv("UPG_CUDA_ATTN_ROTQ") != "0"

// attnRotqFits reports whether the per-head attention (not grouped) can
// fold in g's merge and rotation (attnRotq): blocks of rotqThreads (the
// one-token chunk), whole heads in each of g's segments, and the segments
// exactly the heads' columns (each holds a head whose blocks count for it).
func attnRotqFits(g *DenseGPU, heads, hd, chunk int, grouped bool) bool {
	p := g.plan
	return attnRotqOn && !grouped && 2*chunk == rotqThreads && hd > 0 && p.seg > 0 && p.seg%hd == 0 && g.C == heads*hd &&
		p.segments() == (heads*hd+p.seg-1)/p.seg
}

// attnClusterSize is upg_attn_cluster_rotq's cluster (kernels/fused.cu):
// the query heads of one Hadamard block of the output projection's input
// (rb = 8·hd: Phi-4's 1,024 columns of 128-value heads, the demo model's 512
// of 64), and attnClusterGroup the query heads a KV head its kernels are
// built for (Phi-4's 40 over 10, the demo model's 8 over 2).
const (
	attnClusterSize  = 8
	attnClusterGroup = 4
)

// attnClusterThreads is upg_attn_cluster_rotq's block size (AC_THREADS),
// attnClusterLimit the positions a step may have for it (AC_MAXPOS), and
// attnClusterDefault the positions up to which a step takes it unless
// UPG_CUDA_ATTN_CLUSTER says otherwise: its whole range. Its 40 blocks
// (Phi-4) stream a KV head's rows a quarter each, so at long contexts the
// split kernels' wider grid gains on it. Run 169 (H200, Phi-4's shapes,
// batch 1): +10.3% after 1,024 positions, +9.2% after 1,536, +0.9% after
// 2,048, −4.5% after 4,000; a 2,048-position kernel needs no shared buffer
// for its scores and sums, so the kernel stops where it stops winning.
const (
	attnClusterThreads = 512
	attnClusterLimit   = 2048
	attnClusterDefault = attnClusterLimit
)

// attnClusterMax is UPG_CUDA_ATTN_CLUSTER: the positions (pos+1) up to which
// a one-token step takes upg_attn_cluster_rotq (0: never, comparisons;
// capped at attnClusterLimit; empty or not a count: attnClusterDefault).
var attnClusterMax = attnClusterMaxOf(os.Getenv("UPG_CUDA_ATTN_CLUSTER"))

func attnClusterMaxOf(env string) int {
	n, err := strconv.Atoi(env)
	if env == "" || err != nil || n < 0 {
		return attnClusterDefault
	}
	return min(n, attnClusterLimit)
}

// attnClusterStep reports whether a step's attention may take the cluster
// kernel, before its consumer is known: one token, positions within
// attnClusterMax, sm_90 (clusters; a newer GPU runs the compute_80 PTX, where
// the kernel traps), attnClusterGroup query heads a KV head and whole
// clusters of them, 16-byte query pieces, and a kernel for the head size.
func (d *Device) attnClusterStep(n, maxPos, heads, H, hd, qs int) bool {
	return n == 1 && maxPos+1 <= attnClusterMax && d.Major == 9 && d.clusterOK && qs%4 == 0 && H > 0 &&
		heads == attnClusterGroup*H && heads%attnClusterSize == 0 && (hd == 64 || hd == 128)
}

// hasClusterKernels reports whether the loaded module has
// upg_attn_cluster_rotq's kernels (on the owner thread, once: a step's ops
// are queued on the caller's).
func (d *Device) hasClusterKernels() bool {
	return d.Do(func() error {
		for _, hd := range []int{64, 128} {
			for _, f16 := range []bool{false, true} {
				if _, err := d.function(attnClusterName(hd, f16)); err != nil {
					return err
				}
			}
		}
		return nil
	}) == nil
}

func attnClusterName(hd int, f16 bool) string {
	typ := "f32"
	if f16 {
		typ = "f16"
	}
	return fmt.Sprintf("upg_attn_cluster_rotq_%s_h%d", typ, hd)
}

// attnClusterFits reports whether g's input rotation and quantization fit
// upg_attn_cluster_rotq: Hadamard blocks of exactly a cluster's heads
// holding whole quantization groups, and g's columns exactly the heads'
// (no padding for a block to zero).
func attnClusterFits(g *DenseGPU, heads, hd int) bool {
	p := g.plan
	return p.rb == attnClusterSize*hd && p.seg == p.rb && p.gs > 0 && p.rb%p.gs == 0 && g.C == heads*hd &&
		g.U*unitCodes == g.C
}

// attnCluster enqueues upg_attn_cluster_rotq for token 0 of a step: the
// attention of every query head with the merge of its KV head's four
// blocks and g's input rotation in each cluster's shared memory; dst gets
// the rows combineRotq writes, s the rotated and quantized input.
func (d *Device) attnCluster(g *DenseGPU, dst, q DevPtr, qs int, kc, vc DevPtr, f16 bool, tables DevPtr, tstride int, pos, seq DevPtr,
	scale float32, heads, H, hd, bs int, s *Scratch) error {
	name := attnClusterName(hd, f16)
	d.attnClusters++
	args := []Arg{Ptr(q), I32(qs), Ptr(kc), Ptr(vc), Ptr(tables), I32(tstride), Ptr(pos), Ptr(seq), F32(scale), I32(heads), I32(H), I32(bs), Ptr(dst)}
	// (rb 1 leaves the stages inside a head out, not those across ranks)
	return d.launchK(name, [3]uint32{uint32(heads), 1, 1}, [3]uint32{attnClusterThreads, 1, 1}, 0,
		append(args, g.clusterTail(s, d.rotates(name))...)...)
}

// clusterTail is rotqTail without seg: the cluster kernel's segment is the
// Hadamard block its cluster holds, so it takes the rest of the tail as is.
func (g *DenseGPU) clusterTail(s *Scratch, rotate bool) []Arg {
	t := g.rotqTail(s, rotate)
	return append(t[:3:3], t[4:]...)
}

// attnHeadDim reports whether the attention kernels take heads of hd
// values: the split kernels score each half of a head in whole 16-byte
// pieces of the cache (dot_parts in kernels/ops.cu: 8 fp16 or 4 float32
// values), so hd must be a multiple of 16 (f16 cache) or 8 (f32). A head of
// 8 (stories260K) with an f16 cache would be scored over the other half's
// values too.
func attnHeadDim(hd int, f16 bool) error {
	piece, typ, other := 4, "f32", ""
	if f16 {
		piece, typ, other = 8, "f16", "--kv-cache f32 or "
	}
	if hd <= 0 || hd%(2*piece) != 0 {
		return fmt.Errorf("cuda: attention over heads of %d values with an %s KV cache is not implemented (the head must be a multiple of %d): use %s--device cpu", hd, typ, 2*piece, other)
	}
	return nil
}

// attnGQAMode is UPG_CUDA_ATTN_GQA: 0 sends every step to the per-head
// split kernel, 1 every step the grouped kernel takes, anything else
// (2, the default) lets attnGrouped choose by the step's size.
var attnGQAMode = func() int {
	switch os.Getenv("UPG_CUDA_ATTN_GQA") {
	case "0":
		return 0
	case "1":
		return 1
	}
	return 2
}()

// attnGrouped reports whether a step of n tokens whose furthest position is
// maxPos takes the grouped-query kernel: when attnGQA takes the shape and
// its blocks (one per key/value head and split of chunk positions that
// holds any) cover every SM at least once. Run 40 measured a token after
// 512 positions (9 splits × 10 heads = 90 blocks on 132 SMs) 1.2 µs per
// layer slower grouped than per head (360 blocks), while after 3,072
// positions grouped decoded 11% faster and batch 32 20% faster.
func (d *Device) attnGrouped(heads, H, hd, chunk int, f16 bool, maxPos, n int) bool {
	if _, ok := attnGQA(heads, H, hd, chunk, f16); !ok || attnGQAMode == 0 {
		return false
	}
	return attnGQAMode == 1 || (maxPos/chunk+1)*H*n >= d.SMs
}

// attnGQA reports whether the split attention takes the grouped kernel
// (upg_attn_gqa<G>_*: one block per key/value head and split, every row
// loaded once for its G = heads/H query heads) and its dynamic shared
// memory: G·hd + G·chunk + P·G·hd floats, P = 2·chunk/(hd/E) position
// lanes of E = 16/element-size values. It takes groups of 2, 4 and 8, heads
// whose halves split into 16-byte loads, whole rows per lane set, and at
// most 48 KB of shared memory (the default limit).
func attnGQA(heads, H, hd, chunk int, f16 bool) (smem int, ok bool) {
	if H <= 0 || heads%H != 0 {
		return 0, false
	}
	g := heads / H
	if g != 2 && g != 4 && g != 8 {
		return 0, false
	}
	e := 4
	if f16 {
		e = 8
	}
	threads := 2 * chunk
	if hd%(2*e) != 0 || hd/e > threads || threads%(hd/e) != 0 {
		return 0, false
	}
	p := threads / (hd / e)
	smem = 4 * (g*hd + g*chunk + p*g*hd)
	return smem, smem <= 48<<10
}

// attnTCOn is UPG_CUDA_ATTN_TC: 0 keeps attention on the float kernels
// (upg_attn_gqa<G>_f16, upg_attn_prefill_f16) where the tensor-core ones
// would take it, for comparisons — and for kernels from before them
// (UPG_CUDA_FATBIN naming an older fatbin), which lack them.
var attnTCOn = os.Getenv("UPG_CUDA_ATTN_TC") != "0"

// attnTC reports whether the grouped attention takes the tensor-core kernel
// (upg_attn_gqa<G>_tc, kernels/attn.cu) and its dynamic shared memory in
// bytes: an fp16 cache, groups of 2, 4 and 8, heads of a multiple of 32
// values (the scores take 32 dims a step), chunks of a multiple of 16
// positions (one warp scores 16), the dim tiles (hd/16) and warps
// (chunk/16) one a multiple of the other, and at most 48 KB: the scores
// (G·chunk floats), the queries' two fp16 parts (8 rows of hd each), the
// chunk's value rows (hd + 8 halves each) and, when the warps outnumber the
// dim tiles, their KP = warps/tiles partial value sums (KP·G·hd floats).
func attnTC(heads, H, hd, chunk int, f16 bool) (smem int, ok bool) {
	if !f16 || H <= 0 || heads%H != 0 || hd <= 0 || hd%32 != 0 || chunk <= 0 || chunk%16 != 0 || chunk > attnChunkWide {
		return 0, false
	}
	g := heads / H
	if g != 2 && g != 4 && g != 8 {
		return 0, false
	}
	mt, w := hd/16, chunk/16
	if mt%w != 0 && w%mt != 0 {
		return 0, false
	}
	smem = 4*g*chunk + 2*2*8*hd + chunk*2*(hd+8)
	if w > mt {
		smem += 4 * (w / mt) * g * hd
	}
	return smem, smem <= 48<<10
}

// attnSharedCols is the query columns (tokens × the group's heads) of the
// tensor-core attention's shared-prefix blocks for groups of g heads
// (attn_tc's NS: UPG_ATTN_SHARED_NC, at least two tokens' columns).
// UPG_CUDA_ATTN_SHARED_NC matches a measurement build's other setting.
func attnSharedCols(g int) int { return max(attnSharedNC, 2*g) }

var attnSharedNC = envInt("UPG_CUDA_ATTN_SHARED_NC", 8)

// attnSharedOn is UPG_CUDA_ATTN_SHARED: 0 scores every token's splits in
// its own block even where the step's tables share them (comparisons).
var attnSharedOn = os.Getenv("UPG_CUDA_ATTN_SHARED") != "0"

// attnTCShared reports whether the tensor-core attention can take a shared
// split's attnSharedCols query columns (attnTC's shape, chunk positions)
// and the dynamic shared memory its blocks then need: attnTC's with that
// many columns of scores and rows of queries (whole 8-row tiles).
func attnTCShared(heads, H, hd, chunk int) (smem int, ok bool) {
	if _, ok := attnTC(heads, H, hd, chunk, true); !ok {
		return 0, false
	}
	nc := attnSharedCols(heads / H)
	w, mt := chunk/16, hd/16
	rows := (nc + 7) / 8 * 8 // the queries' whole mma tiles
	smem = 4*nc*chunk + 2*2*rows*hd + chunk*2*(hd+8)
	if w > mt {
		smem += 4 * (w / mt) * nc * hd
	}
	return smem, smem <= 48<<10
}

// attnChunk is the number of positions one attention split block handles
// (2·chunk threads score two per position); the kernels take chunks up to
// attnChunkWide. Steps of several tokens take attnChunk: run 38 measured
// batch 32's attention at 107 µs per layer with the wide chunk against
// 96-102 (half the blocks, each waiting out twice the loads). One-token
// steps take attnChunkWide: their 40 heads' blocks are few either way, and
// half the splits leave upg_combine_rotq one round of partials to merge
// instead of two (run 75: 310-314 against 307-312 tok/s after 512 positions,
// 286.7 against 274.8 after 3,072). UPG_CUDA_ATTN_CHUNK=64 or 128 sets one for
// every step (measurements).
const (
	attnChunk     = 64
	attnChunkWide = 128
)

var attnChunkEnv = envInt("UPG_CUDA_ATTN_CHUNK", 0)

// attnChunkFor is the split attention's chunk for an n-token step.
func attnChunkFor(n int) int {
	switch {
	case attnChunkEnv == attnChunk || attnChunkEnv == attnChunkWide:
		return attnChunkEnv
	case n == 1:
		return attnChunkWide
	}
	return attnChunk
}

// attention enqueues the split and combine kernels; part holds n × heads ×
// S × (hd+2) floats, S = ceil(max positions / chunk).
func (d *Device) attention(dst, q DevPtr, qs int, kc, vc DevPtr, f16 bool, tables DevPtr, tstride int, pos, seq DevPtr,
	scale float32, heads, H, hd, bs, chunk, S int, part DevPtr, n int, grouped bool, shared DevPtr) error {
	if n == 0 {
		return nil
	}
	if err := d.attnSplit(q, qs, kc, vc, f16, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part, n, grouped, shared); err != nil {
		return err
	}
	return d.launchK("upg_attn_combine", [3]uint32{uint32(heads), uint32(n), 1}, [3]uint32{128, 1, 1}, 0,
		Ptr(part), Ptr(pos), I32(chunk), I32(S), I32(heads), I32(hd), Ptr(dst))
}

// attnPrefillMin is the fewest tokens of one sequence that take the prefill
// attention kernel (upg_attn_prefill_*: keys staged once per 16 queries).
const attnPrefillMin = 16

// prefillAttention reports whether a step of n tokens, all of one sequence
// when oneSeq, takes the prefill attention kernel.
func prefillAttention(oneSeq bool, n, hd int) bool {
	return oneSeq && n >= attnPrefillMin && hd <= 128 && hd%8 == 0 && usePrefillAttn
}

var usePrefillAttn = os.Getenv("UPG_CUDA_PREFILL_ATTN") != "0"

// attentionPrefill enqueues causal attention for n tokens of one sequence
// (tables row seq[0]) straight into dst.
func (d *Device) attentionPrefill(dst, q DevPtr, qs int, kc, vc DevPtr, f16 bool, tables DevPtr, tstride int, pos, seq DevPtr,
	scale float32, heads, H, hd, bs, n int) error {
	name, rows, threads := "upg_attn_prefill_f32", 16, 128
	switch {
	case f16 && (hd == 64 || hd == 128) && attnTCOn:
		// tensor cores (kernels/attn.cu): 32 tokens a block of 2 warps
		name, rows, threads = fmt.Sprintf("upg_attn_prefill_tc%d", hd), 32, 64
	case f16:
		name = "upg_attn_prefill_f16"
	}
	return d.launchK(name, [3]uint32{uint32((n + rows - 1) / rows), uint32(heads), 1}, [3]uint32{uint32(threads), 1, 1}, 0,
		Ptr(q), I32(qs), Ptr(kc), Ptr(vc), Ptr(tables), I32(tstride), Ptr(pos), Ptr(seq), F32(scale),
		I32(heads), I32(H), I32(hd), I32(bs), I32(n), Ptr(dst))
}

func (d *Device) swiglu(dst, gate DevPtr, gs int, up DevPtr, us, width, n int, s *Scratch) error {
	if n == 0 {
		return nil
	}
	if p := takeParts(s, gate, up); p.S > 1 { // the GEMM before left its parts: sum them first
		if err := d.splitSum(s.part, p.S, p.y, 0, p.N); err != nil {
			return err
		}
	}
	return d.launchK("upg_swiglu", grid1(width*n, 256), b256, 0, Ptr(dst), Ptr(gate), I32(gs), Ptr(up), I32(us), I32(width), I32(n))
}

// sample runs upg_sample over n logits rows: rows holds n sampleRows,
// hist and hsave the rows' penalized tokens and room for their raw values,
// tok and lp the n outputs.
func (d *Device) sample(x DevPtr, vocab int, rows, hist, hsave, tok, lp DevPtr, n int) error {
	if n == 0 {
		return nil
	}
	return d.launchK("upg_sample", [3]uint32{uint32(n), 1, 1}, [3]uint32{1024, 1, 1}, 0,
		Ptr(x), I32(vocab), Ptr(rows), Ptr(hist), Ptr(hsave), Ptr(tok), Ptr(lp))
}

// argmaxParts is how many blocks share a row of upg_argmax: ~2,048 logits
// each, at most 64.
func argmaxParts(vocab int) int { return min(64, max(1, (vocab+2047)/2048)) }

// argmaxWork is the bytes of upg_argmax's workspace laid out for rows rows:
// a counter per row (zero before the first launch; every launch leaves them
// at zero), then a 64-bit key per part and row.
func argmaxWork(vocab, rows int) int64 {
	return argmaxCounters(rows) + 8*int64(rows*argmaxParts(vocab))
}

// argmaxCounters and argmaxIDs: a 32-bit counter or id per row, padded to
// 8 bytes (the keys after them are 64-bit).
func argmaxCounters(rows int) int64 { return 8 * int64((rows+1)/2) }
func argmaxIDs(rows int) int64      { return argmaxCounters(rows) }

// argmax writes the index of the largest logit of each of n rows (vocab
// floats apart) into out; work is argmaxWork(vocab, rows) bytes for rows ≥ n.
func (d *Device) argmax(x DevPtr, vocab int, out DevPtr, n int, work DevPtr, rows int) error {
	if n == 0 {
		return nil
	}
	P := argmaxParts(vocab)
	return d.launchK("upg_argmax", [3]uint32{uint32(P), uint32(n), 1}, b256, 0, Ptr(x), I32(vocab), Ptr(out),
		Ptr(work), Ptr(work+DevPtr(argmaxCounters(rows))), I32(P))
}
