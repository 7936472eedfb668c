// Fused decompress-and-multiply kernels for the dense codec (decode and
// small batches), the input rotation + int8 quantization that feeds them,
// the overlay correction, and an fp16-weight fallback GEMV.
//
// Every extern "C" kernel's parameter list is mirrored by a Go launch
// wrapper (backend/cuda/kernels.go); TestKernelSignatures compares them.
//
// GPU layout of a dense matrix (made by the Go uploader, repack.go): each
// row is U = ceil(C/128) units of 128 codes; a unit's K bits per code are
// split into K uint4 plane words (K = 2, 3, 4), and rows come in groups of
// 32: row r = 32·rg + lane, unit u, plane word j is the uint4 at
// ((rg·U + u)·K + j)·32 + lane, so a warp's loads of one plane word are 512
// contiguous bytes. K = 2 and 4: chunk c (0..15) holds codes 8c..8c+7, and
// extracting it yields the 8 codes as nibbles of one 32-bit word (nibble i =
// code 8c+i; for K = 4 byte i holds codes i (low) and i+4 (high)), see
// extract() below and repack.go. K = 3 holds PRMT selectors (sel3): word j
// of plane p is selector (p, j) — the codes of columns 32p + 4j .. +3 and
// 32p + 16 + 4j .. +3, the two mma A registers of lane group j — in its
// nibbles' bits 0-2, and their bits 3 hold selector (3, j). 5- to 8-bit
// codes use the byte layout, K = 8: one byte per code, plane word j = codes
// 16j..16j+15.
//
// Activations are int8, quantized per weight group like the CPU's AVX-512
// path (s = max|x|/127, q = round-half-even(x/s)); codes map to bytes u with
// L[q] ≈ alpha·u[q] + beta (exact for linear levels), looked up by PRMT
// from an 8-byte table for K ≤ 3. Per group g and token t the quantizer
// stores fac = (alpha·s, beta·s·Σq, s·Σq, 0), so that
//   y[r] = Σ_g scale[r][g]·(fac.x·Σ u·q + fac.y) + offset[r][g]·fac.z.

#include <cuda_fp16.h>
#include <stdint.h>

#define DEVI __device__ __forceinline__
// the most parts a one-token GEMV's units are split into (gemvPlan)
#define GEMV_MAX_SPLIT 4
// the most units a one-token GEMV's part takes: its activations' room in
// shared memory (gemv_dense; gemvXsUnits in gemv.go)
#define XS_UNITS 64

// pdl_wait / pdl_launch: programmatic dependent launch (sm_90). A kernel
// the Go side launches with it (pdlKernel in device.go) may start while the
// kernel before it runs; pdl_wait blocks until that kernel has finished and
// its writes are visible (at once when not launched so), and pdl_launch
// lets the next such kernel start early. Everything before pdl_wait may
// read only weights and the step's metadata (positions, slots, sequences,
// block tables: uploaded before the step's first kernel, written by none).
//
// pdl_wait also feeds the step trace (UPG_CUDA_TRACE, trace.go): when
// upg_trace.buf is set, block 0 of each launch records the global timer as
// it passes the wait, with the call site (UPG_SRC, the file's number in
// upg.cu, and the line) and the grid, so the gaps between consecutive
// records are each kernel's share of the step, graphs and PDL included.
struct UpgTrace {
  unsigned long long *buf; // 2 words per record
  unsigned cap, n;
};
__device__ UpgTrace upg_trace;

DEVI void trace_store(unsigned long long *tb, unsigned i, unsigned long long t, unsigned site) {
  tb[2 * i] = t;
  tb[2 * i + 1] = (unsigned long long)site | (unsigned long long)(gridDim.x & 0xFFFFFu) << 24 |
                  (unsigned long long)(gridDim.y & 0xFFFFFu) << 44;
}

// TRACE_MARKS: the record slots a launch's first record reserves in a
// phase build (UPG_TRACE_PHASES) for block 0's trace_mark()s, so that a mark
// reads the timer and stores, with no atomic round trip to wait for (each
// such wait, ~1 µs under load, was inside the phase times before; NOTES.md
// run 107). Slots left unused keep time 0 and the Go side drops them
// (decodeTrace); the buffer is zeroed when the trace starts.
#ifdef UPG_TRACE_PHASES
#define TRACE_MARKS 8
__shared__ unsigned long long *upg_trace_tb; // block 0, thread 0's: the buffer, or null
__shared__ unsigned upg_trace_next, upg_trace_end;
#else
#define TRACE_MARKS 0
#endif

DEVI void trace_record(unsigned long long *tb, unsigned site) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  const unsigned i = atomicAdd(&upg_trace.n, 1u + TRACE_MARKS);
  if (i < upg_trace.cap) trace_store(tb, i, t, site);
#ifdef UPG_TRACE_PHASES
  upg_trace_tb = tb, upg_trace_next = i + 1, upg_trace_end = min(i + 1 + TRACE_MARKS, upg_trace.cap);
#endif
}

DEVI void pdl_wait_at(unsigned site) {
  // the trace pointer is read before the wait (it is set once, before any
  // step), so tracing off costs thread 0 of block 0 no load latency after it
  unsigned long long *tb = nullptr;
  const bool b0 = (blockIdx.x | blockIdx.y | blockIdx.z | threadIdx.x) == 0;
  // (volatile: a plain read was hoisted out of the condition, so every
  // warp's first instruction after the wait waited on it; run 149's ncu)
  if (b0) tb = *(unsigned long long *volatile *)&upg_trace.buf;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (tb != nullptr) trace_record(tb, site);
#ifdef UPG_TRACE_PHASES
  else if (b0) upg_trace_tb = nullptr;
#endif
}
#define pdl_wait() pdl_wait_at(UPG_SRC * 100000u + __LINE__)

// trace_mark() records a phase boundary inside a kernel in the step trace
// (block 0, thread 0: place it after a barrier to time the block's phase).
// Only measurement builds have it (UPG_NVCC_DEFS=-DUPG_TRACE_PHASES
// scripts/build-cuda.sh); elsewhere it is nothing.
// A mark in a kernel whose block 0 has not passed pdl_wait yet is dropped:
// such kernels (attn_tc beside the cascade) call trace_begin() first.
#ifdef UPG_TRACE_PHASES
DEVI void trace_mark_at(unsigned site) {
  if ((blockIdx.x | blockIdx.y | blockIdx.z | threadIdx.x) != 0) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  if (upg_trace_tb != nullptr && upg_trace_next < upg_trace_end) trace_store(upg_trace_tb, upg_trace_next++, t, site);
}
DEVI void trace_begin() {
  if ((blockIdx.x | blockIdx.y | blockIdx.z | threadIdx.x) == 0) upg_trace_tb = nullptr;
}
#define trace_mark() trace_mark_at(UPG_SRC * 100000u + __LINE__)
#else
#define trace_mark() ((void)0)
#define trace_begin() ((void)0)
#endif
DEVI void pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}
// pdl_launch_after_loads: pdl_launch, with the loads the code before it
// asked for issued first (a compiler memory barrier): they go out ahead of
// the dependents' weight loads.
DEVI void pdl_launch_after_loads() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// rope_pair rotates the pair (a, b) by the angle whose cosine and sine are
// cs and sn: a·cs − b·sn, b·cs + a·sn, each product rounded on its own (the
// _rn intrinsics are never contracted into an FMA), so every kernel that
// rotates — upg_rope, rope_kv, splitk_rope_kv, the one-token GEMV's rope
// epilogue — gives the same bits whatever the compiler would fuse in its
// context (run 114: splitk_rope_kv's and rope_kv's plain expressions did not).
DEVI void rope_pair(float a, float b, float cs, float sn, float &ra, float &rb) {
  ra = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
  rb = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
}

// GemvRope is rope_kv (kernels/fused.cu) as the epilogue of a one-token
// GEMV of a fused q|k|v projection: R = (heads + 2H)·hd rows, the query
// heads, the key heads, then the value heads; full rotary (hd a multiple
// of 32), an fp16 cache. The block's lanes take the rows of rotated pairs
// so that a pair's partner is in the same warp (gemv_rope_row), the pair is
// rotated by the token's position with rope_kv's expressions, and y and the
// key or value cache slot are written: one launch where the GEMV and
// upg_rope_kv_f16 were two, with the same bits.
struct GemvRope {
  int heads, H, hd, bs, il;
  __half *kc, *vc;
  const int *slots, *pos;
  const float *cosT, *sinT;
};

// GemvSelfQ: a _t1q GEMV (the rope GEMV, SELFQ) quantizes its own input: the
// input is RMSNorm(xf) with no gain (all ones) and no rotation for this
// matrix (a --rotate-residual file's q|k|v), and groups of 128 (a unit a
// group). A group's int8 codes do not depend on 1/rms, so each block
// quantizes its units' groups straight from the residual xf (its codes
// and factors in shared memory, as quant_group would make them from
// xf·1/rms, up to rounding), warp 0 takes 1/rms from the nsq row-group
// sums of squares the residual's writer left (res_write), and the row
// sums are scaled by it before the rope epilogue. No norm kernel runs; h
// (the norm's output, xf·1/rms) is still written, a slice a block.
struct GemvSelfQ {
  const float *xf, *sq;
  int nsq;
  float eps, alpha, beta;
  float *h;
};

// int8_inv, int8_code and group_factors are the int8 quantization of a
// group of activations for gemv_dense: inv = 127/max|x| (0 for a group of
// zeros), a value's code round-half-even(v·inv) clamped to ±127, and the
// group's factors (its scale times alpha, beta times the codes' sum in value
// units, that sum). quant_group and GemvSelfQ's prologue both use them, so
// their codes and factors agree bit for bit on the same values.
DEVI float int8_inv(float amax) { return amax > 0.f ? 127.f / amax : 0.f; }
DEVI int int8_code(float v, float inv) { return max(-127, min(127, __float2int_rn(v * inv))); }
DEVI float4 group_factors(float amax, int sum, float alpha, float beta) {
  const float s = amax / 127.f, xb = amax > 0.f ? s * (float)sum : 0.f;
  return make_float4(amax > 0.f ? alpha * s : 0.f, beta * xb, xb, 0.f);
}

// gemv_rope_row is the row lane takes in virtual row group b of a GemvRope
// GEMV: rotate-half pairs (il 0: columns j and j + hd/2 of a head) put the
// pair's two rows in lanes l and l ^ 16 (sixteen pairs a group, hd/32
// groups a head); interleaved pairs (2j, 2j + 1) and the value heads keep
// their rows (the partner in lane l ^ 1).
DEVI int gemv_rope_row(const GemvRope &rp, int b, int lane) {
  const int per = rp.hd >> 5; // row groups a head
  if (rp.il || b >= (rp.heads + rp.H) * per) return b * 32 + lane;
  const int head = b / per, v = b - head * per;
  return head * rp.hd + v * 16 + (lane & 15) + (lane >> 4) * (rp.hd >> 1);
}

DEVI unsigned comp(const uint4 &v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

DEVI int dp4a_us(unsigned a, int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

DEVI uint4 ldg_stream(const uint4 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// ldg_stream_if and ldg_u16_if load into v only where pred holds, in
// place ("+r": the destination is the variable's own register). A plain
// conditional load gave the unit loop's look-ahead buffers a phi that ptxas
// resolved with register moves right after the loads, so every look-ahead
// waited out its memory latency at once (ncu source counters, run 149:
// the moves and the scale's PRMT held 17% of gate|up's stall samples).
DEVI void ldg_stream_if(uint4 &v, const uint4 *p, bool pred) {
  asm volatile("{.reg .pred q; setp.ne.b32 q, %4, 0; @q ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%5];}"
               : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
               : "r"((int)pred), "l"(p));
}
DEVI void ldg_u16_if(unsigned short &v, const void *p, bool pred) {
  asm volatile("{.reg .pred q; setp.ne.b32 q, %1, 0; @q ld.global.nc.b16 %0, [%2];}" : "+h"(v) : "r"((int)pred), "l"(p));
}

// extract returns chunk c's 8 codes as nibbles (K = 2) or as the K = 4
// byte layout, from the unit's plane words w[0..K-1] (K = 3: sel3).
template <int K> DEVI unsigned extract(const uint4 *w, int c);

template <> DEVI unsigned extract<2>(const uint4 *w, int c) {
  int m = c >> 1, s = 2 * (c & 1);
  return (comp(w[m >> 2], m & 3) >> s) & 0x33333333u;
}

// sel3 returns selector (ks, j) of a 3-bit unit from word j of its plane
// words p0, p1, p2 (the selector layout, repack.go): nibbles 0-3 are the
// codes of columns 32·ks + 4j .. +3, nibbles 4-7 those of 32·ks + 16 + 4j
// .. +3, bit 3 of every nibble 0. Selectors 0-2 are the plane words'
// nibbles without their bit 3; those bits of the three planes hold
// selector 3. One LOP3 a selector (six for the fourth), then a PRMT of
// the selector and one of its upper half: ~5 instructions per 8 codes,
// where the bit planes took ~10 (NOTES.md run 136).
DEVI unsigned and7(unsigned p) {
  // the mask in asm, so that the compiler cannot fold a later >> 16 into a
  // second mask (0x77770000) instead of reusing this one
  unsigned d;
  asm("and.b32 %0, %1, 0x77777777;" : "=r"(d) : "r"(p));
  return d;
}
// OPAQUE: the mask through and7, for a caller that shifts the selector's
// upper half out later (the GEMV's held selectors); elsewhere a plain AND,
// which ptxas can schedule (the asm cost 32- and 64-wide groups' GEMVs
// 24-128 bytes of spill, manifest of 32a874a).
template <bool OPAQUE = false>
DEVI unsigned sel3(unsigned p0, unsigned p1, unsigned p2, int ks) {
  if (ks == 0) return OPAQUE ? and7(p0) : p0 & 0x77777777u;
  if (ks == 1) return OPAQUE ? and7(p1) : p1 & 0x77777777u;
  if (ks == 2) return OPAQUE ? and7(p2) : p2 & 0x77777777u;
  return ((p0 >> 3) & 0x11111111u) | ((p1 >> 2) & 0x22222222u) | ((p2 >> 1) & 0x44444444u);
}

template <> DEVI unsigned extract<4>(const uint4 *w, int c) {
  return comp(w[c >> 2], c & 3);
}

// byte_codes returns codes 8c+4h..8c+4h+3 of a unit in the byte layout
// (K = 8: 5- to 8-bit codes, one byte each, plane word j holding codes
// 16j..16j+15) as level bytes: the codes themselves (MODE 3, linear
// levels) or looked up in lut, a 256-byte table in shared memory (MODE 4).
template <int MODE> DEVI unsigned byte_codes(const uint4 *w, int c, int h, const uint8_t *lut) {
  const unsigned x = comp(w[c >> 1], 2 * (c & 1) + h);
  if (MODE == 3) return x;
  return (unsigned)lut[x & 255u] | (unsigned)lut[(x >> 8) & 255u] << 8 |
         (unsigned)lut[(x >> 16) & 255u] << 16 | (unsigned)lut[x >> 24] << 24;
}

// load_lut copies the 256-byte level table into shared memory (MODE 4);
// the caller synchronizes before the first lookup.
DEVI void load_lut(uint8_t *sl, const uint8_t *__restrict__ lut) {
  for (int i = threadIdx.x; i < 256; i += blockDim.x) sl[i] = lut[i];
}

// gemv_dense computes y[t*R + r] = Σ_c W[r][c]·x_t[c] for NT tokens (nt of
// them valid) from int8 activations xq (ldq bytes per token) and factors fac
// (G per token). Block b takes rows 32b..32b+31, one row per lane, so a
// warp's code loads are 512 contiguous bytes and its activation loads are
// broadcasts; the block's W warps split the row's units (warp w takes units
// w, w+W, ...) and are summed in shared memory. Each warp loads the next
// unit's codes and scales before computing the current one. GPU_ groups per
// unit (1: group size a multiple of 128, 2: 64, 4: 32); gsl = log2(group).
// MODE 0: PRMT through an 8-byte table (K ≤ 3); 1: 4-bit linear levels, the
// byte layout split into two words; 2: 4-bit any levels, 16-byte table
// (t0..t3) looked up by two PRMTs and a per-byte select on the code's bit 3.
// MODE 3 and 4 (K = 8, the byte layout of 5- to 8-bit codes): the bytes
// as they are (linear levels) or through the 256-byte table lut.
// prmt_sign is PTX prmt.b32 in its default mode, where a selector nibble's
// bit 3 replicates the selected byte's sign (__byte_perm ignores that bit).
DEVI unsigned prmt_sign(unsigned a, unsigned b, unsigned sel) {
  unsigned d;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
  return d;
}

DEVI unsigned lut16(unsigned x, unsigned t0, unsigned t1, unsigned t2, unsigned t3) {
  const unsigned sel = x & 0x7777u;
  const unsigned lo = __byte_perm(t0, t1, sel), hi = __byte_perm(t2, t3, sel);
  // PRMT's sign mode: a selector nibble with bit 3 set yields 0xFF from a
  // byte 0x80, the others 0x80; turn that into a 0x00/0xFF byte mask.
  unsigned m = prmt_sign(0x80808080u, 0x80808080u, x) ^ 0x80808080u; // 0x00 or 0x7F
  m |= (m << 1) & 0x80808080u;
  return (lo & ~m) | (hi & m);
}

// chunk_pair_bytes decodes columns 16·c2 .. 16·c2 + 15 of a unit (plane
// words w) into the level bytes of its 16 codes, four per word, as dp4a
// takes them (MODE as in gemv_dense): chunks 2·c2 and 2·c2 + 1, or for
// K = 3 half c2 & 1 of the four selectors of k-slice c2 / 2 (word j: columns
// 16·c2 + 4j .. +3 either way).
template <int K, int MODE, bool HOLD = true>
DEVI void chunk_pair_bytes(const uint4 *w, int c2, unsigned (&b)[4], unsigned t0, unsigned t1, unsigned t2,
                           unsigned t3, const uint8_t *sl, unsigned (&sel)[4]) {
  if constexpr (K == 3 && MODE == 0) {
    // sel: the k-slice's selectors, made at its even c2 and kept for the odd
    // (HOLD; recomputed where holding them spilled: ptxas 11.8 gave 32-wide
    // groups' kernels and the two-token 64-wide one 40-100 bytes)
#pragma unroll
    for (int j = 0; j < 4; j++) {
      if ((c2 & 1) == 0 || !HOLD) sel[j] = sel3<HOLD>(comp(w[0], j), comp(w[1], j), comp(w[2], j), c2 >> 1);
      b[j] = prmt_sign(t0, t1, (c2 & 1) ? sel[j] >> 16 : sel[j]);
    }
  } else {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int c = 2 * c2 + e;
      if constexpr (MODE >= 3) {
        b[2 * e] = byte_codes<MODE>(w, c, 0, sl);
        b[2 * e + 1] = byte_codes<MODE>(w, c, 1, sl);
      } else if constexpr (K != 3) {
        unsigned nib = extract<K>(w, c);
        if (MODE == 1) {
          b[2 * e] = nib & 0x0F0F0F0Fu;
          b[2 * e + 1] = (nib >> 4) & 0x0F0F0F0Fu;
        } else if (MODE == 2) {
          b[2 * e] = lut16(nib, t0, t1, t2, t3);
          b[2 * e + 1] = lut16(nib >> 16, t0, t1, t2, t3);
        } else {
          // MODE 0, K = 2 (four levels in t0): every nibble's bit 3 is 0,
          // so PRMT's default mode picks the bytes __byte_perm would,
          // without __byte_perm's mask of the selector (one LOP3 fewer per
          // four codes, NOTES.md run 83)
          b[2 * e] = prmt_sign(t0, t1, nib);
          b[2 * e + 1] = prmt_sign(t0, t1, nib >> 16);
        }
      }
    }
  }
}

// res_write stores a finished row sum v of row r (warp lane = row's lane)
// to y and adds it to the residual res; with ssq, the row group's new
// residual values' sum of squares (rows past R count 0) goes to ssq[rg],
// what a self-quantizing reader of the residual (GemvSelfQ) takes 1/rms
// from. The whole warp calls it.
DEVI void res_write(float *__restrict__ y, float *__restrict__ res, float *__restrict__ ssq, int r, int R, int rg,
                    float v) {
  float nr = 0.f;
  if (r < R) {
    y[r] = v;
    if (res != nullptr) {
      nr = res[r] + v;
      res[r] = nr;
    }
  }
  if (res != nullptr && ssq != nullptr) {
    float q = nr * nr;
    for (int o = 16; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
    if ((threadIdx.x & 31) == 0) ssq[rg] = q;
  }
}

// split_finish ends a one- or two-token GEMV (one token's rows at a time) whose row group's units are split
// over the gridDim.y blocks (parts) of blockIdx.x: one warp per block
// holds the part's sums v of rows r (lane); it writes them to ws (parts of
// 32 floats per row group, in part order) and the last part to arrive (cnt,
// left at zero for the next launch) sums the parts in that order, so the
// result does not depend on which part is last. ssq (with res): the new
// residual rows' sum of squares goes to ssq[rg] (res_write).
DEVI void split_finish(float v, int rg, int r, int R, float *__restrict__ y, float *__restrict__ res,
                       float *__restrict__ ws, int *__restrict__ cnt, float *__restrict__ ssq) {
  const int P = gridDim.y, lane = threadIdx.x & 31;
  float *wp = ws + (size_t)rg * P * 32 + lane;
  wp[blockIdx.y * 32] = v;
  __threadfence();
  __syncwarp();
  int old = 0;
  if (lane == 0) old = atomicAdd(cnt + rg, 1);
  old = __shfl_sync(0xffffffffu, old, 0);
  if (old != P - 1) return;
  __threadfence();
  float pv[GEMV_MAX_SPLIT];
#pragma unroll
  for (int p = 0; p < GEMV_MAX_SPLIT; p++) pv[p] = p < P ? __ldcg(wp + p * 32) : 0.f;
  float sum = 0.f;
#pragma unroll
  for (int p = 0; p < GEMV_MAX_SPLIT; p++)
    if (p < P) sum += pv[p];
  res_write(y, res, ssq, r, R, rg, sum);
  if (lane == 0) cnt[rg] = 0;
}

// ROPE (one token, one part): the rows of GemvRope's pairs and its epilogue.
// SELFQ (ROPE, GPU_ = 1): the input quantized here from sq (GemvSelfQ).
template <int K, int NT, int MODE, int GPU_, bool ROPE = false, bool SELFQ = false>
DEVI void gemv_dense(const uint4 *__restrict__ codes, const __half *__restrict__ scales,
                     const __half *__restrict__ offs, const int8_t *__restrict__ xq,
                     const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, int U,
                     int G, int gsl, int ldq, int nt, unsigned t0, unsigned t1, unsigned t2, unsigned t3,
                     float *__restrict__ res, const uint8_t *__restrict__ lut, float *__restrict__ ws = nullptr,
                     int *__restrict__ cnt = nullptr, float *__restrict__ ssq = nullptr,
                     const GemvRope rp = GemvRope{}, const GemvSelfQ sq = GemvSelfQ{}) {
  static_assert(!ROPE || NT == 1, "the rope epilogue is one token's");
  static_assert(!SELFQ || (ROPE && GPU_ == 1), "GemvSelfQ is the rope GEMV's, a unit a group");
  __shared__ float red[32 * 32];
  __shared__ uint8_t sl[MODE == 4 ? 256 : 1];
  // one token: the block's activations (its units' int8 codes) copied to
  // shared memory once, after the wait, so that the 8 loads of x a unit
  // takes are shared-memory reads, not L1/L2 round trips (ncu, run 146: 43%
  // of gate|up's stall cycles waited on L1TEX loads; run 147: +3.5%).
  // gemvPlan keeps a part's units within XS_UNITS (gemvXsUnits).
  __shared__ int4 xs[NT == 1 ? XS_UNITS * 8 : 1];
  // GemvSelfQ: the units' factors (a unit a group) and 1/rms
  __shared__ float4 sfac[SELFQ ? XS_UNITS : 1];
  __shared__ float srinv;
  constexpr bool selfq = SELFQ;
  if (MODE == 4) {
    load_lut(sl, lut);
    __syncthreads();
  }
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, W = blockDim.x >> 5;
  const int rg = blockIdx.x;
  // one or two tokens: the units [ub, ue) of part blockIdx.y of gridDim.y (split_finish)
  // (32-bit: U·gridDim.y is small; one part divides by nothing)
  const bool parts = NT <= 2 && gridDim.y > 1;
  const int ub = parts ? (int)((unsigned)U * blockIdx.y / gridDim.y) : 0;
  const int ue = parts ? (int)((unsigned)U * (blockIdx.y + 1) / gridDim.y) : U;
  // the lane's row: rg·32 + lane, or its rotated pair's (ROPE)
  const int row = ROPE ? gemv_rope_row(rp, rg, lane) : rg * 32 + lane;
  const int prg = ROPE ? row >> 5 : rg, pl = ROPE ? row & 31 : lane;
  const uint4 *base = codes + (size_t)prg * U * K * 32 + pl;
  const __half *sbase = scales + (size_t)prg * G * 32 + pl;
  const __half *obase = offs != nullptr ? offs + (size_t)prg * G * 32 + pl : nullptr;
  constexpr int SUBC = 16 / GPU_; // chunks per group inside a unit
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;

  // two units' buffers taken in turn (A: units ub + w, ub + w + 2W, ...; B:
  // the ones between): each is refilled, in place, for the unit two turns
  // on as soon as it has been multiplied, so a unit's loads have the other
  // buffer's multiply to arrive in
  uint4 wa[K], wb[K];
  // (__half bits; the offsets start at 0: a matrix without them leaves
  // them as they are)
  unsigned short sa[GPU_], sb[GPU_], oa[GPU_] = {}, ob[GPU_] = {};
  auto load = [&](int uu, bool pred, uint4 *ww, unsigned short *ss, unsigned short *oo) {
    const int u0 = pred ? uu : ub; // an address inside the matrix either way
#pragma unroll
    for (int j = 0; j < K; j++) ldg_stream_if(ww[j], base + ((size_t)u0 * K + j) * 32, pred);
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int g = min((u0 * 128 + s * (128 / GPU_)) >> gsl, G - 1);
      ldg_u16_if(ss[s], sbase + (size_t)g * 32, pred);
      ldg_u16_if(oo[s], obase + (size_t)g * 32, pred && obase != nullptr);
    }
  };
  // a one-token warp's first two units load before the wait: with PDL they
  // arrive while the kernel before still runs (its warps have 2 to 9 units,
  // so the second would otherwise cost a memory latency after it). Plain
  // loads under a branch, as before the look-ahead took predicated ones:
  // run 150's build of those had ptxas issue 5 of the 6 after the wait
  // (ACQBULK), which lost the early launch's overlap (run 153: +4.9%
  // without PDL, -2.9% with it).
  auto load0 = [&](int uu, uint4 *ww, unsigned short *ss, unsigned short *oo) {
#pragma unroll
    for (int j = 0; j < K; j++) ww[j] = ldg_stream(base + ((size_t)uu * K + j) * 32);
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int g = min((uu * 128 + s * (128 / GPU_)) >> gsl, G - 1);
      ss[s] = __half_as_ushort(sbase[(size_t)g * 32]);
      oo[s] = obase != nullptr ? __half_as_ushort(obase[(size_t)g * 32]) : 0;
    }
  };
  if (ub + w < ue) load0(ub + w, wa, sa, oa);
  if (NT == 1 && ub + w + W < ue) load0(ub + w + W, wb, sb, ob);
  // (more tokens: the second unit's loads follow the wait, below)
  // ROPE: the step's position, slot and the pair's angle are the step's
  // metadata (uploaded before the step's first kernel), read before the wait
  const int qk = ROPE ? (rp.heads + rp.H) * rp.hd : 0;
  float rcs = 0.f, rsn = 0.f;
  int rslot = 0;
  if constexpr (ROPE) {
    if (w == 0) {
      const int p = rp.pos[0], half = rp.hd >> 1, d = row % rp.hd;
      const int j = rp.il ? d >> 1 : (d < half ? d : d - half);
      rslot = rp.slots[0];
      if (row < qk) rcs = rp.cosT[(size_t)p * half + j], rsn = rp.sinT[(size_t)p * half + j];
    }
  }
  pdl_wait(); // xq, fac, y and res belong to the kernels before
  pdl_launch();
  float rinv = 1.f; // GemvSelfQ's 1/rms (warp 0)
  if constexpr (SELFQ) {
    if (ue - ub > XS_UNITS) __trap();
    // every load of the prologue in flight at once (run 222: q|k|v +3.0 µs
    // with the units', the sums' and h's loads one round trip after another):
    // a thread's value of the block's slice of h, warp 0's share of the
    // sums of squares, each warp's first unit; a warp's next unit is asked
    // for before the one in hand is quantized
    const int per = (C + gridDim.x - 1) / gridDim.x, hc = blockIdx.x * per + threadIdx.x;
    const int hend = min(C, (blockIdx.x + 1) * per);
    const float hx = sq.h != nullptr && hc < hend ? __ldcg(sq.xf + hc) : 0.f;
    int u = ub + w;
    float4 v = u < ue ? __ldcg((const float4 *)(sq.xf + (size_t)u * 128) + lane) : make_float4(0.f, 0.f, 0.f, 0.f);
    float ss = 0.f;
    if (w == 0) {
#pragma unroll 8
      for (int i = lane; i < sq.nsq; i += 32) ss += __ldcg(sq.sq + i);
    }
    // a warp a unit (one group of 128): four values a lane, quant_group's
    // maximum, then its codes and factors (int8_code, group_factors)
    for (; u < ue; u += W) {
      const float4 x = v;
      if (u + W < ue) v = __ldcg((const float4 *)(sq.xf + (size_t)(u + W) * 128) + lane);
      float am = fmaxf(fmaxf(fabsf(x.x), fabsf(x.y)), fmaxf(fabsf(x.z), fabsf(x.w)));
      for (int o = 16; o > 0; o >>= 1) am = fmaxf(am, __shfl_xor_sync(0xffffffffu, am, o));
      const float inv = int8_inv(am);
      const int q0 = int8_code(x.x, inv), q1 = int8_code(x.y, inv), q2 = int8_code(x.z, inv), q3 = int8_code(x.w, inv);
      int sum = q0 + q1 + q2 + q3;
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      ((int *)xs)[(u - ub) * 32 + lane] = (q0 & 255) | (q1 & 255) << 8 | (q2 & 255) << 16 | (q3 & 255) << 24;
      if (lane == 0) sfac[u - ub] = group_factors(am, sum, sq.alpha, sq.beta);
    }
    if (w == 0) {
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      rinv = (float)(1.0 / sqrt((double)(ss / (float)C + sq.eps)));
      if (lane == 0) srinv = rinv;
    }
    __syncthreads();
    // h, the norm's output, a slice a block (a value a thread where the
    // slice fits the block)
    if (sq.h != nullptr) {
      if (hc < hend) sq.h[hc] = hx * srinv;
      for (int c = hc + blockDim.x; c < hend; c += blockDim.x) sq.h[c] = sq.xf[c] * srinv;
    }
  } else if (NT == 1) {
    if (ue - ub > XS_UNITS) __trap(); // a plan gemvPlan does not make
    for (int i = threadIdx.x; i < (ue - ub) * 8; i += blockDim.x) xs[i] = *(const int4 *)(xq + (size_t)ub * 128 + i * 16);
    __syncthreads();
  }
  if (NT > 1 && ub + w + W < ue) load0(ub + w + W, wb, sb, ob);
  // unit u's products from its buffer (wc, sc, of)
  auto multiply = [&](int u, const uint4 *wc, const unsigned short *sc, const unsigned short *of) {
    int ia[NT][GPU_];
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
      for (int s = 0; s < GPU_; s++) ia[t][s] = 0;
    const int8_t *xu = xq + u * 128;
    unsigned sel[4]; // K = 3: a k-slice's selectors (chunk_pair_bytes)
#pragma unroll
    for (int c2 = 0; c2 < 8; c2++) {
      unsigned b[4];
      chunk_pair_bytes<K, MODE, GPU_ == 1>(wc, c2, b, t0, t1, t2, t3, sl, sel);
      const int s = (2 * c2) / SUBC;
#pragma unroll
      for (int t = 0; t < NT; t++) {
        if (NT == 1 || t < nt) {
          const int4 xv = NT == 1 ? xs[(u - ub) * 8 + c2] : *(const int4 *)(xu + (size_t)t * ldq + c2 * 16);
          int a = ia[t][s];
          a = dp4a_us(b[0], xv.x, a);
          a = dp4a_us(b[1], xv.y, a);
          a = dp4a_us(b[2], xv.z, a);
          a = dp4a_us(b[3], xv.w, a);
          ia[t][s] = a;
        }
      }
    }
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int c0 = u * 128 + s * (128 / GPU_);
      if (c0 < C) {
        const int g = c0 >> gsl;
        const float scf = __half2float(__ushort_as_half(sc[s]));
        const bool first = GPU_ > 1 || (c0 & ((1 << gsl) - 1)) == 0;
        const float off = first ? __half2float(__ushort_as_half(of[s])) : 0.f;
#pragma unroll
        for (int t = 0; t < NT; t++) {
          if (NT == 1 || t < nt) {
            const float4 f = selfq ? sfac[u - ub] : fac[(size_t)t * G + g];
            float a = fmaf(scf * f.x, (float)ia[t][s], acc[t]);
            if (first) a = fmaf(scf, f.y, fmaf(off, f.z, a));
            acc[t] = a;
          }
        }
      }
    }
  };
  if constexpr (NT == 1 && K <= 3) {
    for (int u = ub + w; u < ue; u += 2 * W) {
      multiply(u, wa, sa, oa);
      load(u + 2 * W, u + 2 * W < ue, wa, sa, oa);
      if (u + W < ue) {
        multiply(u + W, wb, sb, ob);
        load(u + 3 * W, u + 3 * W < ue, wb, sb, ob);
      }
    }
  } else {
    // more tokens: a unit's multiply is long enough to cover one unit's
    // loads (b is the next unit's, copied into a as its turn comes); the
    // ping-pong above raised the eight-token kernel's registers from 80
    // to 124 (run 154). 4- and 8-bit codes: a unit's multiply holds more
    // (4 or 8 plane words), and there the ping-pong lost 5% at one token
    // (4-bit group 64: 237 -> 225 tok/s, run 157)
    for (int u = ub + w; u < ue; u += W) {
      multiply(u, wa, sa, oa);
      if (u + W < ue) {
#pragma unroll
        for (int j = 0; j < K; j++) wa[j] = wb[j];
#pragma unroll
        for (int s = 0; s < GPU_; s++) sa[s] = sb[s], oa[s] = ob[s];
        if (u + 2 * W < ue) load0(u + 2 * W, wb, sb, ob);
      }
    }
  }
  const int r = row;
  const bool split = NT <= 2 && gridDim.y > 1;
  // ROPE's epilogue (every lane of the writing warp): the pair rotated as
  // rope_kv rotates it, y, and a key or value row's cache slot
  auto rope_write = [&](float v) {
    const float pv = __shfl_xor_sync(0xffffffffu, v, rp.il ? 1 : 16);
    float out = v;
    if (r < qk) {
      const bool first = rp.il ? (lane & 1) == 0 : lane < 16;
      float ra, rb;
      rope_pair(first ? v : pv, first ? pv : v, rcs, rsn, ra, rb);
      out = first ? ra : rb;
    }
    y[r] = out;
    const int kq = rp.heads * rp.hd;
    if (r >= kq) {
      const bool isv = r >= qk;
      const int hh = (r - (isv ? qk : kq)) / rp.hd, d = r % rp.hd;
      const int blk = rslot / rp.bs, off = rslot - blk * rp.bs;
      (isv ? rp.vc : rp.kc)[(((size_t)blk * rp.H + hh) * rp.bs + off) * rp.hd + d] = __float2half_rn(out);
    }
  };
  // token t's parts and counters follow token t-1's (gridDim.x row groups each)
  auto finish = [&](float v, int t) {
    split_finish(v, rg, r, R, y + (size_t)t * R, res != nullptr ? res + (size_t)t * R : nullptr,
                 ws + (size_t)t * gridDim.x * gridDim.y * 32, cnt + (size_t)t * gridDim.x, t == 0 ? ssq : nullptr);
  };
  // sum the warps' partial rows, NT tokens in turns of 32/NT... one token at a time
#pragma unroll
  for (int t = 0; t < NT; t++) {
    if (NT > 1 && t >= nt) break;
    if (W > 1) {
      __syncthreads();
      red[w * 32 + lane] = acc[t];
      __syncthreads();
      if (w == 0) {
        float v = 0.f;
        for (int i = 0; i < W; i++) v += red[i * 32 + lane];
        if constexpr (ROPE) {
          rope_write(selfq ? v * rinv : v);
        } else if (split) {
          finish(v, t);
        } else {
          res_write(y + (size_t)t * R, res != nullptr ? res + (size_t)t * R : nullptr, t == 0 ? ssq : nullptr, r, R, rg, v);
        }
      }
    } else if (ROPE) {
      rope_write(selfq ? acc[t] * rinv : acc[t]);
    } else if (split) {
      finish(acc[t], t);
    } else {
      res_write(y + (size_t)t * R, res != nullptr ? res + (size_t)t * R : nullptr, t == 0 ? ssq : nullptr, r, R, rg, acc[t]);
    }
  }
}

#define GEMV_ARGS                                                                              \
  const uint4 *__restrict__ codes, const __half *__restrict__ scales,                          \
      const __half *__restrict__ offs, const int8_t *__restrict__ xq,                          \
      const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, int U, int G, int gsl, \
      int ldq, int nt, unsigned t0, unsigned t1, unsigned t2, unsigned t3, float *__restrict__ res,  \
      const uint8_t *__restrict__ lut
#define GEMV_PASS codes, scales, offs, xq, fac, y, R, C, U, G, gsl, ldq, nt, t0, t1, t2, t3, res, lut
// the one- and two-token kernels: also the split parts' workspace and counters
// (split_finish; grid (row groups, parts ≤ GEMV_MAX_SPLIT))
#define GEMV1_ARGS GEMV_ARGS, float *__restrict__ ws, int *__restrict__ cnt, float *__restrict__ ssq
#define GEMV1_PASS GEMV_PASS, ws, cnt, ssq

// upg_gemv_k<bits>[l]_g<groups per unit>_t<tokens per pass> (k4l: 4-bit, any levels): 1 token with up to 1024 threads, 8 with up to 256
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g1_t1(GEMV1_ARGS) { gemv_dense<2, 1, 0, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g2_t1(GEMV1_ARGS) { gemv_dense<2, 1, 0, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g4_t1(GEMV1_ARGS) { gemv_dense<2, 1, 0, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k2_g1_t8(GEMV_ARGS) { gemv_dense<2, 8, 0, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k2_g2_t8(GEMV_ARGS) { gemv_dense<2, 8, 0, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k2_g4_t8(GEMV_ARGS) { gemv_dense<2, 8, 0, 4>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g1_t1(GEMV1_ARGS) { gemv_dense<3, 1, 0, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g2_t1(GEMV1_ARGS) { gemv_dense<3, 1, 0, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g4_t1(GEMV1_ARGS) { gemv_dense<3, 1, 0, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k3_g1_t8(GEMV_ARGS) { gemv_dense<3, 8, 0, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k3_g2_t8(GEMV_ARGS) { gemv_dense<3, 8, 0, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k3_g4_t8(GEMV_ARGS) { gemv_dense<3, 8, 0, 4>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g1_t1(GEMV1_ARGS) { gemv_dense<4, 1, 1, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g2_t1(GEMV1_ARGS) { gemv_dense<4, 1, 1, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g4_t1(GEMV1_ARGS) { gemv_dense<4, 1, 1, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4_g1_t8(GEMV_ARGS) { gemv_dense<4, 8, 1, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4_g2_t8(GEMV_ARGS) { gemv_dense<4, 8, 1, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4_g4_t8(GEMV_ARGS) { gemv_dense<4, 8, 1, 4>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g1_t1(GEMV1_ARGS) { gemv_dense<4, 1, 2, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g2_t1(GEMV1_ARGS) { gemv_dense<4, 1, 2, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g4_t1(GEMV1_ARGS) { gemv_dense<4, 1, 2, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4l_g1_t8(GEMV_ARGS) { gemv_dense<4, 8, 2, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4l_g2_t8(GEMV_ARGS) { gemv_dense<4, 8, 2, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k4l_g4_t8(GEMV_ARGS) { gemv_dense<4, 8, 2, 4>(GEMV_PASS); }
// _t1r: the one-token kernels with rope_kv's epilogue for a q|k|v projection
// (GemvRope; one part, an fp16 cache). Only the codes whose kernel fits 64
// registers without spills (ptxas, sm_80-sm_90; the t2 kernels' set): k3
// with 32-wide groups spilled 86-124 bytes, the 4-bit ones 16-220 (run 118),
// so their projections keep the GEMV and upg_rope_kv.
#define GEMV1R_ARGS                                                                                   \
  GEMV1_ARGS, int heads, int H, int hd, __half *kc, __half *vc, const int *slots, int bs, int interleave, \
      const float *cosT, const float *sinT, const int *pos
#define GEMV1R_PASS GEMV1_PASS, GemvRope{heads, H, hd, bs, interleave, kc, vc, slots, pos, cosT, sinT}
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g1_t1r(GEMV1R_ARGS) { gemv_dense<2, 1, 0, 1, true>(GEMV1R_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g2_t1r(GEMV1R_ARGS) { gemv_dense<2, 1, 0, 2, true>(GEMV1R_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g4_t1r(GEMV1R_ARGS) { gemv_dense<2, 1, 0, 4, true>(GEMV1R_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g1_t1r(GEMV1R_ARGS) { gemv_dense<3, 1, 0, 1, true>(GEMV1R_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g2_t1r(GEMV1R_ARGS) { gemv_dense<3, 1, 0, 2, true>(GEMV1R_PASS); }
// _t1q: the _t1r kernels of groups of 128 that quantize their own input
// (GemvSelfQ: a --rotate-residual file's q|k|v, no norm kernel before);
// their own kernels, so that the prologue's registers (run 220: 52 bytes
// of sm_90 spill when it sat in _t1r) stay out of every other file's
// rope GEMV
#define GEMV1Q_ARGS GEMV1R_ARGS, const float *xf, const float *sqs, int nsq, float eps, float alpha, float beta, float *hout
#define GEMV1Q_PASS GEMV1R_PASS, GemvSelfQ{xf, sqs, nsq, eps, alpha, beta, hout}
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g1_t1q(GEMV1Q_ARGS) { gemv_dense<2, 1, 0, 1, true, true>(GEMV1Q_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g1_t1q(GEMV1Q_ARGS) { gemv_dense<3, 1, 0, 1, true, true>(GEMV1Q_PASS); }
// _t2: steps of exactly 2 tokens (batches of two sequences, a token and a
// prompt-lookup draft), the weights read once with the one-token kernel's
// warps and split parts (up to 1024 threads, 64 registers; gemvPlan), where
// the 16-token tiles decode 2-16 tokens at about one cost.
// Only the codes that fit 64 registers without spills (ptxas, sm_80-sm_90):
// k3 with 32-wide groups and the 4-bit kernels spilled 16-132 bytes
// (run 56), so their 2-token steps keep the tiles.
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g1_t2(GEMV1_ARGS) { gemv_dense<2, 2, 0, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g2_t2(GEMV1_ARGS) { gemv_dense<2, 2, 0, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g4_t2(GEMV1_ARGS) { gemv_dense<2, 2, 0, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g1_t2(GEMV1_ARGS) { gemv_dense<3, 2, 0, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g2_t2(GEMV1_ARGS) { gemv_dense<3, 2, 0, 2>(GEMV1_PASS); }
// k8 / k8l: 5- to 8-bit codes in the byte layout (linear levels / any levels through lut);
// at most 256 threads (eight plane words per unit need the registers)
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g1_t1(GEMV1_ARGS) { gemv_dense<8, 1, 3, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g2_t1(GEMV1_ARGS) { gemv_dense<8, 1, 3, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g4_t1(GEMV1_ARGS) { gemv_dense<8, 1, 3, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g1_t8(GEMV_ARGS) { gemv_dense<8, 8, 3, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g2_t8(GEMV_ARGS) { gemv_dense<8, 8, 3, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8_g4_t8(GEMV_ARGS) { gemv_dense<8, 8, 3, 4>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g1_t1(GEMV1_ARGS) { gemv_dense<8, 1, 4, 1>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g2_t1(GEMV1_ARGS) { gemv_dense<8, 1, 4, 2>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g4_t1(GEMV1_ARGS) { gemv_dense<8, 1, 4, 4>(GEMV1_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g1_t8(GEMV_ARGS) { gemv_dense<8, 8, 4, 1>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g2_t8(GEMV_ARGS) { gemv_dense<8, 8, 4, 2>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_k8l_g4_t8(GEMV_ARGS) { gemv_dense<8, 8, 4, 4>(GEMV_PASS); }

// gemv_sk is gemv_dense for one token with the work split evenly over
// warps instead of by row group ("stream-K"): the R/32 row groups × U units
// are one list, and warp i of NW takes units [i·T/NW, (i+1)·T/NW) of it
// (T = row groups × U ≥ NW), so every warp of a one-wave grid has the same
// work, where whole row groups per block left a partial last wave (1,120
// row groups of gate_up) or SMs with one block beside SMs with two (160 of
// down). A warp that covers a whole row group writes y (and res += y); the
// warps sharing one write their partial rows to ws (maxp pieces of 32
// floats per row group, in warp order), and the last to arrive (cnt, left
// at zero for the next launch) sums the pieces in that order: the same
// result whichever warp is last. The float sums per warp are gemv_dense's.
template <int K, int MODE, int GPU_>
DEVI void gemv_sk(const uint4 *__restrict__ codes, const __half *__restrict__ scales,
                  const __half *__restrict__ offs, const int8_t *__restrict__ xq,
                  const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, int U, int G, int gsl,
                  unsigned t0, unsigned t1, unsigned t2, unsigned t3, float *__restrict__ res,
                  float *__restrict__ ws, int *__restrict__ cnt, int NW, int maxp) {
  const int lane = threadIdx.x & 31;
  const long long wi = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const long long T = (long long)((R + 31) >> 5) * U;
  if (wi >= NW) {
    pdl_wait();
    pdl_launch();
    return;
  }
  long long f = wi * T / NW;
  const long long f1 = (wi + 1) * T / NW;
  int rg = (int)(f / U), u = (int)(f % U), u0 = u;
  constexpr int SUBC = 16 / GPU_;
  uint4 wc[K];
  __half sc[GPU_], of[GPU_];
  auto load = [&](int rg, int uu, uint4 *ww, __half *ss, __half *oo) {
    const uint4 *base = codes + (size_t)rg * U * K * 32 + lane;
    const size_t sb = (size_t)rg * G * 32 + lane;
#pragma unroll
    for (int j = 0; j < K; j++) ww[j] = ldg_stream(base + ((size_t)uu * K + j) * 32);
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int g = min((uu * 128 + s * (128 / GPU_)) >> gsl, G - 1);
      ss[s] = scales[sb + (size_t)g * 32];
      oo[s] = offs != nullptr ? offs[sb + (size_t)g * 32] : __half(0.f);
    }
  };
  load(rg, u, wc, sc, of);
  pdl_wait(); // xq, fac, y and res belong to the kernels before
  pdl_launch();
  // the warp whose range holds list entry i
  auto warp_of = [&](long long i) { return ((i + 1) * NW - 1) / T; };
  float acc = 0.f;
  for (;;) {
    int rgn = rg, un = u + 1;
    if (un == U) rgn++, un = 0;
    const bool more = f + 1 < f1;
    uint4 wn[K];
    __half scn[GPU_], ofn[GPU_];
    if (more) load(rgn, un, wn, scn, ofn);
    int ia[GPU_];
#pragma unroll
    for (int s = 0; s < GPU_; s++) ia[s] = 0;
    const int8_t *xu = xq + u * 128;
    unsigned sel[4]; // K = 3: a k-slice's selectors (chunk_pair_bytes)
#pragma unroll
    for (int c2 = 0; c2 < 8; c2++) {
      unsigned b[4];
      chunk_pair_bytes<K, MODE, GPU_ == 1>(wc, c2, b, t0, t1, t2, t3, nullptr, sel);
      const int s = (2 * c2) / SUBC;
      const int4 xv = *(const int4 *)(xu + c2 * 16);
      int a = ia[s];
      a = dp4a_us(b[0], xv.x, a);
      a = dp4a_us(b[1], xv.y, a);
      a = dp4a_us(b[2], xv.z, a);
      a = dp4a_us(b[3], xv.w, a);
      ia[s] = a;
    }
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int c0 = u * 128 + s * (128 / GPU_);
      if (c0 < C) {
        const int g = c0 >> gsl;
        const float scf = __half2float(sc[s]);
        const bool first = GPU_ > 1 || (c0 & ((1 << gsl) - 1)) == 0;
        const float off = first ? __half2float(of[s]) : 0.f;
        const float4 fc = fac[g];
        float a = fmaf(scf * fc.x, (float)ia[s], acc);
        if (first) a = fmaf(scf, fc.y, fmaf(off, fc.z, a));
        acc = a;
      }
    }
    if (!more || un == 0) { // this warp's part [u0, u] of row group rg ends
      const int r = rg * 32 + lane;
      if (u0 == 0 && u == U - 1) {
        if (r < R) {
          y[r] = acc;
          if (res != nullptr) res[r] += acc;
        }
      } else {
        const long long w0 = warp_of((long long)rg * U);
        const int np = (int)(warp_of((long long)rg * U + U - 1) - w0 + 1);
        float *wp = ws + (size_t)rg * maxp * 32 + lane;
        wp[(wi - w0) * 32] = acc;
        __threadfence();
        __syncwarp();
        int old = 0;
        if (lane == 0) old = atomicAdd(cnt + rg, 1);
        old = __shfl_sync(0xffffffffu, old, 0);
        if (old == np - 1) { // the last piece: sum them in warp order
          __threadfence();
          // eight loads in flight at a time (one after another, a row group
          // of down's 28 pieces waited 28 L2 latencies), summed in order
          float v = 0.f;
          for (int p0 = 0; p0 < np; p0 += 8) {
            float pv[8];
#pragma unroll
            for (int j = 0; j < 8; j++) pv[j] = p0 + j < np ? __ldcg(wp + (p0 + j) * 32) : 0.f;
#pragma unroll
            for (int j = 0; j < 8; j++)
              if (p0 + j < np) v += pv[j];
          }
          if (r < R) {
            y[r] = v;
            if (res != nullptr) res[r] += v;
          }
          if (lane == 0) cnt[rg] = 0;
        }
      }
      acc = 0.f;
      u0 = 0;
    }
    if (!more) break;
    f++;
    rg = rgn, u = un;
#pragma unroll
    for (int j = 0; j < K; j++) wc[j] = wn[j];
#pragma unroll
    for (int s = 0; s < GPU_; s++) sc[s] = scn[s], of[s] = ofn[s];
  }
}

#define GEMV_SK_ARGS                                                                                  \
  const uint4 *__restrict__ codes, const __half *__restrict__ scales, const __half *__restrict__ offs, \
      const int8_t *__restrict__ xq, const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, \
      int U, int G, int gsl, unsigned t0, unsigned t1, unsigned t2, unsigned t3, float *__restrict__ res, \
      float *__restrict__ ws, int *__restrict__ cnt, int NW, int maxp
#define GEMV_SK_PASS codes, scales, offs, xq, fac, y, R, C, U, G, gsl, t0, t1, t2, t3, res, ws, cnt, NW, maxp

// upg_gemv_k<bits>[l]_g<groups per unit>_sk: gemv_sk, blocks of up to 1024
// threads (64 registers: 32 warps per SM), NW warps in all.
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g1_sk(GEMV_SK_ARGS) { gemv_sk<2, 0, 1>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g2_sk(GEMV_SK_ARGS) { gemv_sk<2, 0, 2>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k2_g4_sk(GEMV_SK_ARGS) { gemv_sk<2, 0, 4>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g1_sk(GEMV_SK_ARGS) { gemv_sk<3, 0, 1>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g2_sk(GEMV_SK_ARGS) { gemv_sk<3, 0, 2>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k3_g4_sk(GEMV_SK_ARGS) { gemv_sk<3, 0, 4>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g1_sk(GEMV_SK_ARGS) { gemv_sk<4, 1, 1>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g2_sk(GEMV_SK_ARGS) { gemv_sk<4, 1, 2>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4_g4_sk(GEMV_SK_ARGS) { gemv_sk<4, 1, 4>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g1_sk(GEMV_SK_ARGS) { gemv_sk<4, 2, 1>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g2_sk(GEMV_SK_ARGS) { gemv_sk<4, 2, 2>(GEMV_SK_PASS); }
extern "C" __global__ void __launch_bounds__(1024) upg_gemv_k4l_g4_sk(GEMV_SK_ARGS) { gemv_sk<4, 2, 4>(GEMV_SK_PASS); }

// quant_group: one warp quantizes group g0 .. g0+gs-1 of token t's segment
// (values at(i), i < gs) to int8 for gemv_dense: s = max|x|/127, q =
// round-half-even(x/s), codes to xq (ldq a token, columns below ldq), the
// group's factors (scale, its level offset and the codes' sum in value
// units) to fac (G a token) and, when xr is set, the values to xr (C a
// token). base is the segment's first column. rotq_tail and
// attn_cluster_rotq share it, so their codes agree bit for bit; the values
// come through at() (a shared-memory read the caller writes), so each
// inlined copy keeps its caller's loads.
template <typename At>
DEVI void quant_group(At at, int t, int base, int g0, int gs, int lane, int C, int G, float alpha, float beta,
                      float *__restrict__ xr, int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac) {
  float amax = 0.f;
  for (int i = lane; i < gs; i += 32) amax = fmaxf(amax, fabsf(at(i)));
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = int8_inv(amax);
  int sum = 0;
  for (int i = lane; i < gs; i += 32) {
    const float v = at(i);
    const int q = int8_code(v, inv);
    sum += q;
    const int c = base + g0 + i;
    if (c < ldq) xq[(size_t)t * ldq + c] = (int8_t)q;
    if (xr != nullptr && c < C) xr[(size_t)t * C + c] = v;
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const int g = (base + g0) / gs;
  if (lane == 0 && g < G) fac[(size_t)t * G + g] = group_factors(amax, sum, alpha, beta);
}

// rotq_tail rotates and quantizes one block's segment of one token: sm
// holds the seg input values (times the signs, zero past C) and is
// synchronized; base is the segment's first column. Hadamard blocks of rb
// values (rb a power of two), scaled by 1/sqrt(rb); xr (may be null)
// receives the rotated values; xq (ldq int8 per token) and fac (G float4 per
// token) feed gemv_dense, one warp a group of gs values (quant_group).
DEVI void rotq_tail(float *sm, int t, int base, int rb, int gs, int seg, int C, int G, float alpha,
                    float beta, float *__restrict__ xr, int8_t *__restrict__ xq, int ldq,
                    float4 *__restrict__ fac) {
  float scale = 1.f;
  if (rb > 1) {
    // the stages h = 1, 2, 4, .. two at a time (one barrier per two): quad
    // p is j, j+h, j+2h, j+3h (j with bits h and 2h clear), and the four
    // sums are the two radix-2 stages' float operations on them
    int h = 1;
    for (; 4 * h <= rb; h <<= 2) {
      for (int p = threadIdx.x; p < seg / 4; p += blockDim.x) {
        const int j = ((p & ~(h - 1)) << 2) | (p & (h - 1));
        const float a = sm[j], b = sm[j + h], c = sm[j + 2 * h], d = sm[j + 3 * h];
        const float ab = a + b, amb = a - b, cd = c + d, cmd = c - d;
        sm[j] = ab + cd;
        sm[j + h] = amb + cmd;
        sm[j + 2 * h] = ab - cd;
        sm[j + 3 * h] = amb - cmd;
      }
      __syncthreads();
    }
    if (h < rb) { // an odd number of stages: the last alone
      for (int p = threadIdx.x; p < seg / 2; p += blockDim.x) {
        const int j = ((p & ~(h - 1)) << 1) | (p & (h - 1));
        const float a = sm[j], b = sm[j + h];
        sm[j] = a + b;
        sm[j + h] = a - b;
      }
      __syncthreads();
    }
    scale = (float)(1.0 / sqrt((double)rb));
  }
  trace_mark(); // the rotation done
  if (xr != nullptr) {
    for (int i = threadIdx.x; i < seg; i += blockDim.x) {
      const int c = base + i;
      if (c < C) xr[(size_t)t * C + c] = sm[i] * scale;
    }
  }
  // one warp per group
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int g0 = warp * gs; g0 < seg; g0 += nw * gs)
    quant_group([&](int i) { return sm[g0 + i] * scale; }, t, base, g0, gs, lane, C, G, alpha, beta, nullptr, xq,
                ldq, fac);
#ifdef UPG_TRACE_PHASES
  __syncthreads();
  trace_mark(); // quantized
#endif
}

// upg_rotq rotates (x <- H·(D·x), Hadamard blocks of rb values) and quantizes
// the input of a dense matrix: one block per (segment of seg values, token),
// seg = max(rb, gs). x rows are ldx floats apart; xr (n × C floats, may be
// null) receives the rotated input; xq (n × ldq int8, ldq = U·128) and fac
// (n × G float4) feed gemv_dense. alpha and beta map bytes to levels.
extern "C" __global__ void __launch_bounds__(256)
    upg_rotq(const float *__restrict__ x, int ldx, const float *__restrict__ signs, int rb, int gs,
             int seg, int C, int G, float alpha, float beta, float *__restrict__ xr,
             int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac) {
  extern __shared__ float sm[];
  pdl_wait();
  pdl_launch();
  const int t = blockIdx.y;
  const int base = blockIdx.x * seg;
  const float *xt = x + (size_t)t * ldx;
  // four values a thread at a time, all loaded before any is stored: one
  // L2 round trip per four values, not one per value
  constexpr int ROTQ_ELEMS = 4;
  for (int i0 = threadIdx.x; i0 < seg; i0 += ROTQ_ELEMS * blockDim.x) {
    float xv[ROTQ_ELEMS], sg[ROTQ_ELEMS];
#pragma unroll
    for (int k = 0; k < ROTQ_ELEMS; k++) {
      const int i = i0 + k * blockDim.x, c = base + i;
      const bool in = i < seg && c < C;
      xv[k] = in ? xt[c] : 0.f;
      sg[k] = in && signs != nullptr ? signs[c] : 1.f;
    }
#pragma unroll
    for (int k = 0; k < ROTQ_ELEMS; k++) {
      const int i = i0 + k * blockDim.x;
      if (i < seg) {
        float v = 0.f;
        if (base + i < C) {
          v = xv[k];
          if (signs != nullptr) v *= sg[k];
        }
        sm[i] = v;
      }
    }
  }
  __syncthreads();
  rotq_tail(sm, t, base, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac);
}

// upg_overlay adds the fp16 overlay corrections Σ δ·xr[idx] of each row to y
// (n tokens, rotated input xr of C floats per token); one warp per row.
extern "C" __global__ void __launch_bounds__(256)
    upg_overlay(const uint16_t *__restrict__ idx, const __half *__restrict__ vals, int K,
                const float *__restrict__ xr, float *__restrict__ y, int R, int C, int n) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= R) return;
  for (int t = 0; t < n; t++) {
    float s = 0.f;
    for (int i = lane; i < K; i += 32)
      s += __half2float(vals[(size_t)r * K + i]) * xr[(size_t)t * C + idx[(size_t)r * K + i]];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) y[(size_t)t * R + r] += s;
  }
}

// upg_gemv_f16 is the fallback for encodings without a fused kernel: W was
// decoded to fp16 at upload (R rows of ldw halves). One warp per row, up to
// 8 tokens per launch (x rows ldx floats apart).
extern "C" __global__ void __launch_bounds__(256)
    upg_gemv_f16(const __half *__restrict__ w, int ldw, const float *__restrict__ x, int ldx,
                 float *__restrict__ y, int R, int C, int nt) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= R) return;
  float acc[8];
#pragma unroll
  for (int t = 0; t < 8; t++) acc[t] = 0.f;
  const __half *wr = w + (size_t)r * ldw;
  for (int c0 = lane * 8; c0 < C; c0 += 256) {
    uint4 raw = *(const uint4 *)(wr + c0);
    const __half *hv = (const __half *)&raw;
    float wf[8];
#pragma unroll
    for (int i = 0; i < 8; i++) wf[i] = __half2float(hv[i]);
#pragma unroll
    for (int t = 0; t < 8; t++) {
      if (t < nt) {
        const float *xt = x + (size_t)t * ldx + c0;
#pragma unroll
        for (int i = 0; i < 8; i++)
          if (c0 + i < C) acc[t] = fmaf(wf[i], xt[i], acc[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < 8; t++) {
    for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
  }
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < 8; t++)
      if (t < nt) y[(size_t)t * R + r] = acc[t];
  }
}

// upg_readbw streams n uint4 (a read-bandwidth reference for the GEMV's
// access pattern); out gets an XOR so the loads are not removed.
extern "C" __global__ void __launch_bounds__(256) upg_readbw(const uint4 *__restrict__ p, long long n, unsigned *__restrict__ out) {
  unsigned x = 0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const uint4 v = ldg_stream(p + i);
    x ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (x == 0x12345678u) out[0] = x;
}
