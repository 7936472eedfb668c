// Fused decode-and-multiply kernels for the trellis codec (docs/format.md,
// "trellis"): a matrix of 16×16 tiles, each a tail-biting bitstream of
// 256·K bits; the weight at trellis position p is
//   scale[row][group] · codebook[hash(window(p))],
// window(p) the 12 stream bits that end at bit (p+1)·K. The uploader turns
// codebook∘hash into one table of 4096 floats (vtab[window]), which the
// kernels copy into shared memory, so a weight costs a funnel shift, a mask
// and one shared-memory load.
//
// Tiles keep the file's layout (band-major, 32·K bytes each, 4-byte
// aligned); scales too (Bands × G × 16 fp16). The input is the rotated
// float activation row (upg_rotq's xr), not int8: the trellis values are
// multiplied in float32.

// trellis_chunk returns 32 stream bits of tile tw (8·K words) from bit o
// (0 ≤ o < 256·K), wrapping around the tile's end (tail-biting).
template <int K> DEVI unsigned trellis_chunk(const unsigned *__restrict__ tw, int o) {
  const int wi = o >> 5;
  const int wn = wi + 1 == 8 * K ? 0 : wi + 1;
  return __funnelshift_r(__ldg(tw + wi), __ldg(tw + wn), o & 31);
}

// trellis_start is the first bit of the window of position p: (p+1)·K − 12,
// modulo the tile's 256·K bits.
template <int K> DEVI int trellis_start(int p) {
  const int o = (p + 1) * K - 12;
  return o < 0 ? o + 256 * K : o;
}

__device__ __forceinline__ void trellis_load_vtab(float *vt, const float *__restrict__ vtab) {
  for (int i = threadIdx.x; i < 1024; i += blockDim.x)
    reinterpret_cast<float4 *>(vt)[i] = __ldg(reinterpret_cast<const float4 *>(vtab) + i);
  __syncthreads();
}

// gemv_trellis computes y[t*R + r] = Σ_c Ŵ'[r][c]·xr[t*C + c] for nt ≤ NT
// tokens (xr rotated). Block b takes row band b (16 rows) with 256 threads:
// thread (r = tid & 15, j = tid >> 4) takes row 16b+r of tile columns j,
// j+16, ...; per tile it reads, for each of the 4 strips, the 24 bits that
// hold its row's 4 windows (positions 64s+4r..64s+4r+3). The 16 partial
// sums of a row are added in shared memory. res, when not null, gets y
// added too (residual epilogue).
template <int K, int NT>
DEVI void gemv_trellis(const unsigned *__restrict__ tiles, const __half *__restrict__ scales,
                       const float *__restrict__ vtab, const float *__restrict__ xr,
                       float *__restrict__ y, int R, int C, int TC, int G, int gst, int nt,
                       float *__restrict__ res) {
  __shared__ float vt[4096];
  __shared__ float red[8][16 * NT];
  trellis_load_vtab(vt, vtab);
  const int tid = threadIdx.x, r = tid & 15, j = tid >> 4;
  const int b = blockIdx.x;
  const unsigned *band = tiles + (size_t)b * TC * (8 * K);
  const bool vec = (C & 3) == 0;
  // the word offsets and shifts of this row's 4 strips (the same in every tile)
  int wi[4], wn[4], sh[4];
#pragma unroll
  for (int s = 0; s < 4; s++) {
    const int o = trellis_start<K>(64 * s + 4 * r);
    wi[s] = o >> 5;
    wn[s] = wi[s] + 1 == 8 * K ? 0 : wi[s] + 1;
    sh[s] = o & 31;
  }
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  // The next tile's words and scale are loaded while one is decoded.
  unsigned lo[4], hi[4];
  float sc = 0.f;
  auto load = [&](int tc, unsigned *l, unsigned *h, float &scl) {
    const unsigned *tw = band + (size_t)tc * (8 * K);
#pragma unroll
    for (int s = 0; s < 4; s++) l[s] = __ldg(tw + wi[s]), h[s] = __ldg(tw + wn[s]);
    scl = __half2float(scales[((size_t)b * G + tc / gst) * 16 + r]);
  };
  if (j < TC) load(j, lo, hi, sc);
  for (int tc = j; tc < TC; tc += 16) {
    unsigned nlo[4], nhi[4];
    float nsc = 0.f;
    if (tc + 16 < TC) load(tc + 16, nlo, nhi, nsc);
    float part[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) part[t] = 0.f;
#pragma unroll
    for (int s = 0; s < 4; s++) {
      const unsigned ch = __funnelshift_r(lo[s], hi[s], sh[s]);
      const float v0 = vt[ch & 0xFFF], v1 = vt[(ch >> K) & 0xFFF];
      const float v2 = vt[(ch >> (2 * K)) & 0xFFF], v3 = vt[(ch >> (3 * K)) & 0xFFF];
      const int c = 16 * tc + 4 * s;
      if (c >= C) break;
#pragma unroll
      for (int t = 0; t < NT; t++) {
        if (NT > 1 && t >= nt) break;
        const float *xt = xr + (size_t)t * C + c;
        float4 x;
        if (vec && c + 4 <= C) {
          x = __ldg(reinterpret_cast<const float4 *>(xt));
        } else {
          x.x = xt[0];
          x.y = c + 1 < C ? xt[1] : 0.f;
          x.z = c + 2 < C ? xt[2] : 0.f;
          x.w = c + 3 < C ? xt[3] : 0.f;
        }
        part[t] = fmaf(v0, x.x, fmaf(v1, x.y, fmaf(v2, x.z, fmaf(v3, x.w, part[t]))));
      }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = fmaf(sc, part[t], acc[t]);
#pragma unroll
    for (int s = 0; s < 4; s++) lo[s] = nlo[s], hi[s] = nhi[s];
    sc = nsc;
  }
  // j and j+1 share a warp: add across the half-warps, then across warps.
  const int w = tid >> 5;
#pragma unroll
  for (int t = 0; t < NT; t++) {
    const float v = acc[t] + __shfl_xor_sync(0xffffffffu, acc[t], 16);
    if ((tid & 16) == 0) red[w][t * 16 + r] = v;
  }
  __syncthreads();
  for (int i = tid; i < 16 * NT; i += blockDim.x) {
    const int t = i >> 4, rr = i & 15, row = 16 * b + rr;
    if ((NT == 1 || t < nt) && row < R) {
      float v = 0.f;
#pragma unroll
      for (int k = 0; k < 8; k++) v += red[k][i];
      y[(size_t)t * R + row] = v;
      if (res != nullptr) res[(size_t)t * R + row] += v;
    }
  }
}

#define TRELLIS_ARGS                                                                          \
  const unsigned *__restrict__ tiles, const __half *__restrict__ scales,                      \
      const float *__restrict__ vtab, const float *__restrict__ xr, float *__restrict__ y, int R, \
      int C, int TC, int G, int gst, int nt, float *__restrict__ res
#define TRELLIS_PASS tiles, scales, vtab, xr, y, R, C, TC, G, gst, nt, res

// upg_gemv_trellis_k<bits>_t<tokens per pass>: one row band per block of 256 threads.
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k2_t1(TRELLIS_ARGS) { gemv_trellis<2, 1>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k3_t1(TRELLIS_ARGS) { gemv_trellis<3, 1>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k4_t1(TRELLIS_ARGS) { gemv_trellis<4, 1>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k2_t8(TRELLIS_ARGS) { gemv_trellis<2, 8>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k3_t8(TRELLIS_ARGS) { gemv_trellis<3, 8>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256) upg_gemv_trellis_k4_t8(TRELLIS_ARGS) { gemv_trellis<4, 8>(TRELLIS_PASS); }

// upg_embed_trellis writes rows tokens[t] of a trellis matrix (rotation
// undone, as DecodeRows) into dst (n rows of C). Grid (segments of seg
// columns, n); seg is a multiple of the rotation block rb.
extern "C" __global__ void __launch_bounds__(256)
    upg_embed_trellis(const unsigned *__restrict__ tiles, const __half *__restrict__ scales,
                      const float *__restrict__ vtab, const float *__restrict__ signs,
                      const int *__restrict__ tokens, float *__restrict__ dst, int C, int TC, int G,
                      int gs, int K, int rb, int seg) {
  extern __shared__ float sm[];
  const int t = blockIdx.y, base = blockIdx.x * seg;
  const int row = tokens[t], b = row >> 4, rr = row & 15;
  const int words = 8 * K, nbits = 256 * K;
  for (int i = threadIdx.x; i < seg; i += blockDim.x) {
    const int c = base + i;
    float v = 0.f;
    if (c < C) {
      const int tc = c >> 4, cc = c & 15;
      const unsigned *tw = tiles + ((size_t)b * TC + tc) * words;
      const int p = (cc >> 2) * 64 + rr * 4 + (cc & 3);
      int o = (p + 1) * K - 12;
      if (o < 0) o += nbits;
      const int wi = o >> 5, wn = wi + 1 == words ? 0 : wi + 1;
      const unsigned win = __funnelshift_r(tw[wi], tw[wn], o & 31) & 0xFFFu;
      v = __half2float(scales[((size_t)b * G + c / gs) * 16 + rr]) * vtab[win];
    }
    sm[i] = v;
  }
  __syncthreads();
  unrotate_store(sm, seg, rb, signs, dst + (size_t)t * C, base, C);
}
