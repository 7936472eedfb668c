// Grouped-query split attention on the tensor cores (fp16 cache): the
// partials of attn_gqa (ops.cu), one block per (split, key/value head,
// token), with the two dot products of every position as mma.sync
// m16n8k16 (f16 × f16 → f32) instead of one float multiply-add per element.
// ncu of attn_gqa at batch 32 (NOTES.md run 67): 1,944 instructions per
// warp, a quarter of them FFMA, the L1's load/store wavefronts 65% busy, 56
// bytes of spills; this kernel issues about a fifth of that.
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
  const int T1 = pos[t] + 1, p0 = split * chunk;
  if (p0 >= T1) return; // combine reads only the splits that hold positions
  const int np = min(chunk, T1 - p0), h0 = kvh * GQ;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, W = blockDim.x >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int vstride = hd + ATC_VPAD; // halves per value row
  const int MT = hd / 16, KS = chunk / 16, KP = W > MT ? W / MT : 1;
  float *sc = reinterpret_cast<float *>(smc);           // GQ × chunk
  __half *qh = reinterpret_cast<__half *>(sc + GQ * chunk); // 8 × hd, rows past GQ zero
  __half *ql = qh + 8 * hd;
  __half *vs = ql + 8 * hd;                               // chunk × vstride
  float *ov = reinterpret_cast<float *>(vs + chunk * vstride); // KP × GQ × hd (KP > 1)
  const int *tab = tables + (size_t)seq[t] * tstride;
  for (int i = tid; i < np; i += blockDim.x) {
    const int p = p0 + i;
    roff[i] = (((size_t)tab[p / bs] * H + kvh) * bs + p % bs) * hd;
  }
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
