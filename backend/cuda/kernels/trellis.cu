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

// ---- The one-token GEMV without bank conflicts (upg_gemv_trellis1_k*) ----
//
// gemv_trellis's table vtab[window] is 4,096 floats: the 32 lanes of a warp
// look up 32 random windows, ~3.5 of them on the busiest bank, and the
// one-token decode ran at ~7% of the read bandwidth. The hash is linear over
// GF(2) (each index bit a parity of the window's bits), so a window's index
// is the XOR of the indices of its pieces: idx(s) = idx(lo) ^ idx(hi << 6)
// for its two 6-bit halves (K = 2, 3), or the XOR over its three nibbles
// (K = 4). And a window's upper piece is the lower piece of a later
// position's window (window(p) starts at (p+1)·K − 12: 6 bits on is the
// start of position p + 6/K for K = 2, 3; 4 and 8 bits on, of p + 1 and
// p + 2 for K = 4). So each position costs one lookup of its lower piece
// in a 64- (16-) entry table that holds every piece's share, and one lookup
// of the codebook's 64 values; both tables are kept once per lane (entry e
// of lane l at word 32·e + l: bank l), so no lookup waits on another lane.
//
// hx[e] (lane l) = l << 2 | idx(e) << 7 | idx(e << 6) << 20          (K = 2, 3)
//                = l << 2 | idx(e) << 7 | idx(e << 4) << 14 | idx(e << 8) << 21   (K = 4)
// and a position's codebook address (32·idx + l words, in bytes) is
//   (hx[p] ^ (hx[p + 6/K] >> 13)) & 0x1fff                            (K = 2, 3)
//   ((hx[p] ^ (hx[p+1] >> 7) ^ (hx[p+2] >> 14)) & 0x1f80) | l << 2   (K = 4)
// (positions past 255 wrap to the tile's first: the stream is tail-biting).
//
// A lane decodes whole tiles (its words in registers, every bit offset a
// constant of the unrolled loop); a block of 32·W lanes takes one row band
// at a time, each lane ~TC/(32·W·S) consecutive tiles (tpl) of its split-K
// part (blockIdx.y of S = gridDim.y), and the lanes' 16 row sums meet by
// halving exchanges in each warp and a fixed-order sum over the warps: the
// same bits on every run. The Go side chooses W, S and the grid at upload
// (trellis1Plan); levels holds vtab and then the codebook's 64 floats.

// trellis_idx is the codec's hash of a 12-bit window (docs/format.md).
DEVI unsigned trellis_idx(unsigned s) {
  return (__popc(s & 0x02cu) & 1u) | (__popc(s & 0x0bdu) & 1u) << 1 | (__popc(s & 0x182u) & 1u) << 2 |
         (__popc(s & 0x2b2u) & 1u) << 3 | (__popc(s & 0x4bcu) & 1u) << 4 | (__popc(s & 0x805u) & 1u) << 5;
}

// trellis1_piece is the shared-memory byte address (32·piece + lane words)
// of the P-bit piece of the tile's bitstream that starts at bit o (a
// constant), from the tile's words w; a piece that passes the stream's end
// goes on at its start (the funnel shift's next word is then word 0).
template <int K, int P> DEVI unsigned trellis1_piece(const unsigned (&w)[8 * K], int o, unsigned l4) {
  const int i = o >> 5, b = o & 31;
  const unsigned m = ((1u << P) - 1) << 7;
  unsigned v;
  if (b >= 7)
    v = __funnelshift_r(w[i], w[i + 1 == 8 * K ? 0 : i + 1], b - 7);
  else
    v = w[i] << (7 - b);
  return (v & m) | l4;
}

template <int K>
DEVI void gemv_trellis1(const unsigned *__restrict__ tiles, const __half *__restrict__ scales,
                        const float *__restrict__ levels, const float *__restrict__ xr, float *__restrict__ y,
                        int R, int C, int TC, int G, int gst, int tpl, float *__restrict__ res) {
  constexpr int NW8 = 8 * K, N = 256 * K, P = K == 4 ? 4 : 6, LA = K == 4 ? 2 : 6 / K;
  __shared__ unsigned hx[64 * 32];
  __shared__ float cbr[64 * 32];
  __shared__ unsigned hb[64];
  __shared__ float red[32][16];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const unsigned l4 = (unsigned)lane << 2;
  // the tables: each piece's share once, then once per lane
  for (unsigned e = threadIdx.x; e < (1u << P); e += blockDim.x)
    hb[e] = K == 4 ? trellis_idx(e) << 7 | trellis_idx(e << 4) << 14 | trellis_idx(e << 8) << 21
                   : trellis_idx(e) << 7 | trellis_idx(e << 6) << 20;
  __syncthreads();
  for (int e = threadIdx.x; e < (32 << P); e += blockDim.x) hx[e] = hb[e >> 5] | (unsigned)(e & 31) << 2;
  const float *cb = levels + 4096;
  for (int e = threadIdx.x; e < 64 * 32; e += blockDim.x) cbr[e] = __ldg(cb + (e >> 5));
  __syncthreads();
  const char *hxb = reinterpret_cast<const char *>(hx), *cbb = reinterpret_cast<const char *>(cbr);
  const int bands = (R + 15) >> 4;
  // split-K: blocks (x, z) of gridDim.y parts take tile columns [kb, ke)
  // and write their row sums to y + z·R (res then null: upg_splitk_sum
  // adds the parts in order, and res)
  const int Z = gridDim.y, z = blockIdx.y;
  const int kb = (int)((long long)TC * z / Z), ke = (int)((long long)TC * (z + 1) / Z);
  if (Z > 1) y += (size_t)z * R;
  for (int b = blockIdx.x; b < bands; b += gridDim.x) {
    float acc[16];
#pragma unroll
    for (int r = 0; r < 16; r++) acc[r] = 0.f;
    const int tc0 = kb + threadIdx.x * tpl, tc1 = min(ke, tc0 + tpl);
    for (int tc = tc0; tc < tc1; tc++) {
      unsigned w[NW8];
      const uint4 *t4 = reinterpret_cast<const uint4 *>(tiles + ((size_t)b * TC + tc) * NW8);
#pragma unroll
      for (int i = 0; i < NW8 / 4; i++) {
        const uint4 v = __ldg(t4 + i);
        w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
      }
      float x[16];
      const int c0 = 16 * tc;
      if (c0 + 16 <= C && (C & 3) == 0) {
        const float4 *x4 = reinterpret_cast<const float4 *>(xr + c0);
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const float4 v = __ldg(x4 + i);
          x[4 * i] = v.x, x[4 * i + 1] = v.y, x[4 * i + 2] = v.z, x[4 * i + 3] = v.w;
        }
      } else {
#pragma unroll
        for (int i = 0; i < 16; i++) x[i] = c0 + i < C ? xr[c0 + i] : 0.f;
      }
      // the 16 rows' scales of the tile's group (32 bytes)
      const uint4 *s4 = reinterpret_cast<const uint4 *>(scales + ((size_t)b * G + tc / gst) * 16);
      const uint4 su0 = __ldg(s4), su1 = __ldg(s4 + 1);
      float part[16];
#pragma unroll
      for (int r = 0; r < 16; r++) part[r] = 0.f;
      // hv[q]: position q's lower piece looked up; position p needs hv[p]
      // and the next LA positions' (mod 256)
      unsigned hv[256];
#pragma unroll
      for (int q = 0; q < 256 + LA; q++) {
        if (q < 256) {
          int o = (q + 1) * K - 12;
          if (o < 0) o += N;
          hv[q] = *reinterpret_cast<const unsigned *>(hxb + trellis1_piece<K, P>(w, o, l4));
        }
        const int p = q - LA;
        if (p >= 0) {
          unsigned a;
          if (K == 4)
            a = ((hv[p] ^ (hv[(p + 1) & 255] >> 7) ^ (hv[(p + 2) & 255] >> 14)) & 0x1f80u) | l4;
          else
            a = (hv[p] ^ (hv[(p + LA) & 255] >> 13)) & 0x1fffu;
          const float v = *reinterpret_cast<const float *>(cbb + a);
          const int r = (p & 63) >> 2, c = 4 * (p >> 6) + (p & 3);
          part[r] = fmaf(v, x[c], part[r]);
        }
      }
      const unsigned su[8] = {su0.x, su0.y, su0.z, su0.w, su1.x, su1.y, su1.z, su1.w};
#pragma unroll
      for (int r = 0; r < 16; r++) {
        const unsigned short h = (unsigned short)(r & 1 ? su[r >> 1] >> 16 : su[r >> 1] & 0xffffu);
        acc[r] = fmaf(__half2float(__ushort_as_half(h)), part[r], acc[r]);
      }
    }
    // the warp's 16 row sums by halving exchanges: lane l ends with row
    // (l >> 1) & 15's sum (both lanes of a pair)
    float v8[8], v4[4], v2[2], v1;
    const bool h16 = lane & 16, h8 = lane & 8, h4 = lane & 4, h2 = lane & 2;
#pragma unroll
    for (int i = 0; i < 8; i++) v8[i] = (h16 ? acc[i + 8] : acc[i]) + __shfl_xor_sync(0xffffffffu, h16 ? acc[i] : acc[i + 8], 16);
#pragma unroll
    for (int i = 0; i < 4; i++) v4[i] = (h8 ? v8[i + 4] : v8[i]) + __shfl_xor_sync(0xffffffffu, h8 ? v8[i] : v8[i + 4], 8);
#pragma unroll
    for (int i = 0; i < 2; i++) v2[i] = (h4 ? v4[i + 2] : v4[i]) + __shfl_xor_sync(0xffffffffu, h4 ? v4[i] : v4[i + 2], 4);
    v1 = (h2 ? v2[1] : v2[0]) + __shfl_xor_sync(0xffffffffu, h2 ? v2[0] : v2[1], 2);
    v1 += __shfl_xor_sync(0xffffffffu, v1, 1);
    if ((lane & 1) == 0) red[warp][(lane >> 1) & 15] = v1;
    __syncthreads();
    if (threadIdx.x < 16) {
      const int row = 16 * b + threadIdx.x;
      float v = 0.f;
      for (int k = 0; k < nw; k++) v += red[k][threadIdx.x];
      if (row < R) {
        y[row] = v;
        if (res != nullptr) res[row] += v;
      }
    }
    __syncthreads(); // red, before the next band's
  }
}

#define TRELLIS1_ARGS                                                                                          \
  const unsigned *__restrict__ tiles, const __half *__restrict__ scales, const float *__restrict__ levels,       \
      const float *__restrict__ xr, float *__restrict__ y, int R, int C, int TC, int G, int gst, int tpl,        \
      float *__restrict__ res
#define TRELLIS1_PASS tiles, scales, levels, xr, y, R, C, TC, G, gst, tpl, res
extern "C" __global__ void __launch_bounds__(512) upg_gemv_trellis1_k2(TRELLIS1_ARGS) { gemv_trellis1<2>(TRELLIS1_PASS); }
extern "C" __global__ void __launch_bounds__(512) upg_gemv_trellis1_k3(TRELLIS1_ARGS) { gemv_trellis1<3>(TRELLIS1_PASS); }
extern "C" __global__ void __launch_bounds__(512) upg_gemv_trellis1_k4(TRELLIS1_ARGS) { gemv_trellis1<4>(TRELLIS1_PASS); }

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

// ---- Many tokens on tensor cores (upg_gemm_trellis_k*) ----
//
// gemv_trellis decodes each weight once per 8 tokens and multiplies on the
// FMA pipe: a 512-token prefill of the Phi-4-shaped trellis file ran at 181
// tok/s on an H100 (run 241). Here a block of 4 warps takes 4 row bands (64
// rows) × 64 tokens, and warp w decodes band w's tiles straight into the A
// fragments of mma.sync m16n8k8 (tf32 factors, float32 sums): lane (gid =
// lane/4, tig = lane%4) decodes the 8 weights it holds, rows gid and gid+8
// × columns tig, 4+tig, 8+tig, 12+tig of each tile — positions 64s + 4r +
// tig, whose windows sit at the same bits of every tile. A tile is one
// m16 × k16 slab: 2 k-steps × 8 token tiles of 8. The activations of two
// tile columns (64 tokens × 32 floats, rows padded to 36 words: ldmatrix
// reads them without conflicts) and the 4 bands' tile words pass through
// shared memory, the next stage's loaded into registers while one is
// multiplied (mma.cu's scheme, without cp.async). tf32 keeps 10 bits of
// each factor's mantissa (~2^-11 relative a product) and float32's range:
// finer than the dense codec's int8 activations. Sums run in a fixed order.
#define TRM_TOK 64 // tokens a block
#define TRM_XS 36  // words a token's row of the activation stage (32 + 4)

DEVI void mma_tf32(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                   unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

DEVI unsigned tf32_of(float v) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return r;
}

// trellis_x4 sets v to activations xt[0..3] of a token's row (columns
// c..c+3 of C; zero past C), as one 16-byte load where rows are 16-byte aligned.
// (Run 249's branch shared this load too, with two tile columns a stage,
// and lost 18% at batch 32. This form leaves the GEMMs' instructions and
// registers as with the load written out in each, in another order
// (nvcc 11.8), and batch 32 as fast: 1,289-1,297 tok/s, NOTES.md run 252.)
DEVI void trellis_x4(float4 &v, const float *xt, int c, int C, bool vec) {
  if (vec) {
    v = __ldg(reinterpret_cast<const float4 *>(xt));
  } else {
    v.x = __ldg(xt);
    v.y = c + 1 < C ? __ldg(xt + 1) : 0.f;
    v.z = c + 2 < C ? __ldg(xt + 2) : 0.f;
    v.w = c + 3 < C ? __ldg(xt + 3) : 0.f;
  }
}

template <int K>
DEVI void gemm_trellis(const unsigned *__restrict__ tiles, const __half *__restrict__ scales,
                       const float *__restrict__ vtab, const float *__restrict__ xr, float *__restrict__ y,
                       int R, int C, int TC, int G, int gst, int nt, float *__restrict__ res) {
  constexpr int NW8 = 8 * K;
  __shared__ float vt[4096];
  __shared__ __align__(16) float xs[2][TRM_TOK * TRM_XS];
  __shared__ __align__(16) unsigned ws[2][4][2 * NW8];
  trellis_load_vtab(vt, vtab); // a weight: before the wait (launched with PDL, as upg_gemm*)
  pdl_wait();                  // xr, y and res belong to the kernels before
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gid = lane >> 2, tig = lane & 3;
  const int bands = (R + 15) >> 4, b = blockIdx.x * 4 + warp, t0 = blockIdx.y * TRM_TOK;
  const int ntl = min(TRM_TOK, nt - t0); // this block's tokens
  // the lane's 8 weights of a tile, q = 2s + h: row gid + 8h, column 4s + tig
  int wi[8], wn[8], sh[8];
#pragma unroll
  for (int q = 0; q < 8; q++) {
    const int o = trellis_start<K>(64 * (q >> 1) + 4 * (gid + 8 * (q & 1)) + tig);
    wi[q] = o >> 5;
    wn[q] = wi[q] + 1 == NW8 ? 0 : wi[q] + 1;
    sh[q] = o & 31;
  }
  const bool vec = (C & 3) == 0;
  float4 xv[4];
  unsigned wv[2];
  // stage st: tile columns 2st, 2st+1 (activation columns 32st..32st+31)
  auto load = [&](int st) {
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int i = tid + 128 * k, tok = i >> 3, c = 32 * st + 4 * (i & 7);
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (tok < ntl && c < C) trellis_x4(v, xr + (size_t)(t0 + tok) * C + c, c, C, vec);
      xv[k] = v;
    }
#pragma unroll
    for (int k = 0; k < 2; k++) {
      const int j = lane + 32 * k, tc = 2 * st + (j >= NW8);
      wv[k] = j < 2 * NW8 && b < bands && tc < TC ? __ldg(tiles + ((size_t)b * TC + 2 * st) * NW8 + j) : 0u;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int k = 0; k < 4; k++) {
      const int i = tid + 128 * k;
      *reinterpret_cast<float4 *>(&xs[buf][(i >> 3) * TRM_XS + 4 * (i & 7)]) = xv[k];
    }
#pragma unroll
    for (int k = 0; k < 2; k++)
      if (lane + 32 * k < 2 * NW8) ws[buf][warp][lane + 32 * k] = wv[k];
  };
  float acc[8][4];
#pragma unroll
  for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  // split-K: block z of gridDim.z takes stages [sb, se) and writes its
  // partial sums to y + z·nt·R (the Go side sums them, upg_splitk_sum)
  const int NS = (TC + 1) >> 1, Z = gridDim.z, z = blockIdx.z;
  const int sb = (int)((long long)NS * z / Z), se = (int)((long long)NS * (z + 1) / Z);
  if (Z > 1) y += (size_t)z * nt * R;
  // ldmatrix row of this lane: token (lane & 7) of a token tile, floats 4·(lane >> 3) of a tile column
  const unsigned xs0 = (unsigned)__cvta_generic_to_shared(&xs[0][0]) + 4u * ((lane & 7) * TRM_XS + 4 * (lane >> 3));
  const unsigned xbuf = 4u * TRM_TOK * TRM_XS;
  if (sb < se) {
    load(sb);
    store(0);
  }
  __syncthreads();
  for (int st = sb; st < se; st++) {
    const int cur = (st - sb) & 1;
    if (st + 1 < se) load(st + 1);
#pragma unroll
    for (int j = 0; j < 2; j++) {
      const int tc = 2 * st + j;
      if (tc >= TC) break;
      float sc0 = 0.f, sc1 = 0.f;
      if (b < bands) {
        const __half *sp = scales + ((size_t)b * G + tc / gst) * 16 + gid;
        sc0 = __half2float(sp[0]), sc1 = __half2float(sp[8]);
      }
      const unsigned *tw = &ws[cur][warp][j * NW8];
      unsigned a[8];
#pragma unroll
      for (int q = 0; q < 8; q++) {
        const unsigned win = __funnelshift_r(tw[wi[q]], tw[wn[q]], sh[q]) & 0xFFFu;
        a[q] = tf32_of(vt[win] * (q & 1 ? sc1 : sc0));
      }
#pragma unroll
      for (int n = 0; n < 8; n++) {
        if (8 * n >= ntl) break;
        unsigned b0, b1, b2, b3;
        ldmatrix_x4s(b0, b1, b2, b3, xs0 + cur * xbuf + 4u * (8 * n * TRM_XS + 16 * j));
        mma_tf32(acc[n], a[0], a[1], a[2], a[3], b0, b1);
        mma_tf32(acc[n], a[4], a[5], a[6], a[7], b2, b3);
      }
    }
    if (st + 1 < se) store(cur ^ 1);
    __syncthreads();
  }
  const int r0 = 16 * b + gid;
#pragma unroll
  for (int n = 0; n < 8; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int row = r0 + 8 * (e >> 1), tok = 8 * n + 2 * tig + (e & 1);
      if (b < bands && row < R && tok < ntl) {
        const size_t at = (size_t)(t0 + tok) * R + row;
        y[at] = acc[n][e];
        if (res != nullptr) res[at] += acc[n][e];
      }
    }
  }
}

// upg_gemm_trellis_k<bits>: grid (ceil(bands / 4), ceil(nt / 64), split-K parts), 128 threads.
extern "C" __global__ void __launch_bounds__(128) upg_gemm_trellis_k2(TRELLIS_ARGS) { gemm_trellis<2>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(128) upg_gemm_trellis_k3(TRELLIS_ARGS) { gemm_trellis<3>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(128) upg_gemm_trellis_k4(TRELLIS_ARGS) { gemm_trellis<4>(TRELLIS_PASS); }

// ---- Many tokens on tensor cores in bf16 (upg_gemm_trellis_bf*) ----
//
// gemm_trellis's block ran shared-memory-bound (ncu, run 243: 254 M
// wavefronts for gate|up at 512 tokens, the tensor pipe 17% busy): per
// 16 columns it reads the tile words twice (two k-steps), the activations
// of two 8-column k-steps by ldmatrix, and the 4,096-float table with
// ~3.5-way conflicts. Here the factors are bf16 and the multiply is
// mma.sync m16n8k16: lane (gid, tig) holds, in A, rows gid and gid+8 ×
// columns 2tig, 2tig+1, 2tig+8, 2tig+9 of a tile, i.e. two pairs of
// neighbouring positions (p, p+1) in strips tig/2 and 2 + tig/2 — and the
// windows of p and p+1 are one 32-bit chunk of the stream K bits apart, so
// a pair costs one funnel shift. One tile column (16 activation columns,
// converted to bf16 once when staged) is a stage; a token tile pair (16
// tokens) is one ldmatrix.x4; a block is WB warps (a row band each) × TOK
// tokens (4 × 64 or 8 × 128: the Go side picks by how many blocks the
// grid has). bf16 keeps 8 bits of each
// factor (~2^-9 relative, float32's range: no overflow whatever the
// activations), sums in float32 in a fixed order: finer than the dense
// codec's int8 activations, coarser than tf32.
#define TRB_XS 24 // bf16 a token's row of the stage (16 + 8: 48 bytes, ldmatrix without conflicts)

DEVI void mma_bf16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                   unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// bf16x2_of packs lo (low half: the lower column or k) and hi, rounded to nearest even.
DEVI unsigned bf16x2_of(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

template <int K, int TOK, int WB>
DEVI void gemm_trellis_bf(const unsigned *__restrict__ tiles, const __half *__restrict__ scales,
                          const float *__restrict__ vtab, const float *__restrict__ xr, float *__restrict__ y,
                          int R, int C, int TC, int G, int gst, int nt, float *__restrict__ res) {
  constexpr int NW8 = 8 * K, NT = TOK / 8, NTH = 32 * WB, XV = TOK * 4 / NTH;
  __shared__ float vt[4096];
  __shared__ __align__(16) unsigned short xs[2][TOK * TRB_XS];
  __shared__ unsigned ws[2][WB][NW8 + 1]; // a tile's words and word 0 again (the stream is tail-biting)
  trellis_load_vtab(vt, vtab);           // a weight: before the wait (launched with PDL)
  pdl_wait();                            // xr, y and res belong to the kernels before
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gid = lane >> 2, tig = lane & 3;
  const int bands = (R + 15) >> 4, b = blockIdx.x * WB + warp, t0 = blockIdx.y * TOK;
  const int ntl = min(TOK, nt - t0); // this block's tokens
  // pair q (A register q): row gid + 8(q&1), columns 8(q>>1) + 2tig, +1 —
  // positions p, p+1 with p = 64(2(q>>1) + tig/2) + 4·row + 2(tig&1)
  int wi[4], sh[4];
#pragma unroll
  for (int q = 0; q < 4; q++) {
    const int o = trellis_start<K>(64 * (2 * (q >> 1) + (tig >> 1)) + 4 * (gid + 8 * (q & 1)) + 2 * (tig & 1));
    wi[q] = o >> 5;
    sh[q] = o & 31;
  }
  const bool vec = (C & 3) == 0;
  float4 xv[XV];
  unsigned wv;
  // stage tc: tile column tc (activation columns 16tc..16tc+15); thread i
  // of the TOK·4 float4s: token i/4, columns 4(i%4)..+3
  auto load = [&](int tc) {
#pragma unroll
    for (int k = 0; k < XV; k++) {
      const int i = tid + NTH * k, tok = i >> 2, c = 16 * tc + 4 * (i & 3);
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (tok < ntl && c < C) trellis_x4(v, xr + (size_t)(t0 + tok) * C + c, c, C, vec);
      xv[k] = v;
    }
    wv = lane < NW8 && b < bands ? __ldg(tiles + ((size_t)b * TC + tc) * NW8 + lane) : 0u;
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int k = 0; k < XV; k++) {
      const int i = tid + NTH * k;
      *reinterpret_cast<uint2 *>(&xs[buf][(i >> 2) * TRB_XS + 4 * (i & 3)]) =
          make_uint2(bf16x2_of(xv[k].x, xv[k].y), bf16x2_of(xv[k].z, xv[k].w));
    }
    if (lane < NW8) ws[buf][warp][lane] = wv;
    if (lane == 0) ws[buf][warp][NW8] = wv;
  };
  float acc[NT][4];
#pragma unroll
  for (int n = 0; n < NT; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  // ldmatrix row of this lane: token 8(lane >> 4) + (lane & 7) of a 16-token pair, k 8((lane >> 3) & 1)
  const unsigned xs0 = (unsigned)__cvta_generic_to_shared(&xs[0][0]) +
                       2u * ((8 * (lane >> 4) + (lane & 7)) * TRB_XS + 8 * ((lane >> 3) & 1));
  const unsigned xbuf = 2u * TOK * TRB_XS;
  // split-K: block z of gridDim.z takes tile columns [cb, ce) and writes
  // its partial sums to y + z·nt·R (the Go side sums them, upg_splitk_sum)
  const int Z = gridDim.z, z = blockIdx.z;
  const int cb = (int)((long long)TC * z / Z), ce = (int)((long long)TC * (z + 1) / Z);
  if (Z > 1) y += (size_t)z * nt * R;
  if (cb < ce) {
    load(cb);
    store(0);
  }
  __syncthreads();
  for (int tc = cb; tc < ce; tc++) {
    const int cur = (tc - cb) & 1;
    if (tc + 1 < ce) load(tc + 1);
    float sc0 = 0.f, sc1 = 0.f;
    if (b < bands) {
      const __half *sp = scales + ((size_t)b * G + tc / gst) * 16 + gid;
      sc0 = __half2float(sp[0]), sc1 = __half2float(sp[8]);
    }
    const unsigned *tw = ws[cur][warp];
    unsigned a[4];
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const unsigned ch = __funnelshift_r(tw[wi[q]], tw[wi[q] + 1], sh[q]);
      const float s = q & 1 ? sc1 : sc0;
      a[q] = bf16x2_of(vt[ch & 0xFFFu] * s, vt[(ch >> K) & 0xFFFu] * s);
    }
#pragma unroll
    for (int np = 0; np < NT / 2; np++) {
      if (16 * np >= ntl) break;
      unsigned b0, b1, b2, b3;
      ldmatrix_x4s(b0, b1, b2, b3, xs0 + cur * xbuf + 2u * (16 * np * TRB_XS));
      mma_bf16(acc[2 * np], a[0], a[1], a[2], a[3], b0, b1);
      mma_bf16(acc[2 * np + 1], a[0], a[1], a[2], a[3], b2, b3);
    }
    if (tc + 1 < ce) store(cur ^ 1);
    __syncthreads();
  }
  const int r0 = 16 * b + gid;
#pragma unroll
  for (int n = 0; n < NT; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int row = r0 + 8 * (e >> 1), tok = 8 * n + 2 * tig + (e & 1);
      if (b < bands && row < R && tok < ntl) {
        const size_t at = (size_t)(t0 + tok) * R + row;
        y[at] = acc[n][e];
        if (res != nullptr) res[at] += acc[n][e];
      }
    }
  }
}

// upg_gemm_trellis_bf64_k<bits>: 64 tokens × 4 bands a block (grid ceil(bands / 4) × ceil(nt / 64) × split-K
// parts, 128 threads); upg_gemm_trellis_bf128_k<bits>: 128 tokens × 8 bands (ceil(bands / 8) × ceil(nt / 128) × parts,
// 256 threads): each
// staged activation serves twice the rows.
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm_trellis_bf64_k2(TRELLIS_ARGS) { gemm_trellis_bf<2, 64, 4>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm_trellis_bf64_k3(TRELLIS_ARGS) { gemm_trellis_bf<3, 64, 4>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm_trellis_bf64_k4(TRELLIS_ARGS) { gemm_trellis_bf<4, 64, 4>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256, 2) upg_gemm_trellis_bf128_k2(TRELLIS_ARGS) { gemm_trellis_bf<2, 128, 8>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256, 2) upg_gemm_trellis_bf128_k3(TRELLIS_ARGS) { gemm_trellis_bf<3, 128, 8>(TRELLIS_PASS); }
extern "C" __global__ void __launch_bounds__(256, 2) upg_gemm_trellis_bf128_k4(TRELLIS_ARGS) { gemm_trellis_bf<4, 128, 8>(TRELLIS_PASS); }
