// Package linalg holds the dense float64 algebra the compressor's GPTQ
// encoder runs on a layer's Hessians: a blocked, packed matrix multiply
// (AVX-512 or AVX2/FMA micro-kernels on amd64, portable Go elsewhere), and on it a
// blocked Cholesky factorisation and a blocked inverse of a lower
// triangular matrix.
//
// Matrices are row-major with an explicit leading dimension (the distance
// between rows, in elements), as in BLAS. At Phi-4's widest input (17,920
// columns) a factorisation is ~2·10¹² flops: the column-by-column forms
// the encoder used before streamed the whole triangle from memory once a
// column; the blocked forms here do their flops in cache-sized tiles
// (docs/benchmarks.md, "Compression throughput and memory").
package linalg
