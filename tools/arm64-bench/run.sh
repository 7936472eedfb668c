#!/usr/bin/env bash
# Measures the NEON kernels on a real arm64 machine (Apple Silicon, Graviton,
# Snapdragon, Raspberry Pi) against the instruction-count model in
# docs/benchmarks.md ("ARM64: instruction-count model"). Run from the
# repository root; needs Go ≥ 1.26 and, for the full-model step, ~6 GB of free
# disk and memory (skip it with SKIP_MODEL=1).
#
#   ./tools/arm64-bench/run.sh            # prints everything; paste it into an issue
#
# 1. the machine: CPU, cores, dot-product support (the kernel level picked);
# 2. the single-core compute ceiling of the decode kernel (L2-resident matrix,
#    DenseCompute) for 2/3/4-bit codes: the model predicts it;
# 3. streaming from DRAM on all cores (DenseDRAM) and the machine's read
#    bandwidth (upg bench): % of the roofline;
# 4. the Phi-4-shaped synthetic model: prefill and decode tok/s (upg bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== machine"
uname -m
if command -v sysctl >/dev/null 2>&1 && sysctl -n machdep.cpu.brand_string >/dev/null 2>&1; then
  sysctl -n machdep.cpu.brand_string hw.physicalcpu hw.perflevel0.physicalcpu hw.perflevel1.physicalcpu 2>/dev/null || true
  sysctl -a 2>/dev/null | grep -E 'FEAT_DotProd|FEAT_I8MM' || true
elif command -v lscpu >/dev/null 2>&1; then
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|MHz|Flags' || true
fi
go version
go build -o /tmp/upg-arm64-bench ./cmd/upg
echo "== kernel level: $(go run ./tools/arm64-bench/level.go)"
echo "== decode kernel compute ceiling, one core (weights GB/s = MB/s / 1000)"
go test ./backend/cpu -run XXX -bench 'DenseCompute/neon' -benchtime 200x -count 3
echo "== streaming from DRAM, all cores"
go test ./backend/cpu -run XXX -bench 'DenseDRAM/neon' -benchtime 10x -count 3
if [ "${SKIP_MODEL:-0}" = 1 ]; then exit 0; fi
model=${MODEL:-/tmp/phi4-synth.upg}
if [ ! -f "$model" ]; then
  echo "== writing $model (Phi-4 shapes, 3.2 bpw, random weights)"
  /tmp/upg-arm64-bench synth --arch phi4 --target-bpw 3.2 --out "$model"
fi
echo "== upg bench (512-token prompt, 128 decoded tokens)"
/tmp/upg-arm64-bench bench --model "$model" --json
echo "== upg bench at short context"
/tmp/upg-arm64-bench bench --model "$model" --prompt-tokens 1 --gen-tokens 64 --json
