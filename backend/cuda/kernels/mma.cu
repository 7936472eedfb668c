// Tensor-core multiply of the dense codec for many tokens (prefill and
// large batches): the same codes, scales, int8 activations and group
// factors as gemv_dense (gemv.cu), with the code bytes u[q] times the int8
// activations summed by mma.sync m16n8k32 (u8 × s8 → s32, sm_80 and later)
// instead of dp4a. The integer sums are exact, so per unit and group the
// result is gemv_dense's; only the float operations run in another order.
//
// Block: 4 warps, 64 rows (two 32-row groups of the layout) × NTOK tokens
// (64; 32 for steps of at most 32 tokens, which would leave half of a
// 64-token tile empty; 16 for steps of at most 16). Warp w takes rows 16w..16w+15 of the block; each of its lanes (gid =
// lane/4, tig = lane%4) holds, per mma, the A fragment of rows gid and
// gid+8 (4 code bytes each at columns 4·tig and 16+4·tig of the 32-column
// slice), the B fragments of 8 tokens (ldmatrix from the block's activation
// tile in shared memory, rows padded to 144 bytes: conflict-free), and the C
// fragment of rows gid, gid+8 × tokens 2·tig, 2·tig+1 of each 8-token tile.
// Units stream through a ring of 2-4 shared-memory stages filled by
// cp.async, so the copies of the next 1-3 units are in flight while one is
// multiplied, and no register holds data on its way to shared memory.

#define MMA_ROWS 64
#define MMA_THREADS 128 // 4 warps
// blocks per SM the 64-token kernels are built for (launch bounds); a
// measurement build may set another (scripts/build-cuda.sh, UPG_NVCC_DEFS)
#ifndef UPG_GEMM64_MINB
#define UPG_GEMM64_MINB 4
#endif
#ifndef UPG_GEMM32_MINB
#define UPG_GEMM32_MINB 5
#endif
#ifndef UPG_GEMM16_MINB
#define UPG_GEMM16_MINB 6
#endif
#define MMA_XSTRIDE 144 // bytes per token row of the activation tile (128 + 16 padding)

// BoolC<B> carries B in its type, for lambdas instantiated per case.
template <bool B> struct BoolC {
  static constexpr bool value = B;
};

DEVI void mma_u8s8(int (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, int b0, int b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// i2f converts a flush's integer sum (at most 128 products |u·q| ≤
// 255·127, under 2^22) to float, exactly. I2F runs at a quarter of the
// full rate, but one instruction: run 62 measured batch 32 3% faster than
// with an integer add and a float subtract on the bits of 1.5·2^23 + i
// (two full-rate instructions), the GEMM being bound by instructions
// issued, not by the conversion unit.
DEVI float i2f(int i) { return (float)i; }

DEVI void ldmatrix_x4(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, const void *p) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}
// ldmatrix_x4s: the same from a shared-memory address (cvta.to.shared).
DEVI void ldmatrix_x4s(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, unsigned a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(a));
}
// lds32 loads a word from a shared-memory address.
DEVI unsigned lds32(unsigned a) {
  unsigned v;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(a));
  return v;
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

// cp.async (sm_80): 16 bytes from global to shared memory without passing
// through registers; src_bytes 0 fills the 16 bytes with zeros (and reads
// nothing). Groups of copies complete in commit order.
// The destination is a shared-memory address (as cvta.to.shared gives):
// the GEMM computes its stages' address once and adds offsets, where a
// generic pointer per copy cost a conversion each (S2R, MOV and LEA).
DEVI void cp_async16s(unsigned dst, const void *src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> DEVI void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

// GemmStage is one unit's data in the block's shared-memory ring: the codes
// of its two 32-row groups (the global layout's K×32 uint4 per row group
// and unit, as they are), the activation tile (NTOK token rows of 128
// bytes, padded to MMA_XSTRIDE), the factors of its GPU_ groups per token,
// and the rows' group scales and offsets.
template <int K, int GPU_, int NTOK> struct GemmStage {
  uint4 codes[2 * K * 32];
  unsigned char xs[NTOK * MMA_XSTRIDE];
  float4 fs[GPU_ * NTOK];
  __half sc[GPU_ * 64], of[GPU_ * 64];
};

// UPG_GEMM_STAGES_MAX: the most stages a ring holds (a measurement build may
// set 5: the 32-token k3_g1 stage, 8.4 KB, fits five in 42 KB).
#ifndef UPG_GEMM_STAGES_MAX
#define UPG_GEMM_STAGES_MAX 4
#endif

// GemmStages::n: as many stages as fit 46 KB of static shared memory, 2 to
// UPG_GEMM_STAGES_MAX.
template <int K, int GPU_, int NTOK> struct GemmStages {
  static constexpr int fit = 46 * 1024 / (int)sizeof(GemmStage<K, GPU_, NTOK>);
  static constexpr int n = fit >= UPG_GEMM_STAGES_MAX ? UPG_GEMM_STAGES_MAX : fit >= 2 ? fit : 2;
};

template <int K, int MODE, int GPU_, int NTOK>
DEVI void gemm_dense(const uint4 *__restrict__ codes, const __half *__restrict__ scales,
                     const __half *__restrict__ offs, const int8_t *__restrict__ xq,
                     const float4 *__restrict__ fac, float *__restrict__ y, int R, int C, int U,
                     int G, int gsl, int ldq, int nt, unsigned t0, unsigned t1, unsigned t2,
                     unsigned t3, float *__restrict__ res, const uint8_t *__restrict__ lut) {
  using Stage = GemmStage<K, GPU_, NTOK>;
  constexpr int NS = GemmStages<K, GPU_, NTOK>::n;
  __shared__ __align__(16) Stage st[NS];
  constexpr int NT8 = NTOK / 8; // 8-token tiles
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int row0 = blockIdx.x * MMA_ROWS + w * 16; // the warp's first row
  const int rl = (row0 & 31) + gid;                // lane of row gid in its row group
  const int rgl = w >> 1;                          // the warp's row group within the block
  const bool live = row0 < R;                      // a warp past the last row group only copies
  const int rg0 = blockIdx.x * 2, nrg = min(2, (R + 31) / 32 - rg0); // the block's row groups
  const int tok0 = blockIdx.y * NTOK;
  const int ntok = min(NTOK, nt - tok0);
  constexpr int SUBC = 16 / GPU_; // chunks per group inside a unit
  float acc[NT8][4];
#pragma unroll
  for (int i = 0; i < NT8; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

  // split-K: block z of gridDim.z takes units [u0, u1) and writes its
  // partial sums to y + z·nt·R (the Go side sums them, upg_splitk_sum)
  const int Z = gridDim.z, z = blockIdx.z;
  const int u0 = (int)((long long)U * z / Z), u1 = (int)((long long)U * (z + 1) / Z);
  if (Z > 1) y += (size_t)z * nt * R;

  // The ring: unit u lives in stage (u - u0) % NS. Codes, scales and offsets
  // are weights, copied before pdl_wait; the activation tile and factors
  // belong to the kernel before and are copied after it.
  // Each thread's copies of a unit, planned once (their addresses then take
  // one add per unit): code copy i = tid + k·MMA_THREADS of the
  // block's nrg·K·32 (woff: its source at unit 0, -1 for none) and
  // activation copy i of NTOK·8 (xoff; token rows past the valid ones read
  // the last one and are zero-filled).
  constexpr int WC = (2 * K * 32 + MMA_THREADS - 1) / MMA_THREADS, XC = NTOK * 8 / MMA_THREADS;
  int woff[WC], xoff[XC];
#pragma unroll
  for (int k = 0; k < WC; k++) {
    const int i = tid + k * MMA_THREADS, r = i / (K * 32);
    woff[k] = i < nrg * K * 32 ? (rg0 + r) * U * K * 32 + (i - r * K * 32) : -1;
  }
#pragma unroll
  for (int k = 0; k < XC; k++) {
    const int i = tid + k * MMA_THREADS;
    xoff[k] = (tok0 + min(i >> 3, ntok - 1)) * ldq + (i & 7) * 16;
  }
  // stage k's fields as shared-memory addresses (st is one array)
  const unsigned st0 = (unsigned)__cvta_generic_to_shared(&st[0]);
  // the lane's byte offsets in a stage: its code word (K = 3: word tig of
  // row rl's first plane) and its ldmatrix row — lanes 8j..8j+7 address
  // tokens (j >> 1)·8 + lane % 8, bytes 16·(j & 1) of a k-slice
  unsigned clane = (unsigned)(offsetof(Stage, codes) + ((rgl * K * 32 + rl) * 16 + tig * 4));
  unsigned xlane = (unsigned)(offsetof(Stage, xs) + (((lane >> 4) * 8 + (lane & 7)) * MMA_XSTRIDE + ((lane >> 3) & 1) * 16));
  auto at = [&](int k, const void *field) {
    return st0 + (unsigned)k * (unsigned)sizeof(Stage) + (unsigned)((const char *)field - (const char *)&st[0]);
  };
  auto load_w = [&](int u, int k) {
#pragma unroll
    for (int c = 0; c < WC; c++)
      if (woff[c] >= 0)
        cp_async16s(at(k, &st[0].codes[tid + c * MMA_THREADS]), codes + woff[c] + (size_t)u * K * 32, 16);
    // scales (and offsets): GPU_ groups × 2 row groups × 32 halves = 4
    // chunks each, GPU_·8 ≤ 32 copies: warp 0
    if (tid < GPU_ * 8) {
      const int sg = tid >> 3, r = (tid >> 2) & 1, q = tid & 3;
      if (r < nrg) {
        const int g = min((u * 128 + sg * (128 / GPU_)) >> gsl, G - 1);
        const size_t o = ((size_t)(rg0 + r) * G + g) * 32 + q * 8;
        cp_async16s(at(k, &st[0].sc[(sg * 2 + r) * 32 + q * 8]), scales + o, 16);
        if (offs != nullptr) cp_async16s(at(k, &st[0].of[(sg * 2 + r) * 32 + q * 8]), offs + o, 16);
      }
    }
  };
  constexpr int FC = (GPU_ * NTOK + MMA_THREADS - 1) / MMA_THREADS; // factor copies per thread (≤ 2)
  auto load_x = [&](int u, int k) {
#pragma unroll
    for (int c = 0; c < XC; c++) {
      const int i = tid + c * MMA_THREADS, t = i >> 3;
      cp_async16s(at(k, st[0].xs + t * MMA_XSTRIDE + (i & 7) * 16), xq + xoff[c] + u * 128, t < ntok ? 16 : 0);
    }
#pragma unroll
    for (int c = 0; c < FC; c++) {
      const int i = tid + c * MMA_THREADS;
      if (i < GPU_ * NTOK) {
        const int sg = i / NTOK, t = i % NTOK;
        const int g = min((u * 128 + sg * (128 / GPU_)) >> gsl, G - 1);
        cp_async16s(at(k, &st[0].fs[i]), fac + (size_t)(tok0 + min(t, ntok - 1)) * G + g, t < ntok ? 16 : 0);
      }
    }
  };
  // prologue: the weights of the first NS-1 units (one group each), the
  // wait, then their activations (one group each); the loop below commits
  // one group per unit, so wait_group<NS-2> always leaves unit u complete
#pragma unroll
  for (int k = 0; k < NS - 1; k++) {
    if (u0 + k < u1) load_w(u0 + k, k);
    cp_async_commit();
  }
  pdl_wait(); // xq, fac, y and res belong to the kernels before
  pdl_launch();
#pragma unroll
  for (int k = 0; k < NS - 1; k++) {
    if (u0 + k < u1) load_x(u0 + k, k);
    cp_async_commit();
  }
  // kc: unit u's stage, (u - u0) % NS, kept without a division
  for (int u = u0, kc = 0; u < u1; u++, kc = kc + 1 == NS ? 0 : kc + 1) {
    cp_async_wait<NS - 2>();
    __syncthreads(); // unit u is in its stage for every thread; stage (u-1)'s readers are done
    {
      const int un = u + NS - 1;
      if (un < u1) {
        const int kn = kc == 0 ? NS - 1 : kc - 1; // (un - u0) % NS
        load_w(un, kn);
        load_x(un, kn);
      }
      cp_async_commit();
    }
    const Stage &s = st[kc];
    if (!live) continue;
    // the stage's shared-memory address; the lane's offsets in it (clane,
    // xlane) were computed before the loop and, in the 16- and 32-token
    // tiles, are kept there (an empty asm that "changes" them), where ptxas
    // recomputed them every unit (~25 instructions) to stay under the
    // register bound
    const unsigned sb = st0 + (unsigned)kc * (unsigned)sizeof(Stage);
    if constexpr (NTOK <= 32) asm volatile("" : "+r"(clane), "+r"(xlane)); // (64: spills at 128)
    // rows gid and gid+8: K = 3 (MODE 0) takes word tig of each plane, the
    // lane's selectors (sel3); the others the whole plane words
    constexpr bool SEL = K == 3 && MODE == 0;
    uint4 wa[SEL ? 1 : K], wb[SEL ? 1 : K];
    unsigned pa[3], pb[3];
    if constexpr (SEL) {
#pragma unroll
      for (int j = 0; j < 3; j++) {
        pa[j] = lds32(sb + clane + j * 32 * 16);
        pb[j] = lds32(sb + clane + j * 32 * 16 + 8 * 16);
      }
    } else {
#pragma unroll
      for (int j = 0; j < K; j++) {
        wa[j] = s.codes[(rgl * K + j) * 32 + rl];
        wb[j] = s.codes[(rgl * K + j) * 32 + rl + 8];
      }
    }
    int ia[NT8][4];
#pragma unroll
    for (int sg = 0; sg < GPU_; sg++) {
#pragma unroll
      for (int i = 0; i < NT8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) ia[i][j] = 0;
      // the k-slices (32 columns = 4 chunks) of sub-group sg
#pragma unroll
      for (int ks = sg * SUBC / 4; ks < (sg + 1) * SUBC / 4; ks++) {
        unsigned a0, a1, a2, a3;
        if constexpr (SEL) {
          const unsigned sela = sel3(pa[0], pa[1], pa[2], ks), selb = sel3(pb[0], pb[1], pb[2], ks);
          a0 = prmt_sign(t0, t1, sela);
          a1 = prmt_sign(t0, t1, selb);
          a2 = prmt_sign(t0, t1, sela >> 16);
          a3 = prmt_sign(t0, t1, selb >> 16);
        } else {
          const int c0 = 4 * ks + (tig >> 1), h = tig & 1;
          a0 = code_bytes<K, MODE>(wa, c0, h, t0, t1, t2, t3);
          a1 = code_bytes<K, MODE>(wb, c0, h, t0, t1, t2, t3);
          a2 = code_bytes<K, MODE>(wa, c0 + 2, h, t0, t1, t2, t3);
          a3 = code_bytes<K, MODE>(wb, c0 + 2, h, t0, t1, t2, t3);
        }
        // B fragments of two 8-token tiles per ldmatrix.x4: lanes 8j..8j+7
        // address rows (tokens) of matrix j = (tile i + j/2, bytes 16·(j%2)..).
#pragma unroll
        for (int i = 0; i < NT8; i += 2) {
          unsigned b0, b1, b2, b3;
          ldmatrix_x4s(b0, b1, b2, b3, sb + xlane + i * 8 * MMA_XSTRIDE + ks * 32);
          mma_u8s8(ia[i], a0, a1, a2, a3, (int)b0, (int)b1);
          mma_u8s8(ia[i + 1], a0, a1, a2, a3, (int)b2, (int)b3);
        }
      }
      // flush sub-group sg of unit u: gemv_dense's terms, grouped as
      // scale · (factor · Σ u·q + β-term) + offset · Σq-term, the last only
      // for codecs with offsets (4 float ops per element without them,
      // where gemv_dense's order takes 6)
      const int cs = u * 128 + sg * (128 / GPU_);
      if (cs < C) {
        const bool first = GPU_ > 1 || (cs & ((1 << gsl) - 1)) == 0;
        const float sca = __half2float(s.sc[(sg * 2 + rgl) * 32 + rl]);
        const float scb = __half2float(s.sc[(sg * 2 + rgl) * 32 + rl + 8]);
        float ofa = 0.f, ofb = 0.f;
        if (first && offs != nullptr) {
          ofa = __half2float(s.of[(sg * 2 + rgl) * 32 + rl]);
          ofb = __half2float(s.of[(sg * 2 + rgl) * 32 + rl + 8]);
        }
        // a full tile (every step of a batch of 32, and all but the last
        // tile of a prefill step) flushes without a branch per token, and
        // each case of the group's first unit and offsets has its own
        // copy (no branch per token tile)
        auto flush = [&](auto fullc, auto firstc, auto offc) {
          constexpr bool FIRST = decltype(firstc)::value, OFF = decltype(offc)::value;
#pragma unroll
          for (int i = 0; i < NT8; i++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
              const int t = i * 8 + 2 * tig + e;
              if (decltype(fullc)::value || t < ntok) {
                const float4 f = s.fs[sg * NTOK + t];
                const float fy = FIRST ? f.y : 0.f;
                float a = fmaf(sca, fmaf(f.x, i2f(ia[i][e]), fy), acc[i][e]);
                float b = fmaf(scb, fmaf(f.x, i2f(ia[i][2 + e]), fy), acc[i][2 + e]);
                if (OFF) {
                  a = fmaf(ofa, f.z, a);
                  b = fmaf(ofb, f.z, b);
                }
                acc[i][e] = a;
                acc[i][2 + e] = b;
              }
            }
          }
        };
        auto flush_tile = [&](auto fullc) {
          if (!first)
            flush(fullc, BoolC<false>{}, BoolC<false>{});
          else if (offs != nullptr)
            flush(fullc, BoolC<true>{}, BoolC<true>{});
          else
            flush(fullc, BoolC<true>{}, BoolC<false>{});
        };
        if (ntok == NTOK)
          flush_tile(BoolC<true>{});
        else
          flush_tile(BoolC<false>{});
      }
    }
  }
  cp_async_wait<0>(); // no copy outlives the block
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
// several), 128 threads; nt = tokens. Launched with programmatic dependent
// launch: the first stages' codes are copied before pdl_wait. The minimum
// blocks per SM (UPG_GEMM64_MINB, UPG_GEMM32_MINB) keep the registers at ≤
// 128 (64-token tiles: 4 blocks per SM, so that a 256-token step's 480 qkv
// tiles fit one wave on 132 SMs) and ≤ 102 (32: 5, so that gate_up's 560
// tiles at 32 tokens do). Measured (NOTES.md run 37): 3 and 6 blocks were
// slower. upg_gemm16_*: 16-token tiles for steps of at most 16 tokens
// (batches of 2-16 sequences), ≤ 85 registers (UPG_GEMM16_MINB: 6 blocks
// per SM; half the accumulators of the 32-token tile). None for the byte layout (K = 8: its eight plane words per row
// would not fit the registers).
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k2_g1(GEMV_ARGS) { gemm_dense<2, 0, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k2_g1(GEMV_ARGS) { gemm_dense<2, 0, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k2_g2(GEMV_ARGS) { gemm_dense<2, 0, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k2_g2(GEMV_ARGS) { gemm_dense<2, 0, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k2_g4(GEMV_ARGS) { gemm_dense<2, 0, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k2_g4(GEMV_ARGS) { gemm_dense<2, 0, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k3_g1(GEMV_ARGS) { gemm_dense<3, 0, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k3_g1(GEMV_ARGS) { gemm_dense<3, 0, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k3_g2(GEMV_ARGS) { gemm_dense<3, 0, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k3_g2(GEMV_ARGS) { gemm_dense<3, 0, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k3_g4(GEMV_ARGS) { gemm_dense<3, 0, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k3_g4(GEMV_ARGS) { gemm_dense<3, 0, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4_g1(GEMV_ARGS) { gemm_dense<4, 1, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4_g1(GEMV_ARGS) { gemm_dense<4, 1, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4_g2(GEMV_ARGS) { gemm_dense<4, 1, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4_g2(GEMV_ARGS) { gemm_dense<4, 1, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4_g4(GEMV_ARGS) { gemm_dense<4, 1, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4_g4(GEMV_ARGS) { gemm_dense<4, 1, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4l_g1(GEMV_ARGS) { gemm_dense<4, 2, 1, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4l_g1(GEMV_ARGS) { gemm_dense<4, 2, 1, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4l_g2(GEMV_ARGS) { gemm_dense<4, 2, 2, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4l_g2(GEMV_ARGS) { gemm_dense<4, 2, 2, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM64_MINB) upg_gemm_k4l_g4(GEMV_ARGS) { gemm_dense<4, 2, 4, 64>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM32_MINB) upg_gemm32_k4l_g4(GEMV_ARGS) { gemm_dense<4, 2, 4, 32>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k2_g1(GEMV_ARGS) { gemm_dense<2, 0, 1, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k2_g2(GEMV_ARGS) { gemm_dense<2, 0, 2, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k2_g4(GEMV_ARGS) { gemm_dense<2, 0, 4, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k3_g1(GEMV_ARGS) { gemm_dense<3, 0, 1, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k3_g2(GEMV_ARGS) { gemm_dense<3, 0, 2, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k3_g4(GEMV_ARGS) { gemm_dense<3, 0, 4, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4_g1(GEMV_ARGS) { gemm_dense<4, 1, 1, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4_g2(GEMV_ARGS) { gemm_dense<4, 1, 2, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4_g4(GEMV_ARGS) { gemm_dense<4, 1, 4, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4l_g1(GEMV_ARGS) { gemm_dense<4, 2, 1, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4l_g2(GEMV_ARGS) { gemm_dense<4, 2, 2, 16>(GEMV_PASS); }
extern "C" __global__ void __launch_bounds__(128, UPG_GEMM16_MINB) upg_gemm16_k4l_g4(GEMV_ARGS) { gemm_dense<4, 2, 4, 16>(GEMV_PASS); }
