// pipes.cu: which issue pipe each instruction of the one-token GEMV's unit
// loop runs on, measured as throughput alone and in pairs.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 pipes.cu -o /tmp/pipes && /tmp/pipes
//
// The question (NOTES.md, runs 138, 163, 185, 187): the 3-bit decode is
// LOP3, SHF and PRMT (~0.64 a weight) and the products IDP.4A (0.25 a
// weight). The notes' ceiling arithmetic put all four on one 64-lane
// integer pipe; if IDP.4A issues elsewhere (the FMA pipe), replacing it by
// tensor-core mma relieves no integer pipe, and the decode alone sets the
// multiply's floor. Each kernel runs a full wave (every SM at its
// occupancy) of 8 independent chains a thread of one instruction kind, or
// two kinds interleaved 1:1; printed: warp instructions a clock an SM over
// the SM's span, its first block's start to its last block's end (lanes:
// 32 per warp instruction). Two kinds on one pipe of width w give w in all;
// on two pipes, up to the sum. The SM clock is read from clock64 against
// the global timer in every block.
// Run 215 adds HMUL2 with the .H1_H1 swizzle and IMAD.HI: on sm_90 the first
// issues on IDP.4A's pipe, the second at half rate (NOTES.md, run 215).
// Standalone (CUDA runtime, no Go); not part of the build or of CI.
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <vector>
#include "probe.cuh"

constexpr int ITER = 4096, CH = 8, NTH = 512;

// op k on register a with b (the inputs vary by chain so nothing folds)
template <int K> __device__ __forceinline__ unsigned op(unsigned a, unsigned b) {
  unsigned d = a;
  if constexpr (K == 0) asm volatile("prmt.b32 %0, %1, %2, %0;" : "+r"(d) : "r"(b), "r"(a));
  if constexpr (K == 1) asm volatile("lop3.b32 %0, %1, %2, %0, 0x96;" : "+r"(d) : "r"(b), "r"(a));
  if constexpr (K == 2) asm volatile("dp4a.u32.s32 %0, %1, %2, %0;" : "+r"(d) : "r"(b), "r"(a));
  if constexpr (K == 3) asm volatile("shf.r.wrap.b32 %0, %0, %1, 3;" : "+r"(d) : "r"(b));
  if constexpr (K == 4) asm volatile("mad.lo.u32 %0, %0, %1, %2;" : "+r"(d) : "r"(b), "r"(a));
  if constexpr (K == 5) {
    float f = __uint_as_float(a);
    asm volatile("fma.rn.f32 %0, %0, %1, %1;" : "+f"(f) : "f"(__uint_as_float(b)));
    d = __float_as_uint(f);
  }
  if constexpr (K == 6) asm volatile("add.u32 %0, %0, %1;" : "+r"(d) : "r"(b));
  // the two homes sel-pipes.patch tried for a selector's >> 16 (run 215,
  // lost; git show a738e87:backend/cuda/experiments/sel-pipes.patch): an
  // fp16 multiply of the upper half taken twice (HMUL2 .H1_H1) and the
  // high word of a product (IMAD.HI)
  if constexpr (K == 7)
    asm volatile("{.reg .b16 l, h; .reg .b32 hh; mov.b32 {l, h}, %0; mov.b32 hh, {h, h}; mul.rn.f16x2 %0, hh, %1;}"
                 : "+r"(d)
                 : "r"(b));
  if constexpr (K == 8) asm volatile("mul.hi.u32 %0, %0, %1;" : "+r"(d) : "r"(b));
  return d;
}
constexpr const char *NAME[] = {"PRMT", "LOP3", "IDP.4A", "SHF", "IMAD", "FFMA", "IADD3", "HMUL2.H1", "IMAD.HI"};

struct Out {
  unsigned long long c0, c1, t0, t1; // clock64 and the global timer at the block's start and end
  unsigned smid, sink;
};

template <int A, int B> __global__ void __launch_bounds__(NTH) run(Out *o, unsigned seed) {
  unsigned r[CH];
#pragma unroll
  for (int i = 0; i < CH; i++) r[i] = seed * (threadIdx.x + 7 * i + 1);
  const unsigned b = seed ^ blockIdx.x;
  __syncthreads();
  const unsigned long long c0 = clock64(), t0 = gtime();
  for (int it = 0; it < ITER; it++) {
#pragma unroll
    for (int i = 0; i < CH; i++) r[i] = (i & 1) && B >= 0 ? op<(B < 0 ? 0 : B)>(r[i], b + i) : op<A>(r[i], b + i);
  }
  unsigned s = 0;
#pragma unroll
  for (int i = 0; i < CH; i++) s ^= r[i];
  __syncthreads();
  const unsigned long long c1 = clock64(), t1 = gtime();
  if (threadIdx.x == 0) {
    unsigned sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    o[blockIdx.x].c0 = c0, o[blockIdx.x].c1 = c1, o[blockIdx.x].t0 = t0, o[blockIdx.x].t1 = t1;
    o[blockIdx.x].smid = sm;
  }
  if (s == 0x12345678u) o[blockIdx.x].sink = s;
}

template <int A, int B> void measure(int sms, Out *d) {
  int per = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, run<A, B>, NTH, 0));
  const int blocks = sms * per;
  run<A, B><<<blocks, NTH>>>(d, 3u); // warm-up
  CK(cudaDeviceSynchronize());
  run<A, B><<<blocks, NTH>>>(d, 5u);
  CK(cudaDeviceSynchronize());
  Out *h = (Out *)malloc(sizeof(Out) * blocks);
  CK(cudaMemcpy(h, d, sizeof(Out) * blocks, cudaMemcpyDeviceToHost));
  // an SM's span: its first block's start to its last block's end (clock64
  // is the SM's own counter); the mean over the SMs
  std::vector<unsigned long long> lo(1024, ~0ull), hi(1024, 0), tlo(1024, ~0ull), thi(1024, 0);
  std::vector<int> nb(1024, 0);
  for (int i = 0; i < blocks; i++) {
    const unsigned m = h[i].smid & 1023;
    lo[m] = std::min(lo[m], h[i].c0), hi[m] = std::max(hi[m], h[i].c1);
    tlo[m] = std::min(tlo[m], h[i].t0), thi[m] = std::max(thi[m], h[i].t1);
    nb[m]++;
  }
  double clk = 0, ns = 0, wsum = 0;
  int used = 0;
  for (int m = 0; m < 1024; m++)
    if (nb[m] > 0) {
      clk += (double)(hi[m] - lo[m]), ns += (double)(thi[m] - tlo[m]);
      wsum += (double)nb[m] * (NTH / 32) * ITER * CH / (double)(hi[m] - lo[m]);
      used++;
    }
  clk /= used, ns /= used;
  free(h);
  // warp instructions an SM a clock: per blocks a wave on one SM
  const double wi = wsum / used; // warp instructions a clock, the mean over the SMs
  if (B < 0)
    printf("%-16s %6.2f warp instr/clk/SM (%5.0f lanes)  %d blocks/SM  %.0f MHz\n", NAME[A], wi, wi * 32, per,
           clk / ns * 1e3);
  else
    printf("%-7s+ %-7s %6.2f warp instr/clk/SM (%5.0f lanes)  %d blocks/SM  %.0f MHz\n", NAME[A], NAME[B], wi,
           wi * 32, per, clk / ns * 1e3);
}

int main() {
  cudaDeviceProp pr;
  CK(cudaGetDeviceProperties(&pr, 0));
  printf("%s, %d SMs, sm_%d%d\n", pr.name, pr.multiProcessorCount, pr.major, pr.minor);
  Out *d;
  CK(cudaMalloc(&d, sizeof(Out) * pr.multiProcessorCount * 8));
  const int n = pr.multiProcessorCount;
  measure<0, -1>(n, d);
  measure<1, -1>(n, d);
  measure<2, -1>(n, d);
  measure<3, -1>(n, d);
  measure<4, -1>(n, d);
  measure<5, -1>(n, d);
  measure<6, -1>(n, d);
  measure<0, 1>(n, d);
  measure<0, 2>(n, d);
  measure<1, 2>(n, d);
  measure<0, 3>(n, d);
  measure<2, 3>(n, d);
  measure<0, 4>(n, d);
  measure<2, 4>(n, d);
  measure<2, 5>(n, d);
  measure<0, 5>(n, d);
  measure<0, 6>(n, d);
  measure<2, 6>(n, d);
  measure<7, -1>(n, d);
  measure<8, -1>(n, d);
  measure<0, 7>(n, d);
  measure<2, 7>(n, d);
  measure<0, 8>(n, d);
  measure<2, 8>(n, d);
  return 0;
}
