// pstep.cu: upg_pstep, the whole one-token decode step of a dense 3-bit
// model as one persistent kernel (a cooperative grid of one 512-thread
// block an SM), the backend form of layerskel.cu's mode 5. Not yet part of
// kernels/ (which needs a device rebuild of the committed fatbin): it is
// compiled with every kernel of upg.cu into an experiment fatbin,
//
//   nvcc -fatbin -O3 -std=c++17 -lineinfo -Xptxas -v \
//     -gencode=arch=compute_90,code=sm_90 pstep.cu -o /tmp/pstep.fatbin
//
// and used by UPG_CUDA_FATBIN=/tmp/pstep.fatbin UPG_CUDA_PSTEP=1 (pstep.go).
//
// What one launch does, for token position P of one sequence, after the
// Embed kernel wrote the residual x and before the sampler reads logits:
// every layer's RMSNorm, q|k|v, RoPE and the new cache rows, attention over
// the paged fp16 cache, o with its residual add, RMSNorm, gate|up, SwiGLU,
// down with its residual add; the final RMSNorm and the head. The operations
// and their float order within an element are the per-op kernels' (the
// rotations and quantizations are rotq_tail and quant_group themselves),
// except the GEMVs' row sums, whose order is this kernel's own, and the
// attention's (an online softmax a warp over its own splits, merged in a
// fixed tree): logits agree with the per-op path to float rounding, not
// bit for bit. The RMSNorm's sum of squares is taken in upg_rms_rotq's order.
//
// How: each block owns a contiguous range of every matrix's units (32 rows ×
// 128 columns, row group major) and each of its 16 warps a contiguous part
// of that range. A warp keeps PS_PW of its units in flight in shared memory
// (cp.async groups), along a walk over every matrix of the step in order,
// so the weights stream under the small ops between matrices. Row sums:
// a warp's partial sums per row group (registers) → shared memory → the
// block's sum per row in warp order → one partial per (row group, block)
// in global memory, at most two blocks a row group (pstep.go checks the
// shapes give that), which the readers add in block order: deterministic
// with no atomics and no zeroing. Hand-offs: counters in global memory
// that grow by a known amount each launch (the epoch in cnt[0], bumped by
// the last block), so nothing is reset between steps. The small ops:
// every block computes each norm itself (the residual row from L2) straight
// into its own int8 activations; attention is H·S (kv head, split) items,
// the last split of a head merging it; the SwiGLU is segments across
// blocks, then every block copies the codes.
#include "../kernels/upg.cu"
#include <cstddef>
#undef UPG_SRC
#define UPG_SRC 9

#define PS_THREADS 512
#define PS_NW (PS_THREADS / 32)
// units in flight a warp (cp.async.wait_group takes it as an immediate)
#define PS_PW 6
// a unit's bytes in a slot: 3 plane words × 32 lanes × 16 bytes, 32 fp16 scales, 32 fp16 offsets
#define PS_UCODE 1536
#define PS_SLOT 1664
#define PS_HD 128
#define PS_GMAX 4 // query heads a kv head (pstep.go checks)
#define PS_TIMEOUT 2000000000ull // ns a wait may take before the kernel traps

// PsMat is one matrix of the step: dense 3-bit codes with 128-wide groups
// in the GPU layout (repack.go), its input rotation and quantization plan.
struct PsMat {
  const uint4 *codes;
  const __half *scales, *offs; // offs: null for symmetric levels
  const float *signs;          // the input rotation's signs (null: no rotation)
  int R, U, C, G, rb, seg, gs, ldq;
  unsigned t0, t1, t2, t3;
  float alpha, beta;
};
struct PsLayer {
  PsMat m[4]; // q|k|v, o, gate|up, down
  const float *n1, *n2; // the two RMSNorm gains
};
// PsParams: everything a launch reads, in device memory (pstep.go writes
// it once per context; the per-step values are behind its pointers).
struct PsParams {
  const PsLayer *layers;
  const float *norm;              // the final RMSNorm's gain
  __half *const *kc, *const *vc;  // a layer's cache: ((block·H + head)·bs + offset)·hd
  const int *tables, *seq, *pos, *slots; // the step's metadata (one token)
  const float *cosT, *sinT;       // [position][hd/2]
  float *x;                       // the residual: the embedding in, the last layer's out
  float *logits;                  // zeroed before the launch (the head's two partials add)
  float *yqkv, *yo, *ygu, *ydown; // partial rows: [layer][row group][2][32]
  float *hs;                      // the residual after each half layer: [2L][D]
  float *att;                     // the merged heads: [layer][heads·hd]
  float *ws;                      // attention partials: [layer][H][S][G][hd + 2]
  int8_t *xg;                     // the SwiGLU's codes: [layer][down.ldq]
  float4 *fg;                     // and factors: [layer][down.G]
  int *cnt;                       // [0] epoch, then PS_CL a layer, the head's, then [layer][H] merges
  PsMat head;
  int L, D, FF, heads, H, bs, tstride, il, S, kmax, nsm, pad;
  float eps, scale;
};
#define PS_CL 6 // counters a layer: qkv, heads merged, o, gate|up, SwiGLU, down
// pstep.go writes these structs byte by byte (putPsMat, paramsFor)
static_assert(sizeof(PsMat) == 88 && offsetof(PsMat, R) == 32 && offsetof(PsMat, t0) == 64 && offsetof(PsMat, alpha) == 80,
              "PsMat's layout is pstep.go's");
static_assert(sizeof(PsLayer) == 368 && offsetof(PsLayer, n1) == 352, "PsLayer's layout is pstep.go's");
static_assert(sizeof(PsParams) == 320 && offsetof(PsParams, cnt) == 168 && offsetof(PsParams, head) == 176 &&
                  offsetof(PsParams, L) == 264 && offsetof(PsParams, eps) == 312,
              "PsParams's layout is pstep.go's");

// block b's range of a matrix of n units: [n·b/nb, n·(b+1)/nb)
DEVI long long ps_lo(long long n, int b, int nb) { return n * b / nb; }
// the block whose range holds unit i
// (32-bit: pstep.go keeps every matrix's units · nb below 2^31)
DEVI int ps_block_of(long long i, long long n, int nb) { return (int)((unsigned)((i + 1) * nb - 1) / (unsigned)n); }

DEVI unsigned long long ps_time() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
DEVI int ps_ld_acquire(const int *p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
// v has not reached target yet, modulo 2^32: the counters wrap (after
// 2^31/nb launches a signed compare passes a whole step's waits at once),
// and a wait's counter is never more than nb below or above its target
DEVI bool ps_before(int v, unsigned target) { return (int)((unsigned)v - target) < 0; }
// thread 0 waits until *c reaches target, then the block goes on
DEVI void ps_wait(const int *c, unsigned target) {
  if (threadIdx.x == 0) {
    if (ps_before(ps_ld_acquire(c), target)) {
      const unsigned long long t = ps_time();
      while (ps_before(ps_ld_acquire(c), target))
        if (ps_time() - t > PS_TIMEOUT) __trap();
    }
  }
  __syncthreads();
}
// the block's writes before it, then one count (cooperative groups' grid
// barrier pattern: a barrier, one fence, the add); returns the old value
// to thread 0
DEVI int ps_count(int *c) {
  __syncthreads();
  int old = 0;
  if (threadIdx.x == 0) {
    __threadfence();
    old = atomicAdd(c, 1);
  }
  return old;
}

DEVI unsigned ps_smem(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }
DEVI void ps_cp16(void *dst, const void *src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(ps_smem(dst)), "l"(src) : "memory");
}

// the row sum r of a matrix of n units (U a row) from its partials: the
// first block's, plus the second's where two blocks share the row group
DEVI float ps_row(const float *part, int r, int U, long long n, int nb) {
  const int rg = r >> 5;
  const float *q = part + (size_t)rg * 64 + (r & 31);
  float v = __ldcg(q);
  if (ps_block_of((long long)rg * U, n, nb) != ps_block_of((long long)rg * U + U - 1, n, nb)) v += __ldcg(q + 32);
  return v;
}
DEVI long long ps_units(const PsMat &m) { return (long long)(m.R >> 5) * m.U; }
// rows r .. r + 3 (r a multiple of 4: one row group) as ps_row sums each
// (first partial + second): one span test and one or two 16-byte loads
DEVI float4 ps_row4(const float *part, int r, int U, long long n, int nb) {
  const int rg = r >> 5;
  const float4 *q = (const float4 *)(part + (size_t)rg * 64 + (r & 31));
  float4 v = __ldcg(q);
  if (ps_block_of((long long)rg * U, n, nb) != ps_block_of((long long)rg * U + U - 1, n, nb)) {
    const float4 w = __ldcg(q + 8);
    v.x += w.x, v.y += w.y, v.z += w.z, v.w += w.w;
  }
  return v;
}

struct PsSmem {
  uint8_t *ring; // PS_NW · PS_PW slots
  int8_t *xs;    // the current matrix's int8 input (ldq)
  float4 *xf;    // and its factors (G)
  float *part;   // [warp][kmax][32]: a warp's row-group sums
  float *sm;     // the small ops' floats (nsm)
  float *red;    // 64 floats
};

// A warp's walk over its units of every matrix of the step, in order (the
// order its gemv calls take them), so that it can ask for units PS_PW ahead.
struct PsWalk {
  int l, m;          // layer (L: the head), matrix
  long long n, e;    // the next unit, the end of the warp's part
  const uint4 *codes;
  const __half *sc, *of;
  bool done;
};
DEVI const PsMat &ps_mat(const PsParams &p, int l, int m) { return l == p.L ? p.head : p.layers[l].m[m]; }
// the warp's part of the block's range of matrix mm: [a, e)
DEVI void ps_part(const PsMat &mm, int b, int nb, int w, long long &a, long long &e) {
  const long long n = ps_units(mm), n0 = ps_lo(n, b, nb), len = ps_lo(n, b + 1, nb) - n0;
  a = n0 + len * w / PS_NW, e = n0 + len * (w + 1) / PS_NW;
}
DEVI void ps_walk_set(const PsParams &p, PsWalk &k) {
  const int w = threadIdx.x >> 5;
  while (!k.done) {
    const PsMat &mm = ps_mat(p, k.l, k.m);
    ps_part(mm, blockIdx.x, gridDim.x, w, k.n, k.e);
    k.codes = mm.codes, k.sc = mm.scales, k.of = mm.offs;
    if (k.n < k.e) return;
    if (k.l == p.L) k.done = true;
    else if (++k.m == 4) k.m = 0, k.l++;
  }
}
DEVI void ps_walk_next(const PsParams &p, PsWalk &k) {
  if (++k.n < k.e) return;
  if (k.l == p.L) {
    k.done = true;
    return;
  }
  if (++k.m == 4) k.m = 0, k.l++;
  ps_walk_set(p, k);
}
// ask for the walk's unit into dst as one cp.async group (an empty group
// past the end: each unit taken then has PS_PW groups after its own)
DEVI void ps_fetch(const PsWalk &k, uint8_t *dst) {
  const int lane = threadIdx.x & 31;
  if (!k.done) {
    const uint4 *src = k.codes + (size_t)k.n * 96;
#pragma unroll
    for (int j = 0; j < 3; j++) ps_cp16(dst + (lane + 32 * j) * 16, src + lane + 32 * j);
    if (lane < 4) ps_cp16(dst + PS_UCODE + lane * 16, k.sc + (size_t)k.n * 32 + lane * 8);
    else if (lane < 8 && k.of != nullptr) ps_cp16(dst + PS_UCODE + 64 + (lane - 4) * 16, k.of + (size_t)k.n * 32 + (lane - 4) * 8);
  }
  asm volatile("cp.async.commit_group;" ::: "memory");
}

// ps_gemv multiplies the block's range of mm by the activations in s.xs /
// s.xf and leaves each row group's block sum in out ([row group][2][32],
// the block's index among the row group's blocks), or for the head adds it
// to out's rows (logits, zeroed before the launch: two partials at most,
// added in either order to zero, give the same bits).
DEVI void ps_gemv(const PsParams &p, const PsSmem &s, const PsMat &mm, float *out, bool add, PsWalk &wk,
                  int &slot) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, b = blockIdx.x, nb = gridDim.x;
  const int U = mm.U;
  const unsigned t0 = mm.t0, t1 = mm.t1, t2 = mm.t2, t3 = mm.t3;
  const bool offs = mm.offs != nullptr;
  long long a, e;
  ps_part(mm, b, nb, w, a, e);
  int rg = (int)(a / U), u = (int)(a % U);
  const int rgw0 = rg;
  float acc = 0.f;
  unsigned sel[4];
  for (long long n = a; n < e; n++) {
    uint8_t *src = s.ring + (size_t)(w * PS_PW + slot) * PS_SLOT;
    asm volatile("cp.async.wait_group %0;" ::"n"(PS_PW - 1) : "memory");
    __syncwarp(); // (each lane's copies, seen by the others)
    uint4 wv[3];
#pragma unroll
    for (int j = 0; j < 3; j++) wv[j] = ((const uint4 *)src)[lane + 32 * j];
    const __half sv = ((const __half *)(src + PS_UCODE))[lane];
    const __half ov = offs ? ((const __half *)(src + PS_UCODE + 64))[lane] : __half(0.f);
    __syncwarp();
    ps_fetch(wk, src); // the slot read: the unit PS_PW ahead into it
    ps_walk_next(p, wk);
    if (++slot == PS_PW) slot = 0;
    int ia = 0;
#pragma unroll
    for (int c2 = 0; c2 < 8; c2++) {
      unsigned bb[4];
      chunk_pair_bytes<3, 0, true>(wv, c2, bb, t0, t1, t2, t3, nullptr, sel);
      const int4 xv = *(const int4 *)(s.xs + u * 128 + c2 * 16);
      ia = dp4a_us(bb[0], xv.x, ia);
      ia = dp4a_us(bb[1], xv.y, ia);
      ia = dp4a_us(bb[2], xv.z, ia);
      ia = dp4a_us(bb[3], xv.w, ia);
    }
    // gemv_dense's sum for one 128-wide group (first in its group)
    const float scf = __half2float(sv), off = __half2float(ov);
    const float4 fc = s.xf[u];
    float r = fmaf(scf * fc.x, (float)ia, acc);
    acc = fmaf(scf, fc.y, fmaf(off, fc.z, r));
    if (++u == U || n == e - 1) {
      const int k = rg - rgw0;
      if (k >= p.kmax) __trap(); // a shape pstep.go does not pass
      s.part[(w * p.kmax + k) * 32 + lane] = acc;
      acc = 0.f;
      if (u == U) u = 0, rg++;
    }
  }
  __syncthreads();
  // the block's row groups: each row's warp sums in warp order
  const long long n = ps_units(mm), n0 = ps_lo(n, b, nb), n1 = ps_lo(n, b + 1, nb);
  const int rg0 = (int)(n0 / U), rg1 = (int)((n1 - 1) / U);
  for (int i = threadIdx.x; i < (rg1 - rg0 + 1) * 32; i += PS_THREADS) {
    const int g = rg0 + (i >> 5), l = i & 31;
    float v = 0.f;
    const long long g0 = (long long)g * U, g1 = g0 + U;
    for (int ww = 0; ww < PS_NW; ww++) {
      const long long wa = n0 + (n1 - n0) * ww / PS_NW, we = n0 + (n1 - n0) * (ww + 1) / PS_NW;
      if (wa < we && wa < g1 && we > g0) v += s.part[(ww * p.kmax + (g - (int)((unsigned)wa / (unsigned)U))) * 32 + l];
    }
    const int r = g * 32 + l;
    if (add) {
      if (r < mm.R) atomicAdd(out + r, v);
    } else {
      out[(size_t)g * 64 + (b == ps_block_of(g0, n, nb) ? 0 : 32) + l] = v;
    }
  }
}

// the residual row: r = base + y (y's partials of a matrix of D rows; base
// null: the row is y alone) into v, thread i's float4s i, i + 512, ...;
// block b writes its share of it to dst (when set): the float4s whose first
// column is in [D·b/nb, D·(b+1)/nb), so each has one writer
#define PS_NV 4 // float4s a thread: D ≤ 4·4·512
DEVI void ps_resid(const PsParams &p, const float *base, const float *y, const PsMat *ym, float4 (&v)[PS_NV],
                   float *dst) {
  const int D = p.D, nb = gridDim.x;
  const long long n = ym != nullptr ? ps_units(*ym) : 0;
  const int lo = (int)((long long)D * blockIdx.x / nb), hi = (int)((long long)D * (blockIdx.x + 1) / nb);
#pragma unroll
  for (int k = 0; k < PS_NV; k++) {
    const int i = threadIdx.x + k * PS_THREADS;
    v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (4 * i < D) {
      if (base != nullptr) v[k] = __ldcg((const float4 *)base + i);
      if (y != nullptr) {
        const float4 yr = ps_row4(y, 4 * i, ym->U, n, nb);
        v[k].x += yr.x, v[k].y += yr.y, v[k].z += yr.z, v[k].w += yr.w;
      }
      const int c = 4 * i;
      if (dst != nullptr && c >= lo && c < hi)
        ((float4 *)dst)[i] = v[k];
    }
  }
}

// RMSNorm (gain w, upg_rms_rotq's expressions) of the row in v, or v as it
// is (w null), times mm's signs, rotated and quantized for mm into s.xs /
// s.xf, segment by segment (rotq_tail)
DEVI void ps_rotq(const PsParams &p, const PsSmem &s, float4 (&v)[PS_NV], const float *w, const PsMat &mm) {
  const int C = mm.C;
  float inv = 1.f;
  if (w != nullptr) {
    // upg_rms_rotq's sum of squares in its order (256 threads: thread t adds
    // float4s t + 256k, k = 0..7, then block_sum): threads 256.. hand their
    // float4s to thread t - 256 through s.sm (D/2 floats); their warps add
    // +0 to block_sum, which leaves its 8-warp bits as they are
    float4 *st = (float4 *)s.sm;
    const int t = threadIdx.x & 255;
    if (threadIdx.x >= 256) {
#pragma unroll
      for (int k = 0; k < PS_NV; k++)
        if (4 * (threadIdx.x + k * PS_THREADS) < p.D) st[t + 256 * k] = v[k];
    }
    __syncthreads();
    float ss = 0.f;
    if (threadIdx.x < 256) {
#pragma unroll
      for (int k = 0; k < 2 * PS_NV; k++)
        if (4 * (t + 256 * k) < C) {
          const float4 x = (k & 1) ? st[t + 256 * (k >> 1)] : v[k >> 1];
          ss += x.x * x.x;
          ss += x.y * x.y;
          ss += x.z * x.z;
          ss += x.w * x.w;
        }
    }
    ss = block_sum(ss, s.red); // (its first barrier: st read before ps_rotq's segments overwrite s.sm)
    inv = (float)(1.0 / sqrt((double)(ss / (float)C + p.eps)));
  }
  for (int base = 0; base < C; base += mm.seg) {
#pragma unroll
    for (int k = 0; k < PS_NV; k++) {
      const int i = threadIdx.x + k * PS_THREADS, c = 4 * i;
      if (c >= base && c < base + mm.seg && c < C) {
        float e[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
        const float4 wv = w != nullptr ? __ldg((const float4 *)(w + c)) : make_float4(1.f, 1.f, 1.f, 1.f);
        const float4 sg = mm.signs != nullptr ? __ldg((const float4 *)(mm.signs + c)) : make_float4(1.f, 1.f, 1.f, 1.f);
        const float wa[4] = {wv.x, wv.y, wv.z, wv.w}, sa[4] = {sg.x, sg.y, sg.z, sg.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
          float x = e[j];
          if (w != nullptr) x = wa[j] * (x * inv);
          if (mm.signs != nullptr) x *= sa[j];
          s.sm[c - base + j] = x;
        }
      }
    }
    // (zero past C: a segment is whole when C is a multiple of seg, which pstep.go checks)
    __syncthreads();
    rotq_tail(s.sm, 0, base, mm.rb, mm.gs, mm.seg, C, mm.G, mm.alpha, mm.beta, nullptr, s.xs, mm.ldq, s.xf);
    __syncthreads();
  }
}

// attention item (kv head hh, split sp) of layer l at position P (the new
// token's): its G query heads over positions [p0, p1) of 0..P, the new key
// and value (rotated, fp16-rounded as the cache holds them) for P itself,
// which the split holding P also writes to the cache; the partial to ws,
// and the head's last split merges the S partials into att.
DEVI void ps_attention(const PsParams &p, const PsSmem &s, int l, int hh, int sp, int P, unsigned epoch) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nb = gridDim.x;
  const int H = p.H, G = p.heads / H, S = p.S, hd = PS_HD, half = hd / 2;
  const PsMat &qm = p.layers[l].m[0];
  const long long nq = ps_units(qm);
  const float *yq = p.yqkv + (size_t)l * (qm.R >> 5) * 64;
  const int n = P + 1, p0 = (int)((long long)n * sp / S), p1 = (int)((long long)n * (sp + 1) / S);
  // lane's four dimensions d = 4·lane .. +3 of a row; RoPE's pair partner
  // is in lane ^ 16 (rotate-half) or in the lane itself (interleaved)
  const int d0 = 4 * lane;
  float cs[4], sn[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const int d = d0 + j, jj = p.il ? d >> 1 : (d < half ? d : d - half);
    cs[j] = __ldg(p.cosT + (size_t)P * half + jj), sn[j] = __ldg(p.sinT + (size_t)P * half + jj);
  }
  auto rope = [&](float (&x)[4]) {
    if (p.il) {
#pragma unroll
      for (int j = 0; j < 4; j += 2) rope_pair(x[j], x[j + 1], cs[j], sn[j], x[j], x[j + 1]);
    } else {
      const bool first = lane < 16;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const float pv = __shfl_xor_sync(0xffffffffu, x[j], 16);
        float ra, rb;
        rope_pair(first ? x[j] : pv, first ? pv : x[j], cs[j], sn[j], ra, rb);
        x[j] = first ? ra : rb;
      }
    }
  };
  auto qkv_row = [&](int r0, float (&x)[4]) {
    const float4 r = ps_row4(yq, r0 + d0, qm.U, nq, nb);
    x[0] = r.x, x[1] = r.y, x[2] = r.z, x[3] = r.w;
  };
  float q[PS_GMAX][4];
#pragma unroll
  for (int g = 0; g < PS_GMAX; g++)
    if (g < G) {
      qkv_row((hh * G + g) * hd, q[g]);
      rope(q[g]);
    }
  // the new key and value
  float kn[4], vn[4];
  qkv_row(p.heads * hd + hh * hd, kn);
  rope(kn);
  qkv_row((p.heads + H) * hd + hh * hd, vn);
  __half kh[4], vh[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    kh[j] = __float2half_rn(kn[j]), vh[j] = __float2half_rn(vn[j]);
    kn[j] = __half2float(kh[j]), vn[j] = __half2float(vh[j]);
  }
  const __half *kc = p.kc[l], *vc = p.vc[l];
  if (p1 == n && w == 0) { // the split holding P writes its cache rows
    const int slot = p.slots[0], blk = slot / p.bs, off = slot - blk * p.bs;
    const size_t o = (((size_t)blk * H + hh) * p.bs + off) * hd + d0;
    *(uint2 *)((__half *)kc + o) = *(const uint2 *)kh;
    *(uint2 *)((__half *)vc + o) = *(const uint2 *)vh;
  }
  // the warp's positions p0 + w, + 16, ...: an online softmax per head
  const int *tab = p.tables + (size_t)p.seq[0] * p.tstride;
  float m[PS_GMAX], ls[PS_GMAX], acc[PS_GMAX][4];
#pragma unroll
  for (int g = 0; g < PS_GMAX; g++) {
    m[g] = -3.0e38f, ls[g] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) acc[g][j] = 0.f;
  }
  constexpr int B = 4; // positions a warp loads at once
  for (int q0 = p0 + w; q0 < p1; q0 += B * PS_NW) {
    uint2 kr[B], vr[B];
#pragma unroll
    for (int i = 0; i < B; i++) {
      const int pp = q0 + i * PS_NW;
      if (pp < p1 && pp < P) {
        const int blk = __ldg(tab + pp / p.bs), off = pp % p.bs;
        const size_t o = (((size_t)blk * H + hh) * p.bs + off) * hd + d0;
        kr[i] = *(const uint2 *)(kc + o), vr[i] = *(const uint2 *)(vc + o);
      }
    }
#pragma unroll
    for (int i = 0; i < B; i++) {
      const int pp = q0 + i * PS_NW;
      if (pp >= p1) break;
      float kf[4], vf[4];
      if (pp == P) {
#pragma unroll
        for (int j = 0; j < 4; j++) kf[j] = kn[j], vf[j] = vn[j];
      } else {
        const float2 k01 = __half22float2(*(const __half2 *)&kr[i].x), k23 = __half22float2(*(const __half2 *)&kr[i].y);
        const float2 v01 = __half22float2(*(const __half2 *)&vr[i].x), v23 = __half22float2(*(const __half2 *)&vr[i].y);
        kf[0] = k01.x, kf[1] = k01.y, kf[2] = k23.x, kf[3] = k23.y;
        vf[0] = v01.x, vf[1] = v01.y, vf[2] = v23.x, vf[3] = v23.y;
      }
#pragma unroll
      for (int g = 0; g < PS_GMAX; g++)
        if (g < G) {
          float dd = q[g][0] * kf[0] + q[g][1] * kf[1] + q[g][2] * kf[2] + q[g][3] * kf[3];
          for (int o = 16; o > 0; o >>= 1) dd += __shfl_xor_sync(0xffffffffu, dd, o);
          const float sc = dd * p.scale, mn = fmaxf(m[g], sc);
          const float cr = expf(m[g] - mn), e = expf(sc - mn);
          ls[g] = ls[g] * cr + e;
#pragma unroll
          for (int j = 0; j < 4; j++) acc[g][j] = acc[g][j] * cr + e * vf[j];
          m[g] = mn;
        }
    }
  }
  // the warps' states merged in a fixed tree (warp w + h into w), G·(hd+2) floats a warp
  const int stride = G * (hd + 2);
  for (int h = PS_NW / 2; h > 0; h >>= 1) {
    if (w >= h && w < 2 * h) {
      float *o = s.sm + (size_t)(w - h) * stride;
#pragma unroll
      for (int g = 0; g < PS_GMAX; g++)
        if (g < G) {
          if (lane == 0) o[g * (hd + 2)] = m[g], o[g * (hd + 2) + 1] = ls[g];
#pragma unroll
          for (int j = 0; j < 4; j++) o[g * (hd + 2) + 2 + d0 + j] = acc[g][j];
        }
    }
    __syncthreads();
    if (w < h) {
      const float *o = s.sm + (size_t)w * stride;
#pragma unroll
      for (int g = 0; g < PS_GMAX; g++)
        if (g < G) {
          const float mo = o[g * (hd + 2)], lo = o[g * (hd + 2) + 1], mn = fmaxf(m[g], mo);
          const float ca = expf(m[g] - mn), cb = expf(mo - mn);
          ls[g] = ls[g] * ca + lo * cb;
#pragma unroll
          for (int j = 0; j < 4; j++) acc[g][j] = acc[g][j] * ca + o[g * (hd + 2) + 2 + d0 + j] * cb;
          m[g] = mn;
        }
    }
    __syncthreads();
  }
  float *wsp = p.ws + (((size_t)l * H + hh) * S + sp) * stride;
  if (w == 0) {
#pragma unroll
    for (int g = 0; g < PS_GMAX; g++)
      if (g < G) {
        if (lane == 0) wsp[g * (hd + 2)] = m[g], wsp[g * (hd + 2) + 1] = ls[g];
#pragma unroll
        for (int j = 0; j < 4; j++) wsp[g * (hd + 2) + 2 + d0 + j] = acc[g][j];
      }
  }
  // the head's last split merges it (split order: the same bits whichever is last)
  __shared__ int last;
  int *hc = p.cnt + 2 + p.L * PS_CL + l * H + hh;
  const int old = ps_count(hc);
  if (threadIdx.x == 0) {
    last = (unsigned)old == (unsigned)S * (epoch + 1u) - 1u;
    __threadfence();
  }
  __syncthreads();
  if (!last) return;
  const float *base = p.ws + ((size_t)l * H + hh) * S * stride;
  float *out = p.att + (size_t)l * p.heads * hd + hh * G * hd;
  for (int i = threadIdx.x; i < G * hd; i += PS_THREADS) {
    const int g = i / hd, d = i - g * hd;
    float M = -3.0e38f;
    for (int j = 0; j < S; j++) M = fmaxf(M, __ldcg(base + (size_t)j * stride + g * (hd + 2)));
    float num = 0.f, den = 0.f;
    for (int j = 0; j < S; j++) {
      const float *pj = base + (size_t)j * stride + g * (hd + 2);
      const float c = expf(__ldcg(pj) - M);
      den += c * __ldcg(pj + 1);
      num += c * __ldcg(pj + 2 + d);
    }
    out[i] = num / den;
  }
  ps_count(p.cnt + 1 + l * PS_CL + 1);
}

// SwiGLU segment sg of layer l: silu(gate)·up of down's input columns
// [sg·seg, +seg), times down's signs, rotated and quantized into xg / fg
DEVI void ps_swiglu(const PsParams &p, const PsSmem &s, int l, int sg) {
  const PsMat &gm = p.layers[l].m[2], &dm = p.layers[l].m[3];
  const long long n = ps_units(gm);
  const float *y = p.ygu + (size_t)l * (gm.R >> 5) * 64;
  const int base = sg * dm.seg, F = p.FF;
  for (int i = threadIdx.x; i < dm.seg; i += PS_THREADS) {
    const int c = base + i;
    float v = 0.f;
    if (c < F) {
      const float g = ps_row(y, c, gm.U, n, gridDim.x), u = ps_row(y, F + c, gm.U, n, gridDim.x);
      v = g / (1.f + expf(-g)) * u;
      if (dm.signs != nullptr) v *= __ldg(dm.signs + c);
    }
    s.sm[i] = v;
  }
  __syncthreads();
  rotq_tail(s.sm, 0, base, dm.rb, dm.gs, dm.seg, dm.C, dm.G, dm.alpha, dm.beta, nullptr, p.xg + (size_t)l * dm.ldq,
            dm.ldq, p.fg + (size_t)l * dm.G);
  __syncthreads();
}

extern "C" __global__ void __launch_bounds__(PS_THREADS, 1) upg_pstep(const PsParams *__restrict__ prm) {
  extern __shared__ __align__(16) uint8_t ps_dyn[];
  // (launched without PDL, cooperatively: the kernel before it has finished)
  const PsParams &p = *prm;
  const int nb = gridDim.x, b = blockIdx.x, L = p.L;
  PsSmem s;
  {
    int dmax = 0, gmax = 0;
    // the largest input a matrix of the step takes (its ldq) and its groups
    dmax = max(max(p.layers[0].m[0].ldq, p.layers[0].m[1].ldq), max(p.layers[0].m[3].ldq, p.head.ldq));
    gmax = max(max(p.layers[0].m[0].G, p.layers[0].m[1].G), max(p.layers[0].m[3].G, p.head.G));
    uint8_t *q = ps_dyn;
    s.ring = q, q += (size_t)PS_NW * PS_PW * PS_SLOT;
    s.xs = (int8_t *)q, q += (dmax + 15) & ~15;
    s.xf = (float4 *)q, q += (size_t)gmax * 16;
    s.part = (float *)q, q += (size_t)PS_NW * p.kmax * 32 * 4;
    s.sm = (float *)q, q += (size_t)p.nsm * 4;
    s.red = (float *)q;
  }
  const unsigned epoch = (unsigned)ps_ld_acquire(p.cnt);
  const unsigned full = (unsigned)nb * (epoch + 1u); // a block counter's value (mod 2^32) once every block counted this launch
  // each warp's first PS_PW units (layer 0's q|k|v), asked for before anything else
  PsWalk wk = {};
  int slot = 0; // the warp's next unit's slot
  ps_walk_set(p, wk);
  for (int k = 0; k < PS_PW; k++) {
    ps_fetch(wk, s.ring + (size_t)((threadIdx.x >> 5) * PS_PW + k) * PS_SLOT);
    ps_walk_next(p, wk);
  }
  float4 v[PS_NV];
  for (int l = 0; l < L; l++) {
    const PsLayer &ly = p.layers[l];
    int *c = p.cnt + 1 + l * PS_CL;
    const size_t D = p.D;
    // the residual entering the layer: x, or the last half layer's plus down's rows
    const float *res = l == 0 ? p.x : p.hs + (2 * l - 1) * D;
    if (l > 0) {
      ps_wait(p.cnt + 1 + (l - 1) * PS_CL + 5, full);
      const PsMat &dm = p.layers[l - 1].m[3];
      ps_resid(p, res, p.ydown + (size_t)(l - 1) * (dm.R >> 5) * 64, &dm, v, p.hs + 2 * l * D);
      res = p.hs + 2 * l * D;
    } else {
      ps_resid(p, res, nullptr, nullptr, v, nullptr);
    }
    ps_rotq(p, s, v, ly.n1, ly.m[0]);
    ps_gemv(p, s, ly.m[0], p.yqkv + (size_t)l * (ly.m[0].R >> 5) * 64, false, wk, slot);
    ps_count(c + 0);
    // attention
    ps_wait(c + 0, full);
    const int P = p.pos[0];
    for (int it = b; it < p.H * p.S; it += nb) ps_attention(p, s, l, it / p.S, it % p.S, P, epoch);
    ps_wait(c + 1, (unsigned)p.H * (epoch + 1u));
    ps_resid(p, p.att + (size_t)l * p.heads * PS_HD, nullptr, nullptr, v, nullptr);
    ps_rotq(p, s, v, nullptr, ly.m[1]);
    ps_gemv(p, s, ly.m[1], p.yo + (size_t)l * (ly.m[1].R >> 5) * 64, false, wk, slot);
    ps_count(c + 2);
    // the residual after attention, the FFN's norm
    ps_wait(c + 2, full);
    ps_resid(p, res, p.yo + (size_t)l * (ly.m[1].R >> 5) * 64, &ly.m[1], v, p.hs + (2 * l + 1) * D);
    ps_rotq(p, s, v, ly.n2, ly.m[2]);
    ps_gemv(p, s, ly.m[2], p.ygu + (size_t)l * (ly.m[2].R >> 5) * 64, false, wk, slot);
    ps_count(c + 3);
    // SwiGLU in segments across the blocks, then every block takes the codes
    ps_wait(c + 3, full);
    const PsMat &dm = ly.m[3];
    for (int sg = b; sg < dm.C / dm.seg; sg += nb) ps_swiglu(p, s, l, sg);
    ps_count(c + 4);
    ps_wait(c + 4, full);
    {
      const int4 *xg = (const int4 *)(p.xg + (size_t)l * dm.ldq);
      const float4 *fg = p.fg + (size_t)l * dm.G;
      for (int i = threadIdx.x; i < dm.ldq / 16; i += PS_THREADS) ((int4 *)s.xs)[i] = __ldcg(xg + i);
      for (int i = threadIdx.x; i < dm.G; i += PS_THREADS) s.xf[i] = __ldcg(fg + i);
      __syncthreads();
    }
    ps_gemv(p, s, dm, p.ydown + (size_t)l * (dm.R >> 5) * 64, false, wk, slot);
    ps_count(c + 5);
  }
  // the last residual (to x, as the per-op step leaves it), the final norm, the head
  ps_wait(p.cnt + 1 + (L - 1) * PS_CL + 5, full);
  {
    const PsMat &dm = p.layers[L - 1].m[3];
    ps_resid(p, p.hs + (2 * L - 1) * (size_t)p.D, p.ydown + (size_t)(L - 1) * (dm.R >> 5) * 64, &dm, v, p.x);
  }
  ps_rotq(p, s, v, p.norm, p.head);
  ps_gemv(p, s, p.head, p.logits, true, wk, slot);
  const int old = ps_count(p.cnt + 1 + L * PS_CL);
  if (threadIdx.x == 0 && (unsigned)old == full - 1u) atomicExch(p.cnt, (int)(epoch + 1u)); // the last block: the next launch's epoch
  asm volatile("cp.async.wait_all;" ::: "memory"); // (the empty groups past the end)
}
