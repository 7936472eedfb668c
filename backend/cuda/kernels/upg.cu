// The one translation unit scripts/build-cuda.sh compiles into
// backend/cuda/kernels.fatbin (one module: the driver loads it once).
// UPG_SRC numbers the files for the step trace's call sites (trace.go).
#define UPG_SRC 1
#include "gemv.cu"
#undef UPG_SRC
#define UPG_SRC 2
#include "ops.cu"
#undef UPG_SRC
#define UPG_SRC 3
#include "fused.cu"
#undef UPG_SRC
#define UPG_SRC 5
#include "mma.cu"
#undef UPG_SRC
#define UPG_SRC 4
#include "trellis.cu" // after mma.cu: its GEMM uses mma.cu's ldmatrix helpers
#undef UPG_SRC
#define UPG_SRC 6
#include "sparse.cu"
#undef UPG_SRC
#define UPG_SRC 7
#include "attn.cu"
