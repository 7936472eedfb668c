// mbarcheck.cu: does compute-sanitizer's racecheck report the cluster
// attention's mbarrier set-up (upg_attn_cluster_rotq_*, kernels/fused.cu:
// thread 0 inits the block's mbarrier, fences the init for the cluster and
// arrives on it with the bytes it expects) as a race by itself?
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo mbarcheck.cu -o /tmp/mbarcheck
//   compute-sanitizer --tool racecheck --racecheck-report all /tmp/mbarcheck K
//
// Run 237 found racecheck's only report over the attention's tests to be
// "Write access at fused.cu:530 (mbarrier.init) and Read access at
// fused.cu:533 (mbarrier.arrive.expect_tx)" — two instructions of the one
// thread 0, in program order. Kernel K here keeps only that pattern:
//   0: one block, thread 0: init(1), arrive (no tx); every thread waits on
//      phase 0; no cluster, no st.async.
//   1: as 0 with fence.mbarrier_init and arrive.expect_tx(0 bytes).
//   2: the attention's protocol in a cluster of 8: thread 0 of each block
//      inits, fences, expects 7·4 bytes; relaxed cluster arrive and wait;
//      thread 0 pushes one float by st.async into each other rank (completed
//      on that rank's mbarrier); every thread waits on phase 0, then reads the
//      7 values; a cluster barrier before exit. Output checked on the host.
// If kernel 0 or 1 is reported, the report is the tool's model of mbarrier
// operations, not a race in the kernel. Standalone (CUDA runtime); not part of
// the build or of CI.
#include <cstdio>
#include <cstdlib>

// kernels/fused.cu's mbar_wait0, copied so that the probe builds alone (fused.cu
// would bring every kernel and its headers with it)
__device__ __forceinline__ void mbar_wait0(unsigned a) {
  unsigned ok;
  do {
    asm volatile("{.reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p;}"
                 : "=r"(ok)
                 : "r"(a), "r"(0u)
                 : "memory");
  } while (!ok);
}

__global__ void k0(float *out) {
  __shared__ __align__(8) unsigned long long mb;
  const unsigned a = (unsigned)__cvta_generic_to_shared(&mb);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(a) : "memory");
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(a) : "memory");
  }
  __syncthreads();
  mbar_wait0(a);
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.f;
}

__global__ void k1(float *out) {
  __shared__ __align__(8) unsigned long long mb;
  const unsigned a = (unsigned)__cvta_generic_to_shared(&mb);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(a) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(a), "r"(0) : "memory");
  }
  __syncthreads();
  mbar_wait0(a);
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.f;
}

constexpr int CL = 8;
__global__ void __cluster_dims__(CL, 1, 1) k2(float *out) {
  __shared__ float in[CL];
  __shared__ __align__(8) unsigned long long mb;
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  const unsigned a = (unsigned)__cvta_generic_to_shared(&mb);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(a) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(a), "r"((CL - 1) * 4) : "memory");
  }
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
  if (threadIdx.x == 0)
    for (unsigned r = 0; r < CL; r++) {
      if (r == rank) continue;
      unsigned ra, rm;
      asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"((unsigned)__cvta_generic_to_shared(&in[rank])), "r"(r));
      asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(rm) : "r"(a), "r"(r));
      asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(ra),
                   "r"(__float_as_uint((float)(blockIdx.x + 1))), "r"(rm)
                   : "memory");
    }
  mbar_wait0(a);
  float s = 0.f;
  for (unsigned r = 0; r < CL; r++)
    if (r != rank) s += in[r];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
}

int main(int argc, char **argv) {
  const int K = argc > 1 ? atoi(argv[1]) : 2, B = 16, T = 128;
  float *d;
  cudaMalloc(&d, B * T * sizeof(float));
  cudaMemset(d, 0, B * T * sizeof(float));
  if (K == 0) k0<<<B, T>>>(d);
  else if (K == 1) k1<<<B, T>>>(d);
  else k2<<<B, T>>>(d);
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    printf("kernel %d: %s\n", K, cudaGetErrorString(e));
    return 1;
  }
  float h[B * T];
  cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
  int bad = 0;
  for (int b = 0; b < B; b++) {
    float want = 1.f;
    if (K == 2) { // the other ranks' blockIdx.x + 1 of b's cluster
      want = 0.f;
      for (int r = 0; r < CL; r++)
        if (b / CL * CL + r != b) want += (float)(b / CL * CL + r + 1);
    }
    for (int t = 0; t < T; t++) bad += h[b * T + t] != want;
  }
  printf("kernel %d: %d of %d outputs wrong\n", K, bad, B * T);
  return bad != 0;
}
