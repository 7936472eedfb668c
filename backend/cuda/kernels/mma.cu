// Tensor-core multiply of the dense codec for many tokens (prefill and
// large batches): the same codes, scales, int8 activations and group
// factors as gemv_dense (gemv.cu), with the code bytes u[q] times the int8
// activations summed by mma.sync m16n8k32 (u8 × s8 → s32, sm_80 and later)
// instead of dp4a. The integer sums are exact, so per unit and group the
// result is gemv_dense's; only the float additions run in another order.
//
// Block: 4 warps, 64 rows (two 32-row groups of the layout) × NTOK tokens
// (64, or 32 for steps of at most 32 tokens, which would leave half of a
// 64-token tile empty). Warp w takes rows 16w..16w+15 of the block; each of its lanes (gid =
// lane/4, tig = lane%4) holds, per mma, the A fragment of rows gid and
// gid+8 (4 code bytes each at columns 4·tig and 16+4·tig of the 32-column
// slice), the B fragments of 8 tokens (ldmatrix from the block's activation
// tile in shared memory, rows padded to 144 bytes: conflict-free), and the C
// fragment of rows gid, gid+8 × tokens 2·tig, 2·tig+1 of each 8-token tile.
// The next unit's codes and activations are loaded while one is multiplied.

#define MMA_ROWS 64
#define MMA_XSTRIDE 144 // bytes per token row of the activation tile (128 + 16 padding)

DEVI void mma_u8s8(int (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, int b0, int b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// i2f_exact converts |i| < 2^22 to float exactly, as (float)i does, with an
// integer and a float add (full rate) instead of I2F (16 per clock and SM):
// the bits of 1.5·2^23 + i are the float 1.5·2^23 + i. A flush's integer sum
// covers at most 128 products |u·q| ≤ 255·127, under 2^22.
DEVI float i2f_exact(int i) { return __int_as_float(i + 0x4B400000) - 12582912.f; }

DEVI void ldmatrix_x4(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}

// code_bytes returns the level bytes of codes 8c+4h..8c+4h+3 of a unit
// (plane words w), as gemv_dense maps them (MODE as there).
template <int K, int MODE>
DEVI unsigned code_bytes(const uint4 *w, int c, int h, unsigned t0, unsigned t1, unsigned t2,
                         unsigned t3) {
  const unsigned nib = extract<K>(w, c);
  if (MODE == 1) return h ? (nib >> 4) & 0x0F0F0F0Fu : nib & 0x0F0F0F0Fu;
  if (MODE == 2) return lut16(h ? nib >> 16 : nib, t0, t1, t2, t3);
  return __byte_perm(t0, t1, h ? nib >> 16 : nib);
}

template <int K, int MODE, int GPU_, int NTOK>
DEVI void gemm_dense(const uint4 *__restrict__ codes, const __half *__restrict__ scales,
                     const __half *__restrict__ offs, const int8_t *__restrict__ xq,
                     const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, int U,
                     int G, int gsl, int ldq, int nt, unsigned t0, unsigned t1, unsigned t2,
                     unsigned t3, float *__restrict__ res, const uint8_t *__restrict__ lut) {
  __shared__ __align__(16) unsigned char xs[NTOK * MMA_XSTRIDE];
  constexpr int NT8 = NTOK / 8; // 8-token tiles
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int row0 = blockIdx.x * MMA_ROWS + w * 16; // the warp's first row
  const int rg = row0 >> 5, rl = (row0 & 31) + gid; // row group, lane of row gid
  const bool live = row0 < R; // a warp past the last row group only helps fill xs
  const int tok0 = blockIdx.y * NTOK;
  const int ntok = min(NTOK, nt - tok0);
  const uint4 *base = codes + (size_t)rg * U * K * 32;
  const __half *sbase = scales + (size_t)rg * G * 32;
  const __half *obase = offs != nullptr ? offs + (size_t)rg * G * 32 : nullptr;
  constexpr int SUBC = 16 / GPU_; // chunks per group inside a unit
  float acc[NT8][4];
#pragma unroll
  for (int i = 0; i < NT8; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

  // Unit u+1's codes, group scales and offsets (rows gid, gid+8 as one
  // half2), activation tile and activation factors are loaded into registers
  // while unit u is multiplied (double buffering through registers); the
  // tile and the factors then go to shared memory. Each flush used to load
  // its scales from global memory and wait a DRAM latency for them.
  constexpr int FN = (GPU_ * NTOK + 127) / 128; // factor float4s per thread
  __shared__ float4 fs[GPU_ * NTOK];
  uint4 wa[K], wb[K]; // rows gid and gid+8
  __half2 sc[GPU_], of[GPU_];
  uint4 xv[NTOK * 8 / 128];
  float4 fv[FN];
  auto load = [&](int u, uint4 *ca, uint4 *cb, __half2 *ss, __half2 *oo, uint4 *xx, float4 *ff) {
#pragma unroll
    for (int j = 0; j < K; j++) {
      ca[j] = cb[j] = make_uint4(0, 0, 0, 0);
      if (live) {
        ca[j] = ldg_stream(base + ((size_t)u * K + j) * 32 + rl);
        cb[j] = ldg_stream(base + ((size_t)u * K + j) * 32 + rl + 8);
      }
    }
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
      const int g = min((u * 128 + s * (128 / GPU_)) >> gsl, G - 1);
      ss[s] = oo[s] = __floats2half2_rn(0.f, 0.f);
      if (live) {
        ss[s] = __halves2half2(sbase[(size_t)g * 32 + rl], sbase[(size_t)g * 32 + rl + 8]);
        if (obase != nullptr) oo[s] = __halves2half2(obase[(size_t)g * 32 + rl], obase[(size_t)g * 32 + rl + 8]);
      }
    }
#pragma unroll
    for (int j = 0; j < NTOK * 8 / 128; j++) {
      const int i = threadIdx.x + 128 * j, t = i >> 3, q = i & 7;
      xx[j] = make_uint4(0, 0, 0, 0);
      if (t < ntok) xx[j] = *reinterpret_cast<const uint4 *>(xq + (size_t)(tok0 + t) * ldq + u * 128 + q * 16);
    }
#pragma unroll
    for (int j = 0; j < FN; j++) {
      const int i = threadIdx.x + 128 * j, s = i / NTOK, t = i % NTOK;
      ff[j] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (i < GPU_ * NTOK && t < ntok) {
        const int g = min((u * 128 + s * (128 / GPU_)) >> gsl, G - 1);
        ff[j] = fac[(size_t)(tok0 + t) * G + g];
      }
    }
  };
  // split-K: block z of gridDim.z takes units [u0, u1) and writes its
  // partial sums to y + z·nt·R (the Go side sums them, upg_splitk_sum)
  const int Z = gridDim.z, z = blockIdx.z;
  const int u0 = (int)((long long)U * z / Z), u1 = (int)((long long)U * (z + 1) / Z);
  if (Z > 1) y += (size_t)z * nt * R;
  if (u0 < u1) load(u0, wa, wb, sc, of, xv, fv);
  for (int u = u0; u < u1; u++) {
    __syncthreads(); // every warp is done with the last tile
#pragma unroll
    for (int j = 0; j < NTOK * 8 / 128; j++) {
      const int i = threadIdx.x + 128 * j, t = i >> 3, q = i & 7;
      *reinterpret_cast<uint4 *>(xs + t * MMA_XSTRIDE + q * 16) = xv[j];
    }
#pragma unroll
    for (int j = 0; j < FN; j++) {
      const int i = threadIdx.x + 128 * j;
      if (i < GPU_ * NTOK) fs[i] = fv[j];
    }
    __syncthreads();
    uint4 na[K], nb[K];
    __half2 nsc[GPU_], nof[GPU_];
    if (u + 1 < u1) load(u + 1, na, nb, nsc, nof, xv, fv);
    int ia[NT8][4];
#pragma unroll
    for (int s = 0; s < GPU_; s++) {
#pragma unroll
      for (int i = 0; i < NT8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) ia[i][j] = 0;
      // the k-slices (32 columns = 4 chunks) of sub-group s
#pragma unroll
      for (int ks = s * SUBC / 4; ks < (s + 1) * SUBC / 4; ks++) {
        const int c0 = 4 * ks + (tig >> 1), h = tig & 1;
        const unsigned a0 = code_bytes<K, MODE>(wa, c0, h, t0, t1, t2, t3);
        const unsigned a1 = code_bytes<K, MODE>(wb, c0, h, t0, t1, t2, t3);
        const unsigned a2 = code_bytes<K, MODE>(wa, c0 + 2, h, t0, t1, t2, t3);
        const unsigned a3 = code_bytes<K, MODE>(wb, c0 + 2, h, t0, t1, t2, t3);
        // B fragments of two 8-token tiles per ldmatrix.x4: lanes 8j..8j+7
        // address rows (tokens) of matrix j = (tile i + j/2, bytes 16·(j%2)..).
#pragma unroll
        for (int i = 0; i < NT8; i += 2) {
          const int j = lane >> 3;
          const unsigned char *xr = xs + ((i + (j >> 1)) * 8 + (lane & 7)) * MMA_XSTRIDE + ks * 32 + (j & 1) * 16;
          unsigned b0, b1, b2, b3;
          ldmatrix_x4(b0, b1, b2, b3, xr);
          mma_u8s8(ia[i], a0, a1, a2, a3, (int)b0, (int)b1);
          mma_u8s8(ia[i + 1], a0, a1, a2, a3, (int)b2, (int)b3);
        }
      }
      // flush sub-group s of unit u as gemv_dense does
      const int cs = u * 128 + s * (128 / GPU_);
      if (live && cs < C) {
        const bool first = GPU_ > 1 || (cs & ((1 << gsl) - 1)) == 0;
        const float2 scab = __half22float2(sc[s]);
        const float sca = scab.x, scb = scab.y;
        const float2 ofab = first ? __half22float2(of[s]) : make_float2(0.f, 0.f);
        const float ofa = ofab.x, ofb = ofab.y;
#pragma unroll
        for (int i = 0; i < NT8; i++) {
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int t = i * 8 + 2 * tig + e;
            if (t < ntok) {
              const float4 f = fs[s * NTOK + t];
              float a = fmaf(sca * f.x, i2f_exact(ia[i][e]), acc[i][e]);
              float b = fmaf(scb * f.x, i2f_exact(ia[i][2 + e]), acc[i][2 + e]);
              if (first) {
                a = fmaf(sca, f.y, fmaf(ofa, f.z, a));
                b = fmaf(scb, f.y, fmaf(ofb, f.z, b));
              }
              acc[i][e] = a;
              acc[i][2 + e] = b;
            }
          }
        }
      }
    }
    if (u + 1 < u1) {
#pragma unroll
      for (int j = 0; j < K; j++) wa[j] = na[j], wb[j] = nb[j];
#pragma unroll
      for (int s = 0; s < GPU_; s++) sc[s] = nsc[s], of[s] = nof[s];
    }
  }
  const int ra = row0 + gid, rb = ra + 8;
#pragma unroll
  for (int i = 0; i < NT8; i++) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int t = i * 8 + 2 * tig + e;
      if (t < ntok) {
        const size_t o = (size_t)(tok0 + t) * R;
        if (ra < R) {
          y[o + ra] = acc[i][e];
          if (res != nullptr) res[o + ra] += acc[i][e];
        }
        if (rb < R) {
          y[o + rb] = acc[i][2 + e];
          if (res != nullptr) res[o + rb] += acc[i][2 + e];
        }
      }
    }
  }
}

// upg_gemm[32]_<bits>[l]_g<groups per unit> (32: 32-token tiles): grid
// (ceil(R/64), ceil(nt/NTOK), split-K parts; res null when there are
// several), 128 threads; nt = tokens. The minimum blocks per SM keep the
// registers at ≤ 168 (64-token tiles: 3 blocks per SM) and ≤ 128 (32: 4);
// at 172 registers the 64-token kernel held 2 blocks and prefill lost 13%. None for the byte layout (K = 8: its
// eight plane words per row would not fit the registers).
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k2_g1(GEMV_ARGS) { gemm_dense<2, 0, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k2_g1(GEMV_ARGS) { gemm_dense<2, 0, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k2_g2(GEMV_ARGS) { gemm_dense<2, 0, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k2_g2(GEMV_ARGS) { gemm_dense<2, 0, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k2_g4(GEMV_ARGS) { gemm_dense<2, 0, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k2_g4(GEMV_ARGS) { gemm_dense<2, 0, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k3_g1(GEMV_ARGS) { gemm_dense<3, 0, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k3_g1(GEMV_ARGS) { gemm_dense<3, 0, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k3_g2(GEMV_ARGS) { gemm_dense<3, 0, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k3_g2(GEMV_ARGS) { gemm_dense<3, 0, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k3_g4(GEMV_ARGS) { gemm_dense<3, 0, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k3_g4(GEMV_ARGS) { gemm_dense<3, 0, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4_g1(GEMV_ARGS) { gemm_dense<4, 1, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4_g1(GEMV_ARGS) { gemm_dense<4, 1, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4_g2(GEMV_ARGS) { gemm_dense<4, 1, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4_g2(GEMV_ARGS) { gemm_dense<4, 1, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4_g4(GEMV_ARGS) { gemm_dense<4, 1, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4_g4(GEMV_ARGS) { gemm_dense<4, 1, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4l_g1(GEMV_ARGS) { gemm_dense<4, 2, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4l_g1(GEMV_ARGS) { gemm_dense<4, 2, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4l_g2(GEMV_ARGS) { gemm_dense<4, 2, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4l_g2(GEMV_ARGS) { gemm_dense<4, 2, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 3) upg_gemm_k4l_g4(GEMV_ARGS) { gemm_dense<4, 2, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, 4) upg_gemm32_k4l_g4(GEMV_ARGS) { gemm_dense<4, 2, 4, 32>(GEMV_PASS); }
