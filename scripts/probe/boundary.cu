// boundary.cu: what a kernel boundary costs on this GPU, against a grid-wide
// barrier inside one persistent kernel (NOTES.md run 128). Not part of the
// product: a standalone probe built and run on the GPU machine,
//   nvcc -O3 -arch=sm_90 scripts/probe/boundary.cu -o /tmp/boundary && /tmp/boundary
// Every variant is a chain of N dependent steps; a step's blocks each read
// one word the previous step's blocks wrote (an L2 round trip, as a decode
// step's small kernels do) and write their own. Kernel-per-step variants
// are captured in a CUDA graph (as upg's decode steps are), with and
// without programmatic dependent launch (PDL); the persistent variant is
// one kernel whose blocks meet at a grid barrier (an atomic counter and a
// spin on a generation word) between steps, or cooperative groups'
// grid.sync(), or no barrier at all: each block waits for the one word it
// reads through its producer's flag (acquire/release), the data-flow floor.
// (chain_step was factored out of the two barrier kernels after runs
// 128-129, which ran them with its body written in each.)
#include <cooperative_groups.h>
#include <cstdio>
#include <cuda_runtime.h>
namespace cg = cooperative_groups;

#define CK(x)                                                                    \
  do {                                                                           \
    cudaError_t e = (x);                                                         \
    if (e != cudaSuccess) {                                                      \
      printf("%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch() { asm volatile("griddepcontrol.launch_dependents;"); }

// one step: block b reads word (b + 1) % blocks of the previous step's
// buffer and writes word b of its own (thread 0; the others idle)
__global__ void step(const unsigned *prev, unsigned *next, int pdl) {
  if (pdl) {
    pdl_wait();
    pdl_launch();
  }
  if (threadIdx.x == 0) {
    const unsigned b = blockIdx.x, n = gridDim.x;
    next[b] = __ldcg(prev + (b + 1) % n) + 1;
  }
}

// chain_step is step s of a persistent kernel's chain for block b of n
// (thread 0): the word of block (b + 1) % n from step s - 1's half of buf,
// plus one, into block b's word of step s's half
__device__ __forceinline__ void chain_step(unsigned *buf, int s, unsigned b, unsigned n) {
  const unsigned *prev = buf + (s & 1) * n;
  unsigned *next = buf + ((s + 1) & 1) * n;
  __stcg(next + b, __ldcg(prev + (b + 1) % n) + 1);
}

// the same chain in one kernel: steps separated by a grid barrier
__global__ void persistent(unsigned *buf, int steps, unsigned *count, volatile unsigned *gen) {
  const unsigned b = blockIdx.x, n = gridDim.x;
  for (int s = 0; s < steps; s++) {
    if (threadIdx.x == 0) {
      chain_step(buf, s, b, n);
      __threadfence();
      const unsigned g = *gen;
      if (atomicAdd(count, 1u) == n - 1) {
        *count = 0;
        __threadfence();
        *gen = g + 1;
      } else {
        while (*gen == g) {
        }
      }
      __threadfence();
    }
    __syncthreads();
  }
}

// the chain under cooperative groups' grid.sync() (a cooperative launch)
__global__ void persistent_cg(unsigned *buf, int steps) {
  cg::grid_group grid = cg::this_grid();
  const unsigned b = blockIdx.x, n = gridDim.x;
  for (int s = 0; s < steps; s++) {
    if (threadIdx.x == 0) chain_step(buf, s, b, n);
    grid.sync();
  }
}

// the chain as data flow: block b of step s waits only for the one word it
// reads (its producer's flag, set with release semantics after the word),
// the floor of a persistent kernel whose ops wait on their inputs' flags
// instead of on the whole grid (a timing probe: a block may overwrite a
// word before its reader has read it, which changes values, not the chain)
__global__ void persistent_flags(unsigned *buf, int steps, unsigned *flag) {
  const unsigned b = blockIdx.x, n = gridDim.x, src = (b + 1) % n;
  if (threadIdx.x != 0) return;
  for (int s = 0; s < steps; s++) {
    const unsigned *prev = buf + (s & 1) * n;
    unsigned *next = buf + ((s + 1) & 1) * n;
    if (s > 0) {
      unsigned f;
      do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(f) : "l"(flag + src) : "memory");
      } while (f < (unsigned)s);
    }
    __stcg(next + b, __ldcg(prev + src) + 1);
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(flag + b), "r"((unsigned)s + 1) : "memory");
  }
}

// median7 is the median of 7 times (sorts them in place)
static float median7(float *ms) {
  for (int i = 0; i < 7; i++)
    for (int j = i + 1; j < 7; j++)
      if (ms[j] < ms[i]) {
        const float t = ms[i];
        ms[i] = ms[j];
        ms[j] = t;
      }
  return ms[3];
}

int main() {
  const int N = 440; // a Phi-4 decode step's small-kernel boundaries: 11 a layer, 40 layers
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  printf("%s, %d SMs; chains of %d dependent steps, µs a step (median of 7 graph replays)\n", p.name, p.multiProcessorCount, N);
  unsigned *buf, *cnt;
  CK(cudaMalloc(&buf, 2 * 4096 * sizeof(unsigned)));
  CK(cudaMalloc(&cnt, 2 * sizeof(unsigned)));
  unsigned *flags;
  CK(cudaMalloc(&flags, 4096 * sizeof(unsigned)));
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const int grids[] = {1, 5, 132, 160, 640};
  for (int gi = 0; gi < 5; gi++) {
    const int blocks = grids[gi];
    for (int threads = 128; threads <= 256; threads *= 2) {
      for (int pdl = 0; pdl < 2; pdl++) {
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int s = 0; s < N; s++) {
          cudaLaunchConfig_t c = {};
          c.gridDim = dim3(blocks);
          c.blockDim = dim3(threads);
          c.stream = st;
          cudaLaunchAttribute a[1];
          a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
          a[0].val.programmaticStreamSerializationAllowed = 1;
          c.attrs = a;
          c.numAttrs = pdl;
          const unsigned *prev = buf + (s & 1) * 4096;
          unsigned *next = buf + ((s + 1) & 1) * 4096;
          CK(cudaLaunchKernelEx(&c, step, prev, next, pdl));
        }
        CK(cudaStreamEndCapture(st, &g));
        cudaGraphExec_t x;
        CK(cudaGraphInstantiate(&x, g, 0));
        float ms[7];
        for (int r = -2; r < 7; r++) {
          CK(cudaEventRecord(e0, st));
          CK(cudaGraphLaunch(x, st));
          CK(cudaEventRecord(e1, st));
          CK(cudaEventSynchronize(e1));
          if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
        }
        printf("kernel per step%s: %4d blocks of %d threads: %.2f µs a step\n", pdl ? ", PDL" : "     ", blocks, threads, median7(ms) * 1000 / N);
        CK(cudaGraphExecDestroy(x));
        CK(cudaGraphDestroy(g));
      }
    }
    if (blocks > p.multiProcessorCount * 2) continue; // the persistent grid must be resident at once
    float ms[7];
    for (int r = -2; r < 7; r++) {
      CK(cudaMemsetAsync(cnt, 0, 2 * sizeof(unsigned), st));
      CK(cudaEventRecord(e0, st));
      persistent<<<blocks, 128, 0, st>>>(buf, N, cnt, cnt + 1);
      CK(cudaEventRecord(e1, st));
      CK(cudaEventSynchronize(e1));
      CK(cudaGetLastError());
      if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    printf("one persistent kernel, grid barrier:  %4d blocks of 128 threads: %.2f µs a step\n", blocks, median7(ms) * 1000 / N);
    for (int v = 0; v < 2; v++) {
      for (int r = -2; r < 7; r++) {
        CK(cudaMemsetAsync(flags, 0, 4096 * sizeof(unsigned), st));
        CK(cudaEventRecord(e0, st));
        if (v == 0) {
          int steps = N;
          void *args[] = {&buf, &steps};
          CK(cudaLaunchCooperativeKernel((void *)persistent_cg, dim3(blocks), dim3(128), args, 0, st));
        } else {
          persistent_flags<<<blocks, 128, 0, st>>>(buf, N, flags);
        }
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        CK(cudaGetLastError());
        if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
      }
      printf("one persistent kernel, %s: %4d blocks of 128 threads: %.2f µs a step\n", v == 0 ? "grid.sync()  " : "input flags  ", blocks, median7(ms) * 1000 / N);
    }
  }
  return 0;
}
