// Fused step kernels (decode launches per layer 18 -> 11): the op that
// produces a dense matrix's input also rotates and int8-quantizes it for the
// GEMV (RMSNorm, SwiGLU, attention's combine), RoPE of queries and keys
// with the KV store, and (gemv.cu) the residual add in the GEMV's epilogue.
// Each writes the same values, computed by the same float operations in the
// same order, as the unfused kernels it replaces (ops.cu), so the backend
// can fuse or not (UPG_CUDA_FUSE=0) with identical results.
//
// The *_rotq kernels: grid (segments of seg columns, n tokens), 256
// threads (rotqThreads), 4·seg bytes of dynamic shared memory, as upg_rotq; the rotq_tail
// parameters (signs .. fac) are upg_rotq's.

#include <cuda_fp16.h>
#include <stdint.h>

// PRE_ELEMS values per thread (segments of up to 8·blockDim columns) of a
// producer's weights (RMSNorm gain, rotation signs) are read into registers
// before pdl_wait, so the loads overlap the kernel before; pre_load fills
// v[k] with p[base + threadIdx.x + k·blockDim.x] (dflt past seg, past C or
// when p is null).
#define PRE_ELEMS 8
template <int P>
DEVI void pre_load(float (&v)[P], const float *__restrict__ p, int base, int seg, int C, float dflt) {
#pragma unroll
  for (int k = 0; k < P; k++) {
    const int i = threadIdx.x + k * blockDim.x, c = base + i;
    v[k] = p != nullptr && i < seg && c < C ? p[c] : dflt;
  }
}

// upg_rms_rotq: h row t = w · x_t / rms(x_t) (as upg_rmsnorm with rows =
// null, C = its d), then rotated and quantized. Every block sums the whole
// row's squares (256 threads, row_sumsq, like upg_rmsnorm) and writes only
// its own segment of h; x must not alias h.
extern "C" __global__ void __launch_bounds__(256)
    upg_rms_rotq(const float *__restrict__ x, const float *__restrict__ w, float eps, float *__restrict__ h,
                 const float *__restrict__ signs, int rb, int gs, int seg, int C, int G, float alpha,
                 float beta, float *__restrict__ xr, int8_t *__restrict__ xq, int ldq,
                 float4 *__restrict__ fac) {
  extern __shared__ float sm[];
  __shared__ float red[32];
  const int t = blockIdx.y, base = blockIdx.x * seg;
  // the gain and the signs are weights: read them before the wait
  float wv[PRE_ELEMS], sv[PRE_ELEMS];
  pre_load(wv, w, base, seg, C, 0.f);
  pre_load(sv, signs, base, seg, C, 1.f);
  pdl_wait();
  const float *xt = x + (size_t)t * C;
  // the segment's first PRE_ELEMS·blockDim values load with the row's sum
  // of squares, not one L2 round trip after it; both ahead of the next
  // GEMV's launch (pdl_launch_after_loads below), so they are in flight
  // before its early weight loads (run 170: +1.4% decode)
  float xv[PRE_ELEMS];
#pragma unroll
  for (int k = 0; k < PRE_ELEMS; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    xv[k] = i < seg && base + i < C ? xt[base + i] : 0.f;
  }
  float ss;
  if ((C & 3) == 0 && C / 4 <= 8 * (int)blockDim.x) {
    float4 rv[8];
    const float4 *x4 = (const float4 *)xt;
#pragma unroll
    for (int k = 0; k < 8; k++) {
      const int c = threadIdx.x + k * blockDim.x;
      rv[k] = c < C / 4 ? x4[c] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    pdl_launch_after_loads();
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++)
      if (threadIdx.x + k * blockDim.x < C / 4) {
        s += rv[k].x * rv[k].x;
        s += rv[k].y * rv[k].y;
        s += rv[k].z * rv[k].z;
        s += rv[k].w * rv[k].w;
      }
    ss = block_sum(s, red); // row_sumsq's sum, in its order
  } else {
    pdl_launch();
    ss = row_sumsq(xt, C, red);
  }
  trace_mark(); // the row's sum of squares
  const float inv = (float)(1.0 / sqrt((double)(ss / (float)C + eps)));
  auto one = [&](int i, float wk, float sg, float xc) {
    const int c = base + i;
    float v = 0.f;
    if (c < C) {
      v = wk * (xc * inv);
      h[(size_t)t * C + c] = v;
      if (signs != nullptr) v *= sg;
    }
    sm[i] = v;
  };
#pragma unroll
  for (int k = 0; k < PRE_ELEMS; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < seg) one(i, wv[k], sv[k], xv[k]);
  }
  for (int i = threadIdx.x + PRE_ELEMS * blockDim.x; i < seg; i += blockDim.x)
    one(i, base + i < C ? w[base + i] : 0.f, signs != nullptr && base + i < C ? signs[base + i] : 1.f,
        base + i < C ? xt[base + i] : 0.f);
  __syncthreads();
  trace_mark(); // the segment in shared memory
  rotq_tail(sm, t, base, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac);
}

// upg_swiglu_rotq: act[t·C + i] = silu(gate[t·gstr + i])·up[t·ustr + i] (as
// upg_swiglu, width C), then rotated and quantized. S > 1: gate and up are
// the S split-K parts of the GEMM before, N floats apart, summed here in
// part order as upg_splitk_sum adds them. SWIGLU_PRE values a thread (a
// 128-thread block's whole 512-column segment of Phi-4) are loaded ahead,
// both parts of a two-part sum in the same pass: run 120's loop over S
// parts there took 80 registers and spilled on sm_90 (three 256-thread
// blocks an SM: three waves at 32 tokens, not one of 128-thread blocks);
// more parts take a plain loop without the load-ahead.
#ifndef SWIGLU_PRE
#define SWIGLU_PRE 4
#endif
extern "C" __global__ void __launch_bounds__(256)
    upg_swiglu_rotq(const float *__restrict__ gate, int gstr, const float *__restrict__ up, int ustr, int S,
                    long long N, float *__restrict__ act, const float *__restrict__ signs, int rb, int gs, int seg,
                    int C, int G, float alpha, float beta, float *__restrict__ xr,
                    int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac) {
  extern __shared__ float sm[];
  const int t = blockIdx.y, base = blockIdx.x * seg;
  float sv[SWIGLU_PRE]; // the signs are weights: read before the wait
  pre_load(sv, signs, base, seg, C, 1.f);
  pdl_wait();
  auto one = [&](int i, float sg, float g, float u) {
    const int c = base + i;
    float v = 0.f;
    if (c < C) {
      v = g / (1.f + expf(-g)) * u;
      act[(size_t)t * C + c] = v;
      if (signs != nullptr) v *= sg;
    }
    sm[i] = v;
  };
  if (S <= 2) {
    // the first SWIGLU_PRE·blockDim values' gate and up are all loaded
    // before any is used: one L2 round trip for them, not one per value
    auto at = [&](const float *p, size_t o) { return S > 1 ? p[o] + p[N + o] : p[o]; };
    float gv[SWIGLU_PRE], uv[SWIGLU_PRE];
#pragma unroll
    for (int k = 0; k < SWIGLU_PRE; k++) {
      const int i = threadIdx.x + k * blockDim.x, c = base + i;
      const bool in = i < seg && c < C;
      gv[k] = in ? at(gate, (size_t)t * gstr + c) : 0.f;
      uv[k] = in ? at(up, (size_t)t * ustr + c) : 0.f;
    }
    pdl_launch_after_loads(); // gate and up asked for before the next GEMV's weights
#pragma unroll
    for (int k = 0; k < SWIGLU_PRE; k++) {
      const int i = threadIdx.x + k * blockDim.x;
      if (i < seg) one(i, sv[k], gv[k], uv[k]);
    }
    for (int i = threadIdx.x + SWIGLU_PRE * blockDim.x; i < seg; i += blockDim.x) {
      const int c = base + i;
      one(i, signs != nullptr && c < C ? signs[c] : 1.f, c < C ? at(gate, (size_t)t * gstr + c) : 0.f,
          c < C ? at(up, (size_t)t * ustr + c) : 0.f);
    }
  } else {
    pdl_launch();
    for (int i = threadIdx.x; i < seg; i += blockDim.x) {
      const int c = base + i;
      float g = 0.f, u = 0.f;
      if (c < C) {
        const size_t og = (size_t)t * gstr + c, ou = (size_t)t * ustr + c;
        g = gate[og], u = up[ou];
        for (int z = 1; z < S; z++) g += gate[z * N + og], u += up[z * N + ou];
      }
      one(i, signs != nullptr && c < C ? signs[c] : 1.f, g, u); // (sv's values again: no dynamic index)
    }
  }
  __syncthreads();
  trace_mark(); // the segment in shared memory
  rotq_tail(sm, t, base, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac);
}

// combine_rotq_seg merges attention's splits (as upg_attn_combine) into dst
// (n × heads·hd, C = heads·hd) for segment sgi of token t, then rotates and
// quantizes it. When the segment holds whole heads of at most 128 values,
// warp w merges heads w, w+W, ... (W warps), each lane its ≤ 4 columns
// (lane, lane+32, ...), so a split's weight is computed once per lane
// instead of once per column; the float operations per column are
// upg_attn_combine's (combine_cols), in its order. CG: the partials were
// written by other blocks of the caller's own kernel (combine_cols).
template <bool CG>
DEVI void combine_rotq_seg(const float *__restrict__ part, const int *__restrict__ pos, int chunk, int S,
                           int heads, int hd, float *__restrict__ dst, const float *__restrict__ signs, int rb,
                           int gs, int seg, int C, int G, float alpha, float beta, float *__restrict__ xr,
                           int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac, int t, int sgi, float *sm) {
  const int base = sgi * seg;
  const int ns = min(S, (pos[t] + chunk) / chunk);
  if (seg % hd == 0 && hd <= 128) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int h0 = base / hd, nh = seg / hd;
    for (int hl = warp; hl < nh; hl += nw) {
      const int h = h0 + hl;
      if (h >= heads) { // padding past C
        for (int d = lane; d < hd; d += 32) sm[hl * hd + d] = 0.f;
        continue;
      }
      float o[4];
      combine_cols<4, CG>(part + (size_t)(t * heads + h) * S * (hd + 2), ns, hd, lane, o);
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int d = lane + 32 * j;
        if (d < hd) {
          const int c = h * hd + d;
          float v = o[j];
          dst[(size_t)t * C + c] = v;
          if (signs != nullptr) v *= signs[c];
          sm[hl * hd + d] = v;
        }
      }
    }
  } else {
    for (int i = threadIdx.x; i < seg; i += blockDim.x) {
      const int c = base + i;
      float v = 0.f;
      if (c < C) {
        const int h = c / hd, d = c - h * hd;
        float o[1];
        combine_cols<1, CG>(part + (size_t)(t * heads + h) * S * (hd + 2), ns, hd, d, o);
        v = o[0];
        dst[(size_t)t * C + c] = v;
        if (signs != nullptr) v *= signs[c];
      }
      sm[i] = v;
    }
  }
  __syncthreads();
  trace_mark(); // the segment in shared memory
  rotq_tail(sm, t, base, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac);
}

#define ROTQ_ARGS                                                                                              \
  const float *__restrict__ signs, int rb, int gs, int seg, int C, int G, float alpha, float beta,              \
      float *__restrict__ xr, int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac
#define ROTQ_PASS signs, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac

// upg_combine_rotq: combine_rotq_seg for segment blockIdx.x of token
// blockIdx.y.
extern "C" __global__ void __launch_bounds__(256)
    upg_combine_rotq(const float *__restrict__ part, const int *__restrict__ pos, int chunk, int S, int heads,
                     int hd, float *__restrict__ dst, ROTQ_ARGS) {
  extern __shared__ float sm[];
  pdl_wait();
  pdl_launch();
  combine_rotq_seg<false>(part, pos, chunk, S, heads, hd, dst, ROTQ_PASS, blockIdx.y, blockIdx.x, sm);
}

// attn_split_rotq is attn_split (ops.cu, the per-head split attention)
// with upg_combine_rotq folded into its tail: a block that wrote a partial
// counts itself in cnt[t·segments + its head's segment] (after a fence),
// and the block that completes the count — the segment's heads × the
// token's splits that hold positions — merges and rotates that segment
// (combine_rotq_seg, the partials read through L2) and resets the count
// for the next launch. The merge and rotation are combine_rotq's
// operations in its order, so the results are its bits; what goes is a
// dependent launch per layer, and the tail of one segment overlaps the other
// segments' attention (run 83: leaving upg_combine_rotq out of a decode step
// saved 6.2 µs a layer). Needs seg a multiple of hd (a head in one segment)
// and every segment holding a head; dynamic shared memory the larger of
// attn_split's and combine_rotq's (4·seg bytes).
template <typename T>
DEVI void attn_split_rotq(const float *q, int qs, const T *kc, const T *vc, const int *tables, int tstride,
                          const int *pos, const int *seq, float scale, int heads, int H, int hd, int bs,
                          int chunk, int S, float *part, float *dst, const float *signs, int rb, int gs, int seg,
                          int C, int G, float alpha, float beta, float *xr, int8_t *xq, int ldq, float4 *fac,
                          int *cnt) {
  extern __shared__ float asr_sm[]; // not `sm`: as attn_split's split_sm (ops.cu)
  __shared__ int last;
  attn_split<T>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part);
  const int t = blockIdx.z, h = blockIdx.y;
  if ((int)blockIdx.x * chunk > pos[t]) return; // no positions: no partial, not counted
  const int ns = min(S, (pos[t] + chunk) / chunk), hps = seg / hd, sgi = h / hps;
  const int nh = min(hps, heads - sgi * hps), segs = (heads + hps - 1) / hps;
  __threadfence(); // this block's partial before its count, device-wide
  __syncthreads();
  if (threadIdx.x == 0) {
    int *c = cnt + t * segs + sgi;
    last = atomicAdd(c, 1) == nh * ns - 1;
    if (last) *c = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence(); // the other blocks' partials, seen through their counts
  combine_rotq_seg<true>(part, pos, chunk, S, heads, hd, dst, signs, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq,
                         fac, t, sgi, asr_sm);
}

// upg_attn_rotq_<cache type>: attn_split_rotq; grid (S, heads, n), 2·chunk
// threads (256: the rotation's block size, rotqThreads).
#define ATTN_ROTQ_PASS                                                                                         \
  q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part, dst, ROTQ_PASS, cnt
extern "C" __global__ void __launch_bounds__(256)
    upg_attn_rotq_f16(ATTN_ARGS_F16, float *__restrict__ dst, ROTQ_ARGS, int *__restrict__ cnt) {
  attn_split_rotq<__half>(ATTN_ROTQ_PASS);
}
extern "C" __global__ void __launch_bounds__(256)
    upg_attn_rotq_f32(ATTN_ARGS_F32, float *__restrict__ dst, ROTQ_ARGS, int *__restrict__ cnt) {
  attn_split_rotq<float>(ATTN_ROTQ_PASS);
}

// rope_kv: upg_rope on the query heads and the key heads of token t, then
// (key heads) upg_store_kv of that head's key and value. Grid (n, heads +
// H), threads ≥ 32, any count (loops over dim/2 pairs and hd values).
template <typename T>
DEVI void rope_kv(float *q, int qs, int heads, float *k, int ks, const float *v, int vs, T *kc, T *vc,
                  const int *slots, int H, int hd, int bs, int dim, int il, const float *cosT,
                  const float *sinT, const int *pos) {
  pdl_wait();
  pdl_launch();
  const int t = blockIdx.x, y = blockIdx.y, half = dim / 2;
  float *x = y < heads ? q + (size_t)t * qs + y * hd : k + (size_t)t * ks + (y - heads) * hd;
  const int p = pos[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float cs = cosT[(size_t)p * half + i], sn = sinT[(size_t)p * half + i];
    const int ia = il ? 2 * i : i, ib = il ? 2 * i + 1 : i + half;
    const float a = x[ia], b = x[ib];
    rope_pair(a, b, cs, sn, x[ia], x[ib]);
  }
  if (y < heads) return; // uniform per block
  __syncthreads();       // the rotated key, written by other threads, is visible after it
  const int h = y - heads;
  const int slot = slots[t], blk = slot / bs, off = slot % bs;
  const size_t o = (((size_t)blk * H + h) * bs + off) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    kc[o + d] = from_f<T>(x[d]);
    vc[o + d] = from_f<T>(v[(size_t)t * vs + h * hd + d]);
  }
}
extern "C" __global__ void __launch_bounds__(256)
    upg_rope_kv_f16(float *q, int qs, int heads, float *k, int ks, const float *v, int vs, __half *kc,
                    __half *vc, const int *slots, int H, int hd, int bs, int dim, int interleave,
                    const float *cosT, const float *sinT, const int *pos) {
  rope_kv<__half>(q, qs, heads, k, ks, v, vs, kc, vc, slots, H, hd, bs, dim, interleave, cosT, sinT, pos);
}
// splitk_rope_kv: upg_splitk_sum of a fused q|k|v projection's split-K
// parts (part: S arrays of N = n·R floats, R = (heads + 2H)·hd columns per
// token: the query heads, then the key heads, then the value heads) with
// rope_kv in its epilogue: the thread of pair j of head y of token t sums
// the pair's two columns in part order (upg_splitk_sum's additions), rotates
// a query or key head's pair by the token's position (rope_kv's), writes
// both into y (as the two kernels leave it) and a key or value head's into
// the cache slot. One launch and one boundary instead of two. Full rotary
// only (dim = hd): the Go side keeps the two kernels otherwise.
// Grid (ceil((heads + 2H)·hd/2 / 256), n), 256 threads.
template <typename T>
DEVI void splitk_rope_kv(const float *__restrict__ part, int S, float *__restrict__ y, int heads, int H, int hd,
                         T *__restrict__ kc, T *__restrict__ vc, const int *__restrict__ slots, int bs, int il,
                         const float *__restrict__ cosT, const float *__restrict__ sinT, const int *__restrict__ pos,
                         int n) {
  pdl_wait();
  pdl_launch();
  const int t = blockIdx.y, half = hd / 2, R = (heads + 2 * H) * hd;
  const int g = blockIdx.x * blockDim.x + threadIdx.x, hy = g / half, j = g - hy * half;
  if (hy >= heads + 2 * H) return;
  const int ia = il ? 2 * j : j, ib = il ? 2 * j + 1 : j + half;
  const size_t N = (size_t)n * R, i0 = (size_t)t * R + hy * hd;
  float pa[SPLITK_LOADS], pb[SPLITK_LOADS];
#pragma unroll
  for (int z = 0; z < SPLITK_LOADS; z++) {
    pa[z] = z < S ? part[z * N + i0 + ia] : 0.f;
    pb[z] = z < S ? part[z * N + i0 + ib] : 0.f;
  }
  float a = pa[0], b = pb[0];
#pragma unroll
  for (int z = 1; z < SPLITK_LOADS; z++)
    if (z < S) {
      a += pa[z];
      b += pb[z];
    }
  for (int z = SPLITK_LOADS; z < S; z++) {
    a += part[z * N + i0 + ia];
    b += part[z * N + i0 + ib];
  }
  if (hy < heads + H) { // a query or key head: rotated
    const int p = pos[t];
    const float cs = cosT[(size_t)p * half + j], sn = sinT[(size_t)p * half + j];
    float ra, rb;
    rope_pair(a, b, cs, sn, ra, rb);
    a = ra, b = rb;
  }
  y[i0 + ia] = a;
  y[i0 + ib] = b;
  if (hy < heads) return;
  const int v = hy >= heads + H, h = hy - heads - (v ? H : 0);
  const int slot = slots[t], blk = slot / bs, off = slot % bs;
  T *c = v ? vc : kc;
  const size_t o = (((size_t)blk * H + h) * bs + off) * hd;
  c[o + ia] = from_f<T>(a);
  c[o + ib] = from_f<T>(b);
}
extern "C" __global__ void __launch_bounds__(256)
    upg_splitk_rope_kv_f16(const float *part, int S, float *y, int heads, int H, int hd, __half *kc, __half *vc,
                           const int *slots, int bs, int interleave, const float *cosT, const float *sinT,
                           const int *pos, int n) {
  splitk_rope_kv<__half>(part, S, y, heads, H, hd, kc, vc, slots, bs, interleave, cosT, sinT, pos, n);
}
extern "C" __global__ void __launch_bounds__(256)
    upg_splitk_rope_kv_f32(const float *part, int S, float *y, int heads, int H, int hd, float *kc, float *vc,
                           const int *slots, int bs, int interleave, const float *cosT, const float *sinT,
                           const int *pos, int n) {
  splitk_rope_kv<float>(part, S, y, heads, H, hd, kc, vc, slots, bs, interleave, cosT, sinT, pos, n);
}
extern "C" __global__ void __launch_bounds__(256)
    upg_rope_kv_f32(float *q, int qs, int heads, float *k, int ks, const float *v, int vs, float *kc,
                    float *vc, const int *slots, int H, int hd, int bs, int dim, int interleave,
                    const float *cosT, const float *sinT, const int *pos) {
  rope_kv<float>(q, qs, heads, k, ks, v, vs, kc, vc, slots, H, hd, bs, dim, interleave, cosT, sinT, pos);
}

// attn_cluster_rotq: a one-token step's attention in clusters of CL = 8
// blocks, the query heads of one Hadamard block of the output projection's
// input (rb = CL·HD), with that rotation and the int8 quantization in its
// tail: no splits' partials through global memory, no fence, count or last
// block, and no launch of its own for the merge (attn_split_rotq's chain).
// Block x of token t = blockIdx.y owns query head x. With GQ query heads a
// key/value head, the GQ blocks of KV head x/GQ each take a contiguous GQ-th
// of its positions and score them for all GQ heads (each key and value row
// read once, not once a query head); each block pushes each head's partial
// into the shared memory of the block that owns it (st.async, completed on
// that block's mbarrier: no cluster barrier's release, run 230), which
// merges its head's GQ partials. Then the rotation: the Hadamard stages of
// distance 1 .. HD/2 inside the head, each block's head pushed to every
// other rank the same way, and the stages of distance HD .. rb/2 across the
// ranks (rotq_tail's butterflies are these radix-2 stages: the same float
// operations on the same values), after which every block holds the whole
// segment and quantizes its share of the groups as rotq_tail does.
//
// Layout: L = HD/E lanes a cache row (E values a 16-byte piece), R =
// AC_THREADS/L rows a load step, AC_LOADS steps of loads in flight (a
// batch is 256 rows of Phi-4's fp16 cache: one for 1,024 positions, two for
// 2,048). Positions: at most AC_MAXPOS (the Go side takes this kernel only
// then).
#define AC_THREADS 512
#define AC_MAXPOS 2048
#define AC_LOADS 8
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
DEVI unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
// push_rank stores v at shared address p of the cluster's block rank and
// completes its 4 bytes on that block's mbarrier mb (st.async: no fence,
// the receiver learns of it by waiting on mb).
DEVI void push_rank(const float *p, float v, const void *mb, unsigned rank) {
  unsigned ra, rm;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"((unsigned)__cvta_generic_to_shared(p)), "r"(rank));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(rm) : "r"((unsigned)__cvta_generic_to_shared(mb)), "r"(rank));
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(ra), "r"(__float_as_uint(v)), "r"(rm)
               : "memory");
}
// mbar_wait0 waits for phase 0 of the mbarrier at shared address a.
DEVI void mbar_wait0(unsigned a) {
  unsigned ok;
  do {
    asm volatile("{.reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p;}"
                 : "=r"(ok)
                 : "r"(a), "r"(0u)
                 : "memory");
  } while (!ok);
}
#endif
// ldg_evict_first loads 16 bytes with L2's evict-first policy (sm_80+;
// createpolicy and .L2::cache_hint, as sm_90's ld takes .L2::evict_first
// itself only on 256-bit loads).
DEVI uint4 ldg_evict_first(const void *p) {
  uint4 v;
  asm("{.reg .b64 pol; createpolicy.fractional.L2::evict_first.b64 pol, 1.0; "
      "ld.global.nc.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;}"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
// ac_load_rows asks for one batch of cache rows: this thread's 16 bytes
// (lane li of the row) of rows r, r + R, ... (AC_LOADS of them, those below
// np), the rows' indices in roff; all loads go out before any is used.
// They load evict-first: a step reads each row once, and the 40 layers'
// rows (~105 MB for Phi-4 after 512 positions) pass through the 50 MB L2
// every token, so at normal priority they only push out what the step's
// other kernels read back (run 182: this kernel 10.2 -> 9.3 µs a call, with
// the GEMVs' weights evict-first too, which alone lost 1.5%).
template <typename T, int HD, int R>
DEVI void ac_load_rows(uint4 (&raw)[AC_LOADS], const T *__restrict__ c, const int *roff, int r, int li, int np) {
  constexpr int E = 16 / sizeof(T);
#pragma unroll
  for (int j = 0; j < AC_LOADS; j++, r += R)
    if (r < np) raw[j] = ldg_evict_first(c + (size_t)roff[r] * HD + li * E);
}
template <typename T, int HD, int GQ, int CL>
DEVI void attn_cluster_rotq(const float *__restrict__ q, int qs, const T *__restrict__ kc, const T *__restrict__ vc,
                            const int *__restrict__ tables, int tstride, const int *__restrict__ pos,
                            const int *__restrict__ seq, float scale, int heads, int H, int bs,
                            float *__restrict__ dst, const float *__restrict__ signs, int rb, int gs, int C, int G,
                            float alpha, float beta, float *__restrict__ xr, int8_t *__restrict__ xq, int ldq,
                            float4 *__restrict__ fac) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int E = 16 / sizeof(T), L = HD / E, R = AC_THREADS / L, NW = AC_THREADS / 32, QMAX = AC_MAXPOS / GQ;
  static_assert(GQ == 4 && L >= 4, "the scores' halving exchanges are written for four query heads");
  __shared__ int roff[QMAX]; // the rows' indices in the cache (in rows of HD values)
  __shared__ float sc[GQ][QMAX];
  __shared__ float vs[NW][GQ][HD]; // the warps' value sums
  __shared__ float pin[GQ][HD + 2]; // the owned head's max, sum and Σ e·v over each sibling's positions (pushed)
  __shared__ float lin[CL - 1][HD]; // the other ranks' heads after their stages inside the head (pushed)
  __shared__ __align__(8) unsigned long long mbp, mbl; // pin's and lin's bytes arrived
  __shared__ float red[2 * GQ];      // the heads' maxima and sums
  static_assert(GQ >= 4 && 2 * QMAX >= CL * HD && QMAX >= HD, "sc holds the segment and two exchange rows");
  const int x = blockIdx.x, t = blockIdx.y, kvh = x / GQ, b = x % GQ;
  const int li = threadIdx.x % L, rs = threadIdx.x / L, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // the step's metadata and the signs (weights) before the wait
  const int T1 = min(pos[t] + 1, AC_MAXPOS), per = (T1 + GQ - 1) / GQ, p0 = b * per;
  const int np = max(0, min(per, T1 - p0));
  const int *tab = tables + (size_t)seq[t] * tstride;
  for (int i = threadIdx.x; i < np; i += blockDim.x) {
    const int p = p0 + i;
    roff[i] = (tab[p / bs] * H + kvh) * bs + p % bs;
  }
  const float sg = threadIdx.x < HD && signs != nullptr ? signs[x * HD + threadIdx.x] : 1.f;
  // pin's and lin's mbarriers, expecting their senders' bytes; every
  // block's inited before any block pushes (the cluster barrier's wait
  // before the first pushes)
  const unsigned mba = (unsigned)__cvta_generic_to_shared(&mbp), mbb = (unsigned)__cvta_generic_to_shared(&mbl);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(mba) : "memory");
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(mbb) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mba), "r"(GQ * (HD + 2) * 4) : "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbb), "r"((CL - 1) * HD * 4) : "memory");
  }
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  pdl_wait();
  float qv[GQ][E];
#pragma unroll
  for (int g = 0; g < GQ; g++) {
    const float4 *q4 = reinterpret_cast<const float4 *>(q + (size_t)t * qs + (kvh * GQ + g) * HD + li * E);
#pragma unroll
    for (int e4 = 0; e4 < E / 4; e4++) {
      const float4 v = q4[e4];
      qv[g][4 * e4] = v.x, qv[g][4 * e4 + 1] = v.y, qv[g][4 * e4 + 2] = v.z, qv[g][4 * e4 + 3] = v.w;
    }
  }
  __syncthreads(); // roff
  trace_mark();    // query and row offsets
  for (int r0 = 0; r0 < np; r0 += AC_LOADS * R) {
    uint4 raw[AC_LOADS];
    ac_load_rows<T, HD, R>(raw, kc, roff, r0 + rs, li, np);
#pragma unroll
    for (int j = 0; j < AC_LOADS; j++) {
      const int r = r0 + rs + j * R;
      float s[GQ];
#pragma unroll
      for (int g = 0; g < GQ; g++) s[g] = 0.f;
      if (r < np) {
        float f[E];
        load16_f<T>(raw[j], f);
#pragma unroll
        for (int g = 0; g < GQ; g++)
#pragma unroll
          for (int e = 0; e < E; e++) s[g] += qv[g][e] * f[e];
      }
      // the row's L lanes add the four heads' sums by halving exchanges:
      // across L/2 a lane keeps two heads and sends two, across L/4 one and
      // one, then plain sums; 2 + 1 + log2(L/4) shuffles, not 4·log2(L)
      const bool hi = li & (L / 2), hi2 = li & (L / 4);
      float k0 = hi ? s[2] : s[0], k1 = hi ? s[3] : s[1];
      k0 += __shfl_xor_sync(0xffffffffu, hi ? s[0] : s[2], L / 2);
      k1 += __shfl_xor_sync(0xffffffffu, hi ? s[1] : s[3], L / 2);
      float k = hi2 ? k1 : k0;
      k += __shfl_xor_sync(0xffffffffu, hi2 ? k0 : k1, L / 4);
#pragma unroll
      for (int o = L / 8; o > 0; o >>= 1) k += __shfl_xor_sync(0xffffffffu, k, o);
      if ((li & (L / 4 - 1)) == 0 && r < np) sc[(hi ? 2 : 0) + (hi2 ? 1 : 0)][r] = k * scale;
    }
  }
  __syncthreads();
  trace_mark(); // scores
  // softmax: warp g takes head g's row of scores (≤ QMAX/32 a lane), its
  // maximum and sum by shuffles, one barrier for the block (two 16-warp
  // reductions took 2.3 µs, run 166)
  if (warp < GQ) {
    float mw = -INFINITY, lw = 0.f;
    for (int i = lane; i < np; i += 32) mw = fmaxf(mw, sc[warp][i]);
    mw = warp_max(mw);
    for (int i = lane; i < np; i += 32) {
      const float e = expf(sc[warp][i] - mw);
      sc[warp][i] = e;
      lw += e;
    }
    lw = warp_sum(lw);
    if (lane == 0) red[2 * warp] = mw, red[2 * warp + 1] = lw;
  }
  __syncthreads(); // the weights and the heads' maxima and sums
  trace_mark();    // softmax
  float acc[GQ][E];
#pragma unroll
  for (int g = 0; g < GQ; g++)
#pragma unroll
    for (int e = 0; e < E; e++) acc[g][e] = 0.f;
  for (int r0 = 0; r0 < np; r0 += AC_LOADS * R) {
    uint4 raw[AC_LOADS];
    ac_load_rows<T, HD, R>(raw, vc, roff, r0 + rs, li, np);
#pragma unroll
    for (int j = 0; j < AC_LOADS; j++) {
      const int r = r0 + rs + j * R;
      if (r < np) {
        float f[E];
        load16_f<T>(raw[j], f);
#pragma unroll
        for (int g = 0; g < GQ; g++) {
          const float w = sc[g][r];
#pragma unroll
          for (int e = 0; e < E; e++) acc[g][e] += w * f[e];
        }
      }
    }
  }
  // a warp's row slots (lanes li, li + L, ...) added by shuffles, the warps' sums in warp order
#pragma unroll
  for (int g = 0; g < GQ; g++)
#pragma unroll
    for (int e = 0; e < E; e++)
#pragma unroll
      for (int o = L; o < 32; o <<= 1) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
  if (lane < L)
#pragma unroll
    for (int g = 0; g < GQ; g++)
#pragma unroll
      for (int e = 0; e < E; e++) vs[warp][g][li * E + e] = acc[g][e];
  __syncthreads();
  trace_mark(); // value sums
  // each query head's partial straight into the shared memory of the
  // block that owns the head (its pin[b]), completed on that block's
  // mbarrier: no cluster barrier's release here (run 228: the kernel's
  // warps stalled ~11% of their time on membar at its cluster barriers)
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); // every block's mbarrier inited
  const unsigned rank = cluster_rank(), r0 = rank - b; // the siblings of KV head kvh: ranks r0 .. r0+GQ-1
  for (int i = threadIdx.x; i < GQ * HD; i += blockDim.x) {
    const int g = i / HD, d = i - g * HD;
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < NW; w++) o += vs[w][g][d];
    push_rank(&pin[b][2 + d], o, &mbp, r0 + g);
  }
  if (threadIdx.x < GQ) {
    push_rank(&pin[b][0], red[2 * threadIdx.x], &mbp, r0 + threadIdx.x);
    push_rank(&pin[b][1], red[2 * threadIdx.x + 1], &mbp, r0 + threadIdx.x);
  }
  // o's blocks may start now: their weight loads beside the key loads cost
  // 1.2 µs in run 166's trace (+1.1% measured with the trigger here)
  pdl_launch();
  // thread d < HD: the merge of head x's value d, the Hadamard stages inside
  // the head (distances below 32 by shuffles, the others through two rows of
  // sc, free since the value sums), its value pushed to the other ranks'
  // lin, theirs waited for on mbl, the stages across the ranks (the same
  // float operations on the same values as rotq_tail's butterflies), and
  // the segment into sc's first CL·HD floats; no cluster barrier's release
  float *segv = &sc[0][0]; // the segment's CL·HD rotated values
  if (threadIdx.x < HD) {
    const int d = threadIdx.x;
    float mk[GQ], lk[GQ], ok[GQ];
    mbar_wait0(mba); // the GQ siblings' partials of head x
#pragma unroll
    for (int k = 0; k < GQ; k++) {
      mk[k] = pin[k][0];
      lk[k] = pin[k][1];
      ok[k] = pin[k][2 + d];
    }
    float M = -INFINITY;
#pragma unroll
    for (int k = 0; k < GQ; k++) M = fmaxf(M, mk[k]);
    float Ls = 0.f, O = 0.f;
#pragma unroll
    for (int k = 0; k < GQ; k++)
      if (lk[k] > 0.f) { // a block without positions has no partial
        const float e = expf(mk[k] - M);
        Ls += lk[k] * e;
        O += ok[k] * e;
      }
    const float oh = O * (1.f / Ls);
    dst[(size_t)t * C + x * HD + d] = oh;
    float v = signs != nullptr ? oh * sg : oh;
    const int hin = min(rb, HD);
    for (int hh = 1; hh < hin && hh < 32; hh <<= 1) { // lower index: a + c, upper: a - c
      const float p = __shfl_xor_sync(0xffffffffu, v, hh);
      v = (d & hh) ? p - v : v + p;
    }
    for (int hh = 32, row = GQ - 2; hh < hin; hh <<= 1, row ^= 1) { // rows GQ-2 and GQ-1 in turn
      sc[row][d] = v;
      asm volatile("bar.sync 1, %0;" ::"r"(HD) : "memory"); // the HD threads' values of this stage
      const float p = sc[row][d ^ hh];
      v = (d & hh) ? p - v : v + p;
    }
#pragma unroll
    for (int r = 0; r < CL; r++)
      if (r != (int)rank) push_rank(&lin[(int)rank < r ? rank : rank - 1][d], v, &mbl, r);
    mbar_wait0(mbb); // the other ranks' values d
    float vv[CL];
#pragma unroll
    for (int r = 0; r < CL; r++) vv[r] = r == (int)rank ? v : lin[r < (int)rank ? r : r - 1][d];
#pragma unroll
    for (int hh = 1; hh < CL; hh <<= 1)
#pragma unroll
      for (int p = 0; p < CL / 2; p++) {
        const int j = ((p & ~(hh - 1)) << 1) | (p & (hh - 1));
        const float a = vv[j], c = vv[j + hh];
        vv[j] = a + c;
        vv[j + hh] = a - c;
      }
#pragma unroll
    for (int r = 0; r < CL; r++) segv[r * HD + d] = vv[r];
  }
  // no block may leave while a push to it could be in flight: each says it
  // has pushed, and waits for the others' word before it leaves
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  __syncthreads(); // segv complete
  trace_mark();       // merged and rotated
  const float rsc = rb > 1 ? (float)(1.0 / sqrt((double)rb)) : 1.f;
  const int base = (x - (int)rank) * HD, nG = CL * HD / gs;
  // this rank's groups of the segment, one a warp: rotq_tail's operations
  for (int gl = (int)rank + warp * CL; gl < nG; gl += NW * CL) {
    const int g0 = gl * gs;
    quant_group([&](int i) { return segv[g0 + i] * rsc; }, t, base, g0, gs, lane, C, G, alpha, beta, xr, xq, ldq,
                fac);
  }
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory"); // no block leaves while another pushes to it
#else
  __trap(); // clusters need sm_90 (the Go side takes this kernel only there)
#endif
}

// upg_attn_cluster_rotq_<cache type>_h<HD>: attn_cluster_rotq for groups of
// 4 query heads a KV head in clusters of 8 (Phi-4's 1,024-column Hadamard
// blocks of 128-value heads, the demo model's 512 of 64); grid (heads, n),
// AC_THREADS threads, launched with the cluster dimension (8, 1, 1)
// (clusterOf in device.go).
#define AC_ARGS_TAIL                                                                                           \
  const int *__restrict__ tables, int tstride, const int *__restrict__ pos, const int *__restrict__ seq,        \
      float scale, int heads, int H, int bs, float *__restrict__ dst, const float *__restrict__ signs, int rb,  \
      int gs, int C, int G, float alpha, float beta, float *__restrict__ xr, int8_t *__restrict__ xq, int ldq, \
      float4 *__restrict__ fac
#define AC_ARGS_F16 const float *__restrict__ q, int qs, const __half *__restrict__ kc, const __half *__restrict__ vc, AC_ARGS_TAIL
#define AC_ARGS_F32 const float *__restrict__ q, int qs, const float *__restrict__ kc, const float *__restrict__ vc, AC_ARGS_TAIL
#define AC_PASS q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, bs, dst, signs, rb, gs, C, G, alpha, beta, xr, xq, ldq, fac
extern "C" __global__ void __launch_bounds__(AC_THREADS, 1) upg_attn_cluster_rotq_f16_h128(AC_ARGS_F16) { attn_cluster_rotq<__half, 128, 4, 8>(AC_PASS); }
extern "C" __global__ void __launch_bounds__(AC_THREADS, 1) upg_attn_cluster_rotq_f16_h64(AC_ARGS_F16) { attn_cluster_rotq<__half, 64, 4, 8>(AC_PASS); }
extern "C" __global__ void __launch_bounds__(AC_THREADS, 1) upg_attn_cluster_rotq_f32_h128(AC_ARGS_F32) { attn_cluster_rotq<float, 128, 4, 8>(AC_PASS); }
extern "C" __global__ void __launch_bounds__(AC_THREADS, 1) upg_attn_cluster_rotq_f32_h64(AC_ARGS_F32) { attn_cluster_rotq<float, 64, 4, 8>(AC_PASS); }
