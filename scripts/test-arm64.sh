#!/usr/bin/env bash
# ARM64 tests on an x86 machine (issue 16): cross-compiles the CPU backend's
# and the model's tests and runs them under qemu-user. `-cpu max` has the
# Armv8.2 dot product (the SDOT kernels); `-cpu cortex-a72` does not (the
# SMULL/SMLAL2/SADALP fallback). Every NEON kernel is checked: the matrix
# kernels against the codec's reference decoder, the attention and RMSNorm
# kernels against the Go loops, linalg's float64 micro-kernel (the
# compressor's) against its portable one, and the golden logits through the
# arm64 build.
# Needs qemu-user-static and, since main's CUDA backend links the system's
# driver dynamically on linux/arm64 (dynamic test binaries), the arm64
# dynamic loader (Debian: apt-get install qemu-user-static
# libc6-arm64-cross; QEMU_LD_PREFIX points qemu at it).
# On the 2-core development machine: about 1.5 min for the kernel runs and
# 2-3 min for the golden logits.
set -euo pipefail
cd "$(dirname "$0")/.."
QEMU="${QEMU:-qemu-aarch64-static}"
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$tmp/cpu.test" ./backend/cpu
GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$tmp/model.test" ./model
GOARCH=arm64 CGO_ENABLED=0 go test -c -o "$tmp/linalg.test" ./linalg
kernels='^(TestKernelsMatchOracle|TestTrellisKernels|TestTrellisNEONWithoutDotProd|TestArgOffsets|TestDecodeRow|TestMatMulAllocs|TestKernelEnv|TestRotateMatchesCodec|TestParallelForCovers|TestQuantQ8|TestAttnKernelsQ8|TestKVQ8Attention|TestAttnKernels|TestRMSNormKernel|TestQuantizeKernel)$'
for c in max cortex-a72; do
  echo "-- qemu -cpu $c: backend/cpu kernels"
  (cd backend/cpu && "$QEMU" -cpu "$c" "$tmp/cpu.test" -test.run "$kernels")
done
echo "-- qemu -cpu max: linalg (the compressor's NEON micro-kernel against the portable one and the triple loop)"
(cd linalg && "$QEMU" -cpu max "$tmp/linalg.test")
echo "-- qemu -cpu max: model golden logits"
(cd model && "$QEMU" -cpu max "$tmp/model.test" -test.run '^(TestGoldenLogits|TestCompressedDecodeEveryLevel)$')
