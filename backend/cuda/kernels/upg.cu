// The one translation unit scripts/build-cuda.sh compiles into
// backend/cuda/kernels.fatbin (one module: the driver loads it once).
#include "gemv.cu"
#include "ops.cu"
#include "fused.cu"
#include "trellis.cu"
#include "mma.cu"
