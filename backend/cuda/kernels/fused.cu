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
DEVI void pre_load(float (&v)[PRE_ELEMS], const float *__restrict__ p, int base, int seg, int C, float dflt) {
#pragma unroll
  for (int k = 0; k < PRE_ELEMS; k++) {
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
  pdl_launch();
  const float *xt = x + (size_t)t * C;
  // the segment's first PRE_ELEMS·blockDim values load with the row's sum
  // of squares, not one L2 round trip after it
  float xv[PRE_ELEMS];
#pragma unroll
  for (int k = 0; k < PRE_ELEMS; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    xv[k] = i < seg && base + i < C ? xt[base + i] : 0.f;
  }
  const float ss = row_sumsq(xt, C, red);
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
// upg_swiglu, width C), then rotated and quantized.
extern "C" __global__ void __launch_bounds__(256)
    upg_swiglu_rotq(const float *__restrict__ gate, int gstr, const float *__restrict__ up, int ustr,
                    float *__restrict__ act, const float *__restrict__ signs, int rb, int gs, int seg,
                    int C, int G, float alpha, float beta, float *__restrict__ xr,
                    int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac) {
  extern __shared__ float sm[];
  const int t = blockIdx.y, base = blockIdx.x * seg;
  float sv[PRE_ELEMS]; // the signs are weights: read before the wait
  pre_load(sv, signs, base, seg, C, 1.f);
  pdl_wait();
  pdl_launch();
  auto one = [&](int i, float sg) {
    const int c = base + i;
    float v = 0.f;
    if (c < C) {
      const float g = gate[(size_t)t * gstr + c];
      v = g / (1.f + expf(-g)) * up[(size_t)t * ustr + c];
      act[(size_t)t * C + c] = v;
      if (signs != nullptr) v *= sg;
    }
    sm[i] = v;
  };
#pragma unroll
  for (int k = 0; k < PRE_ELEMS; k++) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < seg) one(i, sv[k]);
  }
  for (int i = threadIdx.x + PRE_ELEMS * blockDim.x; i < seg; i += blockDim.x)
    one(i, signs != nullptr && base + i < C ? signs[base + i] : 1.f);
  __syncthreads();
  trace_mark(); // the segment in shared memory
  rotq_tail(sm, t, base, rb, gs, seg, C, G, alpha, beta, xr, xq, ldq, fac);
}

// upg_combine_rotq merges attention's splits (as upg_attn_combine) into dst
// (n × heads·hd, C = heads·hd), then rotates and quantizes. When the segment
// holds whole heads of at most 128 values, warp w merges heads w, w+W, ...
// (W warps), each lane its ≤ 4 columns (lane, lane+32, ...), so a split's
// weight is computed once per lane instead of once per column; the float
// operations per column are upg_attn_combine's (combine_cols), in its order.
extern "C" __global__ void __launch_bounds__(256)
    upg_combine_rotq(const float *__restrict__ part, const int *__restrict__ pos, int chunk, int S, int heads,
                     int hd, float *__restrict__ dst, const float *__restrict__ signs, int rb, int gs,
                     int seg, int C, int G, float alpha, float beta, float *__restrict__ xr,
                     int8_t *__restrict__ xq, int ldq, float4 *__restrict__ fac) {
  extern __shared__ float sm[];
  pdl_wait();
  pdl_launch();
  const int t = blockIdx.y, base = blockIdx.x * seg;
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
      combine_cols<4>(part + (size_t)(t * heads + h) * S * (hd + 2), ns, hd, lane, o);
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
        combine_cols<1>(part + (size_t)(t * heads + h) * S * (hd + 2), ns, hd, d, o);
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
    x[ia] = a * cs - b * sn;
    x[ib] = b * cs + a * sn;
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
extern "C" __global__ void __launch_bounds__(256)
    upg_rope_kv_f32(float *q, int qs, int heads, float *k, int ks, const float *v, int vs, float *kc,
                    float *vc, const int *slots, int H, int hd, int bs, int dim, int interleave,
                    const float *cosT, const float *sinT, const int *pos) {
  rope_kv<float>(q, qs, heads, k, ks, v, vs, kc, vc, slots, H, hd, bs, dim, interleave, cosT, sinT, pos);
}
