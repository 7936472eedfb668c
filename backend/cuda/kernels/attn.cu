// Grouped-query split attention on the tensor cores (fp16 cache): the
// partials of attn_gqa (ops.cu), one block per (split, key/value head,
// token), with the two dot products of every position as mma.sync
// m16n8k16 (f16 × f16 → f32) instead of one float multiply-add per element.
// ncu of attn_gqa at batch 32 (NOTES.md run 67): 1,944 instructions per
// warp, a quarter of them FFMA, the L1's load/store wavefronts 65% busy, 56
// bytes of spills. Measured after (run 68): 31.0 µs per layer at batch 32
// against the float kernel's 49.4 (step trace).
//
// Precision: the products of the keys and values (fp16 in the cache, exact)
// with the queries and the softmax weights (float) are the float's fp16 part
// plus its remainder's fp16 part (split2: q = hi + lo to about 2^-22
// relative), two mma each, so the sums are float sums of near-exact
// products, as the float kernels' are, in another order.
//
// Layout per block (2·chunk threads, W = chunk/16 warps):
//  - scores S^T (positions × heads) = K · Q^T: warp w takes positions
//    16w..16w+15 as the A operand straight from the cache (lane gid, tig
//    loads 16 bytes of rows gid and gid+8 at dims 32s + 8tig: within a
//    32-dim slice the dims are a permutation of the mma's k order, the same
//    for A and B, which a dot product does not see); B is the query heads
//    (rows past GQ zero) from shared memory;
//  - softmax per head as attn_gqa's (m, l to the partial);
//  - values O^T (dims × heads) = V^T · P^T: the chunk's value rows are
//    copied to shared memory (cp.async) while the scores are computed, and
//    ldmatrix.trans gives V^T's A fragments; B is the softmax weights.

DEVI void mma_f16(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

DEVI void ldmatrix_x4_trans(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// split2 packs (x, y) as fp16 pairs hi = (x, y) rounded and lo = the
// remainders rounded (x in the low half, as the mma fragments order k).
DEVI void split2(float x, float y, unsigned &hi, unsigned &lo) {
  const __half2 h = __floats2half2_rn(x, y);
  const float2 hf = __half22float2(h);
  const __half2 l = __floats2half2_rn(x - hf.x, y - hf.y);
  hi = *reinterpret_cast<const unsigned *>(&h);
  lo = *reinterpret_cast<const unsigned *>(&l);
}

#define ATC_VPAD 8 // halves of padding per value row in shared memory: 8 rows of an ldmatrix hit 32 banks

// attn_tc: grid (S, H, n), 2·chunk threads (chunk a multiple of 16), hd a
// multiple of 32 with hd/16 and chunk/16 one a multiple of the other (the
// Go side checks, attnTC). Dynamic shared memory (bytes): GQ·chunk·4
// (scores, then weights) + 2·8·hd·2 (queries hi, lo) + chunk·(2·hd + 16)
// (value rows) + KP·GQ·hd·4 when the value sums are split over KP warps
// per dim tile (KP = W / (hd/16) > 1).
template <int GQ>
DEVI void attn_tc(const float *q, int qs, const __half *kc, const __half *vc, const int *tables, int tstride,
                  const int *pos, const int *seq, float scale, int heads, int H, int hd, int bs, int chunk, int S,
                  float *part) {
  extern __shared__ __align__(16) unsigned char smc[];
  __shared__ size_t roff[128]; // the chunk's rows, as attn_split's
  pdl_wait();
  pdl_launch();
  const int split = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z;
  const int np = split_rows(roff, tables, tstride, pos, seq, t, chunk, H, kvh, bs, hd), h0 = kvh * GQ;
  if (np == 0) return;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, W = blockDim.x >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int vstride = hd + ATC_VPAD; // halves per value row
  const int MT = hd / 16, KS = chunk / 16, KP = W > MT ? W / MT : 1;
  float *sc = reinterpret_cast<float *>(smc);           // GQ × chunk
  __half *qh = reinterpret_cast<__half *>(sc + GQ * chunk); // 8 × hd, rows past GQ zero
  __half *ql = qh + 8 * hd;
  __half *vs = ql + 8 * hd;                               // chunk × vstride
  float *ov = reinterpret_cast<float *>(vs + chunk * vstride); // KP × GQ × hd (KP > 1)
  // the group's query heads (contiguous in the token's row), hi and lo
  for (int i = tid; i < 4 * hd; i += blockDim.x) { // pairs of 8 rows
    const int g = (2 * i) / hd, d = 2 * i - g * hd;
    unsigned hi = 0, lo = 0;
    if (g < GQ) {
      const float2 v = *reinterpret_cast<const float2 *>(q + (size_t)t * qs + (h0 + g) * hd + d);
      split2(v.x, v.y, hi, lo);
    }
    reinterpret_cast<unsigned *>(qh)[i] = hi;
    reinterpret_cast<unsigned *>(ql)[i] = lo;
  }
  __syncthreads();
  trace_mark(); // queries and row offsets
  // the chunk's value rows to shared memory (rows past np zero: their
  // weights are zero, and 0 · NaN would not be)
  const unsigned vs0 = (unsigned)__cvta_generic_to_shared(vs);
  {
    const int pieces = hd / 8;
    for (int i = tid; i < chunk * pieces; i += blockDim.x) {
      const int r = i / pieces, c = i - r * pieces;
      const bool ok = r < np;
      cp_async16s(vs0 + (unsigned)(r * vstride + c * 8) * 2, ok ? vc + roff[r] + c * 8 : vc, ok ? 16 : 0);
    }
    cp_async_commit();
  }
  { // scores: rows ia, ib of the warp's 16 positions
    const int ia = 16 * w + gid, ib = ia + 8;
    const bool va = ia < np, vb = ib < np;
    const __half *ka = kc + (va ? roff[ia] : 0) + 8 * tig, *kb = kc + (vb ? roff[ib] : 0) + 8 * tig;
    const __half *qhr = qh + gid * hd + 8 * tig, *qlr = ql + gid * hd + 8 * tig;
    float ch[4] = {0.f, 0.f, 0.f, 0.f}, cl[4] = {0.f, 0.f, 0.f, 0.f};
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll 4
    for (int s = 0; s < hd / 32; s++) {
      const uint4 x = va ? *reinterpret_cast<const uint4 *>(ka + 32 * s) : zero;
      const uint4 y = vb ? *reinterpret_cast<const uint4 *>(kb + 32 * s) : zero;
      const uint4 bh = *reinterpret_cast<const uint4 *>(qhr + 32 * s);
      const uint4 bl = *reinterpret_cast<const uint4 *>(qlr + 32 * s);
      mma_f16(ch, x.x, y.x, x.y, y.y, bh.x, bh.y);
      mma_f16(cl, x.x, y.x, x.y, y.y, bl.x, bl.y);
      mma_f16(ch, x.z, y.z, x.w, y.w, bh.z, bh.w);
      mma_f16(cl, x.z, y.z, x.w, y.w, bl.z, bl.w);
    }
    // c0: (ia, head 2tig), c1: (ia, 2tig+1), c2: (ib, 2tig), c3: (ib, 2tig+1)
    const int g = 2 * tig;
    if (g < GQ) {
      if (va) {
        sc[g * chunk + ia] = (ch[0] + cl[0]) * scale;
        sc[(g + 1) * chunk + ia] = (ch[1] + cl[1]) * scale;
      }
      if (vb) {
        sc[g * chunk + ib] = (ch[2] + cl[2]) * scale;
        sc[(g + 1) * chunk + ib] = (ch[3] + cl[3]) * scale;
      }
    }
  }
  __syncthreads();
  trace_mark(); // scores
  { // softmax: warp w takes heads w, w + W, ... (as attn_gqa); weights past np zero
    for (int g = w; g < GQ; g += W) {
      float *sg = sc + g * chunk;
      float m = -INFINITY;
      for (int i = lane; i < np; i += 32) m = fmaxf(m, sg[i]);
      m = warp_max(m);
      float l = 0.f;
      for (int i = lane; i < chunk; i += 32) {
        float e = 0.f;
        if (i < np) {
          e = expf(sg[i] - m);
          l += e;
        }
        sg[i] = e;
      }
      l = warp_sum(l);
      if (lane == 0) {
        float *pp = part + ((size_t)(t * heads + h0 + g) * S + split) * (hd + 2);
        pp[0] = m;
        pp[1] = l;
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads(); // the weights and every thread's value rows
  trace_mark();    // softmax
  // values: job = (dim tile mt, part kp of the chunk's 16-position steps)
  for (int job = w; job < MT * KP; job += W) {
    const int mt = job % MT, kp = job / MT;
    float oh[4] = {0.f, 0.f, 0.f, 0.f}, olo[4] = {0.f, 0.f, 0.f, 0.f};
    const int j = lane >> 3, r = lane & 7;
    for (int kk = kp * KS / KP; kk < (kp + 1) * KS / KP; kk++) {
      unsigned a0, a1, a2, a3;
      ldmatrix_x4_trans(a0, a1, a2, a3,
                        vs0 + (unsigned)((16 * kk + (j >> 1) * 8 + r) * vstride + 16 * mt + (j & 1) * 8) * 2);
      unsigned bh0 = 0, bl0 = 0, bh1 = 0, bl1 = 0;
      if (gid < GQ) {
        const float2 pa = *reinterpret_cast<const float2 *>(sc + gid * chunk + 16 * kk + 2 * tig);
        const float2 pb = *reinterpret_cast<const float2 *>(sc + gid * chunk + 16 * kk + 2 * tig + 8);
        split2(pa.x, pa.y, bh0, bl0);
        split2(pb.x, pb.y, bh1, bl1);
      }
      mma_f16(oh, a0, a1, a2, a3, bh0, bh1);
      mma_f16(olo, a0, a1, a2, a3, bl0, bl1);
    }
    // c0: (dim 16mt+gid, head 2tig), c1: (.., 2tig+1), c2: (dim +8, 2tig), c3
    const int g = 2 * tig, d = 16 * mt + gid;
    if (g < GQ) {
      if (KP == 1) {
        float *pa = part + ((size_t)(t * heads + h0 + g) * S + split) * (hd + 2) + 2;
        float *pb = pa + (size_t)S * (hd + 2); // head g + 1
        pa[d] = oh[0] + olo[0];
        pb[d] = oh[1] + olo[1];
        pa[d + 8] = oh[2] + olo[2];
        pb[d + 8] = oh[3] + olo[3];
      } else {
        float *o = ov + (kp * GQ + g) * hd;
        o[d] = oh[0] + olo[0];
        o[hd + d] = oh[1] + olo[1];
        o[d + 8] = oh[2] + olo[2];
        o[hd + d + 8] = oh[3] + olo[3];
      }
    }
  }
  if (KP > 1) { // uniform per block
    __syncthreads();
    for (int x = tid; x < GQ * hd; x += blockDim.x) {
      const int g = x / hd, d = x - g * hd;
      float o = 0.f;
      for (int k = 0; k < KP; k++) o += ov[(k * GQ + g) * hd + d];
      part[((size_t)(t * heads + h0 + g) * S + split) * (hd + 2) + 2 + d] = o;
    }
  }
}

// upg_attn_gqa<GQ>_tc: attn_tc for groups of 2, 4 and 8 query heads (fp16
// cache); the launch bounds hold 64 registers (8 blocks of 128 threads per
// SM, 4 of 256).
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa2_tc(ATTN_ARGS_F16) { attn_tc<2>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa4_tc(ATTN_ARGS_F16) { attn_tc<4>(ATTN_PASS_); }
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa8_tc(ATTN_ARGS_F16) { attn_tc<8>(ATTN_PASS_); }

// ---------------------------------------------------------------------------
// Prefill attention on the tensor cores (fp16 cache): attn_prefill's causal
// attention for n tokens of one sequence (ops.cu), a block of 2 warps taking
// 32 consecutive tokens of one query head (warp w: tokens 16w..16w+15 as the
// rows of its mma tiles), the keys in chunks of 32 staged in shared memory
// by cp.async — a chunk's keys load while the chunk before sums its values,
// its values while its scores are computed — with an online softmax in
// registers (FlashAttention-2's order). The scores' A operand is the scaled
// queries' two fp16 parts (split2) from shared memory, their B the keys
// (ldmatrix); the softmax weights stay in the registers that held the
// scores, as the A operand of P·V (two fp16 parts again), whose B operand is
// the values read transposed (ldmatrix.trans). Run 69's profile had the
// float kernel at 149 µs per 256-token call of Phi-4's shapes.
#define APT_Q 32 // tokens per block (2 warps × 16)
#define APT_K 32 // keys per chunk

DEVI void ldsm_x4(unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3, unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

template <int HD>
DEVI void attn_prefill_tc(const float *q, int qs, const __half *kc, const __half *vc, const int *tables,
                          int tstride, const int *pos, const int *seq, float scale, int heads, int H, int bs,
                          int n, float *dst) {
  constexpr int LD = HD + 8; // halves per shared row: 8 rows of an ldmatrix hit 32 banks
  constexpr int NT = HD / 8; // the output's 8-dim tiles
  constexpr int KS = HD / 16;
  __shared__ __align__(16) __half qh[APT_Q * LD];
  __shared__ __align__(16) __half ql[APT_Q * LD];
  __shared__ __align__(16) __half kt[APT_K * LD];
  __shared__ __align__(16) __half vt[APT_K * LD];
  __shared__ int rowp[APT_Q], lastp;
  pdl_wait();
  pdl_launch();
  const int t0 = blockIdx.x * APT_Q, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const int gid = lane >> 2, tig = lane & 3, j = lane >> 3, r = lane & 7;
  const int kvh = h / (heads / H);
  const int *tab = tables + (size_t)seq[0] * tstride; // the step's one sequence
  if (tid < APT_Q) rowp[tid] = t0 + tid < n ? pos[t0 + tid] : -1;
  for (int i = tid; i < APT_Q * HD / 2; i += blockDim.x) { // the scaled queries' two fp16 parts
    const int row = (2 * i) / HD, d = 2 * i - row * HD, t = t0 + row;
    float2 v = make_float2(0.f, 0.f);
    if (t < n) {
      v = *reinterpret_cast<const float2 *>(q + (size_t)t * qs + h * HD + d);
      v.x *= scale;
      v.y *= scale;
    }
    unsigned hi, lo;
    split2(v.x, v.y, hi, lo);
    *reinterpret_cast<unsigned *>(&qh[row * LD + d]) = hi;
    *reinterpret_cast<unsigned *>(&ql[row * LD + d]) = lo;
  }
  __syncthreads();
  if (tid == 0) {
    int m = -1;
    for (int i = 0; i < APT_Q; i++) m = max(m, rowp[i]);
    lastp = m;
  }
  __syncthreads();
  const int last = lastp;
  const unsigned qh0 = (unsigned)__cvta_generic_to_shared(qh), ql0 = (unsigned)__cvta_generic_to_shared(ql);
  const unsigned kt0 = (unsigned)__cvta_generic_to_shared(kt), vt0 = (unsigned)__cvta_generic_to_shared(vt);
  // stage rows c0..c0+31 of cache into the tile at base (zero past last), one commit group
  auto stage = [&](unsigned base, const __half *cache, int c0) {
    for (int i = tid; i < APT_K * (HD / 8); i += blockDim.x) {
      const int row = i / (HD / 8), c = i - row * (HD / 8), p = c0 + row;
      const bool ok = p <= last;
      const __half *src = ok ? cache + (((size_t)tab[p / bs] * H + kvh) * bs + p % bs) * HD + c * 8 : cache;
      cp_async16s(base + (unsigned)(row * LD + c * 8) * 2, src, ok ? 16 : 0);
    }
    cp_async_commit();
  };
  const int qa = rowp[16 * w + gid], qb = rowp[16 * w + gid + 8]; // the lane's rows' positions (-1 past n)
  float o[NT][4];
#pragma unroll
  for (int dt = 0; dt < NT; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;
  stage(kt0, kc, 0);
  stage(vt0, vc, 0);
  for (int c0 = 0; c0 <= last; c0 += APT_K) {
    cp_async_wait<1>();
    __syncthreads(); // the chunk's keys (its values may still load)
    float s[4][4];
#pragma unroll
    for (int nt = 0; nt < 4; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
      const unsigned qo = (unsigned)(((16 * w + (j & 1) * 8 + r) * LD + kk * 16 + (j >> 1) * 8) * 2);
      unsigned a0, a1, a2, a3, e0, e1, e2, e3;
      ldsm_x4(a0, a1, a2, a3, qh0 + qo);
      ldsm_x4(e0, e1, e2, e3, ql0 + qo);
#pragma unroll
      for (int nt = 0; nt < 4; nt += 2) {
        unsigned b0, b1, b2, b3;
        ldsm_x4(b0, b1, b2, b3, kt0 + (unsigned)(((8 * nt + (j >> 1) * 8 + r) * LD + kk * 16 + (j & 1) * 8) * 2));
        mma_f16(s[nt], a0, a1, a2, a3, b0, b1);
        mma_f16(s[nt], e0, e1, e2, e3, b0, b1);
        mma_f16(s[nt + 1], a0, a1, a2, a3, b2, b3);
        mma_f16(s[nt + 1], e0, e1, e2, e3, b2, b3);
      }
    }
    __syncthreads(); // every warp is done with the keys: the next chunk's may load
    if (c0 + APT_K <= last)
      stage(kt0, kc, c0 + APT_K);
    else
      cp_async_commit();
    // causal mask and online softmax: s[nt][0..1] are row qa's keys
    // c0 + 8nt + 2tig + {0, 1}, s[nt][2..3] row qb's
    float xa = -INFINITY, xb = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int p = c0 + 8 * nt + 2 * tig + e;
        if (p > qa) s[nt][e] = -INFINITY;
        if (p > qb) s[nt][2 + e] = -INFINITY;
        xa = fmaxf(xa, s[nt][e]);
        xb = fmaxf(xb, s[nt][2 + e]);
      }
    xa = fmaxf(xa, __shfl_xor_sync(0xffffffffu, xa, 1));
    xa = fmaxf(xa, __shfl_xor_sync(0xffffffffu, xa, 2));
    xb = fmaxf(xb, __shfl_xor_sync(0xffffffffu, xb, 1));
    xb = fmaxf(xb, __shfl_xor_sync(0xffffffffu, xb, 2));
    const float na = fmaxf(ma, xa), nb = fmaxf(mb, xb);
    const float aa = ma == -INFINITY ? 0.f : expf(ma - na), ab = mb == -INFINITY ? 0.f : expf(mb - nb);
    float sa = 0.f, sb = 0.f;
#pragma unroll
    for (int nt = 0; nt < 4; nt++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        s[nt][e] = na == -INFINITY ? 0.f : expf(s[nt][e] - na);
        s[nt][2 + e] = nb == -INFINITY ? 0.f : expf(s[nt][2 + e] - nb);
        sa += s[nt][e];
        sb += s[nt][2 + e];
      }
    sa += __shfl_xor_sync(0xffffffffu, sa, 1);
    sa += __shfl_xor_sync(0xffffffffu, sa, 2);
    sb += __shfl_xor_sync(0xffffffffu, sb, 1);
    sb += __shfl_xor_sync(0xffffffffu, sb, 2);
    la = la * aa + sa;
    lb = lb * ab + sb;
    ma = na;
    mb = nb;
#pragma unroll
    for (int dt = 0; dt < NT; dt++) {
      o[dt][0] *= aa;
      o[dt][1] *= aa;
      o[dt][2] *= ab;
      o[dt][3] *= ab;
    }
    cp_async_wait<1>();
    __syncthreads(); // the chunk's values (the next chunk's keys may still load)
#pragma unroll
    for (int kk = 0; kk < 2; kk++) { // keys 16kk..16kk+15: score tiles 2kk, 2kk+1
      unsigned h0, h1, h2, h3, x0, x1, x2, x3;
      split2(s[2 * kk][0], s[2 * kk][1], h0, x0);
      split2(s[2 * kk][2], s[2 * kk][3], h1, x1);
      split2(s[2 * kk + 1][0], s[2 * kk + 1][1], h2, x2);
      split2(s[2 * kk + 1][2], s[2 * kk + 1][3], h3, x3);
#pragma unroll
      for (int dt = 0; dt < NT; dt += 2) {
        unsigned b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, vt0 + (unsigned)(((16 * kk + (j & 1) * 8 + r) * LD + 8 * dt + (j >> 1) * 8) * 2));
        mma_f16(o[dt], h0, h1, h2, h3, b0, b1);
        mma_f16(o[dt], x0, x1, x2, x3, b0, b1);
        mma_f16(o[dt + 1], h0, h1, h2, h3, b2, b3);
        mma_f16(o[dt + 1], x0, x1, x2, x3, b2, b3);
      }
    }
    __syncthreads(); // every warp is done with the values
    if (c0 + APT_K <= last)
      stage(vt0, vc, c0 + APT_K);
    else
      cp_async_commit();
  }
  cp_async_wait<0>(); // no copy outlives the block
  const int ta = t0 + 16 * w + gid, tb = ta + 8;
#pragma unroll
  for (int dt = 0; dt < NT; dt++) {
    const int d = 8 * dt + 2 * tig;
    if (ta < n) {
      float *y = dst + ((size_t)ta * heads + h) * HD + d;
      y[0] = o[dt][0] / la;
      y[1] = o[dt][1] / la;
    }
    if (tb < n) {
      float *y = dst + ((size_t)tb * heads + h) * HD + d;
      y[0] = o[dt][2] / lb;
      y[1] = o[dt][3] / lb;
    }
  }
}

// upg_attn_prefill_tc<hd>: attn_prefill_tc for heads of 64 and 128 values
// (upg_attn_prefill_f16's parameters; hd must match). Grid (ceil(n/32),
// heads), 64 threads.
extern "C" __global__ void __launch_bounds__(64, 6)
    upg_attn_prefill_tc64(const float *__restrict__ q, int qs, const __half *__restrict__ kc,
                          const __half *__restrict__ vc, const int *__restrict__ tables, int tstride,
                          const int *__restrict__ pos, const int *__restrict__ seq, float scale, int heads,
                          int H, int hd, int bs, int n, float *__restrict__ dst) {
  attn_prefill_tc<64>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, bs, n, dst);
}
extern "C" __global__ void __launch_bounds__(64, 6)
    upg_attn_prefill_tc128(const float *__restrict__ q, int qs, const __half *__restrict__ kc,
                           const __half *__restrict__ vc, const int *__restrict__ tables, int tstride,
                           const int *__restrict__ pos, const int *__restrict__ seq, float scale, int heads,
                           int H, int hd, int bs, int n, float *__restrict__ dst) {
  attn_prefill_tc<128>(q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, bs, n, dst);
}
