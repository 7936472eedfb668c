// Package backend is the seam between the model graph and the kernels that
// execute it. The CPU backend (backend/cpu) implements it today; a CUDA
// backend implements the same interface.
package backend

import "github.com/upg-ai/upg/tensor"

// Backend runs the heavy operations of a forward pass.
type Backend interface {
	// Name identifies the backend and its kernel level, e.g. "cpu/avx512".
	Name() string
	// MatMul computes dst[t*R + r] = Σ_c W[r, c] · x[t*C + c] for t < n,
	// where R = w.Rows() and C = w.Cols(). Weights are decoded once per
	// call, not once per token, so prefill and batched decoding are cheap.
	MatMul(dst, x []float32, w tensor.Matrix, n int)
	// Close releases worker threads and device memory.
	Close()
}
