// chainload.cu: what one dependent hand-off between SMs costs while the rest
// of the GPU streams DRAM. A persistent layer kernel (weights streamed into
// shared memory under the small ops' chains of L2 round trips, instead of
// one launch per op) stands or falls on this number: runs 72, 139 and 159
// found that weight traffic beside a chain lengthens its round trips, but
// never measured by how much at a given stream rate.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 chainload.cu -o /tmp/chainload && /tmp/chainload
//
// Two SMs run the chain kernel (one 32-thread block each, one block an SM by
// its shared memory); up to the other SMs stream a 4 GiB buffer (16-byte
// loads, 8 in flight a thread, optionally throttled by __nanosleep, with
// L2's normal or evict-first priority) until the chain is done. Printed per
// configuration: the stream's rate, and on the chain's SMs the mean of
//   handoff: one flag hand-off between the two blocks (st.release.gpu /
//            ld.acquire.gpu spin; a ping-pong round trip is two),
//   l2:      one step of a pointer chase over 16 lines re-read in turn
//            (ld.global.cg: an L2 hit unless the stream evicted it),
//   dram:    one step of a pointer chase over 2 Mi lines (256 MiB).
// Standalone (CUDA runtime, no Go); not part of the build or of CI.
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <vector>
#include <cuda_runtime.h>
#include "probe.cuh"

constexpr int SMEM = 150 * 1024; // > half an SM's shared memory: one block an SM
constexpr int LINE = 32;         // uint32 words a 128-byte line

__device__ __forceinline__ unsigned ld_cg(const unsigned *p) {
  unsigned v;
  asm volatile("ld.global.cg.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
template <bool EF> __device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
  uint4 v;
  if (EF)
    asm volatile("{.reg .b64 pol; createpolicy.fractional.L2::evict_first.b64 pol, 1.0; "
                 "ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], pol;}"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  else
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  return v;
}

struct Ctl {
  int go, pad0[31];
  int stop, pad1[31];
  int flag0, pad2[31];
  int flag1, pad3[31];
  unsigned long long bytes, t0, t1, sink;
  double handoff, l2, dram;
};

// bg_stream: every thread reads buf[i], buf[i + s], ... 8 at a time (s the
// grid's threads), wrapping at n16 (a multiple of 8·s), until ctl->stop.
template <bool EF>
__global__ void __launch_bounds__(1024) bg_stream(const uint4 *__restrict__ buf, unsigned long long n16, int sleep_ns,
                                                  Ctl *ctl) {
  const unsigned long long s = (unsigned long long)gridDim.x * blockDim.x;
  unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (threadIdx.x == 0) {
    atomicMin(&ctl->t0, gtime());
    if (blockIdx.x == 0) st_release(&ctl->go, 1);
  }
  unsigned x = 0;
  unsigned long long n = 0;
  const volatile int *stop = &ctl->stop;
  for (int it = 0;; it++) {
    uint4 v[8];
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = ld_stream<EF>(buf + i + k * s);
#pragma unroll
    for (int k = 0; k < 8; k++) x ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
    i += 8 * s;
    if (i >= n16) i -= n16;
    n += 8;
    if (sleep_ns > 0) __nanosleep(sleep_ns);
    if ((it & 7) == 0 && *stop) break;
  }
  atomicAdd(&ctl->bytes, n * 16);
  if (threadIdx.x == 0) atomicMax(&ctl->t1, gtime());
  if (x == 0x9e3779b9u) ctl->sink = n; // keeps the loads
}

// chain: blocks 0 and 1 (thread 0 each) on the two SMs the stream leaves.
__global__ void chain(Ctl *ctl, const unsigned *l2set, const unsigned *dramset, int bg, int reps) {
  if (threadIdx.x != 0) return;
  const bool b0 = blockIdx.x == 0;
  if (bg) {
    const unsigned long long w = gtime();
    while (ld_acquire(&ctl->go) == 0) {
      if (gtime() - w > 2000000000ull) { // 2 s: the stream never started beside the chain
        if (b0) ctl->handoff = -1.0;
        st_release(&ctl->stop, 1);
        return;
      }
    }
    const unsigned long long t = gtime();
    while (gtime() - t < 50000) { // 50 µs: every stream block running
    }
  }
  // the ping-pong
  unsigned long long t = gtime();
  for (int i = 1; i <= reps; i++) {
    if (b0) {
      st_release(&ctl->flag0, i);
      while (ld_acquire(&ctl->flag1) != i) {
      }
    } else {
      while (ld_acquire(&ctl->flag0) != i) {
      }
      st_release(&ctl->flag1, i);
    }
  }
  if (!b0) return;
  ctl->handoff = (double)(gtime() - t) / (2.0 * reps);
  // the chases (block 0): one pass to warm the small set, then the timed ones
  unsigned j = 0;
  for (int k = 0; k < 16; k++) j = ld_cg(l2set + (size_t)j * LINE);
  t = gtime();
  for (int k = 0; k < reps; k++) j = ld_cg(l2set + (size_t)j * LINE);
  ctl->l2 = (double)(gtime() - t) / reps;
  unsigned d = 0;
  t = gtime();
  for (int k = 0; k < reps; k++) d = ld_cg(dramset + (size_t)d * LINE);
  ctl->dram = (double)(gtime() - t) / reps;
  ctl->sink += j + d;
  st_release(&ctl->stop, 1);
}

// one cycle through n lines in random order (Sattolo), line i's first word
// holding the next line's index
static std::vector<unsigned> cycle(unsigned n, unsigned seed) {
  std::vector<unsigned> p(n), a((size_t)n * LINE, 0);
  for (unsigned i = 0; i < n; i++) p[i] = i;
  srand(seed);
  for (unsigned i = n - 1; i > 0; i--) {
    unsigned k = (unsigned)(((unsigned long long)rand() << 16 ^ rand()) % i);
    std::swap(p[i], p[k]);
  }
  for (unsigned i = 0; i < n; i++) a[(size_t)i * LINE] = p[i];
  return a;
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  printf("%s, %d SMs, L2 %d MiB\n", prop.name, sms, prop.l2CacheSize >> 20);
  CK(cudaFuncSetAttribute(bg_stream<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  CK(cudaFuncSetAttribute(bg_stream<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  CK(cudaFuncSetAttribute(chain, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
  std::vector<unsigned> l2h = cycle(16, 1), drh = cycle(2u << 20, 2);
  unsigned *l2set, *drset;
  CK(cudaMalloc(&l2set, l2h.size() * 4));
  CK(cudaMalloc(&drset, drh.size() * 4));
  CK(cudaMemcpy(l2set, l2h.data(), l2h.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(drset, drh.data(), drh.size() * 4, cudaMemcpyHostToDevice));
  const size_t maxbuf = 4ull << 30;
  uint4 *buf;
  CK(cudaMalloc(&buf, maxbuf));
  CK(cudaMemset(buf, 1, maxbuf));
  Ctl *ctl;
  CK(cudaMalloc(&ctl, sizeof(Ctl)));
  cudaStream_t s1, s2;
  CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  struct Cfg {
    int nbg, sleep;
    bool ef;
  };
  const int all = sms - 2;
  std::vector<Cfg> cfgs = {{0, 0, false},   {all, 0, false}, {all, 0, true},  {all, 100, false}, {all, 300, false},
                           {all, 1000, false}, {all / 2, 0, false}, {all / 4, 0, false}, {0, 0, false}};
  printf("%6s %6s %3s %10s %10s %10s %10s\n", "bg SMs", "sleep", "ef", "bg GB/s", "handoff", "l2 step", "dram step");
  for (const Cfg &c : cfgs) {
    Ctl h = {};
    h.t0 = ~0ull;
    CK(cudaMemcpy(ctl, &h, sizeof h, cudaMemcpyHostToDevice));
    const unsigned long long s = (unsigned long long)(c.nbg > 0 ? c.nbg : 1) * 1024;
    const unsigned long long n16 = (maxbuf / 16) / (8 * s) * (8 * s);
    const int reps = 4000;
    chain<<<2, 32, SMEM, s2>>>(ctl, l2set, drset, c.nbg > 0, reps);
    CK(cudaGetLastError());
    if (c.nbg > 0) {
      if (c.ef)
        bg_stream<true><<<c.nbg, 1024, SMEM, s1>>>(buf, n16, c.sleep, ctl);
      else
        bg_stream<false><<<c.nbg, 1024, SMEM, s1>>>(buf, n16, c.sleep, ctl);
      CK(cudaGetLastError());
    }
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(&h, ctl, sizeof h, cudaMemcpyDeviceToHost));
    const double gbs = c.nbg > 0 && h.t1 > h.t0 ? (double)h.bytes / (double)(h.t1 - h.t0) : 0.0;
    printf("%6d %6d %3d %10.0f %8.3fus %8.3fus %8.3fus\n", c.nbg, c.sleep, (int)c.ef, gbs, h.handoff / 1e3,
           h.l2 / 1e3, h.dram / 1e3);
  }
  return 0;
}
