// Package cuda is the NVIDIA GPU backend. It calls the CUDA driver API
// (libcuda.so.1) through purego, so building needs neither cgo nor the CUDA
// toolkit, and a machine without a GPU gets one clear error at run time.
// One goroutine locked to its OS thread owns the device's context and
// issues every driver call, in order, on one stream.
//
// The kernels are CUDA C++ under kernels/, compiled by
// scripts/build-cuda.sh into kernels.fatbin (sm_80, sm_86, sm_89, sm_90
// machine code plus compute_80 PTX) and embedded; kernels.manifest.json
// records the hashes of sources, script and output and ptxas's register
// counts, and the tests check that the embedded fatbin matches the sources.
package cuda
