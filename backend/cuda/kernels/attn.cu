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

// attn_tc_cols: one split of NC query columns over the same chunk of keys
// and values (roff, np): column c is token t0 + c / GQ's query head
// h0 + c % GQ; columns of tokens past the step's (gridDim.z) are zero and not
// written. The per-token blocks take NC = GQ (one token), the shared-prefix
// blocks NC = TG·GQ (TG tokens whose tables hold the same blocks here). A
// column's scores, softmax and value sums are the same operations whichever
// column of which 8-wide mma tile it is, so both give the same bits.
// Dynamic shared memory (bytes): NC·chunk·4 (scores, then weights) +
// 2·8·NT·hd·2 (queries hi, lo; NT = ⌈NC/8⌉ tiles) + chunk·(2·hd + 16) (value
// rows) + KP·NC·hd·4 when the value sums are split over KP warps per dim
// tile (KP = W / (hd/16) > 1).
template <int GQ, int NC>
DEVI void attn_tc_cols(const float *q, int qs, const __half *kc, const __half *vc, const size_t *roff, int np,
                       int split, int t0, int kvh, float scale, int heads, int hd, int chunk, int S, float *part,
                       unsigned char *smc) {
  constexpr int NT = (NC + 7) / 8;
  const int h0 = kvh * GQ, nt = gridDim.z;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, W = blockDim.x >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int vstride = hd + ATC_VPAD; // halves per value row
  const int MT = hd / 16, KS = chunk / 16, KP = W > MT ? W / MT : 1;
  // the tiles holding a token of the step
  const int tiles = (min(NC, (nt - t0) * GQ) + 7) / 8;
  float *sc = reinterpret_cast<float *>(smc);                  // NC × chunk
  __half *qh = reinterpret_cast<__half *>(sc + NC * chunk);    // 8·NT × hd, rows past NC zero
  __half *ql = qh + 8 * NT * hd;
  __half *vs = ql + 8 * NT * hd;                               // chunk × vstride
  float *ov = reinterpret_cast<float *>(vs + chunk * vstride); // KP × NC × hd (KP > 1)
  // column c's partial, nullptr for a token past the step's
  auto partOf = [&](int c) -> float * {
    const int t = t0 + c / GQ;
    return t < nt ? part + ((size_t)(t * heads + h0 + c % GQ) * S + split) * (hd + 2) : nullptr;
  };
  // the columns' queries (a token's group of heads is contiguous in its row), hi and lo
  for (int i = tid; i < 4 * NT * hd; i += blockDim.x) { // pairs of 8·NT rows
    const int c = (2 * i) / hd, d = 2 * i - c * hd, t = t0 + c / GQ;
    unsigned hi = 0, lo = 0;
    if (c < NC && t < nt) {
      const float2 v = *reinterpret_cast<const float2 *>(q + (size_t)t * qs + (h0 + c % GQ) * hd + d);
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
  { // scores: rows ia, ib of the warp's 16 positions, one column tile at a time
    const int ia = 16 * w + gid, ib = ia + 8;
    const bool va = ia < np, vb = ib < np;
    const __half *ka = kc + (va ? roff[ia] : 0) + 8 * tig, *kb = kc + (vb ? roff[ib] : 0) + 8 * tig;
    const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll 1
    for (int j = 0; j < tiles; j++) {
      const __half *qhr = qh + (8 * j + gid) * hd + 8 * tig, *qlr = ql + (8 * j + gid) * hd + 8 * tig;
      float ch[4] = {0.f, 0.f, 0.f, 0.f}, cl[4] = {0.f, 0.f, 0.f, 0.f};
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
      // c0: (ia, column c), c1: (ia, c + 1), c2: (ib, c), c3: (ib, c + 1)
      const int c = 8 * j + 2 * tig;
      if (c < NC) {
        if (va) {
          sc[c * chunk + ia] = (ch[0] + cl[0]) * scale;
          sc[(c + 1) * chunk + ia] = (ch[1] + cl[1]) * scale;
        }
        if (vb) {
          sc[c * chunk + ib] = (ch[2] + cl[2]) * scale;
          sc[(c + 1) * chunk + ib] = (ch[3] + cl[3]) * scale;
        }
      }
    }
  }
  __syncthreads();
  trace_mark(); // scores
  { // softmax: warp w takes columns w, w + W, ... (as attn_gqa's heads); weights past np zero
    for (int c = w; c < NC; c += W) {
      float *sg = sc + c * chunk, *pp = partOf(c);
      if (pp == nullptr) { // no token: zero weights
        for (int i = lane; i < chunk; i += 32) sg[i] = 0.f;
        continue;
      }
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
        pp[0] = m;
        pp[1] = l;
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads(); // the weights and every thread's value rows
  trace_mark();    // softmax
  // values: job = (dim tile mt, part kp of the chunk's 16-position steps), each column tile in turn
  for (int job = w; job < MT * KP; job += W) {
    const int mt = job % MT, kp = job / MT;
    const int jj = lane >> 3, r = lane & 7;
#pragma unroll 1
    for (int j = 0; j < tiles; j++) {
      float oh[4] = {0.f, 0.f, 0.f, 0.f}, olo[4] = {0.f, 0.f, 0.f, 0.f};
      const int cb = 8 * j + gid; // the column whose weights this lane's B fragment holds
      for (int kk = kp * KS / KP; kk < (kp + 1) * KS / KP; kk++) {
        unsigned a0, a1, a2, a3;
        ldmatrix_x4_trans(a0, a1, a2, a3,
                          vs0 + (unsigned)((16 * kk + (jj >> 1) * 8 + r) * vstride + 16 * mt + (jj & 1) * 8) * 2);
        unsigned bh0 = 0, bl0 = 0, bh1 = 0, bl1 = 0;
        if (cb < NC) {
          const float2 pa = *reinterpret_cast<const float2 *>(sc + cb * chunk + 16 * kk + 2 * tig);
          const float2 pb = *reinterpret_cast<const float2 *>(sc + cb * chunk + 16 * kk + 2 * tig + 8);
          split2(pa.x, pa.y, bh0, bl0);
          split2(pb.x, pb.y, bh1, bl1);
        }
        mma_f16(oh, a0, a1, a2, a3, bh0, bh1);
        mma_f16(olo, a0, a1, a2, a3, bl0, bl1);
      }
      // c0: (dim 16mt+gid, column c), c1: (.., c + 1), c2: (dim +8, c), c3
      const int c = 8 * j + 2 * tig, d = 16 * mt + gid;
      if (c < NC) {
        if (KP == 1) {
          float *pa = partOf(c), *pb = partOf(c + 1);
          if (pa != nullptr) {
            pa[2 + d] = oh[0] + olo[0];
            pa[2 + d + 8] = oh[2] + olo[2];
          }
          if (pb != nullptr) {
            pb[2 + d] = oh[1] + olo[1];
            pb[2 + d + 8] = oh[3] + olo[3];
          }
        } else {
          float *o = ov + (kp * NC + c) * hd;
          o[d] = oh[0] + olo[0];
          o[hd + d] = oh[1] + olo[1];
          o[d + 8] = oh[2] + olo[2];
          o[hd + d + 8] = oh[3] + olo[3];
        }
      }
    }
  }
  if (KP > 1) { // uniform per block
    __syncthreads();
    for (int x = tid; x < NC * hd; x += blockDim.x) {
      const int c = x / hd, d = x - c * hd;
      float *pp = partOf(c);
      if (pp == nullptr) continue;
      float o = 0.f;
      for (int k = 0; k < KP; k++) o += ov[(k * NC + c) * hd + d];
      pp[2 + d] = o;
    }
  }
}

// UPG_ATTN_SHARED_NC: a shared block's query columns (at least 2·GQ: two
// tokens). 8, one mma tile, keeps its scores and value sums as long as a
// token's (a token's GQ ≤ 8 columns take a tile too) and its shared memory
// near a token's block's, so the blocks resident per SM stay as many; run 81
// measured 32 columns (four tiles one after another in each warp, 42 KB of
// shared memory for every block of the launch) slower than no sharing at
// batch 32 (38.3 against 35.9 µs per call) and batch 8 (−11%). Measurement
// builds may set 16 or 32 (with UPG_CUDA_ATTN_SHARED_NC the same on the Go
// side).
#ifndef UPG_ATTN_SHARED_NC
#define UPG_ATTN_SHARED_NC 8
#endif

// attn_tc: grid (S, H, n), 2·chunk threads (chunk a multiple of 16), hd a
// multiple of 32 with hd/16 and chunk/16 one a multiple of the other (the
// Go side checks, attnTC and attnTCShared). shared (nullptr: none) holds two
// words the host wrote with the step (SetStep): the blocks at the front of
// every table in the step that are the same blocks, and the step's least
// position + 1. A split whose positions lie below both is the same keys and
// values for every token, so the block of every TG-th token scores TG
// tokens' queries against one read of them (attn_tc_cols with TG·GQ
// columns) and the other tokens' blocks return: batches forked from one
// prompt (parallel samples, a shared system prompt) read the prompt's cache
// once per group instead of once per token.
//
// cascade (1: upg_attn_cascade_* was launched just before, with programmatic
// dependent launch, and scores every split below the shared words for every
// token): the shared splits' blocks all return, and the others start
// without waiting — this grid is launched only once every cascade block has
// passed its own wait for the kernel before it (upg_rope_kv_*), whose
// queries, keys and values are what both read — and wait for the cascade
// grid at their end instead, so that this grid's completion, which the
// merge after it waits for, means the cascade's partials are written too.
// Block (0, 0, 0) waits even when it has nothing to do, so that some block
// always does. cascade 2 is 1 with the blocks' splits in reverse dispatch
// order (below).
template <int GQ>
DEVI void attn_tc(const float *q, int qs, const __half *kc, const __half *vc, const int *tables, int tstride,
                  const int *pos, const int *seq, float scale, int heads, int H, int hd, int bs, int chunk, int S,
                  float *part, const int *shared, int cascade) {
  extern __shared__ __align__(16) unsigned char smc[];
  __shared__ size_t roff[128]; // the chunk's rows, as attn_split's
  trace_begin();
  if (!cascade) pdl_wait();
  pdl_launch();
  constexpr int NS = UPG_ATTN_SHARED_NC > 2 * GQ ? UPG_ATTN_SHARED_NC : 2 * GQ, TG = NS / GQ; // a shared block's columns, tokens
  // cascade 2: the blocks in dispatch order take the last split of every
  // (KV head, token) first, then the one before it, ...: the private splits'
  // working blocks are dispatched at once and the shared splits' returning
  // ones after them (in grid order, 7 of 9 blocks per token returned before
  // the later tokens' working blocks started, at batch 32)
  int split = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z;
  if (cascade == 2) {
    const int hn = gridDim.y * gridDim.z;
    const int L = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z), r = L % hn;
    split = S - 1 - L / hn, kvh = r % gridDim.y, t = r / gridDim.y;
  }
  const bool sh = shared != nullptr && (split + 1) * chunk <= min(shared[0] * bs, shared[1]);
  const bool first = (blockIdx.x | blockIdx.y | blockIdx.z) == 0;
  if (sh && (cascade || t % TG != 0)) {
    if (cascade && first) pdl_wait();
    return;
  }
  const int np = split_rows(roff, tables, tstride, pos, seq, t, chunk, H, kvh, bs, hd, split);
  if (np == 0) {
    if (cascade && first) pdl_wait();
    return;
  }
  if (sh)
    attn_tc_cols<GQ, NS>(q, qs, kc, vc, roff, np, split, t, kvh, scale, heads, hd, chunk, S, part, smc);
  else
    attn_tc_cols<GQ, GQ>(q, qs, kc, vc, roff, np, split, t, kvh, scale, heads, hd, chunk, S, part, smc);
  if (cascade) pdl_wait();
}


// upg_attn_gqa<GQ>_tc: attn_tc for groups of 2, 4 and 8 query heads (fp16
// cache); the launch bounds hold 64 registers (8 blocks of 128 threads per
// SM, 4 of 256).
#define ATTN_ARGS_TC ATTN_ARGS_F16, const int *__restrict__ shared, int cascade
#define ATTN_PASS_TC ATTN_PASS_, shared, cascade
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa2_tc(ATTN_ARGS_TC) { attn_tc<2>(ATTN_PASS_TC); }
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa4_tc(ATTN_ARGS_TC) { attn_tc<4>(ATTN_PASS_TC); }
extern "C" __global__ void __launch_bounds__(256, 4) upg_attn_gqa8_tc(ATTN_ARGS_TC) { attn_tc<8>(ATTN_PASS_TC); }

// ---------------------------------------------------------------------------
// Cascade attention over a step's shared prefix: the splits of CASC_CHUNK
// positions that lie below both shared words (attn_tc's rule) hold the same
// keys and values for every token of the step, so one block scores them for
// CASC_ROWS query rows at once — rows r = t·GQ + g of the step's tokens t
// and the KV head's query heads g — FlashAttention-2's way: each warp owns
// 16 rows as the A operand of its mma tiles (S = Q·Kᵀ, the queries' two fp16
// parts from registers), the softmax of a row stays within the 4 lanes that
// hold it, and the weights go from the score registers into P·V as the A
// operand (two fp16 parts again). The chunk's keys and values are copied to
// shared memory at once (cp.async) while the queries load, so a block waits
// out one round trip for its data rather than one per phase; the keys reach
// the B fragments by ldmatrix, the values by ldmatrix.trans. It writes each
// row's partial (m, l, Σ e·v) for the split where attn_tc's blocks would,
// which then return (their cascade flag); the merge is unchanged.
//
// Where attn_tc's blocks wait out one round trip per phase for one or two
// tokens' columns, here a block's phases serve 32 rows (8 tokens of a group
// of 4), so a step forked from one prompt scores its shared splits in a few
// hundred blocks beside the private splits' blocks instead of in a second
// wave of 1,120 (Phi-4, batch 32: NOTES.md).
//
// Grid (S, H, ⌈n·GQ/CASC_ROWS⌉), CASC_THREADS threads; n is the step's
// tokens. Launched with programmatic dependent launch before upg_attn_gqa*_tc
// (cascade 1): every block waits for the kernel before (the queries and the
// step's keys), then lets the per-token grid start.
#define CASC_CHUNK 64
#define CASC_THREADS 64 // 2 warps
#define CASC_ROWS 32    // 16 a warp
template <int GQ, int HD>
DEVI void attn_cascade(const float *q, int qs, const __half *kc, const __half *vc, const int *tables, int tstride,
                       const int *pos, const int *seq, float scale, int heads, int H, int bs, int S, float *part,
                       const int *shared, int n) {
  constexpr int VSTR = HD + ATC_VPAD, NJ = CASC_CHUNK / 8, KQ = HD / 16, NO = HD / 8;
  __shared__ __align__(16) __half ks[CASC_CHUNK * VSTR], vs[CASC_CHUNK * VSTR];
  __shared__ size_t roff[CASC_CHUNK];
  pdl_wait();
  pdl_launch();
  const int split = blockIdx.x, kvh = blockIdx.y, r0 = blockIdx.z * CASC_ROWS;
  if (shared == nullptr || (split + 1) * CASC_CHUNK > min(shared[0] * bs, shared[1])) return;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, gid = lane >> 2, tig = lane & 3;
  // the split's rows from the table of the block's first token (every
  // token's holds the same blocks here, and every position is below its own)
  if (split_rows(roff, tables, tstride, pos, seq, r0 / GQ, CASC_CHUNK, H, kvh, bs, HD, split) != CASC_CHUNK) return;
  __syncthreads();
  // the chunk's keys and values to shared memory, and meanwhile the warp's
  // query rows ra = gid, rb = gid + 8 into registers (rows past n·GQ: zero,
  // not written): k16 step e takes dims 16e + 2tig, +1 and 16e + 8 + 2tig, +1
  const unsigned ks0 = (unsigned)__cvta_generic_to_shared(ks), vs0 = (unsigned)__cvta_generic_to_shared(vs);
  for (int i = tid; i < CASC_CHUNK * (HD / 8); i += CASC_THREADS) {
    const int r = i / (HD / 8), c = i - r * (HD / 8);
    const unsigned o = (unsigned)(r * VSTR + c * 8) * 2;
    cp_async16s(ks0 + o, kc + roff[r] + c * 8, 16);
    cp_async16s(vs0 + o, vc + roff[r] + c * 8, 16);
  }
  cp_async_commit();
  const int ra = r0 + 16 * w + gid, rb = ra + 8, nr = n * GQ;
  float2 xa[KQ][2], xb[KQ][2];
  {
    const float *qa = q + (size_t)(ra / GQ) * qs + (kvh * GQ + ra % GQ) * HD + 2 * tig;
    const float *qb = q + (size_t)(rb / GQ) * qs + (kvh * GQ + rb % GQ) * HD + 2 * tig;
    const float2 z2 = make_float2(0.f, 0.f);
#pragma unroll
    for (int e = 0; e < KQ; e++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        xa[e][h] = ra < nr ? *reinterpret_cast<const float2 *>(qa + 16 * e + 8 * h) : z2;
        xb[e][h] = rb < nr ? *reinterpret_cast<const float2 *>(qb + 16 * e + 8 * h) : z2;
      }
  }
  cp_async_wait<0>();
  __syncthreads(); // every thread's key and value rows
  // scores: per k16 step, the A fragments' two fp16 parts, and the keys of
  // two 8-position tiles per ldmatrix.x4 (matrix m = lane/8: positions
  // 8(j + m/2).., dims 16e + 8(m&1)..)
  float sc[NJ][4];
#pragma unroll
  for (int j = 0; j < NJ; j++)
#pragma unroll
    for (int c = 0; c < 4; c++) sc[j][c] = 0.f;
#pragma unroll
  for (int e = 0; e < KQ; e++) {
    unsigned ah[4], al[4];
    split2(xa[e][0].x, xa[e][0].y, ah[0], al[0]);
    split2(xb[e][0].x, xb[e][0].y, ah[1], al[1]);
    split2(xa[e][1].x, xa[e][1].y, ah[2], al[2]);
    split2(xb[e][1].x, xb[e][1].y, ah[3], al[3]);
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
      unsigned b0, b1, b2, b3;
      ldmatrix_x4(b0, b1, b2, b3, ks + ((8 * j + (lane >> 4) * 8 + (lane & 7)) * VSTR + 16 * e + ((lane >> 3) & 1) * 8));
      mma_f16(sc[j], ah[0], ah[1], ah[2], ah[3], b0, b1);
      mma_f16(sc[j], al[0], al[1], al[2], al[3], b0, b1);
      mma_f16(sc[j + 1], ah[0], ah[1], ah[2], ah[3], b2, b3);
      mma_f16(sc[j + 1], al[0], al[1], al[2], al[3], b2, b3);
    }
  }
  // softmax of rows ra (c0, c1 of every tile) and rb (c2, c3) over the quad
  float ma = -INFINITY, mb = -INFINITY;
#pragma unroll
  for (int j = 0; j < NJ; j++) {
#pragma unroll
    for (int c = 0; c < 4; c++) sc[j][c] *= scale;
    ma = fmaxf(ma, fmaxf(sc[j][0], sc[j][1]));
    mb = fmaxf(mb, fmaxf(sc[j][2], sc[j][3]));
  }
#pragma unroll
  for (int o = 1; o <= 2; o <<= 1) {
    ma = fmaxf(ma, __shfl_xor_sync(0xffffffffu, ma, o));
    mb = fmaxf(mb, __shfl_xor_sync(0xffffffffu, mb, o));
  }
  float la = 0.f, lb = 0.f;
#pragma unroll
  for (int j = 0; j < NJ; j++) {
    sc[j][0] = expf(sc[j][0] - ma);
    sc[j][1] = expf(sc[j][1] - ma);
    sc[j][2] = expf(sc[j][2] - mb);
    sc[j][3] = expf(sc[j][3] - mb);
    la += sc[j][0] + sc[j][1];
    lb += sc[j][2] + sc[j][3];
  }
#pragma unroll
  for (int o = 1; o <= 2; o <<= 1) {
    la += __shfl_xor_sync(0xffffffffu, la, o);
    lb += __shfl_xor_sync(0xffffffffu, lb, o);
  }
  float *pa = ra < nr ? part + ((size_t)((ra / GQ) * heads + kvh * GQ + ra % GQ) * S + split) * (HD + 2) : nullptr;
  float *pb = rb < nr ? part + ((size_t)((rb / GQ) * heads + kvh * GQ + rb % GQ) * S + split) * (HD + 2) : nullptr;
  if (tig == 0) {
    if (pa) pa[0] = ma, pa[1] = la;
    if (pb) pb[0] = mb, pb[1] = lb;
  }
  // the weights as A fragments of the 4 k16 steps over positions: step kk
  // takes tiles 2kk (a0, a1) and 2kk+1 (a2, a3)
  unsigned ph[NJ / 2][4], pl[NJ / 2][4];
#pragma unroll
  for (int kk = 0; kk < NJ / 2; kk++) {
    split2(sc[2 * kk][0], sc[2 * kk][1], ph[kk][0], pl[kk][0]);
    split2(sc[2 * kk][2], sc[2 * kk][3], ph[kk][1], pl[kk][1]);
    split2(sc[2 * kk + 1][0], sc[2 * kk + 1][1], ph[kk][2], pl[kk][2]);
    split2(sc[2 * kk + 1][2], sc[2 * kk + 1][3], ph[kk][3], pl[kk][3]);
  }
  // values, two dim tiles per ldmatrix.x4.trans: matrix m = lane/8 holds
  // positions 16kk + 8(m&1).. of dims 8(nt + m/2)..
  const unsigned vl = vs0 + (unsigned)(((((lane >> 3) & 1) * 8 + (lane & 7)) * VSTR + (lane >> 4) * 8) * 2);
#pragma unroll 2
  for (int nt = 0; nt < NO; nt += 2) {
    float o0[4] = {0.f, 0.f, 0.f, 0.f}, o1[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int kk = 0; kk < NJ / 2; kk++) {
      unsigned b0, b1, b2, b3;
      ldmatrix_x4_trans(b0, b1, b2, b3, vl + (unsigned)((16 * kk * VSTR + 8 * nt) * 2));
      mma_f16(o0, ph[kk][0], ph[kk][1], ph[kk][2], ph[kk][3], b0, b1);
      mma_f16(o0, pl[kk][0], pl[kk][1], pl[kk][2], pl[kk][3], b0, b1);
      mma_f16(o1, ph[kk][0], ph[kk][1], ph[kk][2], ph[kk][3], b2, b3);
      mma_f16(o1, pl[kk][0], pl[kk][1], pl[kk][2], pl[kk][3], b2, b3);
    }
    const int d = 8 * nt + 2 * tig;
    if (pa) {
      *reinterpret_cast<float2 *>(pa + 2 + d) = make_float2(o0[0], o0[1]);
      *reinterpret_cast<float2 *>(pa + 2 + d + 8) = make_float2(o1[0], o1[1]);
    }
    if (pb) {
      *reinterpret_cast<float2 *>(pb + 2 + d) = make_float2(o0[2], o0[3]);
      *reinterpret_cast<float2 *>(pb + 2 + d + 8) = make_float2(o1[2], o1[3]);
    }
  }
}

// upg_attn_cascade_gqa<G>_h<hd>: attn_cascade for groups of 2, 4 and 8
// query heads and heads of 64 and 128 values (fp16 cache, chunks of
// CASC_CHUNK positions).
#define CASC_ARGS                                                                                              \
  const float *__restrict__ q, int qs, const __half *__restrict__ kc, const __half *__restrict__ vc,           \
      const int *__restrict__ tables, int tstride, const int *__restrict__ pos, const int *__restrict__ seq,   \
      float scale, int heads, int H, int bs, int S, float *__restrict__ part, const int *__restrict__ shared, int n
#define CASC_PASS q, qs, kc, vc, tables, tstride, pos, seq, scale, heads, H, bs, S, part, shared, n
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa2_h64(CASC_ARGS) { attn_cascade<2, 64>(CASC_PASS); }
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa4_h64(CASC_ARGS) { attn_cascade<4, 64>(CASC_PASS); }
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa8_h64(CASC_ARGS) { attn_cascade<8, 64>(CASC_PASS); }
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa2_h128(CASC_ARGS) { attn_cascade<2, 128>(CASC_PASS); }
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa4_h128(CASC_ARGS) { attn_cascade<4, 128>(CASC_PASS); }
extern "C" __global__ void __launch_bounds__(CASC_THREADS) upg_attn_cascade_gqa8_h128(CASC_ARGS) { attn_cascade<8, 128>(CASC_PASS); }

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
