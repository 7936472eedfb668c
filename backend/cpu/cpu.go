// Package cpu is the CPU backend: a persistent worker pool that splits the
// rows of every matrix multiply into one contiguous range per core, and fused
// decompress-and-multiply kernels per weight encoding, so that compressed
// weights are read straight from the memory map exactly once per call.
//
// Kernels exist at three dispatch levels, picked at run time from the CPU's
// features (golang.org/x/sys/cpu) or forced with NewWithLevel:
//
//   - LevelAVX512: dense k-bit codes (linear levels up to 8 bits, any
//     codebook, e.g. lloyd, up to 6 bits) are unpacked 64 at a time
//     (VPERMB + VPMULTISHIFTQB; a non-linear codebook then goes through a
//     64-byte VPERMB table as bytes u with L ≈ α·u + β, see q8Levels) and
//     multiplied with int8-quantized activations by VPDPBUSD (AVX-512 VNNI).
//     Activations are quantized per weight group (absmax, 127 levels), like
//     llama.cpp's Q8 blocks; everything else is exact float32. Batches of
//     tokens (prefill) use q8Tile, which unpacks each chunk of codes once for
//     8 tokens. The input rotation is an AVX-512 Walsh–Hadamard transform.
//   - LevelAVX2: dense codes with k ≤ 4 decoded 8 at a time (broadcast,
//     variable shift, VPERMPS codebook lookup) and multiplied in float32 by
//     FMA: the same value as the scalar oracle up to summation order.
//   - LevelAVX2 also runs dense codes with k ≤ 4 (any codebook) and linear
//     k ≤ 6 in groups of 32 through integer kernels (kernels_i8.go): the
//     same int8 activations, VPMADDUBSW + VPMADDWD with code bytes ≤ 127,
//     or, on CPUs with AVX-VNNI, VPDPBUSD (ymm) with code bytes ≤ 255.
//   - LevelNEON (arm64): the same integer scheme with SDOT (Armv8.2 dot
//     product) or, without it, SMULL/SMLAL2/SADALP (kernels_i8_arm64.go);
//     attention's dot products and weighted sums (float32 and fp16 caches)
//     and RMSNorm in NEON too (ops_arm64.s).
//   - LevelGeneric: portable Go, fused per row and group.
//
// Sparse, overlay corrections and plain f32/f16/bf16 matrices use Go kernels
// at every level. Encodings the backend does not know go through DecodeRows.
package cpu

import (
	"fmt"
	"os"
	"sync"

	"github.com/upg-ai/upg/codec"
	"github.com/upg-ai/upg/tensor"
)

// Level is a kernel dispatch level.
type Level int

// Dispatch levels, from portable to fastest.
const (
	LevelGeneric Level = iota // portable Go
	LevelAVX2                 // AVX2 + FMA + F16C (int8-activation kernels for dense k ≤ 4)
	LevelAVX512               // AVX-512 BW/VL/VBMI/VNNI int8-activation kernels
	LevelNEON                 // arm64 Advanced SIMD int8-activation kernels
)

func (l Level) String() string {
	switch l {
	case LevelAVX2:
		return "avx2"
	case LevelAVX512:
		return "avx512"
	case LevelNEON:
		return "neon"
	}
	return "generic"
}

// Levels lists the dispatch levels this machine supports, lowest first.
func Levels() []Level {
	ls := []Level{LevelGeneric}
	if hasAVX2 {
		ls = append(ls, LevelAVX2)
	}
	if hasAVX512 {
		ls = append(ls, LevelAVX512)
	}
	if hasNEON {
		ls = append(ls, LevelNEON)
	}
	return ls
}

// capLevel is the highest level this machine supports that is ≤ l.
func capLevel(l Level) Level {
	best := LevelGeneric
	for _, s := range Levels() {
		if s <= l {
			best = s
		}
	}
	return best
}

// BestLevel is the fastest level this machine supports.
func BestLevel() Level {
	ls := Levels()
	return ls[len(ls)-1]
}

// rowBlock is how many rows a worker decodes at a time on generic paths.
const rowBlock = 16

// Backend is the CPU implementation of backend.Backend. Its ops may be
// called from several goroutines (model contexts); those that use the
// worker pool are serialised by a mutex.
type Backend struct {
	threads int
	level   Level
	vnni    bool // the AVX2 integer kernels use AVX-VNNI (hasAVXVNNI unless UPG_KERNEL=avx2-novnni)

	mu   sync.Mutex // serialises the ops that use the pool and shared scratch
	pool pool

	mm             mmJob                           // the matrix multiply in flight
	planes         map[*codec.DenseMatrix][]byte   // repacked codes of the i8Plane3 kernels (planesFor)
	i8levels       map[*codec.DenseMatrix]q8Levels // level bytes of the integer kernels (i8LevelsFor)
	mmRun          func(w, lo, hi int)             // b.runMatMul, bound once so calls do not allocate
	prepRun        func(w, lo, hi int)             // b.prepTokens
	trellisPrepRun func(w, lo, hi int)             // b.trellisPrep
	trellisPackRun func(w, lo, hi int)             // b.trellisPack
	ws             []workerState
	shared         sharedState

	attn      attnJob             // the attention call in flight
	attnRun   func(w, lo, hi int) // b.attnWork
	prob, inv []float32           // attention scores and softmax normalisers, per worker
	swi       swiJob              // the SwiGLU call in flight
	swiRun    func(w, lo, hi int) // b.swigluWork
	tok       tokJob              // the per-token op in flight
	// b.embedWork, b.rmsWork, b.addWork, b.ropeWork, b.storeWork
	embedRun, rmsRun, addRun, ropeRun, storeRun func(w, lo, hi int)
}

// New starts a backend with the given number of worker threads (0 = the
// number of physical cores) at the best kernel level of this machine, or
// the one named by the UPG_KERNEL environment variable ("generic", "avx2",
// "avx512", "neon"; to compare results or speed across levels).
// "avx2-novnni" is "avx2" without AVX-VNNI: the integer kernels multiply
// with VPMADDUBSW even where VPDPBUSD on ymm registers exists.
func New(threads int) *Backend {
	l, vnni := envLevel()
	b := NewWithLevel(threads, l)
	b.vnni = b.vnni && vnni
	return b
}

// KernelEnv names the environment variable that caps New's kernel level.
const KernelEnv = "UPG_KERNEL"

// envLevel is the level UPG_KERNEL asks for and whether it allows AVX-VNNI.
func envLevel() (Level, bool) {
	v := os.Getenv(KernelEnv)
	if v == "" {
		return BestLevel(), true
	}
	if v == "avx2-novnni" {
		return capLevel(LevelAVX2), false
	}
	for _, l := range []Level{LevelGeneric, LevelAVX2, LevelAVX512, LevelNEON} {
		if l.String() == v {
			return capLevel(l), true
		}
	}
	fmt.Fprintf(os.Stderr, "upg: ignoring %s=%q (want generic, avx2, avx2-novnni, avx512 or neon)\n", KernelEnv, v)
	return BestLevel(), true
}

// NewWithLevel is New with a forced kernel level; a level the machine lacks
// is lowered to the best one it has below it.
func NewWithLevel(threads int, level Level) *Backend {
	if threads <= 0 {
		threads = PhysicalCores()
	}
	level = capLevel(level)
	b := &Backend{threads: threads, level: level, vnni: hasAVXVNNI, ws: make([]workerState, threads)}
	b.mmRun = b.runMatMul
	b.prepRun = b.prepTokens
	b.trellisPrepRun, b.trellisPackRun = b.trellisPrep, b.trellisPack
	b.attnRun, b.swiRun = b.attnWork, b.swigluWork
	b.embedRun, b.rmsRun, b.addRun, b.ropeRun, b.storeRun = b.embedWork, b.rmsWork, b.addWork, b.ropeWork, b.storeWork
	b.pool.start(threads)
	return b
}

// Name implements backend.Backend: "cpu/" and the level, "+vnni" for the
// AVX2 level on a machine with AVX-VNNI.
// FreeMemory is 0: the CPU backend's buffers are host memory.
func (b *Backend) FreeMemory() int64 { return 0 }

func (b *Backend) Name() string {
	if b.level == LevelAVX2 && b.vnni {
		return "cpu/avx2+vnni"
	}
	return "cpu/" + b.level.String()
}

// VNNI reports whether the AVX2 integer kernels use AVX-VNNI.
func (b *Backend) VNNI() bool { return b.vnni }

// Level reports the kernel level in use.
func (b *Backend) Level() Level { return b.level }

// Threads reports the worker count.
func (b *Backend) Threads() int { return b.threads }

// Close stops the workers.
func (b *Backend) Close() { b.pool.stop() }

// ParallelFor splits [0, n) into chunks (multiples of align where possible)
// that the workers take in turn until none is left, and runs fn on each;
// the calling goroutine works as worker 0. fn may be called several times
// per worker. It does not allocate.
func (b *Backend) ParallelFor(n, align int, fn func(worker, lo, hi int)) {
	b.mu.Lock()
	b.parallelFor(n, align, fn)
	b.mu.Unlock()
}

func (b *Backend) parallelFor(n, align int, fn func(worker, lo, hi int)) {
	b.pool.run(n, align, fn)
}

// MatMulF32 computes dst[t*R + r] = Σ_c W[r, c] · x[t*C + c] for t < n on
// host slices (backend.Backend's MatMul on this backend's buffers).
func (b *Backend) MatMulF32(dst, x []float32, w tensor.Matrix, n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	R, C := w.Rows(), w.Cols()
	_ = dst[n*R-1]
	_ = x[n*C-1]
	k := kernelFor(w)
	b.mm = mmJob{dst: dst, x: x, w: w, n: n, k: k, lv: b.level}
	k.prepare(b, w)
	b.parallelFor(R, rowBlock, b.mmRun)
	b.mm = mmJob{}
}

// DecodeRow writes row r of w into dst (len ≥ w.Cols()) without allocating
// for the encodings this backend knows; it is used for embedding lookups.
func (b *Backend) DecodeRow(dst []float32, w tensor.Matrix, r int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decodeRow(&b.ws[0], dst, w, r)
}

// unrotate computes v ← Qᵀ·v = D·(H·v) for a rotated dense matrix.
func (b *Backend) unrotate(v []float32, m *codec.DenseMatrix) { b.unrotateBy(v, m.Signs, m.RotBlock) }

// unrotateBy computes v ← D·(H·v) for the signs D and Hadamard block size n.
func (b *Backend) unrotateBy(v []float32, signs []float32, n int) {
	tensor.FWHT(v, n)
	for i, s := range signs {
		v[i] *= s
	}
}
