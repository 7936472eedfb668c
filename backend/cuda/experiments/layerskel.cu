// layerskel.cu: a whole batch-1 decode step as one persistent kernel, to
// measure what that design would give before building it into the backend.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -Xptxas -v layerskel.cu -o /tmp/layerskel && /tmp/layerskel
//   (-DLS_THREADS=1024: 31 consumer warps at 64 registers instead of 15 at 128)
//
// The question (NOTES.md, runs 128-131, 163, 179-184): the per-op design
// spends ~64 µs a Phi-4 layer at batch 1 where 600 tok/s needs ~40; its
// GEMVs alone take ~45, and the small ops' dependent chains (RMSNorm,
// attention, SwiGLU) leave DRAM idle between them. Here one block an SM
// (cooperative launch) runs every layer of every token; in each block a
// producer warp streams the block's slice of every matrix, in the order the
// step uses them, through a ring of shared-memory slots (cp.async, one
// mbarrier a slot), never waiting for activations: the weights of the next
// matrix flow in while the chain of the current small op runs. The other
// warps (15 by default) multiply from the ring, hand off through counters in global memory
// (fence, atomicAdd, ld.acquire spin) and run the small ops:
//   norm      every block, redundantly: the residual row (20 KB from L2), its
//             sum of squares, 1,024-wide Hadamard stages in shared memory,
//             int8 groups into the block's own activations (no second hop);
//   attention (kv head, split) items, one a block: the query, the split's
//             key and value rows (fp16, DRAM), scores, softmax, values; the
//             last split of a head merges it (a counter);
//   o input   every block: the merged heads rotated and quantized as the norm;
//   SwiGLU    512-wide segments, one a block (35 of them), to global memory,
//             a counter, then every block copies the 17.5 KB of codes;
//   head      the head GEMV, each block's best row, a counter; the next
//             token's first norm waits for it and reads the 132 bests and
//             the chosen embedding row (one dependent round trip each).
// Each matrix is 3-bit codes with 128-wide groups in the backend's GPU layout
// (a unit: 32 rows × 128 columns, 1.5 KB of plane words, then 32 fp16
// scales), decoded by the backend's own chunk_pair_bytes (kernels/gemv.cu)
// and multiplied by dp4a; a block takes a contiguous range of units of each
// matrix (row group major), sums its rows in shared memory and adds them to
// global memory once a matrix. The weights are random bytes (values do not
// matter for the time); every op reads and writes what the real one would,
// except what is small beside it: RoPE and the new token's cache rows are
// left out, and the head's rows split between two blocks are not summed
// before the blocks' bests are taken.
//
// Modes (argv[1]): 0 the step as above; 1 the weight stream alone (no waits,
// no small ops: the floor); 2 the step with the producer held to the
// current matrix (no run-ahead: what the per-op design has); 3 the multiply
// alone (no producer: the consumers multiply whatever the ring holds, no
// small ops: the multiply's floor, set by its integer pipes); 4 the chain
// alone (the small ops and hand-offs with no weights streamed or multiplied:
// the chain's floor, without the stream's contention); 5 the step with no
// producer warp: each consumer warp asks for its own units by cp.async into
// PW slots of its own, PW units ahead of its multiply along its walk over
// every matrix (so across the small ops too), waiting by wait_group (the
// form in which the small ops could stay the per-op kernels' block-wide
// code, since every warp runs them); 6 as 5 with no small ops (that
// form's stream and multiply together). argv[2] ring
// slots (default: as many as fit), argv[3] 1 = the stream's loads
// evict-first in L2, argv[4] attention splits a kv head (default 13).
// Printed: µs a token, tok/s, µs a layer, how long block 0's consumer warps
// waited for weights (an empty ring: the stream is the bound) and its
// producer for free slots (a full ring: the multiply and the chain are),
// and block 0's phase times, the mean over the middle layers. Spin waits give up after 0.5 s (a hang reports, not stalls).
// Build switches (runs 192-211, NOTES.md): -DLS_MMA (mma.sync in place of
// dp4a), -DLS_ACC=n (n IDP.4A chains a unit), -DLS_PAIR (mode 3: two units
// a warp at a time), -DLS_NOROT (no Hadamard stages; -DLS_RESROT: none in the norms only, as a file
// written with compress --rotate-residual leaves them), -DLS_MERGE1 (a head's
// splits merged in two batched round trips), -DLS_NOATOM (the attention
// item's value sums without shared-memory atomics), -DLS_ATTN_TRACE (block
// 0's attention item timed inside), -DLS_NPW=n (n producer warps, modes 0-2), -DLS_TMA (bulk copies, one lane a unit,
// in place of cp.async: run 203), -DLS_PTRACE (block 0's producer timed: run 204),
// -DLS_GROUP=g (with -DLS_TMA: a barrier pair and two bulk copies a group of g slots: runs 205-207),
// -DLS_EARLY (the group form's consumers free each unit once read), -DLS_CH=n (n units a consumer chunk): run 208,
// -DLS_CHECK (each unit's index in its last scale, checked where it is read: run 210),
// -DLS_FULL2 (the group form: a full barrier a group for even turns and one for odd: the fix of its stale reads, run 212).
// Standalone (CUDA runtime, no Go); not part of the build or of CI.
#define UPG_SRC 1
#include "../kernels/gemv.cu"
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>
#include "probe.cuh"

#ifdef LS_ATTN_TRACE
// -DLS_ATTN_TRACE: block 0's attention item (kv head 0, split 0) timed
// inside: entry, its scores (the query and rows landed), the maxima's
// barrier, the value sums and their shared-memory adds, the sums' barrier,
// the partial written, the fence and count; [token][layer][7]
constexpr int NAR = 7;
__device__ unsigned long long ls_arec[8 * 40 * NAR];
#define AREC(k) \
  if (blockIdx.x == 0 && threadIdx.x == 0) ls_arec[((size_t)t * p.L + l) * NAR + (k)] = gtime()
#else
#define AREC(k)
#endif
#ifndef LS_ACC
#define LS_ACC 1
#endif
#ifdef LS_MMA
// -DLS_MMA: the units multiplied by mma.sync m16n8k32 (u8 × s8 → s32) instead of dp4a
__device__ __forceinline__ void ls_mma(int (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, int b0, int b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
#endif

// Phi-4's shapes
constexpr int D = 5120, FF = 17920, QKV = 7680, HEADS_KV = 10, HD = 128, VOCAB = 100352;
// threads a block (-DLS_THREADS=1024: 31 consumer warps at 64 registers)
#ifndef LS_THREADS
#define LS_THREADS 512
#endif
// -DLS_NPW=n: n producer warps (mode 0-2), each streaming every n-th unit
// of the walk into its slot (one warp streams ~1 TB/s in all, run 185)
#ifndef LS_NPW
#define LS_NPW 1
#endif
constexpr int NPW = LS_NPW;
constexpr int NTH = LS_THREADS, NCW = NTH / 32 - NPW, NCT = NCW * 32; // threads, consumer warps, consumer threads
constexpr int UCODE = 1536, USC = 64, SLOT = UCODE + USC; // a unit's bytes in a ring slot
// consecutive units a consumer warp takes (at most); a warp's next unit is up to
// (NCW-1)·CH+1 past its last, which must stay within one turn of the ring
// (main checks ns ≥ NCW·CH), or a parity wait passes on the phase before
// -DLS_CH=n: chunks of n units (run 208)
#ifdef LS_CH
constexpr int CH = LS_CH;
#else
constexpr int CH = NCW >= 31 ? 3 : 4;
#endif
// modes 5 and 6: the units in flight a consumer warp keeps (its private slots;
// cp.async.wait_group takes the count as an immediate)
constexpr int PW = NCW >= 31 ? 3 : 7;
constexpr int NM = 4;                                     // matrices a layer: q|k|v, o, gate|up, down
constexpr int NEV = 12;                                   // phase records a layer (block 0)
constexpr int AJ = NCW >= 31 ? 3 : 5;                     // positions a warp of an attention item
constexpr unsigned long long TIMEOUT = 500000000ull;      // ns

struct Params {
  const uint4 *const *codes;         // [layer·4 + m], the head last
  const unsigned short *const *sc;   // scales, likewise
  int R[NM + 1], U[NM + 1];          // rows and units a row of q|k|v, o, gate|up, down, head
  int L, T, P, S, mode, ns, ef, rgmax;
  const float *normw;                // D
  const __half *kc, *vc, *emb;       // [L][HEADS_KV][P][HD]; emb [VOCAB][D]
  float *h, *yqkv, *ygu, *att, *logit; // per token: h D, yqkv L·QKV, ygu L·2FF, att L·D, logit VOCAB
  float *ws;                         // attention partials [T][L][HEADS_KV][S][4·(HD+2)]
  int8_t *xg;                        // SwiGLU codes [T][L][FF]
  float4 *fg;                        // and factors [T][L][FF/128]
  float2 *best;                      // [T][blocks]
  int *cnt;                          // [L][8] a layer's, the head's, then [L][HEADS_KV] the heads' merges
  unsigned long long *rec;           // [T][L][NEV]
  unsigned long long *stat;          // [T][2]: block 0's waits so far as token t starts (ns)
  int *err;                          // mapped host memory: the site of a wait that gave up
  unsigned t0, t1;                   // the 3-bit level table (PRMT)
};

// chain: the mode runs the small ops and the waits between matrices (0, 2, 4, 5)
__device__ __forceinline__ bool chain(const Params &p) { return p.mode == 0 || p.mode == 2 || p.mode == 4 || p.mode == 5; }
// WF (the kernel's template argument): each consumer warp streams its own
// units (modes 5, 6: no producer warp); a kernel of its own, so that the
// other modes' code is what it was
__device__ __forceinline__ unsigned smem_addr(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void bar_consumers() { asm volatile("bar.sync 1, %0;" ::"n"(NCT) : "memory"); }
__device__ __forceinline__ void fail(const Params &p, int code) {
  *(volatile int *)p.err = code; // (host memory: a plain store, no PCIe atomic)
  __threadfence_system();
  __trap();
}
__device__ __forceinline__ void mbar_init(unsigned long long *b, unsigned n) {
  asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(n) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned long long *b) {
  asm volatile("{.reg .b64 st; mbarrier.arrive.shared.b64 st, [%0];}" ::"r"(smem_addr(b)) : "memory");
}
__device__ __forceinline__ void mbar_arrive_n(unsigned long long *b, unsigned n) {
#if __CUDA_ARCH__ >= 900
  asm volatile("{.reg .b64 st; mbarrier.arrive.shared.b64 st, [%0], %1;}" ::"r"(smem_addr(b)), "r"(n) : "memory");
#else
  for (unsigned i = 0; i < n; i++) mbar_arrive(b);
#endif
}
__device__ __forceinline__ bool mbar_done(unsigned long long *b, unsigned parity) {
  unsigned ok;
#if __CUDA_ARCH__ >= 900
  asm volatile("{.reg .pred p; mbarrier.try_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p;}"
               : "=r"(ok)
               : "r"(smem_addr(b)), "r"(parity)
               : "memory");
#else
  asm volatile("{.reg .pred p; mbarrier.test_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p;}"
               : "=r"(ok)
               : "r"(smem_addr(b)), "r"(parity)
               : "memory");
#endif
  return ok != 0;
}
// mbar_test: mbarrier.test_wait, which never suspends (try_wait may, inside
// the instruction, which would hide a wait from mbar_wait's timer)
__device__ __forceinline__ bool mbar_test(unsigned long long *b, unsigned parity) {
  unsigned ok;
  asm volatile("{.reg .pred p; mbarrier.test_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p;}"
               : "=r"(ok)
               : "r"(smem_addr(b)), "r"(parity)
               : "memory");
  return ok != 0;
}
// mbar_wait waits for the phase of parity on b; a wait that was not over at
// once adds its ns to *stat (lane 0: the warp waited as one)
__device__ __forceinline__ void mbar_wait(const Params &p, unsigned long long *b, unsigned parity, int code,
                                          unsigned long long *stat) {
  if (mbar_test(b, parity)) return;
  const unsigned long long t = gtime();
  while (!mbar_done(b, parity))
    if (gtime() - t > TIMEOUT) fail(p, code);
  if ((threadIdx.x & 31) == 0) atomicAdd(stat, gtime() - t);
}
__device__ __forceinline__ void cp16(void *dst, const void *src, bool ef, unsigned long long pol) {
  if (ef)
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src),
                 "l"(pol)
                 : "memory");
  else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}

#ifdef LS_TMA
// -DLS_TMA: a unit's code and scale bytes by two bulk copies (the SM's copy
// engine, one instruction each from one lane) completing on the slot's full
// barrier by transaction count, in place of 4 cp.async a lane
constexpr unsigned UNIT_TX = SLOT;
#ifndef LS_GROUP
#define LS_GROUP 0
#endif
// -DLS_GROUP=g (with -DLS_TMA, modes 0-3): the ring in groups of g slots with
// one full and one empty barrier a group (run 204: every mbarrier operation
// costs the producer ~100 clocks); a run of a group's units within one
// matrix in two bulk copies (the codes of all slots first, then the scales),
// each run's bytes announced before its copies, the group's one arrival at its end
constexpr int G = LS_GROUP;
static_assert(G == 0 || NPW == 1, "the group form has one producer warp");
__device__ __forceinline__ void mbar_expect(unsigned long long *b, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk(void *dst, const void *src, unsigned bytes, unsigned long long *b) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(b))
               : "memory");
}
// the group form: a run's bytes announced before its copies (so that the
// transaction count never goes below zero; runs 207-208 failed at g = 8 and
// 32 with the announcement after the copies: the suspect), the group's one arrival at its end
__device__ __forceinline__ void mbar_expect_only(unsigned long long *b, unsigned bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(bytes) : "memory");
}
// lane 0: the unit's bytes into dst, counted on b
__device__ __forceinline__ void bulk_unit(uint8_t *dst, const uint4 *codes, const unsigned short *sc, int n,
                                          unsigned long long *b) {
  mbar_expect(b, UNIT_TX);
  bulk(dst, codes + (size_t)n * 96, UCODE, b);
  bulk(dst + UCODE, sc + (size_t)n * 32, USC, b);
}
#endif
#ifndef LS_TMA
constexpr int G = 0;
#endif
constexpr int GM = G ? G : 1; // (a divisor in code the group form alone runs)
// -DLS_FULL2 (the group form): two full barriers a group, for even and odd
// turns, each waited on with the parity of its own turns (turn / 2). Why
// (NOTES.md, "the group form's stale reads, by reading"): a consumer's wait
// for (group g, turn T) is sound only if (g, T-1)'s phase is complete, else
// the parity test passes on (g, T-2)'s. The producer's empty waits make every
// unit at least ns older than a unit any consumer has read complete (read);
// a warp's next unit u is up to (NCW-1)·CH + 1 past its last, and (g, T-1)'s
// last unit is only ns - G + 1 before u, so with one full barrier a group
// soundness rests on copies that land in issue order (cp.async's arrive-on
// does; bulk copies need not); with two, (g, T-2)'s last unit is 2·ns - G + 1
// before u, and it holds when ns ≥ (NCW-1)·CH + G
#ifdef LS_FULL2
constexpr bool FULL2 = true;
#else
constexpr bool FULL2 = false;
#endif
// the group's full barrier for turn k, and the parity its waiters ask for
__device__ __forceinline__ unsigned full_of(unsigned g, unsigned k) { return FULL2 ? 2 * g + (k & 1u) : g; }
__device__ __forceinline__ unsigned full_parity(unsigned k) { return FULL2 ? (k >> 1) & 1u : k & 1u; }
// a slot's codes and scales: interleaved (SLOT bytes a slot), or in the
// group form all the ring's codes, then all its scales
__device__ __forceinline__ size_t slot_codes(unsigned slot) { return (size_t)slot * (G ? UCODE : SLOT); }
__device__ __forceinline__ size_t slot_scales(int ns, unsigned slot) {
  return G ? (size_t)ns * UCODE + (size_t)slot * USC : (size_t)slot * SLOT + UCODE;
}

// consumer thread 0 waits until *c ≥ target, then every consumer goes on
__device__ void wait_count(const Params &p, const int *c, int target, int code) {
  if (chain(p) && threadIdx.x == 0) {
    const unsigned long long t = gtime();
    while (ld_acquire(c) < target)
      if (gtime() - t > TIMEOUT) fail(p, code);
  }
  bar_consumers();
}
// every consumer's writes before it, then one count: the barrier, then one
// fence (cumulative over the writes the barrier ordered) and the add by
// thread 0, as cooperative groups' grid barrier does
__device__ void count(int *c) {
  bar_consumers();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(c, 1);
  }
}

struct Smem {
  unsigned long long *full, *empty;
  uint8_t *ring;
  int8_t *xs;   // activations: FF int8
  float4 *xf;   // and factors: FF/128
  float *acc;   // the block's rows of the current matrix: rgmax·32
  float *sm;    // small ops' values: D floats
  float *red;   // 128 floats
  volatile int *open; // mode 2: the last sequence number the producer may load
  volatile unsigned *tab; // the 3-bit level table (t0, t1)
  unsigned long long *stat; // ns waited: [0] consumer warps for a slot's weights, [1] the producer for a free slot
};

// a block's units of matrix m: [n0, n1) of R/32 · U, row group major
struct Range {
  int n0, n1;
};
__device__ __forceinline__ Range range_of(const Params &p, int m) {
  const long long n = (long long)(p.R[m] / 32) * p.U[m];
  return Range{(int)(n * blockIdx.x / gridDim.x), (int)(n * (blockIdx.x + 1) / gridDim.x)};
}
__device__ __forceinline__ int mat_index(const Params &p, int l, int m) { return m == NM ? p.L * NM : l * NM + m; }
// the units a consumer warp takes at once from a range of len: a block's
// share of q|k|v (~73 units) or o (~49) in chunks of CH would leave a few
// warps twice the others' units, so one unit a chunk there
__device__ __forceinline__ int chunk_of(int len) { return len < 8 * NCW ? 1 : CH; }

// Modes 5 and 6: a consumer warp's walk over the units it multiplies, in
// the order gemv takes them (matrices in step order; within one, chunks of
// ch units at w·ch, w·ch + NCW·ch, ... of the block's range), so that the
// warp can ask for units PW ahead of its multiply, across the ends of
// matrices and the small ops between them.
struct Walk {
  int t, l, m;           // token, layer (L: the head), matrix
  int c0, i, n;          // the chunk's first unit (from the range's start), the unit in it, the chunk's length
  int len, ch, n0;       // the block's range of the matrix: its length, chunk size, first unit
  const uint4 *codes;    // the matrix's codes and scales
  const unsigned short *sc;
  bool done;             // past the last token's head
};
// walk_matrix points w at its warp's first unit of matrix (w.l, w.m), or
// at the first later matrix the warp has units of
__device__ void walk_matrix(const Params &p, Walk &w) {
  const int wi = threadIdx.x >> 5;
  while (!w.done) {
    const int mm = w.l == p.L ? NM : w.m, mi = mat_index(p, w.l, mm);
    const Range r = range_of(p, mm);
    w.len = r.n1 - r.n0, w.n0 = r.n0, w.ch = chunk_of(w.len);
    w.codes = p.codes[mi], w.sc = p.sc[mi];
    w.c0 = wi * w.ch, w.i = 0;
    if (w.c0 < w.len) {
      w.n = min(w.ch, w.len - w.c0);
      return;
    }
    if (w.l == p.L) { // the head: the next token
      w.l = 0, w.m = 0;
      if (++w.t == p.T) w.done = true;
    } else if (++w.m == NM) {
      w.m = 0, w.l++;
    }
  }
}
__device__ void walk_next(const Params &p, Walk &w) {
  if (++w.i < w.n) return;
  w.c0 += NCW * w.ch, w.i = 0;
  if (w.c0 < w.len) {
    w.n = min(w.ch, w.len - w.c0);
    return;
  }
  if (w.l == p.L) {
    w.l = 0, w.m = 0;
    if (++w.t == p.T) {
      w.done = true;
      return;
    }
  } else if (++w.m == NM) {
    w.m = 0, w.l++;
  }
  walk_matrix(p, w);
}
// the warp asks for its walk's unit into dst and commits it as one
// cp.async group (an empty group past the end, so that every unit
// consumed has PW groups after it's: wait_group PW-1 then means "this one")
__device__ __forceinline__ void walk_fetch(const Params &p, const Walk &w, uint8_t *dst, bool ef,
                                           unsigned long long pol, unsigned long long *full) {
  const int lane = threadIdx.x & 31;
#ifdef LS_TMA
  if (!w.done && lane == 0) bulk_unit(dst, w.codes, w.sc, w.n0 + w.c0 + w.i, full);
  return;
#endif
  if (!w.done) {
    const int n = w.n0 + w.c0 + w.i;
    const uint4 *src = w.codes + (size_t)n * 96;
#pragma unroll
    for (int j = 0; j < 3; j++) cp16(dst + (lane + 32 * j) * 16, src + lane + 32 * j, ef, pol);
    if (lane < 4) cp16(dst + UCODE + lane * 16, w.sc + (size_t)n * 32 + lane * 8, ef, pol);
  }
  asm volatile("cp.async.commit_group;" ::: "memory");
}

#ifdef LS_PTRACE
// -DLS_PTRACE: block 0's first producer warp, lane 0: units, clocks in the
// free-slot test or wait, clocks issuing the copies, clocks from the first
// unit to the last
__device__ unsigned long long g_ptrace[4];
#endif
// the producer warp: every unit of every matrix the block will multiply, in order
__device__ void producer(const Params &p, const Smem &s) {
  if (p.mode >= 3) return; // the multiply alone, or the chain alone: no weights stream
  const int lane = threadIdx.x & 31;
  unsigned long long pol = 0;
  if (p.ef) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  const unsigned ns = (unsigned)p.ns;
  const unsigned pw = (threadIdx.x >> 5) - NCW; // this producer warp: units seq ≡ pw (mod NPW)
  unsigned seq = 0, slot = 0, k = 0; // k: the slot's use, counted from 0
#ifdef LS_PTRACE
  const bool tr = blockIdx.x == 0 && pw == 0 && lane == 0;
  unsigned long long tn = 0, twait = 0, tissue = 0, tfirst = 0, c0 = 0, c1 = 0;
#endif
  for (int t = 0; t < p.T; t++)
    for (int l = 0; l <= p.L; l++)
      for (int m = 0; m < NM; m++) {
        if (l == p.L && m > 0) break;
        const int mm = l == p.L ? NM : m, mi = mat_index(p, l, mm);
        const Range r = range_of(p, mm);
        const uint4 *codes = p.codes[mi];
        const unsigned short *sc = p.sc[mi];
#ifdef LS_TMA
        if (G) { // the group form (lane 0): a group's free-slot wait at its first slot, its bytes at its last
          if (lane != 0) continue;
          // a run at a time: the matrix's next units up to the group's end
          for (int n = r.n0; n < r.n1;) {
            const unsigned gs = slot % GM, g = slot / GM, cnt = min((unsigned)(GM - gs), (unsigned)(r.n1 - n));
#ifdef LS_PTRACE
            if (tr) c0 = clock64(), tfirst = tn == 0 ? c0 : tfirst;
#endif
            if (gs == 0 && k > 0) mbar_wait(p, &s.empty[g], (k - 1) & 1u, 1, &s.stat[1]);
#ifdef LS_PTRACE
            if (tr) c1 = clock64(), twait += c1 - c0, tn += cnt;
#endif
            unsigned long long *fb = &s.full[full_of(g, k)];
            mbar_expect_only(fb, cnt * SLOT);
            bulk(s.ring + slot_codes(slot), codes + (size_t)n * 96, cnt * UCODE, fb);
            bulk(s.ring + slot_scales(p.ns, slot), sc + (size_t)n * 32, cnt * USC, fb);
            if (gs + cnt == G) mbar_arrive(fb);
#ifdef LS_PTRACE
            if (tr) tissue += clock64() - c1;
#endif
            n += cnt, seq += cnt, slot += cnt;
            if (slot == ns) slot = 0, k++;
          }
          continue;
        }
#endif
        for (int n = r.n0; n < r.n1; n++, seq++) {
          if (NPW > 1 && seq % NPW != pw) { // another producer warp's unit
            if (++slot == ns) slot = 0, k++;
            continue;
          }
#ifdef LS_PTRACE
          if (tr) c0 = clock64();
          if (tr && tn == 0) tfirst = c0;
#endif
          if (k > 0) mbar_wait(p, &s.empty[slot], (k - 1) & 1u, 1, &s.stat[1]);
#ifdef LS_PTRACE
          if (tr) c1 = clock64(), twait += c1 - c0, tn++;
#endif
          if (p.mode == 2 && *s.open < (int)seq) {
            const unsigned long long t0 = gtime();
            while (*s.open < (int)seq) {
              __nanosleep(64);
              if (gtime() - t0 > TIMEOUT) fail(p, 2);
            }
          }
          uint8_t *dst = s.ring + (size_t)slot * SLOT;
#ifdef LS_TMA
          if (lane == 0) bulk_unit(dst, codes, sc, n, &s.full[slot]);
#ifdef LS_PTRACE
          if (tr) tissue += clock64() - c1;
#endif
          if (++slot == ns) slot = 0, k++;
          continue;
#endif
          const uint4 *src = codes + (size_t)n * 96;
#pragma unroll
          for (int j = 0; j < 3; j++) cp16(dst + (lane + 32 * j) * 16, src + lane + 32 * j, p.ef, pol);
          if (lane < 4) cp16(dst + UCODE + lane * 16, sc + (size_t)n * 32 + lane * 8, p.ef, pol);
          asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" ::"r"(smem_addr(&s.full[slot])) : "memory");
#ifdef LS_PTRACE
          if (tr) tissue += clock64() - c1;
#endif
          if (++slot == ns) slot = 0, k++;
        }
      }
#ifdef LS_TMA
  if (G && lane == 0 && slot % GM != 0) mbar_arrive(&s.full[full_of(slot / GM, k)]); // the last group, if partial
#endif
  asm volatile("cp.async.wait_all;" ::: "memory");
#ifdef LS_PTRACE
  if (tr) g_ptrace[0] = tn, g_ptrace[1] = twait, g_ptrace[2] = tissue, g_ptrace[3] = clock64() - tfirst;
#endif
}

// the consumers' share of matrix m (units seq0.. of the ring) into s.acc,
// then added to y (R rows) and counted in *c; the head (best set) also
// leaves the block's best row there. Modes 5 and 6: the warp's units come
// from its own slots, PW in flight along wk (kw: units the warp has taken)
template <bool WF>
__device__ void gemv(const Params &p, const Smem &s, int m, unsigned seq0, float *y, int *c, float2 *best_out,
                     Walk &wk, unsigned &kw, unsigned long long pol) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const Range r = range_of(p, m);
  const int U = p.U[m], R = p.R[m], rg0 = r.n0 / U, len = r.n1 - r.n0;
  if (p.mode == 2 && threadIdx.x == 0) *s.open = (int)(seq0 + len - 1);
  const int4 *xs4 = (const int4 *)s.xs;
#ifdef LS_MMA
  const int *xs32 = (const int *)s.xs;
#endif
  const unsigned ns = (unsigned)p.ns;
  // the level table through shared memory, so that ptxas keeps it in two
  // registers instead of copying the kernel parameter's uniform register
  // before every PRMT (NOTES.md runs 138, 149: 25-34 IMAD.U32 a unit)
  const unsigned t0 = s.tab[0], t1 = s.tab[1];
  unsigned sel[4];
  const int ch = chunk_of(len);
  constexpr bool wf = WF;
  unsigned long long waited = 0; // modes 5, 6 (lane 0)
  for (int c0 = w * ch; p.mode != 4 && c0 < len; c0 += NCW * ch) {
    // the chunk's first unit: its row group and column unit, its slot and
    // the slot's phase; the rest follow by increments
    int rg = (r.n0 + c0) / U, u = r.n0 + c0 - rg * U;
    const unsigned sq = seq0 + (unsigned)c0;
    unsigned slot = sq % ns, turn = sq / ns; // the slot's turn round the ring: its full barrier's phase
    float acc = 0.f;
#ifdef LS_MMA
    float acc4[4] = {0.f, 0.f, 0.f, 0.f};
#endif
    const int n = min(ch, len - c0);
#ifdef LS_PAIR
    // -DLS_PAIR (mode 3 only): the chunk's units two at a time, their
    // decodes and products interleaved in one loop (independent work for a
    // warp that waits on its own chains, run 194), each unit's flush and
    // bookkeeping as below, in order
    if (!wf && p.mode == 3) {
      for (int i = 0; i < n; i += 2) {
        const bool two = i + 1 < n;
        const unsigned slot1 = slot + 1 == ns ? 0 : slot + 1;
        const uint4 *s0 = (const uint4 *)(s.ring + (size_t)slot * SLOT);
        const uint4 *s1 = (const uint4 *)(s.ring + (size_t)(two ? slot1 : slot) * SLOT);
        uint4 w0[3], w1[3];
#pragma unroll
        for (int j = 0; j < 3; j++) w0[j] = s0[lane + 32 * j], w1[j] = s1[lane + 32 * j];
        const unsigned short sv0 = ((const unsigned short *)(s0 + UCODE / 16))[lane];
        const unsigned short sv1 = ((const unsigned short *)(s1 + UCODE / 16))[lane];
        const int u1 = u + 1 == U ? 0 : u + 1;
        unsigned sel0[4], sel1[4];
        int ia0 = 0, ia1 = 0;
#pragma unroll
        for (int c2 = 0; c2 < 8; c2++) {
          unsigned b0[4], b1[4];
          chunk_pair_bytes<3, 0, true>(w0, c2, b0, t0, t1, 0u, 0u, nullptr, sel0);
          chunk_pair_bytes<3, 0, true>(w1, c2, b1, t0, t1, 0u, 0u, nullptr, sel1);
          const int4 x0 = xs4[u * 8 + c2], x1 = xs4[u1 * 8 + c2];
          ia0 = dp4a_us(b0[0], x0.x, ia0);
          ia1 = dp4a_us(b1[0], x1.x, ia1);
          ia0 = dp4a_us(b0[1], x0.y, ia0);
          ia1 = dp4a_us(b1[1], x1.y, ia1);
          ia0 = dp4a_us(b0[2], x0.z, ia0);
          ia1 = dp4a_us(b1[2], x1.z, ia1);
          ia0 = dp4a_us(b0[3], x0.w, ia0);
          ia1 = dp4a_us(b1[3], x1.w, ia1);
        }
        for (int k = 0; k < (two ? 2 : 1); k++) {
          const int ia = k == 0 ? ia0 : ia1;
          const float4 f = s.xf[u];
          const float scf = __half2float(__ushort_as_half(k == 0 ? sv0 : sv1));
          acc = fmaf(scf, f.y, fmaf(scf * f.x, (float)ia, acc));
          if (++slot == ns) slot = 0, turn++;
          const bool end = ++u == U;
          if (end || i + k == n - 1) atomicAdd(&s.acc[(rg - rg0) * 32 + lane], acc), acc = 0.f;
          if (end) u = 0, rg++;
        }
      }
      continue;
    }
#endif
    int ga = 0; // the group form: the index in the chunk of its first unit in the current group
    for (int i = 0; i < n; i++) {
      const uint8_t *src;
      if (wf) { // the warp's own slot kw % PW: wait for its group (PW-1 later ones may still be pending)
        src = s.ring + (size_t)(w * PW + kw % PW) * SLOT;
        const unsigned long long t0 = lane == 0 ? gtime() : 0;
#ifdef LS_TMA
        while (!mbar_done(&s.full[w * PW + kw % PW], (kw / PW) & 1u)) {
        }
#else
        asm volatile("cp.async.wait_group %0;" ::"n"(PW - 1) : "memory");
#endif
        if (lane == 0) waited += gtime() - t0;
        __syncwarp(); // (each lane's copies, seen by the others)
      } else {
        if (p.mode != 3 && !G) mbar_wait(p, &s.full[slot], turn & 1u, 3, &s.stat[0]);
        if (p.mode != 3 && G && (i == 0 || slot % GM == 0))
          mbar_wait(p, &s.full[full_of(slot / GM, turn)], full_parity(turn), 3, &s.stat[0]);
        src = s.ring + slot_codes(slot);
      }
      uint4 wv[3];
#pragma unroll
      for (int j = 0; j < 3; j++) wv[j] = ((const uint4 *)src)[lane + 32 * j];
      const unsigned short sv =
          ((const unsigned short *)(wf ? src + UCODE : s.ring + slot_scales(p.ns, slot)))[lane];
#ifdef LS_CHECK
      // -DLS_CHECK: each unit's last scale is its index (mod 2^16): a unit
      // read before its own bytes landed (a phase passed on parity) gives up
      // at site 1,000,000 + the stamp read less the one expected (mod 2^16:
      // 2^16 - ns, the slot's previous turn; ns, its next)
      if (!wf && p.mode != 3 && lane == 31 && sv != (unsigned short)(r.n0 + c0 + i))
        fail(p, 1000000 + (int)(unsigned short)(sv - (unsigned short)(r.n0 + c0 + i)));
#endif
      __syncwarp();
      if (wf) { // the slot read: refill it with the unit PW ahead
        walk_fetch(p, wk, (uint8_t *)src, p.ef, pol, &s.full[w * PW + kw % PW]);
        walk_next(p, wk);
        kw++;
      } else if (lane == 0 && p.mode != 3) {
        // (the group form: one arrival for the chunk's units in the group, at its last)
        // (-DLS_EARLY: one arrival a unit, as soon as the warp holds it in registers)
#ifdef LS_EARLY
        constexpr bool early = true;
#else
        constexpr bool early = false;
#endif
        if (!G || early) mbar_arrive(&s.empty[slot / GM]);
        else if (i == n - 1 || (slot + 1) % GM == 0) mbar_arrive_n(&s.empty[slot / GM], (unsigned)(i + 1 - ga));
      }
      if (G && (slot + 1) % GM == 0) ga = i + 1;
#ifdef LS_MMA
      // the unit as tensor-core tiles: lane (g, q) = (lane / 4, lane % 4)
      // holds rows g + 8i (i = 0..3) of the row group, its selector (p, j)
      // the A registers of row tile p / 2 and k-tile j (nibbles 0-3 the
      // k-quad q, 4-7 the quad q + 4, rows g or g + 8 by p & 1): the
      // same 48 bytes a lane and the same decode as the dp4a loop, with the
      // 32 IDP.4A a lane replaced by 8 mma a warp; every column of B is the
      // activations, so every column of D is the rows' sums
      const uint2 sv4 = *(const uint2 *)(src + UCODE + (lane >> 2) * 8);
      int dm[2][4] = {};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int b0 = xs32[u * 32 + j * 8 + (lane & 3)], b1 = xs32[u * 32 + j * 8 + 4 + (lane & 3)];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          const unsigned s0 = sel3<true>(comp(wv[0], j), comp(wv[1], j), comp(wv[2], j), 2 * mt);
          const unsigned s1 = sel3<true>(comp(wv[0], j), comp(wv[1], j), comp(wv[2], j), 2 * mt + 1);
          ls_mma(dm[mt], prmt_sign(t0, t1, s0), prmt_sign(t0, t1, s1), prmt_sign(t0, t1, s0 >> 16),
                 prmt_sign(t0, t1, s1 >> 16), b0, b1);
        }
      }
      const float4 f = s.xf[u];
      const unsigned short svh[4] = {(unsigned short)sv4.x, (unsigned short)(sv4.x >> 16), (unsigned short)sv4.y,
                                     (unsigned short)(sv4.y >> 16)};
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const float scf = __half2float(__ushort_as_half(svh[k]));
        acc4[k] = fmaf(scf, f.y, fmaf(scf * f.x, (float)dm[k >> 1][2 * (k & 1)], acc4[k]));
      }
      (void)sv;
#else
      // -DLS_ACC=n: the unit's 32 IDP.4A as n independent chains (link k of
      // a chunk pair to chain k mod n), summed before the flush (the same
      // integer sum)
      int iac[LS_ACC] = {};
#pragma unroll
      for (int c2 = 0; c2 < 8; c2++) {
        unsigned b[4];
        chunk_pair_bytes<3, 0, true>(wv, c2, b, t0, t1, 0u, 0u, nullptr, sel);
        const int4 xv = xs4[u * 8 + c2];
        iac[(4 * c2 + 0) % LS_ACC] = dp4a_us(b[0], xv.x, iac[(4 * c2 + 0) % LS_ACC]);
        iac[(4 * c2 + 1) % LS_ACC] = dp4a_us(b[1], xv.y, iac[(4 * c2 + 1) % LS_ACC]);
        iac[(4 * c2 + 2) % LS_ACC] = dp4a_us(b[2], xv.z, iac[(4 * c2 + 2) % LS_ACC]);
        iac[(4 * c2 + 3) % LS_ACC] = dp4a_us(b[3], xv.w, iac[(4 * c2 + 3) % LS_ACC]);
      }
      int ia = 0;
#pragma unroll
      for (int k = 0; k < LS_ACC; k++) ia += iac[k];
      const float4 f = s.xf[u];
      const float scf = __half2float(__ushort_as_half(sv));
      acc = fmaf(scf, f.y, fmaf(scf * f.x, (float)ia, acc));
#endif
      if (++slot == ns) slot = 0, turn++;
      // the row group's sums so far to the block's rows, at its end or the chunk's
      const bool end = ++u == U;
#ifdef LS_MMA
      if (end || i == n - 1) {
        if ((lane & 3) == 0)
#pragma unroll
          for (int k = 0; k < 4; k++) atomicAdd(&s.acc[(rg - rg0) * 32 + (lane >> 2) + 8 * k], acc4[k]);
#pragma unroll
        for (int k = 0; k < 4; k++) acc4[k] = 0.f;
      }
#else
      if (end || i == n - 1) atomicAdd(&s.acc[(rg - rg0) * 32 + lane], acc), acc = 0.f;
#endif
      if (end) u = 0, rg++;
    }
  }
  if (wf && lane == 0 && waited > 0) atomicAdd(&s.stat[0], waited);
  bar_consumers();
  const int nrow = (min((r.n1 - 1) / U, R / 32 - 1) - rg0 + 1) * 32;
  float best = -3.0e38f;
  int bi = 0;
  for (int i = threadIdx.x; i < nrow; i += NCT) {
    const float v = s.acc[i];
    atomicAdd(&y[rg0 * 32 + i], v);
    s.acc[i] = 0.f;
    if (v > best) best = v, bi = rg0 * 32 + i;
  }
  if (best_out != nullptr) { // the head: the block's best row (values of a row split between blocks taken as they are)
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (ob > best) best = ob, bi = oi;
    }
    if (lane == 0) s.red[w] = best, s.red[64 + w] = __int_as_float(bi);
    bar_consumers();
    if (threadIdx.x == 0) {
      for (int k = 1; k < NCW; k++)
        if (s.red[k] > best) best = s.red[k], bi = __float_as_int(s.red[64 + k]);
      best_out[blockIdx.x] = make_float2(best, __int_as_float(bi));
    }
  }
  if (chain(p))
    count(c);
  else
    bar_consumers(); // (s.acc zeroed before the next matrix's adds)
}

// the Hadamard stages over blocks of rb values of s.sm[0, n), radix 4 then
// one radix 2 if needed, a consumer barrier a stage (as upg_rms_rotq)
__device__ void rotate(const Smem &s, int n, int rb) {
#ifdef LS_NOROT
  // -DLS_NOROT: no Hadamard stages (what a residual stream kept rotated, the
  // rotations folded into the weights offline, would leave of the chain)
  return;
#endif
  int h = 1;
  for (; 4 * h <= rb; h <<= 2) {
    for (int q = threadIdx.x; q < n / 4; q += NCT) {
      const int j = ((q & ~(h - 1)) << 2) | (q & (h - 1));
      const float a = s.sm[j], b = s.sm[j + h], c = s.sm[j + 2 * h], d = s.sm[j + 3 * h];
      const float ab = a + b, amb = a - b, cd = c + d, cmd = c - d;
      s.sm[j] = ab + cd, s.sm[j + h] = amb + cmd, s.sm[j + 2 * h] = ab - cd, s.sm[j + 3 * h] = amb - cmd;
    }
    bar_consumers();
  }
  if (h < rb) {
    for (int q = threadIdx.x; q < n / 2; q += NCT) {
      const int j = ((q & ~(h - 1)) << 1) | (q & (h - 1));
      const float a = s.sm[j], b = s.sm[j + h];
      s.sm[j] = a + b, s.sm[j + h] = a - b;
    }
    bar_consumers();
  }
}

// s.sm[0, n) → int8 groups of 128 at xq, factors at xf (one warp a group)
__device__ void quantize(const Smem &s, int n, float scale, int8_t *xq, float4 *xf) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  for (int g = w; g < n / 128; g += NCW)
    quant_group([&](int i) { return s.sm[g * 128 + i] * scale; }, 0, 0, g * 128, 128, lane, n, n / 128, 1.f, 0.f,
                nullptr, xq, n, xf);
  bar_consumers();
}

// the residual row x (or the embedding row e, or the merged heads: norm
// false) → the block's activations. A thread's loads are all issued before
// its stores to shared memory: one L2 round trip.
__device__ void norm_rotq(const Params &p, const Smem &s, const float *x, const __half *e, bool norm) {
  constexpr int NV = (D / 4 + NCT - 1) / NCT;
  float4 v[NV];
#ifndef LS_RESROT
  float4 wt[NV];
#endif
#pragma unroll
  for (int k = 0; k < NV; k++) {
    const int i = threadIdx.x + k * NCT;
    if (i >= D / 4) break;
#ifndef LS_RESROT
    if (norm) wt[k] = __ldg((const float4 *)p.normw + i);
#endif
    if (e != nullptr) {
      const uint2 hv = __ldg((const uint2 *)e + i);
      const float2 a = __half22float2(*(const __half2 *)&hv.x), b = __half22float2(*(const __half2 *)&hv.y);
      v[k] = make_float4(a.x, a.y, b.x, b.y);
    } else {
      v[k] = __ldcg((const float4 *)x + i);
    }
  }
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < NV; k++) {
    const int i = threadIdx.x + k * NCT;
    if (i >= D / 4) break;
    if (norm) {
      ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
#ifndef LS_RESROT
      v[k].x *= wt[k].x, v[k].y *= wt[k].y, v[k].z *= wt[k].z, v[k].w *= wt[k].w;
#endif
    }
    ((float4 *)s.sm)[i] = v[k];
  }
  float rs = 1.f;
  if (norm) {
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) s.red[threadIdx.x >> 5] = ss;
  }
  bar_consumers();
  if (norm) {
    ss = 0.f;
    for (int k = 0; k < NCW; k++) ss += s.red[k];
    rs = rsqrtf(ss / D + 1e-5f);
  }
#ifdef LS_RESROT
  // -DLS_RESROT: the residual stream kept rotated (compress --rotate-residual):
  // the norms have neither gain nor rotation; o's input and the SwiGLU keep theirs
  if (!norm)
#endif
    rotate(s, D, 1024);
  quantize(s, D, rs * (1.f / 32.f), s.xs, s.xf);
}

// attention item (kv head hh, split sp): 4 query heads over the split's positions
__device__ void attention(const Params &p, const Smem &s, int t, int l, int hh, int sp) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  AREC(0);
  const int p0 = p.P * sp / p.S, p1 = p.P * (sp + 1) / p.S;
  const float *q = p.yqkv + ((size_t)t * p.L + l) * QKV + hh * 4 * HD;
  float4 qv[4];
#pragma unroll
  for (int k = 0; k < 4; k++) qv[k] = __ldcg((const float4 *)(q + k * HD) + lane);
  const size_t row0 = ((size_t)l * HEADS_KV + hh) * p.P;
  float sc[4][AJ], mx[4] = {-3e38f, -3e38f, -3e38f, -3e38f};
  uint2 kr[AJ] = {}, vr[AJ] = {};
#pragma unroll
  for (int j = 0; j < AJ; j++) { // positions w, w + NCW, ... of the split (main checks it has ≤ NCW·AJ)
    const int pos = p0 + w + j * NCW;
    if (pos < p1) {
      kr[j] = __ldcg((const uint2 *)(p.kc + (row0 + pos) * HD) + lane);
      vr[j] = __ldcg((const uint2 *)(p.vc + (row0 + pos) * HD) + lane);
    }
  }
#pragma unroll
  for (int j = 0; j < AJ; j++) {
    const int pos = p0 + w + j * NCW;
    const float2 k01 = __half22float2(*(const __half2 *)&kr[j].x), k23 = __half22float2(*(const __half2 *)&kr[j].y);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      float d = qv[k].x * k01.x + qv[k].y * k01.y + qv[k].z * k23.x + qv[k].w * k23.y;
      for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
      sc[k][j] = pos < p1 ? d * 0.08838835f : -3e38f;
      mx[k] = fmaxf(mx[k], sc[k][j]);
    }
  }
  AREC(1);
  float *red = s.red; // [k·32 + w] maxima, then sums
  if (lane == 0)
    for (int k = 0; k < 4; k++) red[k * 32 + w] = mx[k];
  float *o = s.sm; // 4 · HD sums
  for (int i = threadIdx.x; i < 4 * HD; i += NCT) o[i] = 0.f;
  bar_consumers();
  AREC(2);
  float lsum[4];
#ifdef LS_NOATOM
  float4 accs[4];
#endif
#pragma unroll
  for (int k = 0; k < 4; k++) {
    float m = -3e38f;
    for (int i = 0; i < NCW; i++) m = fmaxf(m, red[k * 32 + i]);
    mx[k] = m;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    lsum[k] = 0.f;
#pragma unroll
    for (int j = 0; j < AJ; j++) {
      if (p0 + w + j * NCW >= p1) continue;
      const float e = __expf(sc[k][j] - m);
      lsum[k] += e;
      const float2 v01 = __half22float2(*(const __half2 *)&vr[j].x), v23 = __half22float2(*(const __half2 *)&vr[j].y);
      acc.x += e * v01.x, acc.y += e * v01.y, acc.z += e * v23.x, acc.w += e * v23.y;
    }
#ifdef LS_NOATOM
    accs[k] = acc;
#else
    atomicAdd(&o[k * HD + 4 * lane], acc.x), atomicAdd(&o[k * HD + 4 * lane + 1], acc.y);
    atomicAdd(&o[k * HD + 4 * lane + 2], acc.z), atomicAdd(&o[k * HD + 4 * lane + 3], acc.w);
#endif
  }
#ifdef LS_NOATOM
  // -DLS_NOATOM: the warps' value sums added through shared memory (each
  // warp's two heads at a time into a slot of its own, then one thread an
  // output sums the warps in order) instead of 16 float atomics a lane on
  // addresses every warp shares (run 199: 4.9 µs of the item)
  static_assert(4 * HD + NCW * 2 * HD <= D, "LS_NOATOM: the warps' sums do not fit s.sm");
  float *ws = s.sm + 4 * HD; // NCW · 2·HD floats
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    ((float4 *)(ws + w * 2 * HD))[lane] = accs[2 * hf];
    ((float4 *)(ws + w * 2 * HD + HD))[lane] = accs[2 * hf + 1];
    bar_consumers();
    if (threadIdx.x < 2 * HD) {
      float v = 0.f;
      for (int i = 0; i < NCW; i++) v += ws[i * 2 * HD + threadIdx.x];
      o[hf * 2 * HD + threadIdx.x] = v;
    }
    bar_consumers();
  }
#endif
  bar_consumers();
  AREC(3);
  if (lane == 0)
    for (int k = 0; k < 4; k++) red[k * 32 + w] = lsum[k];
  bar_consumers();
  AREC(4);
  // the partial: per head m, l, then HD sums
  constexpr int PART = 4 * (HD + 2);
  float *wsp = p.ws + ((((size_t)t * p.L + l) * HEADS_KV + hh) * p.S + sp) * PART;
  for (int i = threadIdx.x; i < 4 * HD; i += NCT) wsp[8 + i] = o[i];
  if (threadIdx.x < 4) {
    float ls = 0.f;
    for (int i = 0; i < NCW; i++) ls += red[threadIdx.x * 32 + i];
    wsp[threadIdx.x] = mx[threadIdx.x], wsp[4 + threadIdx.x] = ls;
  }
  bar_consumers();
  AREC(5);
  // the head's last split merges it
  __shared__ int last;
  if (threadIdx.x == 0) {
    int *hc = p.cnt + (size_t)p.L * 8 + 1 + l * HEADS_KV + hh;
    __threadfence(); // (count's pattern: the partial's writes before the add)
    last = atomicAdd(hc, 1) == p.S * (t + 1) - 1;
    __threadfence(); // (the other splits' partials, read below, after their adds)
  }
  bar_consumers();
  AREC(6);
  if (!last) return;
  const float *base = p.ws + (((size_t)t * p.L + l) * HEADS_KV + hh) * p.S * PART;
  float *out = p.att + ((size_t)t * p.L + l) * D + hh * 4 * HD;
#ifdef LS_MERGE1
  // -DLS_MERGE1: the splits' m and l (8 floats a split) into shared memory in
  // one L2 round trip, then each value's S sums in a second (all asked for
  // at once), the same arithmetic in the same order as below
  constexpr int SMAX = 13; // (main refuses more splits with LS_MERGE1)
  if (threadIdx.x < 8 * p.S) s.red[threadIdx.x] = __ldcg(base + (threadIdx.x >> 3) * PART + (threadIdx.x & 7));
  bar_consumers();
  for (int i = threadIdx.x; i < 4 * HD; i += NCT) {
    const int k = i / HD;
    float pn[SMAX];
#pragma unroll
    for (int j = 0; j < SMAX; j++)
      if (j < p.S) pn[j] = __ldcg(base + j * PART + 8 + i);
    float m = -3e38f;
    for (int j = 0; j < p.S; j++) m = fmaxf(m, s.red[j * 8 + k]);
    float num = 0.f, den = 0.f;
#pragma unroll
    for (int j = 0; j < SMAX; j++)
      if (j < p.S) {
        const float e = __expf(s.red[j * 8 + k] - m);
        den += e * s.red[j * 8 + 4 + k];
        num += e * pn[j];
      }
    out[i] = num / den;
  }
#else
  for (int i = threadIdx.x; i < 4 * HD; i += NCT) {
    const int k = i / HD;
    float m = -3e38f;
    for (int j = 0; j < p.S; j++) m = fmaxf(m, __ldcg(base + j * PART + k));
    float num = 0.f, den = 0.f;
    for (int j = 0; j < p.S; j++) {
      const float e = __expf(__ldcg(base + j * PART + k) - m);
      den += e * __ldcg(base + j * PART + 4 + k);
      num += e * __ldcg(base + j * PART + 8 + i);
    }
    out[i] = num / den;
  }
#endif
  count(p.cnt + l * 8 + 5);
}

// SwiGLU of 512-wide segment g (gate rows g·512.., up rows FF + g·512..)
__device__ void swiglu(const Params &p, const Smem &s, int t, int l, int g) {
  const float *y = p.ygu + ((size_t)t * p.L + l) * 2 * FF;
  float a[2], b[2];
#pragma unroll
  for (int k = 0; k < 2; k++) {
    const int i = threadIdx.x + k * NCT;
    if (i < 512) a[k] = __ldcg(y + g * 512 + i), b[k] = __ldcg(y + FF + g * 512 + i);
  }
#pragma unroll
  for (int k = 0; k < 2; k++) {
    const int i = threadIdx.x + k * NCT;
    if (i < 512) s.sm[i] = a[k] / (1.f + __expf(-a[k])) * b[k];
  }
  bar_consumers();
  rotate(s, 512, 512);
  quantize(s, 512, 1.f / 22.627417f, p.xg + ((size_t)t * p.L + l) * FF + g * 512,
           p.fg + ((size_t)t * p.L + l) * (FF / 128) + g * 4);
}

template <bool WF> __global__ void __launch_bounds__(NTH, 1) step(Params p) {
  extern __shared__ __align__(16) uint8_t smem[];
  Smem s;
  uint8_t *q = smem;
  s.ring = q, q += (size_t)p.ns * SLOT;
  s.full = (unsigned long long *)q, q += (size_t)p.ns * 8;
  s.empty = (unsigned long long *)q, q += (size_t)p.ns * 8;
  s.xs = (int8_t *)q, q += FF;
  s.xf = (float4 *)q, q += FF / 128 * 16;
  s.acc = (float *)q, q += (size_t)p.rgmax * 32 * 4;
  s.sm = (float *)q, q += (size_t)D * 4;
  s.red = (float *)q, q += 128 * 4;
  s.open = (volatile int *)q, q += 8;
  s.tab = (volatile unsigned *)q, q += 8;
  s.stat = (unsigned long long *)q;
#ifdef LS_TMA
  constexpr unsigned FULL_ARRIVALS = 1; // the producing lane's expect_tx
#else
  constexpr unsigned FULL_ARRIVALS = 32; // each lane's cp.async arrive
#endif
  for (int i = threadIdx.x; i < p.ns; i += NTH) mbar_init(&s.full[i], FULL_ARRIVALS), mbar_init(&s.empty[i], G ? G : 1);
#ifdef LS_TMA
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); // the inits, seen by the copy engine
#endif
  for (int i = threadIdx.x; i < p.rgmax * 32; i += NTH) s.acc[i] = 0.f;
  for (int i = threadIdx.x; i < FF / 4; i += NTH) ((int *)s.xs)[i] = 0x01010101;
  for (int i = threadIdx.x; i < FF / 128; i += NTH) s.xf[i] = make_float4(1.f, 0.f, 0.f, 0.f);
  if (threadIdx.x == 0) *s.open = -1, s.tab[0] = p.t0, s.tab[1] = p.t1, s.stat[0] = s.stat[1] = 0;
  __syncthreads();
  if (threadIdx.x >= NCT) {
    producer(p, s);
    return;
  }
  const bool b0 = blockIdx.x == 0;
  const int nb = gridDim.x;
  unsigned seq = 0;
  // modes 5, 6: each consumer warp's first PW units, asked for now
  unsigned long long pol = 0;
  if (p.ef) asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  Walk wk = {};
  unsigned kw = 0;
  if (WF) {
    walk_matrix(p, wk);
    for (int k = 0; k < PW; k++) {
      walk_fetch(p, wk, s.ring + (size_t)((threadIdx.x >> 5) * PW + k) * SLOT, p.ef, pol,
                 &s.full[(threadIdx.x >> 5) * PW + k]);
      walk_next(p, wk);
    }
  }
  auto rec = [&](int t, int l, int k) {
    if (b0 && threadIdx.x == 0) p.rec[((size_t)t * p.L + l) * NEV + k] = gtime();
  };
  auto mat_units = [&](int m) {
    const Range r = range_of(p, m);
    return (unsigned)(r.n1 - r.n0);
  };
  for (int t = 0; t < p.T; t++) {
    float *h = p.h + (size_t)t * D;
    if (b0 && threadIdx.x == 0)
      p.stat[2 * t] = *(volatile unsigned long long *)&s.stat[0], p.stat[2 * t + 1] = *(volatile unsigned long long *)&s.stat[1];
    for (int l = 0; l < p.L; l++) {
      int *c = p.cnt + l * 8;
      const __half *emb = nullptr;
      rec(t, l, 0);
      if (chain(p)) {
        if (l == 0) {
          if (t > 0) { // the previous token's bests, then its embedding row
            wait_count(p, p.cnt + (size_t)p.L * 8, nb * t, 10);
            __shared__ int tok;
            if (threadIdx.x < 32) {
              float b = -3e38f;
              int bi = 0;
              for (int i = threadIdx.x; i < nb; i += 32) {
                const float2 v = __ldcg(p.best + (size_t)(t - 1) * nb + i);
                if (v.x > b) b = v.x, bi = __float_as_int(v.y);
              }
              for (int o = 16; o > 0; o >>= 1) {
                const float ob = __shfl_xor_sync(0xffffffffu, b, o);
                const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (ob > b) b = ob, bi = oi;
              }
              if (threadIdx.x == 0) tok = min(max(bi, 0), VOCAB - 1);
            }
            bar_consumers();
            emb = p.emb + (size_t)tok * D;
            if (b0) // the row is the residual (block 0 writes it; its count after q|k|v publishes it)
              for (int i = threadIdx.x; i < D; i += NCT) h[i] = __half2float(emb[i]);
          }
        } else {
          wait_count(p, p.cnt + (l - 1) * 8 + 3, nb * (t + 1), 11);
        }
        rec(t, l, 1);
        norm_rotq(p, s, h, emb, true);
      }
      rec(t, l, 2);
      gemv<WF>(p, s, 0, seq, p.yqkv + ((size_t)t * p.L + l) * QKV, c + 0, nullptr, wk, kw, pol);
      seq += mat_units(0);
      rec(t, l, 3);
      if (chain(p)) {
        wait_count(p, c + 0, nb * (t + 1), 12);
        rec(t, l, 4);
        if ((int)blockIdx.x < HEADS_KV * p.S) attention(p, s, t, l, blockIdx.x / p.S, blockIdx.x % p.S);
        rec(t, l, 5);
        wait_count(p, c + 5, HEADS_KV * (t + 1), 13);
        norm_rotq(p, s, p.att + ((size_t)t * p.L + l) * D, nullptr, false);
      }
      rec(t, l, 6);
      gemv<WF>(p, s, 1, seq, h, c + 1, nullptr, wk, kw, pol);
      seq += mat_units(1);
      if (chain(p)) {
        wait_count(p, c + 1, nb * (t + 1), 14);
        rec(t, l, 7);
        norm_rotq(p, s, h, nullptr, true);
      }
      rec(t, l, 8);
      gemv<WF>(p, s, 2, seq, p.ygu + ((size_t)t * p.L + l) * 2 * FF, c + 2, nullptr, wk, kw, pol);
      seq += mat_units(2);
      if (chain(p)) {
        wait_count(p, c + 2, nb * (t + 1), 15);
        rec(t, l, 9);
        for (int g = blockIdx.x; g < FF / 512; g += nb) swiglu(p, s, t, l, g);
        count(c + 6);
        wait_count(p, c + 6, nb * (t + 1), 16);
        rec(t, l, 10);
        const int8_t *xg = p.xg + ((size_t)t * p.L + l) * FF;
        const float4 *fg = p.fg + ((size_t)t * p.L + l) * (FF / 128);
        constexpr int NX = (FF / 16 + NCT - 1) / NCT;
        int4 xv[NX];
        float4 fv = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int k = 0; k < NX; k++)
          if (threadIdx.x + k * NCT < FF / 16) xv[k] = __ldcg((const int4 *)xg + threadIdx.x + k * NCT);
        if (threadIdx.x < FF / 128) fv = __ldcg(fg + threadIdx.x);
#pragma unroll
        for (int k = 0; k < NX; k++)
          if (threadIdx.x + k * NCT < FF / 16) ((int4 *)s.xs)[threadIdx.x + k * NCT] = xv[k];
        if (threadIdx.x < FF / 128) s.xf[threadIdx.x] = fv;
        bar_consumers();
      }
      rec(t, l, 11);
      gemv<WF>(p, s, 3, seq, h, c + 3, nullptr, wk, kw, pol);
      seq += mat_units(3);
    }
    if (chain(p)) {
      wait_count(p, p.cnt + (p.L - 1) * 8 + 3, nb * (t + 1), 17);
      norm_rotq(p, s, h, nullptr, true);
    }
    gemv<WF>(p, s, NM, seq, p.logit + (size_t)t * VOCAB, p.cnt + (size_t)p.L * 8, p.best + (size_t)t * nb, wk, kw, pol);
    seq += mat_units(NM);
  }
  if (WF) asm volatile("cp.async.wait_all;" ::: "memory"); // (the empty groups past the end)
}

int main(int argc, char **argv) {
  Params p = {};
  p.mode = argc > 1 ? atoi(argv[1]) : 0;
  if (p.mode < 0 || p.mode > 6) {
    fprintf(stderr, "mode %d: the modes are 0 to 6\n", p.mode);
    return 1;
  }
  const int ns_arg = argc > 2 ? atoi(argv[2]) : 0;
  p.ef = argc > 3 ? atoi(argv[3]) : 0;
  p.S = argc > 4 ? atoi(argv[4]) : 13;
  p.L = 40, p.T = 8, p.P = 512;
  const int Rs[NM + 1] = {QKV, D, 2 * FF, D, VOCAB}, Cs[NM + 1] = {D, D, D, FF, D};
  for (int m = 0; m <= NM; m++) p.R[m] = Rs[m], p.U[m] = Cs[m] / 128;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int nb = prop.multiProcessorCount;
  if (HEADS_KV * p.S > nb) p.S = nb / HEADS_KV;
#ifdef LS_MERGE1
  if (p.S > 13) {
    fprintf(stderr, "LS_MERGE1 merges at most 13 splits a kv head (asked %d)\n", p.S);
    return 1;
  }
#endif
  if (p.S < 1 || (p.P + p.S - 1) / p.S > NCW * AJ) {
    fprintf(stderr, "%d splits of %d positions: a split holds at most %d\n", p.S, p.P, NCW * AJ);
    return 1;
  }
  p.rgmax = 0;
  for (int m = 0; m <= NM; m++) {
    const long long n = (long long)(p.R[m] / 32) * p.U[m];
    p.rgmax = std::max(p.rgmax, (int)((n + nb - 1) / nb / p.U[m]) + 2);
  }
  const size_t fixed = FF + FF / 128 * 16 + (size_t)p.rgmax * 32 * 4 + (size_t)D * 4 + 128 * 4 + 16 + 16 + 16;
  const size_t avail = prop.sharedMemPerBlockOptin - 1024; // (the static __shared__ ints)
  const int nsmax = (int)((avail - fixed) / (SLOT + 16));
  p.ns = ns_arg > 0 ? std::min(ns_arg, nsmax) : nsmax;
  if (G) p.ns -= p.ns % (G ? G : 1); // whole groups
  if (FULL2 && 2 * (p.ns / GM) > p.ns) { // (two full barriers a group)
    fprintf(stderr, "-DLS_FULL2 needs groups of at least 2 slots\n");
    return 1;
  }
  if (FULL2 && p.ns < (NCW - 1) * CH + G) { // (FULL2's soundness bound, above)
    fprintf(stderr, "-DLS_FULL2: a ring of %d slots in groups of %d is sound only from %d slots\n", p.ns, G,
            (NCW - 1) * CH + G);
    return 1;
  }
  if (G && p.ns < NCW * CH + G) { // (a warp's next unit past the group its last one's turn may still hold)
    fprintf(stderr, "a ring of %d slots in groups of %d: %d consumer warps taking %d units need at least %d\n", p.ns, G,
            NCW, CH, NCW * CH + G);
    return 1;
  }
  if (G && p.mode >= 5) {
    fprintf(stderr, "-DLS_GROUP is for modes 0-3\n");
    return 1;
  }
  if (p.ns < NCW * CH) {
    fprintf(stderr, "a ring of %d slots: %d consumer warps taking %d units need at least %d\n", p.ns, NCW, CH, NCW * CH);
    return 1;
  }
  if (p.mode >= 5 && p.ns < NCW * PW) {
    fprintf(stderr, "a ring of %d slots: %d consumer warps keeping %d units in flight need at least %d\n", p.ns, NCW, PW,
            NCW * PW);
    return 1;
  }
  const size_t smem = (size_t)p.ns * (SLOT + 16) + fixed;
  printf("%s, %d SMs; mode %d, ring %d slots (%.0f KB), evict-first %d, %d splits a kv head, %d layers, %d tokens\n",
         prop.name, nb, p.mode, p.ns, p.ns * SLOT / 1024.0, p.ef, p.S, p.L, p.T);

  // the weights: every layer's own (5.3 GB), the head
  std::vector<const uint4 *> hc(p.L * NM + 1);
  std::vector<const unsigned short *> hs(p.L * NM + 1);
  double bytes = 0;
  for (int i = 0; i <= p.L * NM; i++) {
    const int m = i == p.L * NM ? NM : i % NM;
    const size_t units = (size_t)(p.R[m] / 32) * p.U[m];
    void *c, *s;
    CK(cudaMalloc(&c, units * UCODE));
    CK(cudaMalloc(&s, units * USC));
    CK(cudaMemset(c, 0x5a, units * UCODE));
    CK(cudaMemset(s, 0x1c, units * USC)); // fp16 0x1c1c: ~0.004
#ifdef LS_CHECK
    {
      std::vector<unsigned short> st(units * 32, 0x1c1c);
      for (size_t n = 0; n < units; n++) st[n * 32 + 31] = (unsigned short)n;
      CK(cudaMemcpy(s, st.data(), units * USC, cudaMemcpyHostToDevice));
    }
#endif
    hc[i] = (const uint4 *)c, hs[i] = (const unsigned short *)s;
    bytes += (double)units * SLOT;
  }
  const uint4 **dc;
  const unsigned short **ds;
  CK(cudaMalloc(&dc, hc.size() * sizeof(void *)));
  CK(cudaMalloc(&ds, hs.size() * sizeof(void *)));
  CK(cudaMemcpy(dc, hc.data(), hc.size() * sizeof(void *), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(ds, hs.data(), hs.size() * sizeof(void *), cudaMemcpyHostToDevice));
  p.codes = dc, p.sc = ds;
  auto alloc = [&](size_t n, int fill) {
    void *q;
    CK(cudaMalloc(&q, n));
    CK(cudaMemset(q, fill, n));
    return q;
  };
  p.normw = (const float *)alloc(D * 4, 0x3f);
  const size_t kv = (size_t)p.L * HEADS_KV * p.P * HD * 2;
  p.kc = (const __half *)alloc(kv, 0x2a), p.vc = (const __half *)alloc(kv, 0x2a);
  p.emb = (const __half *)alloc((size_t)VOCAB * D * 2, 0x2a);
  const size_t T = p.T, L = p.L;
  p.h = (float *)alloc(T * D * 4, 0);
  p.yqkv = (float *)alloc(T * L * QKV * 4, 0);
  p.ygu = (float *)alloc(T * L * 2 * FF * 4, 0);
  p.att = (float *)alloc(T * L * D * 4, 0);
  p.logit = (float *)alloc(T * VOCAB * 4, 0);
  p.ws = (float *)alloc(T * L * HEADS_KV * p.S * 4 * (HD + 2) * 4, 0);
  p.xg = (int8_t *)alloc(T * L * FF, 0);
  p.fg = (float4 *)alloc(T * L * (FF / 128) * 16, 0);
  p.best = (float2 *)alloc(T * nb * 8, 0);
  const size_t ncnt = L * 8 + 1 + L * HEADS_KV;
  p.cnt = (int *)alloc(ncnt * 4, 0);
  p.rec = (unsigned long long *)alloc(T * L * NEV * 8, 0);
  p.stat = (unsigned long long *)alloc(T * 2 * 8, 0);
  int *herr; // mapped host memory: readable after a trap has ended the context
  CK(cudaHostAlloc(&herr, 4, cudaHostAllocMapped));
  *herr = 0;
  CK(cudaHostGetDevicePointer(&p.err, herr, 0));
  p.t0 = 0x03020100u, p.t1 = 0xfdfeff04u;
  void (*kern)(Params) = p.mode >= 5 ? step<true> : step<false>;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  int per = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, kern, NTH, smem));
  if (per < 1) {
    fprintf(stderr, "the kernel does not fit an SM (%zu bytes of shared memory)\n", smem);
    return 1;
  }
  printf("weights %.2f GB a token (%.1f MB a layer)\n", bytes / 1e9, (bytes - (double)(p.R[NM] / 32) * p.U[NM] * SLOT) / L / 1e6);
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int rep = 0; rep < 3; rep++) {
    // fresh outputs and counters each run (the step adds into them)
    CK(cudaMemset(p.h, 0, T * D * 4));
    CK(cudaMemset(p.yqkv, 0, T * L * QKV * 4));
    CK(cudaMemset(p.ygu, 0, T * L * 2 * FF * 4));
    CK(cudaMemset(p.logit, 0, T * VOCAB * 4));
    CK(cudaMemset(p.cnt, 0, ncnt * 4));
    void *args[] = {&p};
    CK(cudaEventRecord(e0));
    cudaError_t e = cudaLaunchCooperativeKernel((void *)kern, nb, NTH, args, smem, 0);
    CK(cudaEventRecord(e1));
    cudaError_t e2 = cudaDeviceSynchronize();
    if (e != cudaSuccess || e2 != cudaSuccess) {
      fprintf(stderr, "launch: %s, run: %s, a wait gave up at site %d (0: none)\n", cudaGetErrorString(e),
              cudaGetErrorString(e2), *(volatile int *)herr);
      return 1;
    }
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    std::vector<unsigned long long> r(T * L * NEV);
    CK(cudaMemcpy(r.data(), p.rec, r.size() * 8, cudaMemcpyDeviceToHost));
    // tokens 1.. (the first fills the ring): from layer 0's start to the next token's
    const double tok_us = (double)(r[(T - 1) * L * NEV] - r[1 * L * NEV]) / 1e3 / (T - 2);
    std::vector<unsigned long long> st(T * 2);
    CK(cudaMemcpy(st.data(), p.stat, st.size() * 8, cudaMemcpyDeviceToHost));
    const double cw = (double)(st[2 * (T - 1)] - st[2]) / 1e3 / (T - 2) / NCW, pw = (double)(st[2 * (T - 1) + 1] - st[3]) / 1e3 / (T - 2);
    printf("run %d: %.1f us a token over %zu tokens (whole launch %.1f us a token): %.1f tok/s, %.2f us a layer "
           "with the head's share, %.0f GB/s of weights; block 0 a token: a consumer warp waited %.1f us for "
           "weights, the producer %.1f us for free slots\n",
           rep, tok_us, T - 2, ms * 1e3 / T, 1e6 / tok_us, tok_us / L, p.mode == 4 ? 0.0 : bytes / (tok_us * 1e3), cw, pw);
#ifdef LS_PTRACE
    if (p.mode <= 2) {
      unsigned long long g[4];
      CK(cudaMemcpyFromSymbol(g, g_ptrace, sizeof g));
      printf("  producer (block 0, warp 0, lane 0): %llu units, clocks a unit: %.1f free-slot test, %.1f issue, %.1f "
             "all\n",
             g[0], (double)g[1] / g[0], (double)g[2] / g[0], (double)g[3] / g[0]);
    }
#endif
    if (rep == 2 && (p.mode == 0 || p.mode == 2 || p.mode == 4 || p.mode == 5)) {
      // block 0's phases: layers 1..L-2 of tokens 1..T-2, mean µs
      const char *names[NEV - 1] = {"wait h", "norm",         "qkv",         "wait qkv",   "attention", "wait+o in",
                                    "o+wait", "norm", "gate_up+wait", "swiglu+wait", "copy"};
      double acc[NEV] = {};
      const double nl = (double)(T - 2) * (L - 2);
      for (size_t t = 1; t + 1 < T; t++)
        for (size_t l = 1; l + 1 < L; l++) {
          const unsigned long long *x = &r[(t * L + l) * NEV];
          for (int k = 0; k + 1 < NEV; k++) acc[k] += (double)(x[k + 1] - x[k]) / 1e3;
          acc[NEV - 1] += (double)(x[NEV + 0] - x[NEV - 1]) / 1e3; // down: to the next layer's start
        }
      printf("block 0, mean of layers 1..%zu (µs):", L - 2);
      for (int k = 0; k + 1 < NEV; k++) printf(" %s %.2f |", names[k], acc[k] / nl);
      printf(" down %.2f\n", acc[NEV - 1] / nl);
#ifdef LS_ATTN_TRACE
      std::vector<unsigned long long> ar(T * L * NAR);
      CK(cudaMemcpyFromSymbol(ar.data(), ls_arec, ar.size() * 8));
      const char *an[NAR - 1] = {"loads+scores", "max barrier", "values+smem adds", "sums barrier", "partial write",
                                 "fence+count"};
      double aa[NAR] = {};
      for (size_t t = 1; t + 1 < T; t++)
        for (size_t l = 1; l + 1 < L; l++)
          for (int k = 0; k + 1 < NAR; k++)
            aa[k] += (double)(ar[(t * L + l) * NAR + k + 1] - ar[(t * L + l) * NAR + k]) / 1e3;
      printf("block 0's attention item (µs):");
      for (int k = 0; k + 1 < NAR; k++) printf(" %s %.2f |", an[k], aa[k] / nl);
      printf("\n");
#endif
    }
  }
  return 0;
}
