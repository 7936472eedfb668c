// The other ops of a decoder step: embedding lookup, RMSNorm, residual add,
// bias, rotary embedding, KV store, paged attention (split over positions,
// then combined), SwiGLU and greedy sampling. Formulas follow the CPU
// backend (backend/cpu/exec.go, ops.go) operation for operation where the
// order matters for rounding.
//
// KV storage, one array per layer for keys and one for values:
// element ((block·H + kvhead)·bs + offset)·hd + d, like the CPU backend.

#include <cuda_fp16.h>
#include <stdint.h>

#ifndef DEVI
#define DEVI __device__ __forceinline__
#endif

DEVI float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
DEVI float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum / block_max reduce over the whole block (blockDim a multiple of
// 32, at most 1024); red is 32 floats of shared memory. All threads get it.
DEVI float block_sum(float v, float *red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  v = lane < nw ? red[lane] : 0.f;
  return warp_sum(v);
}
DEVI float block_max(float v, float *red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  v = lane < nw ? red[lane] : -INFINITY;
  return warp_max(v);
}

DEVI unsigned comp4(const uint4 &v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// dense_code reads the code of column c of lane's row in the GPU dense
// layout (gemv.cu): base points at the row group's codes plus the lane.
DEVI unsigned dense_code(const uint4 *base, int K, int c) {
  const int u = c >> 7, ch = (c & 127) >> 3, ii = c & 7;
  const uint4 *unit = base + (size_t)u * (K & 15) * 32;
  if (K == 20) { // 4-bit nibble layout (any levels): nibble ii of word ch
    return (comp4(unit[(ch >> 2) * 32], ch & 3) >> (4 * ii)) & 15u;
  }
  if (K == 8) { // byte layout: byte ii&3 of word 2·(ch&1) + ii/4 of plane word ch/2
    return (comp4(unit[(ch >> 1) * 32], 2 * (ch & 1) + (ii >> 2)) >> (8 * (ii & 3))) & 255u;
  }
  if (K == 4) {
    const unsigned w = comp4(unit[(ch >> 2) * 32], ch & 3);
    return ii < 4 ? (w >> (8 * ii)) & 15u : (w >> (8 * (ii - 4) + 4)) & 15u;
  }
  if (K == 3) { // selector (ks, j), nibble n (gemv.cu sel3)
    const int k = c & 127, ks = k >> 5, j = (k & 15) >> 2, n = 4 * ((k >> 4) & 1) + (k & 3);
    if (ks < 3) return (comp4(unit[ks * 32], j) >> (4 * n)) & 7u;
    unsigned q = 0;
    for (int b = 0; b < 3; b++) q |= ((comp4(unit[b * 32], j) >> (4 * n + 3)) & 1u) << b;
    return q;
  }
  const int m = ch >> 1, s = 2 * (ch & 1);
  return (comp4(unit[(m >> 2) * 32], m & 3) >> (4 * ii + s)) & 3u;
}

// unrotate_store undoes the input rotation of one segment of a decoded row
// (sm: seg values, synchronized; Hadamard blocks of rb, scaled by
// 1/sqrt(rb), then the signs) and writes columns base.. of dst (C wide).
DEVI void unrotate_store(float *sm, int seg, int rb, const float *__restrict__ signs,
                         float *__restrict__ dst, int base, int C) {
  if (rb > 1) {
    for (int h = 1; h < rb; h <<= 1) {
      for (int p = threadIdx.x; p < seg / 2; p += blockDim.x) {
        const int j = (p / h) * 2 * h + p % h;
        const float a = sm[j], b = sm[j + h];
        sm[j] = a + b;
        sm[j + h] = a - b;
      }
      __syncthreads();
    }
    const float scale = (float)(1.0 / sqrt((double)rb));
    for (int i = threadIdx.x; i < seg; i += blockDim.x) sm[i] *= scale;
    __syncthreads();
  }
  for (int i = threadIdx.x; i < seg; i += blockDim.x) {
    const int c = base + i;
    if (c < C) dst[c] = signs != nullptr ? sm[i] * signs[c] : sm[i];
  }
}

// upg_embed_dense writes the rows tokens[t] of a dense matrix (rotation
// undone, as DecodeRows) into dst (n rows of C). Grid (segments of seg
// columns, n); seg is a multiple of the rotation block rb.
extern "C" __global__ void __launch_bounds__(256)
    upg_embed_dense(const uint4 *__restrict__ codes, const __half *__restrict__ scales,
                    const __half *__restrict__ offs, const float *__restrict__ levels,
                    const float *__restrict__ signs, const int *__restrict__ tokens,
                    float *__restrict__ dst, int C, int U, int G, int gsl, int K, int rb, int seg) {
  extern __shared__ float sm[];
  const int t = blockIdx.y, base = blockIdx.x * seg;
  const int r = tokens[t], rg = r >> 5, lane = r & 31;
  const uint4 *row = codes + (size_t)rg * U * (K & 15) * 32 + lane;
  // EMBED_ELEMS values a thread at a time: their codes, scales and offsets
  // are loaded before any level is looked up, so a thread waits for two
  // round trips per EMBED_ELEMS values rather than two per value (run 87's
  // profile: 20 µs for Phi-4's row, one value after another)
  constexpr int EMBED_ELEMS = 4;
  for (int i0 = threadIdx.x; i0 < seg; i0 += EMBED_ELEMS * blockDim.x) {
    unsigned q[EMBED_ELEMS];
    float sc[EMBED_ELEMS], of[EMBED_ELEMS];
#pragma unroll
    for (int k = 0; k < EMBED_ELEMS; k++) {
      const int i = i0 + k * blockDim.x, c = base + i;
      q[k] = 0;
      sc[k] = of[k] = 0.f;
      if (i < seg && c < C) {
        const size_t si = ((size_t)rg * G + (c >> gsl)) * 32 + lane;
        q[k] = dense_code(row, K, c);
        sc[k] = __half2float(scales[si]);
        if (offs != nullptr) of[k] = __half2float(offs[si]);
      }
    }
#pragma unroll
    for (int k = 0; k < EMBED_ELEMS; k++) {
      const int i = i0 + k * blockDim.x;
      if (i < seg) {
        float v = 0.f;
        if (base + i < C) {
          v = sc[k] * levels[q[k]];
          if (offs != nullptr) v += of[k];
        }
        sm[i] = v;
      }
    }
  }
  __syncthreads();
  unrotate_store(sm, seg, rb, signs, dst + (size_t)t * C, base, C);
}

// upg_embed_f16 writes rows tokens[t] of an fp16 matrix (ldw halves a row).
extern "C" __global__ void upg_embed_f16(const __half *__restrict__ w, int ldw,
                                         const int *__restrict__ tokens, float *__restrict__ dst,
                                         int C) {
  const int t = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < C) dst[(size_t)t * C + c] = __half2float(w[(size_t)tokens[t] * ldw + c]);
}

// row_sumsq is Σ x[c]² over a row of d values, summed by the whole block
// (red: 32 floats of shared memory): float4 loads when d is a multiple of 4
// (rows then start 16-byte aligned), all of a thread's in flight at once.
// upg_rmsnorm and upg_rms_rotq share it, both with 256 threads, so their
// sums are identical.
DEVI float row_sumsq(const float *__restrict__ xr, int d, float *red) {
  float ss = 0.f;
  if ((d & 3) == 0) {
    const float4 *x4 = (const float4 *)xr;
#pragma unroll 8
    for (int c = threadIdx.x; c < d / 4; c += blockDim.x) {
      const float4 v = x4[c];
      ss += v.x * v.x;
      ss += v.y * v.y;
      ss += v.z * v.z;
      ss += v.w * v.w;
    }
  } else {
    for (int c = threadIdx.x; c < d; c += blockDim.x) ss += xr[c] * xr[c];
  }
  return block_sum(ss, red);
}

// upg_rmsnorm: dst row i = w · x_row / rms(x_row), x_row = rows ? rows[i] : i.
// One block per row.
extern "C" __global__ void __launch_bounds__(256)
    upg_rmsnorm(float *__restrict__ dst, const float *__restrict__ x, const float *__restrict__ w,
                float eps, int d, const int *__restrict__ rows) {
  __shared__ float red[32];
  const int i = blockIdx.x;
  const float *xr = x + (size_t)(rows != nullptr ? rows[i] : i) * d;
  const float ss = row_sumsq(xr, d, red);
  const float inv = (float)(1.0 / sqrt((double)(ss / (float)d + eps)));
  for (int c = threadIdx.x; c < d; c += blockDim.x) dst[(size_t)i * d + c] = w[c] * (xr[c] * inv);
}

// upg_add: dst[i] += src[i], i < n.
extern "C" __global__ void upg_add(float *__restrict__ dst, const float *__restrict__ src, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

// upg_bias: x[t·width + i] += b[i] for n rows.
extern "C" __global__ void upg_bias(float *__restrict__ x, const float *__restrict__ b, int width, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < width * n) x[i] += b[i % width];
}

// rope_pair: kernels/gemv.cu.

// upg_rope rotates the first dim values of each head of token t's row
// (x + t·stride) by position pos[t]; cos/sin are [position][dim/2].
// Grid (n, heads), dim/2 threads (rounded up).
extern "C" __global__ void upg_rope(float *__restrict__ x, int stride, int hd, int dim, int interleave,
                                    const float *__restrict__ cosT, const float *__restrict__ sinT,
                                    const int *__restrict__ pos) {
  const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = dim / 2;
  if (i >= half) return;
  float *v = x + (size_t)t * stride + h * hd;
  const float cs = cosT[(size_t)pos[t] * half + i], sn = sinT[(size_t)pos[t] * half + i];
  const int ia = interleave ? 2 * i : i, ib = interleave ? 2 * i + 1 : i + half;
  rope_pair(v[ia], v[ib], cs, sn, v[ia], v[ib]);
}

template <typename T> DEVI T from_f(float v);
template <> DEVI float from_f<float>(float v) { return v; }
template <> DEVI __half from_f<__half>(float v) { return __float2half_rn(v); }
DEVI float to_f(float v) { return v; }
DEVI float to_f(__half v) { return __half2float(v); }

// load16_f converts a 16-byte piece of a cache row (16/sizeof(T) values)
// to floats.
template <typename T> DEVI void load16_f(const uint4 &raw, float (&f)[16 / sizeof(T)]);
template <> DEVI void load16_f<__half>(const uint4 &raw, float (&f)[8]) {
  const __half2 *h2 = (const __half2 *)&raw;
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const float2 x = __half22float2(h2[j]);
    f[2 * j] = x.x;
    f[2 * j + 1] = x.y;
  }
}
template <> DEVI void load16_f<float>(const uint4 &raw, float (&f)[4]) {
  f[0] = __uint_as_float(raw.x);
  f[1] = __uint_as_float(raw.y);
  f[2] = __uint_as_float(raw.z);
  f[3] = __uint_as_float(raw.w);
}

// ATTN_LOADS is how many 16-byte pieces of key or value rows an attention
// thread loads before it uses the first: all of them in flight at once,
// where a loop that loads and then multiplies waits a memory latency per
// piece (a head of 128 fp16 values is 8 pieces per half-row thread). The
// sums take the pieces in the same order either way.
#define ATTN_LOADS 8

// store_kv writes token t's key and value rows (H heads of hd) into slot
// slots[t] of one layer's storage. Grid (n, H), hd threads (rounded up).
template <typename T>
DEVI void store_kv(T *kc, T *vc, const float *k, int ks, const float *v, int vs, const int *slots, int H,
                   int hd, int bs) {
  const int t = blockIdx.x, h = blockIdx.y;
  const int slot = slots[t], blk = slot / bs, off = slot % bs;
  const size_t o = (((size_t)blk * H + h) * bs + off) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    kc[o + d] = from_f<T>(k[(size_t)t * ks + h * hd + d]);
    vc[o + d] = from_f<T>(v[(size_t)t * vs + h * hd + d]);
  }
}
extern "C" __global__ void upg_store_kv_f16(__half *kc, __half *vc, const float *k, int ks, const float *v,
                                            int vs, const int *slots, int H, int hd, int bs) {
  store_kv<__half>(kc, vc, k, ks, v, vs, slots, H, hd, bs);
}
extern "C" __global__ void upg_store_kv_f32(float *kc, float *vc, const float *k, int ks, const float *v,
                                            int vs, const int *slots, int H, int hd, int bs) {
  store_kv<float>(kc, vc, k, ks, v, vs, slots, H, hd, bs);
}

// attn_split computes, for token t, query head h and positions
// [split·chunk, min((split+1)·chunk, pos[t]+1)), the softmax partial
// (max m, Σ e^(s-m), Σ e^(s-m)·v) into part[((t·heads + h)·S + split)·(hd+2)].
// Grid (S, heads, n), 2·chunk threads, chunk ≤ 128: the chunk's row offsets are
// computed once (one division by the block size per position), two threads
// per position compute a score (each half the head, 16-byte loads), then
// tpr = hd/E threads per value row (E elements per 16-byte load) and
// 128/tpr position lanes sum the values (thread d per dimension, scalar
// loads, when hd does not split so). Shared memory hd + chunk floats.
//
// dot_parts adds Σ q[g·qstride + i]·k[i] over n values (a multiple of
// 16/sizeof(T)) to s[g] for G query rows, each in order, ATTN_LOADS pieces
// of k in flight at a time (one key row piece serves every query row). The
// query values come from shared memory four at a time (q and qstride keep
// 16-byte alignment: the callers' rows of hd floats, hd a multiple of 8):
// ncu of batch 32's grouped kernel (run 65) had the L1's load/store
// wavefronts 76% busy, nearly all of them one scalar query load per
// multiply-add.
template <typename T, int G>
DEVI void dot_parts(const float *q, int qstride, const T *k, int n, float (&s)[G]) {
  constexpr int E = 16 / sizeof(T);
  for (int i0 = 0; i0 < n; i0 += ATTN_LOADS * E) {
    uint4 raw[ATTN_LOADS];
#pragma unroll
    for (int j = 0; j < ATTN_LOADS; j++)
      if (i0 + j * E < n) raw[j] = *(const uint4 *)(k + i0 + j * E);
#pragma unroll
    for (int j = 0; j < ATTN_LOADS; j++) {
      const int c = i0 + j * E;
      if (c < n) {
        float f[E];
        load16_f<T>(raw[j], f);
#pragma unroll
        for (int g = 0; g < G; g++) {
          const float4 *q4 = reinterpret_cast<const float4 *>(q + g * qstride + c);
#pragma unroll
          for (int e4 = 0; e4 < E / 4; e4++) {
            const float4 qq = q4[e4];
            s[g] += qq.x * f[4 * e4];
            s[g] += qq.y * f[4 * e4 + 1];
            s[g] += qq.z * f[4 * e4 + 2];
            s[g] += qq.w * f[4 * e4 + 3];
          }
        }
      }
    }
  }
}

// value_sums adds, for G query rows, Σ_i w[g·wstride + i]·v_i[dg·E .. dg·E+E)
// over this thread's positions i = pl, pl + P, .. < np (rows at vc +
// roff[i]) to acc[g], each in order, VL rows in flight at a time.
template <typename T, int G, int VL>
DEVI void value_sums(const T *vc, const size_t *roff, int np, int pl, int P, int dg, const float *w, int wstride,
                     float (&acc)[G][16 / sizeof(T)]) {
  constexpr int E = 16 / sizeof(T);
  for (int i0 = pl; i0 < np; i0 += VL * P) {
    uint4 raw[VL];
#pragma unroll
    for (int r = 0; r < VL; r++)
      if (i0 + r * P < np) raw[r] = *(const uint4 *)(vc + roff[i0 + r * P] + dg * E);
#pragma unroll
    for (int r = 0; r < VL; r++) {
      const int i = i0 + r * P;
      if (i < np) {
        float f[E];
        load16_f<T>(raw[r], f);
#pragma unroll
        for (int g = 0; g < G; g++) {
          const float wi = w[g * wstride + i];
#pragma unroll
          for (int j = 0; j < E; j++) acc[g][j] += wi * f[j];
        }
      }
    }
  }
}

// split_rows is the prologue the split-attention kernels share (attn_split,
// attn_gqa, attn_tc: grid (splits, heads or KV heads, tokens)): how many of
// token t's positions split holds (the block's blockIdx.x, or attn_tc's
// reordered split; chunk positions from
// split·chunk up to pos[t], 0 when it holds none: the block returns, and the
// combine reads only the splits that hold positions), and in roff the
// element offset of each one's key/value row of KV head kvh in the paged
// cache. The caller's barrier publishes roff.
DEVI int split_rows(size_t *roff, const int *tables, int tstride, const int *pos, const int *seq, int t, int chunk,
                    int H, int kvh, int bs, int hd, int split) {
  const int T1 = pos[t] + 1, p0 = split * chunk;
  if (p0 >= T1) return 0;
  const int np = min(chunk, T1 - p0);
  const int *tab = tables + (size_t)seq[t] * tstride;
  for (int i = threadIdx.x; i < np; i += blockDim.x) {
    const int p = p0 + i;
    roff[i] = (((size_t)tab[p / bs] * H + kvh) * bs + p % bs) * hd;
  }
  return np;
}

template <typename T>
DEVI void attn_split(const float *q, int qs, const T *kc, const T *vc, const int *tables, int tstride,
                     const int *pos, const int *seq, float scale, int heads, int H, int hd, int bs, int chunk,
                     int S, float *part) {
  // its own name: an extern "C" kernel's `sm` (upg_rotq) has C linkage, and
  // a template's of the same name drew nvcc's warning #1556-D
  extern __shared__ float split_sm[];
  __shared__ float red[32];
  __shared__ size_t roff[128];   // the chunk's rows (split_rows)
  __shared__ float vsum[2048];   // the value sums of the position lanes (fast path): blockDim·E ≤ 2048
  const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  float *pp = part + ((size_t)(t * heads + h) * S + split) * (hd + 2);
  // the chunk's row offsets are the step's metadata (positions, sequences
  // and block tables, uploaded before the step's first kernel): computed
  // before the wait, so the query's loads are the first round trip after
  // it (+1.2% at one token, NOTES.md run 140; the key and value rows of
  // earlier steps asked of L1 or L2 here as well gained less, +0.6%)
  const int np = split_rows(roff, tables, tstride, pos, seq, t, chunk, H, h / (heads / H), bs, hd, split);
  pdl_wait();
  pdl_launch();
  if (np == 0) return;
  float *qv = split_sm, *sc = split_sm + hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qv[d] = q[(size_t)t * qs + h * hd + d];
  __syncthreads();
  trace_mark(); // query and row offsets
  {
    const int i = threadIdx.x >> 1, half = threadIdx.x & 1, hh = hd / 2;
    float s = 0.f;
    if (i < np) {
      float s1[1] = {0.f};
      dot_parts<T, 1>(qv + half * hh, 0, kc + roff[i] + half * hh, hh, s1);
      s = s1[0];
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    if (i < np && half == 0) sc[i] = s * scale;
  }
  __syncthreads();
  trace_mark(); // scores
  float m = -INFINITY;
  for (int i = threadIdx.x; i < np; i += blockDim.x) m = fmaxf(m, sc[i]);
  m = block_max(m, red);
  float l = 0.f;
  for (int i = threadIdx.x; i < np; i += blockDim.x) {
    const float e = expf(sc[i] - m);
    sc[i] = e;
    l += e;
  }
  l = block_sum(l, red); // its barriers also order the sc writes before the reads below
  trace_mark();          // softmax
  // values: E elements per 16-byte load, tpr threads per row, P position
  // lanes (position i goes to lane i mod P), then the lanes' sums added in
  // lane order
  constexpr int E = 16 / sizeof(T);
  const int tpr = hd / E;
  if (hd % E == 0 && tpr <= (int)blockDim.x && blockDim.x % tpr == 0) {
    const int P = blockDim.x / tpr, pl = threadIdx.x / tpr, dg = threadIdx.x - pl * tpr;
    float acc[1][E];
#pragma unroll
    for (int j = 0; j < E; j++) acc[0][j] = 0.f;
    value_sums<T, 1, ATTN_LOADS>(vc, roff, np, pl, P, dg, sc, 0, acc);
#pragma unroll
    for (int j = 0; j < E; j++) vsum[pl * hd + dg * E + j] = acc[0][j];
    __syncthreads();
    trace_mark(); // value sums
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float o = 0.f;
      for (int k = 0; k < P; k++) o += vsum[k * hd + d];
      pp[2 + d] = o;
    }
  } else {
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float acc = 0.f;
#pragma unroll 8
      for (int i = 0; i < np; i++) acc += sc[i] * to_f(vc[roff[i] + d]);
      pp[2 + d] = acc;
    }
  }
  if (threadIdx.x == 0) {
    pp[0] = m;
    pp[1] = l;
  }
}

extern "C" __global__ void __launch_bounds__(256)
    upg_attn_f16(const float *__restrict__ q, int qs, const __half *__restrict__ kc, const __half *__restrict__ vc,
                  const int *__restrict__ tables, int tstride, const int *__restrict__ pos,
                  const int *__restrict__ seq, float scale, int heads, int H, int hd, int bs, int chunk, int S,
                  float *__restrict__ part) {
  attn_split<__half>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part);
}
extern "C" __global__ void __launch_bounds__(256)
    upg_attn_f32(const float *__restrict__ q, int qs, const float *__restrict__ kc, const float *__restrict__ vc,
                  const int *__restrict__ tables, int tstride, const int *__restrict__ pos,
                  const int *__restrict__ seq, float scale, int heads, int H, int hd, int bs, int chunk, int S,
                  float *__restrict__ part) {
  attn_split<float>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part);
}

// attn_gqa is attn_split for all GQ query heads of one key/value head at
// once (grouped-query attention): each key and value row is loaded once for
// the group instead of once per query head, and the partials are written
// where attn_split writes them, so the combine kernels are the same. Grid
// (S, H, n), 2·chunk threads, chunk ≤ 128; the values take the fast path
// only (hd a multiple of E = 16/sizeof(T), 2·chunk a multiple of hd/E: the
// Go side checks, attnGQA). Per head, the scores, the maximum and the value
// sums are attn_split's float operations in its order; only the softmax
// denominator is summed in another (lanes of one warp, the group's heads
// spread over the warps). Dynamic shared memory: GQ·hd (queries) + GQ·chunk
// (scores) + P·GQ·hd (the value sums of P = 2·chunk·E/hd position lanes)
// floats.
template <typename T, int GQ>
DEVI void attn_gqa(const float *q, int qs, const T *kc, const T *vc, const int *tables, int tstride,
                   const int *pos, const int *seq, float scale, int heads, int H, int hd, int bs, int chunk,
                   int S, float *part) {
  extern __shared__ float gqa_sm[]; // not `sm`: as attn_split's split_sm
  __shared__ size_t roff[128]; // the chunk's rows, as attn_split's
  pdl_wait();
  pdl_launch();
  const int split = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z;
  const int np = split_rows(roff, tables, tstride, pos, seq, t, chunk, H, kvh, bs, hd, split), h0 = kvh * GQ;
  if (np == 0) return;
  constexpr int E = 16 / sizeof(T);
  const int tpr = hd / E, P = blockDim.x / tpr;
  float *qv = gqa_sm, *sc = gqa_sm + GQ * hd, *vsum = sc + GQ * chunk;
  // the group's query heads are contiguous in the token's row
  for (int i = threadIdx.x; i < GQ * hd; i += blockDim.x) qv[i] = q[(size_t)t * qs + h0 * hd + i];
  __syncthreads();
  trace_mark(); // queries and row offsets
  { // scores: two threads per position, each half the head, as attn_split
    const int i = threadIdx.x >> 1, half = threadIdx.x & 1, hh = hd / 2;
    float s[GQ];
#pragma unroll
    for (int g = 0; g < GQ; g++) s[g] = 0.f;
    if (i < np) dot_parts<T, GQ>(qv + half * hh, hd, kc + roff[i] + half * hh, hh, s);
#pragma unroll
    for (int g = 0; g < GQ; g++) {
      const float v = s[g] + __shfl_xor_sync(0xffffffffu, s[g], 1);
      if (i < np && half == 0) sc[g * chunk + i] = v * scale;
    }
  }
  __syncthreads();
  trace_mark(); // scores
  { // softmax: warp w takes heads w, w + warps, ...
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int g = threadIdx.x >> 5; g < GQ; g += nw) {
      float *sg = sc + g * chunk;
      float m = -INFINITY;
      for (int i = lane; i < np; i += 32) m = fmaxf(m, sg[i]);
      m = warp_max(m);
      float l = 0.f;
      for (int i = lane; i < np; i += 32) {
        const float e = expf(sg[i] - m);
        sg[i] = e;
        l += e;
      }
      l = warp_sum(l);
      if (lane == 0) {
        float *pp = part + ((size_t)(t * heads + h0 + g) * S + split) * (hd + 2);
        pp[0] = m;
        pp[1] = l;
      }
    }
  }
  __syncthreads();
  trace_mark(); // softmax
  { // values: tpr threads per row, P position lanes, as attn_split's fast path
    const int pl = threadIdx.x / tpr, dg = threadIdx.x - pl * tpr;
    float acc[GQ][E];
#pragma unroll
    for (int g = 0; g < GQ; g++)
#pragma unroll
      for (int j = 0; j < E; j++) acc[g][j] = 0.f;
    // value rows in flight per thread: fewer for larger groups, whose GQ·E
    // sums already take the registers (gqa4: 64 registers, 8 blocks per SM)
    constexpr int VL = 16 / GQ < 2 ? 2 : 16 / GQ > ATTN_LOADS ? ATTN_LOADS : 16 / GQ;
    value_sums<T, GQ, VL>(vc, roff, np, pl, P, dg, sc, chunk, acc);
#pragma unroll
    for (int g = 0; g < GQ; g++)
#pragma unroll
      for (int j = 0; j < E; j += 4)
        *(float4 *)&vsum[(pl * GQ + g) * hd + dg * E + j] =
            make_float4(acc[g][j], acc[g][j + 1], acc[g][j + 2], acc[g][j + 3]);
    __syncthreads();
    trace_mark(); // value sums
    for (int x = threadIdx.x; x < GQ * hd; x += blockDim.x) {
      const int g = x / hd, d = x - g * hd;
      float o = 0.f;
      for (int k = 0; k < P; k++) o += vsum[(k * GQ + g) * hd + d];
      part[((size_t)(t * heads + h0 + g) * S + split) * (hd + 2) + 2 + d] = o;
    }
  }
}

// upg_attn_gqa<GQ>_<cache type>: attn_gqa for groups of 2, 4 and 8 query
// heads; the other groups take upg_attn_f16/f32. Batches run many blocks
// (32 sequences after 512 positions: 2,880), each latency-bound, so the
// blocks resident per SM set the time: the launch bounds hold groups of 2
// and 4 to 64 registers (8 blocks of 128 threads per SM), 8 to 128.
#define ATTN_ARGS_F16                                                                                          \
  const float *__restrict__ q, int qs, const __half *__restrict__ kc, const __half *__restrict__ vc,            \
      const int *__restrict__ tables, int tstride, const int *__restrict__ pos, const int *__restrict__ seq,   \
      float scale, int heads, int H, int hd, int bs, int chunk, int S, float *__restrict__ part
#define ATTN_ARGS_F32                                                                                          \
  const float *__restrict__ q, int qs, const float *__restrict__ kc, const float *__restrict__ vc,              \
      const int *__restrict__ tables, int tstride, const int *__restrict__ pos, const int *__restrict__ seq,   \
      float scale, int heads, int H, int hd, int bs, int chunk, int S, float *__restrict__ part
// UPG_GQA_MINB: the blocks of 256 threads per SM the groups of 2 and 4 are
// built for (4: 64 registers; a measurement build may set 3)
#ifndef UPG_GQA_MINB
#define UPG_GQA_MINB 4
#endif
#define ATTN_PASS_ q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, chunk, S, part
extern "C" __global__ void __launch_bounds__(256, UPG_GQA_MINB) upg_attn_gqa2_f16(ATTN_ARGS_F16) { attn_gqa<__half, 2>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, UPG_GQA_MINB) upg_attn_gqa4_f16(ATTN_ARGS_F16) { attn_gqa<__half, 4>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, 2) upg_attn_gqa8_f16(ATTN_ARGS_F16) { attn_gqa<__half, 8>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, UPG_GQA_MINB) upg_attn_gqa2_f32(ATTN_ARGS_F32) { attn_gqa<float, 2>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, UPG_GQA_MINB) upg_attn_gqa4_f32(ATTN_ARGS_F32) { attn_gqa<float, 4>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, 2) upg_attn_gqa8_f32(ATTN_ARGS_F32) { attn_gqa<float, 8>(ATTN_PASS_); }

// combine_cols merges the ns splits of one head (pp: its partials, hd + 2
// floats per split) for the columns d0 + 32j < hd (j < J): M = max of the
// splits' maxima, L = Σ l_s·e_s and o_j = Σ v_s[d]·e_s with e_s =
// e^(m_s - M), each summed over s in order; o_j·(1/L) goes to o[j]. The
// splits' partials are read COMBINE_BATCH at a time, all in flight at once
// (a loop over the splits that reads one after another waits an L2 latency
// per split and pass: ~27 round trips for 9 splits), and the first batch's
// sums and values load with the maxima, so 9 splits take 3 round trips.
#define COMBINE_BATCH 8
// CG: the partials load through L2 only (ld.global.cg), for a caller that
// reads partials other blocks of its own kernel wrote (attn_split_rotq),
// where the non-coherent read-only path a const __restrict__ load may take
// could return stale lines.
template <int J, bool CG = false>
DEVI void combine_cols(const float *__restrict__ pp, int ns, int hd, int d0, float (&o)[J]) {
  const int st = hd + 2;
  auto ld = [&](size_t i) { return CG ? __ldcg(pp + i) : pp[i]; };
  float m0[COMBINE_BATCH], l0[COMBINE_BATCH], v0[COMBINE_BATCH][J];
  auto load = [&](int s0) {
#pragma unroll
    for (int r = 0; r < COMBINE_BATCH; r++) {
      const int s = s0 + r;
      if (s < ns) {
        m0[r] = ld((size_t)s * st);
        l0[r] = ld((size_t)s * st + 1);
#pragma unroll
        for (int j = 0; j < J; j++) v0[r][j] = d0 + 32 * j < hd ? ld((size_t)s * st + 2 + d0 + 32 * j) : 0.f;
      }
    }
  };
  load(0);
  float M = -INFINITY;
#pragma unroll
  for (int r = 0; r < COMBINE_BATCH; r++)
    if (r < ns) M = fmaxf(M, m0[r]);
  for (int s0 = COMBINE_BATCH; s0 < ns; s0 += COMBINE_BATCH) {
    float mt[COMBINE_BATCH];
#pragma unroll
    for (int r = 0; r < COMBINE_BATCH; r++)
      if (s0 + r < ns) mt[r] = ld((size_t)(s0 + r) * st);
#pragma unroll
    for (int r = 0; r < COMBINE_BATCH; r++)
      if (s0 + r < ns) M = fmaxf(M, mt[r]);
  }
  float L = 0.f;
#pragma unroll
  for (int j = 0; j < J; j++) o[j] = 0.f;
  for (int s0 = 0; s0 < ns; s0 += COMBINE_BATCH) {
    if (s0 > 0) load(s0);
#pragma unroll
    for (int r = 0; r < COMBINE_BATCH; r++) {
      if (s0 + r < ns) {
        const float e = expf(m0[r] - M);
        L += l0[r] * e;
#pragma unroll
        for (int j = 0; j < J; j++) o[j] += v0[r][j] * e;
      }
    }
  }
  const float inv = 1.f / L;
#pragma unroll
  for (int j = 0; j < J; j++) o[j] *= inv;
}

// upg_attn_combine merges the splits of token t, head h into dst row t
// (heads × hd). Grid (heads, n), 128 threads, one column each
// (combine_cols).
extern "C" __global__ void __launch_bounds__(128)
    upg_attn_combine(const float *__restrict__ part, const int *__restrict__ pos, int chunk, int S,
                     int heads, int hd, float *__restrict__ dst) {
  const int h = blockIdx.x, t = blockIdx.y;
  const int ns = min(S, (pos[t] + chunk) / chunk);
  const float *pp = part + (size_t)(t * heads + h) * S * (hd + 2);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float o[1];
    combine_cols<1>(pp, ns, hd, d, o);
    dst[((size_t)t * heads + h) * hd + d] = o[0];
  }
}

// upg_swiglu: dst[t·width + i] = silu(gate[t·gs + i])·up[t·us + i].
extern "C" __global__ void upg_swiglu(float *__restrict__ dst, const float *__restrict__ gate, int gs,
                                      const float *__restrict__ up, int us, int width, int n) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= width * n) return;
  const int t = k / width, i = k % width;
  const float g = gate[(size_t)t * gs + i];
  dst[k] = g / (1.f + expf(-g)) * up[(size_t)t * us + i];
}

// upg_argmax writes the index of the largest of each row's vocab logits
// (the first on ties; NaN never wins) into out. Grid (P parts, rows), 256
// threads: block p takes the row's p-th share and leaves its best as one
// 64-bit key in part (row·P + p); the row's last block to finish (cnt, left
// at zero for the next launch) takes the largest of the P keys. A key is
// the value's bits in an order-preserving form above the inverted index, so
// the largest key is the largest value at its first index whatever order the
// parts finished in, and NaN (key 0) never wins. One 1,024-thread block a
// row took ~38 µs for Phi-4's 100,352 logits (run 69); P ≈ vocab/2048 blocks
// read a share each.
DEVI unsigned long long amax_key(float v, int i) {
  if (v != v) return 0ull;
  unsigned u = __float_as_uint(v);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (unsigned long long)u << 32 | (unsigned)(0x7fffffff - i);
}
DEVI unsigned long long warp_max_u64(unsigned long long k) {
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long ok = __shfl_xor_sync(0xffffffffu, k, o);
    k = ok > k ? ok : k;
  }
  return k;
}
extern "C" __global__ void __launch_bounds__(256)
    upg_argmax(const float *__restrict__ x, int vocab, int *__restrict__ out, unsigned *__restrict__ cnt,
               unsigned long long *__restrict__ part, int P) {
  __shared__ unsigned long long bk[8];
  __shared__ bool last;
  pdl_wait();
  pdl_launch();
  const int row = blockIdx.y, p = blockIdx.x;
  const int share = (vocab + P - 1) / P, b0 = p * share, b1 = min(vocab, b0 + share);
  const float *xr = x + (size_t)row * vocab;
  unsigned long long k = 0;
  constexpr int U = 8; // loads in flight per thread
  for (int i0 = b0 + threadIdx.x; i0 < b1; i0 += U * blockDim.x) {
    float v[U];
#pragma unroll
    for (int j = 0; j < U; j++) {
      const int i = i0 + j * blockDim.x;
      v[j] = i < b1 ? xr[i] : __int_as_float(0x7fc00000); // NaN: no candidate
    }
#pragma unroll
    for (int j = 0; j < U; j++) {
      const unsigned long long c = amax_key(v[j], i0 + j * blockDim.x);
      k = c > k ? c : k;
    }
  }
  k = warp_max_u64(k);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) bk[w] = k;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < (int)(blockDim.x >> 5); i++) k = bk[i] > k ? bk[i] : k;
    part[(size_t)row * P + p] = k;
    __threadfence();
    last = atomicAdd(cnt + row, 1u) == (unsigned)P - 1;
  }
  __syncthreads();
  if (!last || w != 0) return;
  __threadfence();
  k = 0;
  for (int i = lane; i < P; i += 32) {
    const unsigned long long c = __ldcg(part + (size_t)row * P + i);
    k = c > k ? c : k;
  }
  k = warp_max_u64(k);
  if (lane == 0) {
    const int idx = 0x7fffffff - (int)(unsigned)(k & 0xffffffffu);
    out[row] = k == 0 ? 0 : idx;
    cnt[row] = 0;
  }
}

// attn_prefill is causal attention for n tokens of one sequence (tables row
// seq[0]; token t at position pos[t]), for prompts: a block takes 16
// consecutive tokens and one query head, and walks the keys up to the
// tile's last position in chunks of 32, staged in shared memory once for
// all 16 queries (the split kernel above loads them once per token), with
// an online softmax. Grid (ceil(n/16), heads), 128 threads; hd ≤ 128 and a
// multiple of 8. dst row t gets heads × hd values, as upg_attn_combine's.
#define AP_Q 16
#define AP_K 32
#define AP_LD 132 // padded row (floats): float4 reads of 8 rows hit 32 banks
template <typename T> DEVI void load8(float *dst, const T *src);
template <> DEVI void load8<__half>(float *dst, const __half *src) {
  float f[8];
  load16_f<__half>(*(const uint4 *)src, f);
#pragma unroll
  for (int j = 0; j < 8; j++) dst[j] = f[j];
}
template <> DEVI void load8<float>(float *dst, const float *src) {
  *(float4 *)dst = *(const float4 *)src;
  *(float4 *)(dst + 4) = *(const float4 *)(src + 4);
}

template <typename T>
DEVI void attn_prefill(const float *q, int qs, const T *kc, const T *vc, const int *tables,
                       int tstride, const int *pos, const int *seq, float scale, int heads, int H,
                       int hd, int bs, int n, float *dst) {
  __shared__ __align__(16) float qt[AP_Q][AP_LD];
  __shared__ __align__(16) float kt[AP_K][AP_LD];
  __shared__ __align__(16) float vt[AP_K][AP_LD];
  __shared__ float pt[AP_Q][AP_K];
  __shared__ float rowm[AP_Q], rowl[AP_Q], rowa[AP_Q];
  __shared__ int rowp[AP_Q], tilemax;
  pdl_wait();
  pdl_launch();
  const int t0 = blockIdx.x * AP_Q, h = blockIdx.y, tid = threadIdx.x;
  const int kvh = h / (heads / H);
  const int *tab = tables + (size_t)seq[0] * tstride; // the step's one sequence
  if (tid < AP_Q) {
    const int t = t0 + tid;
    rowp[tid] = t < n ? pos[t] : -1;
    rowm[tid] = -INFINITY;
    rowl[tid] = 0.f;
  }
  for (int i = tid; i < AP_Q * hd; i += blockDim.x) {
    const int r = i / hd, d = i % hd, t = t0 + r;
    qt[r][d] = t < n ? q[(size_t)t * qs + h * hd + d] * scale : 0.f;
  }
  __syncthreads();
  if (tid == 0) {
    int m = 0;
    for (int r = 0; r < AP_Q; r++) m = max(m, rowp[r]);
    tilemax = m;
  }
  __syncthreads();
  const int last = tilemax;
  const int qi = tid >> 3, kj = tid & 7; // scores: row qi, keys kj + 8i
  float acc[AP_Q];
#pragma unroll
  for (int r = 0; r < AP_Q; r++) acc[r] = 0.f;
  for (int c0 = 0; c0 <= last; c0 += AP_K) {
    // stage keys and values c0..c0+31 (zero past the tile's last position)
    for (int i = tid; i < AP_K * (hd / 8); i += blockDim.x) {
      const int r = i / (hd / 8), d = (i % (hd / 8)) * 8, p = c0 + r;
      if (p <= last) {
        const size_t o = (((size_t)tab[p / bs] * H + kvh) * bs + p % bs) * hd + d;
        load8<T>(&kt[r][d], kc + o);
        load8<T>(&vt[r][d], vc + o);
      } else {
#pragma unroll
        for (int j = 0; j < 8; j++) kt[r][d + j] = vt[r][d + j] = 0.f;
      }
    }
    __syncthreads();
    // scores of row qi against keys kj, kj+8, kj+16, kj+24
    {
      const int r = qi;
      float s[4] = {0.f, 0.f, 0.f, 0.f};
      for (int d = 0; d < hd; d += 4) {
        const float4 a = *(const float4 *)&qt[r][d];
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const float4 b = *(const float4 *)&kt[kj + 8 * i][d];
          s[i] += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
        }
      }
      const int rp = rowp[r];
      float m = -INFINITY;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        if (c0 + kj + 8 * i > rp) s[i] = -INFINITY; // causal (and rows past n: rp = -1)
        m = fmaxf(m, s[i]);
      }
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
      const float mo = rowm[r], mn = fmaxf(mo, m);
      float l = 0.f;
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const float e = mn == -INFINITY ? 0.f : expf(s[i] - mn);
        pt[r][kj + 8 * i] = e;
        l += e;
      }
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      l += __shfl_xor_sync(0xffffffffu, l, 4);
      if (kj == 0) {
        const float a = mo == -INFINITY ? 0.f : expf(mo - mn);
        rowa[r] = a;
        rowl[r] = rowl[r] * a + l;
        rowm[r] = mn;
      }
    }
    __syncthreads();
    // values: thread d accumulates dimension d of all 16 rows
    if (tid < hd) {
#pragma unroll
      for (int r = 0; r < AP_Q; r++) acc[r] *= rowa[r];
      for (int k = 0; k < AP_K; k++) {
        const float v = vt[k][tid];
#pragma unroll
        for (int r = 0; r < AP_Q; r++) acc[r] += pt[r][k] * v;
      }
    }
    __syncthreads();
  }
  if (tid < hd) {
#pragma unroll
    for (int r = 0; r < AP_Q; r++) {
      const int t = t0 + r;
      if (t < n) dst[((size_t)t * heads + h) * hd + tid] = acc[r] / rowl[r];
    }
  }
}

extern "C" __global__ void __launch_bounds__(128)
    upg_attn_prefill_f16(const float *__restrict__ q, int qs, const __half *__restrict__ kc,
                         const __half *__restrict__ vc, const int *__restrict__ tables, int tstride,
                         const int *__restrict__ pos, const int *__restrict__ seq, float scale, int heads,
                         int H, int hd, int bs, int n, float *__restrict__ dst) {
  attn_prefill<__half>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, n, dst);
}
extern "C" __global__ void __launch_bounds__(128)
    upg_attn_prefill_f32(const float *__restrict__ q, int qs, const float *__restrict__ kc,
                         const float *__restrict__ vc, const int *__restrict__ tables, int tstride,
                         const int *__restrict__ pos, const int *__restrict__ seq, float scale, int heads,
                         int H, int hd, int bs, int n, float *__restrict__ dst) {
  attn_prefill<float>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, hd, bs, n, dst);
}

// upg_splitk_sum adds the S split-K partial products of a tensor-core GEMM
// (part: S arrays of N = tokens·rows floats) into y, in a fixed order, and
// adds y to res when res is not null (the residual epilogue).
extern "C" __global__ void __launch_bounds__(256)
    upg_splitk_sum(const float *__restrict__ part, int S, float *__restrict__ y, float *__restrict__ res, int N) {
  pdl_wait();
  pdl_launch();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  // the residual and the first SPLITK_LOADS parts' values all loaded
  // before any is added (one round trip to L2, not one per part), then
  // summed in part order
#define SPLITK_LOADS 8
  const float r = res != nullptr ? res[i] : 0.f;
  float p[SPLITK_LOADS];
#pragma unroll
  for (int z = 0; z < SPLITK_LOADS; z++) p[z] = z < S ? part[(size_t)z * N + i] : 0.f;
  float v = p[0];
#pragma unroll
  for (int z = 1; z < SPLITK_LOADS; z++)
    if (z < S) v += p[z];
  for (int z = SPLITK_LOADS; z < S; z++) v += part[(size_t)z * N + i];
  y[i] = v;
  if (res != nullptr) res[i] = r + v;
}

// ---------------------------------------------------------------------------
// Sampling on the device (upg_sample): package sample's chain (repetition
// penalty, top-k, softmax with temperature, top-p, min-p, a seeded draw)
// for one logits row per 1024-thread block, so that a step returns token
// ids, not rows of logits.
//
// The candidate set is found by thresholds on a rank of each logit's
// z = (l−max)/T: 2048 bins of width 1/64 over z ∈ [−32, 0], each split into
// 2048 sub-bins (width 7.6e-6, about two float steps at |z| = 32), so the
// rank (bin·2048 + sub-bin) orders the logits like the host's sort up to
// that resolution. Top-k and top-p each take two histogram passes (counts,
// or fixed-point probability mass: integer atomics, so the same inputs
// always give the same set) over the bins and then the chosen bin's
// sub-bins. Logits below z = −32 (weight < 1.3e-14 of the best) are not
// binned: they are counted per thread and kept only when a threshold falls
// among them. The token is then drawn by the Gumbel-max trick: argmax over
// the candidates of z + G_i, with G_i Gumbel noise hashed from the row's
// 64-bit key and i, which samples each candidate with probability ∝ e^z,
// the host sampler's distribution, in one pass without sorting. Logits in
// the threshold's sub-bin are all kept (the host keeps exact ties by id).
//
// The penalty is applied in place and undone before the block ends (the
// row's raw values of the penalized tokens go to hsave), so the logits
// buffer leaves the kernel as it came. out_lp gets the chosen token's
// log-probability under the raw logits (log softmax, as OpenAI reports it).

struct SampleRow { // package cuda's sampleRow, 40 bytes
  float temp;      // 0: greedy (argmax after the penalty)
  float top_p;     // filters when in (0, 1)
  float min_p;     // filters when > 0
  float penalty;   // applies when not 0 or 1
  int top_k;       // filters when in (0, vocab)
  int hist_off;    // the row's distinct penalized tokens: hist[hist_off..+hist_n]
  int hist_n;
  int pad;
  unsigned long long seed;
};

#define SMP_BINS 2048
#define SMP_ONE 1099511627776.0f // 2^40: fixed-point unit of probability mass

// smp_rank orders z = (l−max)/T ≤ 0: bin·2048 + sub-bin over [−32, 0]; −1
// below −32 (and for −inf and NaN).
DEVI int smp_rank(float z) {
  if (!(z >= -32.f)) return -1;
  const float t = (z + 32.f) * 64.f;
  const int b = min((int)t, SMP_BINS - 1);
  return b * SMP_BINS + min((int)((t - (float)b) * (float)SMP_BINS), SMP_BINS - 1);
}

DEVI float smp_val(float v) { return v != v ? -INFINITY : v; }

DEVI unsigned long long smp_mix(unsigned long long z) { // splitmix64's finalizer
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// smp_argmax reduces (value, index) pairs over the block: the largest value,
// the lowest index on ties. Every thread gets the result.
DEVI void smp_argmax(float &best, int &idx, float *sv, int *si) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > best || (ov == best && oi < idx)) best = ov, idx = oi;
  }
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sv[w] = best, si[w] = idx;
  __syncthreads();
  best = lane < nw ? sv[lane] : -INFINITY;
  idx = lane < nw ? si[lane] : 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > best || (ov == best && oi < idx)) best = ov, idx = oi;
  }
}

// smp_select finds, in bins[0..nb) (counts or masses), the bin where the
// running sum from the top bin down first reaches need; it sets *sel to that
// bin, *above to the sum of the bins above it and *found; *found is false
// when all the bins together stay below need. Warp 0 runs it; the caller
// synchronises.
DEVI void smp_select(const unsigned long long *bins, int nb, unsigned long long need, int *sel,
                     unsigned long long *above, bool *found) {
  const int lane = threadIdx.x & 31, per = nb / 32;
  const int hi = nb - lane * per; // lane covers bins [hi-per, hi)
  unsigned long long s = 0;
  for (int b = hi - 1; b >= hi - per; b--) s += bins[b];
  unsigned long long inc = s; // inclusive scan from lane 0 (the top bins)
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  const unsigned hit = __ballot_sync(0xffffffffu, inc >= need);
  if (lane == 0) *found = hit != 0;
  if (hit == 0) { // the bins hold less than need: the caller keeps everything
    if (lane == 0) *sel = 0, *above = 0;
    return;
  }
  const int first = __ffs(hit) - 1;
  if (lane == first) {
    unsigned long long cum = inc - s;
    int b = hi - 1;
    for (; b > hi - per; b--) {
      if (cum + bins[b] >= need) break;
      cum += bins[b];
    }
    *sel = b, *above = cum;
  }
}

// smp_each calls f(i, row[i]) for this thread's share of the row, in
// ascending i: float4 loads, four in flight per thread, when the row is
// 16-byte aligned (vocab a multiple of 4), else one value at a time. A
// pass is latency-bound on one SM: one load in flight per thread took
// ~35 µs per pass over 100,352 logits.
template <typename F> DEVI void smp_each(const float *row, int vocab, F f) {
  if ((vocab & 3) == 0) {
    const float4 *r4 = (const float4 *)row;
    const int n4 = vocab >> 2;
#pragma unroll 4
    for (int j = threadIdx.x; j < n4; j += blockDim.x) {
      const float4 v = r4[j];
      f(4 * j, v.x);
      f(4 * j + 1, v.y);
      f(4 * j + 2, v.z);
      f(4 * j + 3, v.w);
    }
  } else {
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) f(i, row[i]);
  }
}

extern "C" __global__ void __launch_bounds__(1024)
    upg_sample(float *__restrict__ logits, int vocab, const SampleRow *__restrict__ rows,
               const int *__restrict__ hist, float *__restrict__ hsave, int *__restrict__ out_tok,
               float *__restrict__ out_lp) {
  __shared__ unsigned long long bins[SMP_BINS];
  __shared__ float sv[32], sf[32];
  __shared__ int si[32];
  __shared__ int s_sel;
  __shared__ unsigned long long s_above, s_total, tot[32], totb[32];
  __shared__ bool s_hit;
  float *row = logits + (size_t)blockIdx.x * vocab;
  const SampleRow p = rows[blockIdx.x];
  const int tid = threadIdx.x, nt = blockDim.x, lane = tid & 31, w = tid >> 5, nw = nt >> 5;

  // Log-sum-exp of the raw row (online max and sum per thread, then merged).
  float m = -INFINITY, s = 0.f;
  smp_each(row, vocab, [&](int, float v) {
    if (v == -INFINITY) return;
    if (v > m) s = s * __expf(m - v) + 1.f, m = v;
    else s += __expf(v - m);
  });
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    const float M = fmaxf(m, om);
    s = (M == -INFINITY) ? 0.f : s * __expf(m - M) + os * __expf(om - M);
    m = M;
  }
  if (lane == 0) sv[w] = m, sf[w] = s;
  __syncthreads();
  m = lane < nw ? sv[lane] : -INFINITY;
  s = lane < nw ? sf[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    const float M = fmaxf(m, om);
    s = (M == -INFINITY) ? 0.f : s * __expf(m - M) + os * __expf(om - M);
    m = M;
  }
  const float lse = m + logf(s);

  // Repetition penalty, in place (undone at the end).
  const bool penalize = p.penalty != 0.f && p.penalty != 1.f;
  if (penalize) {
    for (int j = tid; j < p.hist_n; j += nt) {
      const int t = hist[p.hist_off + j];
      const float v = row[t];
      hsave[p.hist_off + j] = v;
      if (v == v) row[t] = v > 0.f ? v / p.penalty : v * p.penalty;
    }
    __syncthreads();
  }

  // The best logit (and the greedy token).
  float best = -INFINITY;
  int idx = 0x7fffffff;
  smp_each(row, vocab, [&](int i, float v) {
    if (v > best) best = v, idx = i;
  });
  smp_argmax(best, idx, sv, si);
  int tok = idx == 0x7fffffff ? 0 : idx;
  const float M = best;
  const bool greedy = p.temp == 0.f || p.top_k == 1 || isinf(M);

  if (!greedy) {
    const float invT = 1.f / p.temp;
    // Top-k, then top-p: each a count or mass histogram over the bins, then
    // over the chosen bin's sub-bins. thr is the lowest rank kept (−1: all).
    int thr = -1;
    for (int mode = 0; mode < 2; mode++) { // 0: top-k by counts, 1: top-p by mass
      if (mode == 0 && !(p.top_k > 0 && p.top_k < vocab)) continue;
      if (mode == 1 && !(p.top_p > 0.f && p.top_p < 1.f)) continue;
      unsigned long long need = mode == 0 ? (unsigned long long)p.top_k : 0;
      int bin = -1;
      for (int level = 0; level < 2; level++) {
        for (int b = tid; b < SMP_BINS; b += nt) bins[b] = 0;
        __syncthreads();
        unsigned long long mine = 0; // this thread's unbinned count or mass
        smp_each(row, vocab, [&](int, float v) {
          const float z = (smp_val(v) - M) * invT;
          const int r = smp_rank(z);
          if (r < thr || z == -INFINITY) return;
          const unsigned long long a = mode == 0 ? 1ull : __float2ull_rn(__expf(z) * SMP_ONE);
          if (r < 0) {
            mine += a;
          } else if (level == 0) {
            atomicAdd(&bins[r >> 11], a);
          } else if ((r >> 11) == bin) {
            atomicAdd(&bins[r & (SMP_BINS - 1)], a);
          }
        });
        if (level == 0) { // the unbinned logits' share, and top-p's total
          __syncthreads();
          unsigned long long inb = 0;
          for (int b = tid; b < SMP_BINS; b += nt) inb += bins[b];
          for (int o = 16; o > 0; o >>= 1) {
            mine += __shfl_xor_sync(0xffffffffu, mine, o);
            inb += __shfl_xor_sync(0xffffffffu, inb, o);
          }
          if (lane == 0) tot[w] = mine, totb[w] = inb;
          __syncthreads();
          if (tid == 0) {
            unsigned long long t = 0;
            for (int j = 0; j < nw; j++) t += tot[j] + totb[j];
            s_total = t;
          }
          __syncthreads();
          if (mode == 1) {
            need = (unsigned long long)ceil((double)p.top_p * (double)s_total);
            if (need == 0) need = 1;
          }
        }
        __syncthreads();
        if (w == 0) smp_select(bins, SMP_BINS, need, &s_sel, &s_above, &s_hit);
        __syncthreads();
        const int sel = s_sel;
        const bool hit = s_hit;
        const unsigned long long above = s_above;
        __syncthreads();
        if (!hit) break; // the threshold is among the unbinned logits: it keeps them all
        need -= above;
        if (level == 0) {
          bin = sel;
        } else {
          thr = max(thr, bin * SMP_BINS + sel);
        }
      }
    }
    // The draw: Gumbel-max over the candidates.
    const float minp = p.min_p;
    float bs = -INFINITY;
    int bi = 0x7fffffff;
    // u = (k + 1/2)/2^23 lies in [2^-24, 1 − 2^-24] (exact in float, never
    // 0 or 1), so the noise −log(−log u) lies in [−2.81, 16.64]: a logit
    // with z < −19.45 can never beat the best one (z = 0, always a
    // candidate), and is skipped without computing its noise.
    smp_each(row, vocab, [&](int i, float v) {
      const float z = (smp_val(v) - M) * invT;
      if (!(z >= -20.f) || smp_rank(z) < thr) return;
      if (minp > 0.f && __expf(z) < minp) return;
      const unsigned long long h = smp_mix(p.seed ^ smp_mix((unsigned long long)i));
      const float u = ((float)(h >> 41) + 0.5f) * (1.f / 8388608.f);
      const float sc = z - logf(-logf(u));
      if (sc > bs) bs = sc, bi = i;
    });
    smp_argmax(bs, bi, sv, si);
    if (bi != 0x7fffffff) tok = bi;
  }

  __syncthreads();
  if (penalize) {
    for (int j = tid; j < p.hist_n; j += nt) row[hist[p.hist_off + j]] = hsave[p.hist_off + j];
    __syncthreads();
  }
  if (tid == 0) {
    out_tok[blockIdx.x] = tok;
    out_lp[blockIdx.x] = row[tok] - lse;
  }
}
