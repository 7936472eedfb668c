// Fused decompress-and-multiply kernels of the sparse codec (codec/sparse.go:
// every row keeps K weights, N:M or unstructured, k-bit codes with one fp16
// scale per column group).
//
// GPU layout (made by the Go uploader, sparse.go): the kept set of row r as
// a bitmap of mw 32-bit words (bit b of word w: column 32w+b kept; the N:M
// and list indexes are turned into it, a bitmap index is its own bytes),
// and the file's code rows as they are: cw words per row, code i of the
// row (the i-th kept column in column order) at bits i·k..i·k+k-1,
// LSB first. Scales are the file's R×G fp16; levels the 2^k code values.
//
// The value of kept column c of row r is scale[r][c/gs]·levels[code], and
// the activations are float32, so the result is the reference decoder's up
// to float rounding: where a group holds whole mask words, the GEMV sums a
// word's level·activation products before it applies the word's scale.

#define SPARSE_ROWS 32     // rows per block of the GEMV, one warp each
#define SPARSE_CHUNK 1024  // columns of the activations a block holds at a time (32 mask words)
#define SPARSE_SLOT(c) ((c) + ((c) >> 5) * 4) // column c's slot: 36 floats per 32 columns (banks)

#define SPARSE_ARGS                                                                                         \
  const unsigned *__restrict__ mask, int mw, const unsigned *__restrict__ codes, int cw,                   \
      const __half *__restrict__ scales, int G, unsigned gmagic, int gword, const float *__restrict__ levels, \
      int k

// sparse_group is c / gs for c·gs < 2^32 (gmagic = ceil(2^32 / gs), the Go
// side checks the bound): the multiply-high that replaces the division.
DEVI int sparse_group(int c, unsigned gmagic) { return (int)__umulhi((unsigned)c, gmagic); }

// sparse_prefix returns, for lane's mask word m of a 32-word chunk, the
// kept entries before it in the chunk (exclusive prefix) and, in total, the
// chunk's kept entries (all 32 lanes take part).
DEVI void sparse_prefix(unsigned m, int lane, int &before, int &total) {
  const int cnt = __popc(m);
  int incl = cnt;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  before = incl - cnt;
  total = __shfl_sync(0xffffffffu, incl, 31);
}

// SparseCodes streams a lane's codes (k bits each, from bit o of the row's
// code words cr) through two registers: lo holds the word with the next
// code's first bit, hi the word after it (loaded one word ahead, and only
// when it holds some of the lane's n codes).
struct SparseCodes {
  const unsigned *cr;
  unsigned lo, hi, sh;
  int j, last; // lo's word index; the last word with a code of the lane
  DEVI void start(const unsigned *__restrict__ row, unsigned o, int n, int k) {
    cr = row;
    j = (int)(o >> 5);
    sh = o & 31;
    last = n > 0 ? (int)((o + (unsigned)(n * k) - 1u) >> 5) : j - 1;
    lo = j <= last ? __ldg(cr + j) : 0u;
    hi = j + 1 <= last ? __ldg(cr + j + 1) : 0u;
  }
  DEVI unsigned next(int k, unsigned kmask) {
    const unsigned c = __funnelshift_r(lo, hi, sh) & kmask;
    sh += (unsigned)k;
    if (sh >= 32u) {
      sh -= 32u;
      j++;
      lo = hi;
      hi = j + 1 <= last ? __ldg(cr + j + 1) : 0u;
    }
    return c;
  }
};

// gemv_sparse: y[t·R + r] = Σ_c W[r][c]·x[t·ldx + c] for nt ≤ NT tokens.
// One warp per row, 32 rows per block. The block copies the activations to
// shared memory 1,024 columns at a time; in each such chunk lane l takes
// mask word l (columns 32l..32l+31 of the chunk), finds where its codes
// start from the warp's prefix sum of the words' kept counts, and walks its
// kept columns with the codes streaming through registers (SparseCodes), so
// a kept weight costs a few integer operations, a level lookup and one
// multiply-add per token. The chunk's mask word and first code words load
// before the barrier that waits for the activations, the next chunk's mask
// word while this one is summed. gword (group size a multiple of 32): one
// scale per mask word, applied to the word's sum; otherwise one per column.
template <int NT>
DEVI void gemv_sparse(SPARSE_ARGS, const float *__restrict__ x, int ldx, float *__restrict__ y, int R, int C,
                      int nt) {
  __shared__ float lv[256];
  __shared__ float xs[NT][SPARSE_SLOT(SPARSE_CHUNK)];
  const int tid = threadIdx.x, wi = tid >> 5, lane = tid & 31;
  for (int i = tid; i < (1 << k); i += blockDim.x) lv[i] = levels[i];
  const int r = blockIdx.x * SPARSE_ROWS + wi;
  const bool live = r < R; // the other warps still copy activations and meet the barriers
  const int rr = live ? r : R - 1;
  const unsigned *mr = mask + (size_t)rr * mw, *cr = codes + (size_t)rr * cw;
  const __half *sr = scales + (size_t)rr * G;
  const unsigned kmask = (1u << k) - 1u;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; t++) acc[t] = 0.f;
  int base = 0; // the row's entries before the chunk
  unsigned mnext = live && lane < mw ? __ldg(mr + lane) : 0u;
  for (int c0 = 0; c0 < C; c0 += SPARSE_CHUNK) {
    unsigned m = mnext;
    int before, total;
    sparse_prefix(m, lane, before, total);
    SparseCodes cs;
    cs.start(cr, (unsigned)(base + before) * (unsigned)k, __popc(m), k);
    const int cw0 = c0 + lane * 32; // the word's first column
    float sc = 0.f;
    if (gword && m != 0u) sc = __half2float(sr[sparse_group(cw0, gmagic)]);
    const int wn = ((c0 + SPARSE_CHUNK) >> 5) + lane;
    mnext = live && wn < mw ? __ldg(mr + wn) : 0u;
    __syncthreads(); // the chunk before is read (and the levels are in)
    const int cn = min(SPARSE_CHUNK, C - c0);
#pragma unroll
    for (int t = 0; t < NT; t++)
      if (t < nt)
        for (int i = tid; i < cn; i += blockDim.x) xs[t][SPARSE_SLOT(i)] = x[(size_t)t * ldx + c0 + i];
    __syncthreads();
    base += total;
    const float *xl = &xs[0][lane * 36];
    if (gword) {
      float p[NT];
#pragma unroll
      for (int t = 0; t < NT; t++) p[t] = 0.f;
      const int n = __popc(m);
#pragma unroll 4
      for (int e = 0; e < n; e++) {
        const int b = __ffs(m) - 1;
        m &= m - 1u;
        const float l = lv[cs.next(k, kmask)];
#pragma unroll
        for (int t = 0; t < NT; t++)
          if (t < nt) p[t] = fmaf(l, xl[t * SPARSE_SLOT(SPARSE_CHUNK) + b], p[t]);
      }
#pragma unroll
      for (int t = 0; t < NT; t++) acc[t] = fmaf(sc, p[t], acc[t]);
    } else {
      while (m != 0u) {
        const int b = __ffs(m) - 1;
        m &= m - 1u;
        const float wv = __half2float(sr[sparse_group(cw0 + b, gmagic)]) * lv[cs.next(k, kmask)];
#pragma unroll
        for (int t = 0; t < NT; t++)
          if (t < nt) acc[t] = fmaf(wv, xl[t * SPARSE_SLOT(SPARSE_CHUNK) + b], acc[t]);
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int t = 0; t < NT; t++) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
  }
  if (lane == 0) {
#pragma unroll
    for (int t = 0; t < NT; t++)
      if (t < nt) y[(size_t)t * R + r] = acc[t];
  }
}

// upg_gemv_sparse_t1 (one token) and _t8 (up to 8 tokens a launch): grid
// ceil(R/32), 1,024 threads (32 rows).
#define SPARSE_PASS mask, mw, codes, cw, scales, G, gmagic, gword, levels, k
extern "C" __global__ void __launch_bounds__(1024)
    upg_gemv_sparse_t1(SPARSE_ARGS, const float *__restrict__ x, int ldx, float *__restrict__ y, int R, int C,
                       int nt) {
  gemv_sparse<1>(SPARSE_PASS, x, ldx, y, R, C, nt);
}
extern "C" __global__ void __launch_bounds__(1024)
    upg_gemv_sparse_t8(SPARSE_ARGS, const float *__restrict__ x, int ldx, float *__restrict__ y, int R, int C,
                       int nt) {
  gemv_sparse<8>(SPARSE_PASS, x, ldx, y, R, C, nt);
}

// upg_embed_sparse writes rows tokens[0..n) of a sparse matrix into dst (C
// floats each, zeros where nothing is kept): grid n, one warp per row, lane
// l writing the 32 columns of its mask word.
extern "C" __global__ void __launch_bounds__(32)
    upg_embed_sparse(SPARSE_ARGS, const int *__restrict__ tokens, float *__restrict__ dst, int C) {
  const int lane = threadIdx.x, r = tokens[blockIdx.x];
  const unsigned *mr = mask + (size_t)r * mw, *cr = codes + (size_t)r * cw;
  const __half *sr = scales + (size_t)r * G;
  float *out = dst + (size_t)blockIdx.x * C;
  const unsigned kmask = (1u << k) - 1u;
  int base = 0;
  for (int w0 = 0; w0 < mw; w0 += 32) {
    const unsigned m = w0 + lane < mw ? __ldg(mr + w0 + lane) : 0u;
    int before, total;
    sparse_prefix(m, lane, before, total);
    SparseCodes cs;
    cs.start(cr, (unsigned)(base + before) * (unsigned)k, __popc(m), k);
    const int c0 = (w0 + lane) * 32;
    for (int b = 0; b < 32 && c0 + b < C; b++) {
      float v = 0.f;
      if ((m >> b) & 1u) v = __half2float(sr[sparse_group(c0 + b, gmagic)]) * __ldg(levels + cs.next(k, kmask));
      out[c0 + b] = v;
    }
    base += total;
  }
}
