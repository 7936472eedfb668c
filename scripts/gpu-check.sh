#!/usr/bin/env bash
# The GPU machine's whole check in one call (it has nvcc and a GPU but no Go):
# builds the kernels, runs the GPU tests and compute-sanitizer, the
# multi-token microbenchmark, greedy CPU-vs-GPU text, the GPU-vs-CPU KL over
# an evaluation text, and `upg bench` on Phi-4-shaped synthetic models, and
# writes the logs and the rebuilt kernels to $OUT (default /tmp/gpu-out).
#
# Prepare here (Go), then carry DIR to the GPU machine:
#   mkdir -p DIR
#   CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go test -c -o DIR/cuda.test ./backend/cuda
#   CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o DIR/upg ./cmd/upg
#   cp ../shared/corpus/miniphi_eval_250k.txt DIR/            (optional: the KL check)
#   cp ../shared/tokenizers/tiktoken/cl100k_base.tiktoken DIR/ (for upg synth --arch phi4)
#   go build -o DIR/upg-old ./cmd/upg at an older commit   (optional: its benches alternate with the new)
# and run from the repository root there:
#   scripts/gpu-check.sh DIR
# The kernels built there (kernels.fatbin.gz, kernels.manifest.json in $OUT)
# go back into backend/cuda/ (gunzip the fatbin) and are committed.
set -uo pipefail
C=$(cd "${1:?usage: scripts/gpu-check.sh DIR}" && pwd)
R=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
ts() { echo "[t=$(($(date +%s) - T0))s] $*"; }
cd "$R"
if [ -f "$C/cl100k_base.tiktoken" ]; then
  mkdir -p ../shared/tokenizers/tiktoken && cp "$C/cl100k_base.tiktoken" ../shared/tokenizers/tiktoken/
fi
("$C/upg" synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q >/tmp/synth.log 2>&1
 "$C/upg" synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q >>/tmp/synth.log 2>&1) &
SP=$!
mkdir -p /tmp/kfull
bash scripts/build-cuda.sh /tmp/kfull >"$OUT/build.log" 2>&1 || { ts "kernel build failed"; tail -30 "$OUT/build.log"; exit 1; }
ts "kernels built"
gzip -c /tmp/kfull/kernels.fatbin >"$OUT/kernels.fatbin.gz"
cp /tmp/kfull/kernels.manifest.json "$OUT/"
export UPG_CUDA_FATBIN=/tmp/kfull/kernels.fatbin UPG_REQUIRE_GPU=1
(cd backend/cuda && timeout 300 "$C/cuda.test" -test.run 'TestGPU|TestTrellis|TestKernelSignatures|TestWarpsFor' \
  -test.skip 'TestGPUBench|TestGPUDecodeBench' -test.v >"$OUT/tests.log" 2>&1)
ts "GPU tests rc=$? ($(grep -c -- '--- PASS' "$OUT/tests.log") passed)"
grep -E "^--- FAIL|int8 paths|float paths" "$OUT/tests.log" | head -12
(cd backend/cuda && UPG_CUDA_STREAMK=all timeout 200 "$C/cuda.test" -test.run 'TestGPUGreedyMatchesCPU|TestGPUFusedMatchesUnfused' \
  -test.v >"$OUT/tests-streamk.log" 2>&1)
ts "GPU end-to-end tests with every one-token GEMV stream-K: rc=$? ($(grep -c -- '--- PASS' "$OUT/tests-streamk.log") passed)"
(cd backend/cuda && timeout 300 compute-sanitizer --tool memcheck "$C/cuda.test" \
  -test.run 'TestGPUDenseGemv/.*_n70|TestGPUStreamKGemv/67x640|TestGPUTrellis|TestGPUAttention|TestGPUFallbackAndOverlay|TestGPUSampleGreedyAndEdges' >/tmp/san.log 2>&1)
ts "compute-sanitizer: $(grep -E 'ERROR SUMMARY' /tmp/san.log)"
(cd backend/cuda && UPG_CUDA_BENCH=1 timeout 120 "$C/cuda.test" -test.run 'TestGPUBenchMany|TestGPUBenchSample' -test.v >"$OUT/many.log" 2>&1)
grep -E "tok/s| µs" "$OUT/many.log"
P="$(head -c 3000 README.md)"
for dev in cpu cuda; do
  timeout 60 "$C/upg" run --device $dev --model models/miniphi-29m.upg --temperature 0 --max-tokens 48 "$P" >/tmp/run-$dev.txt 2>/dev/null
done
cmp -s /tmp/run-cpu.txt /tmp/run-cuda.txt && ts "greedy text: GPU = CPU" || ts "greedy text: GPU and CPU part (near-ties?)"
if [ -f "$C/miniphi_eval_250k.txt" ]; then
  timeout 200 "$C/upg" eval --device cuda --ref-device cpu --model models/miniphi-29m.upg --ref models/miniphi-29m.upg \
    --text "$C/miniphi_eval_250k.txt" --ctx 512 --json >"$OUT/kl.json" 2>/dev/null
  ts "GPU vs CPU: $(cat "$OUT/kl.json")"
fi
wait $SP
ts "synthetic models: $(tail -2 /tmp/synth.log | tr '\n' ' ')"
bench() { # name file args...
  local v=$1 m=$2
  shift 2
  echo "== $v $*" >>"$OUT/bench.log"
  timeout 120 "$C/upg" bench --device cuda --model "$m" --prompt-tokens 512 "$@" >>"$OUT/bench.log" 2>&1
  ts "bench $v: $(tail -4 "$OUT/bench.log" | grep -E 'prefill|decode' | tr -s ' ' | tr '\n' ' ')"
}
benchold() { # name file args...: the old binary's kernels and code, when DIR has one
  [ -x "$C/upg-old" ] || return 0
  local v=$1 m=$2
  shift 2
  echo "== old $v $*" >>"$OUT/bench.log"
  env -u UPG_CUDA_FATBIN timeout 120 "$C/upg-old" bench --device cuda --model "$m" --prompt-tokens 512 "$@" >>"$OUT/bench.log" 2>&1
  ts "bench old $v: $(tail -4 "$OUT/bench.log" | grep -E 'prefill|decode' | tr -s ' ' | tr '\n' ' ')"
}
benchold dense /tmp/p.upg --gen-tokens 64
bench dense /tmp/p.upg --gen-tokens 64
[ -n "${QUICK:-}" ] || UPG_CUDA_PDL=0 bench dense-nopdl /tmp/p.upg --gen-tokens 64
benchold dense-batch32 /tmp/p.upg --gen-tokens 32 --batch 32
bench dense-batch32 /tmp/p.upg --gen-tokens 32 --batch 32
[ -n "${QUICK:-}" ] || UPG_CUDA_SPLITK=0 bench dense-batch32-nosplitk /tmp/p.upg --gen-tokens 32 --batch 32
S="--temperature 0.7 --top-k 40 --top-p 0.95 --min-p 0.05"
bench dense-sampled /tmp/p.upg --gen-tokens 64 $S
[ -n "${QUICK:-}" ] || UPG_CUDA_HOST_SAMPLE=1 bench dense-sampled-host /tmp/p.upg --gen-tokens 64 $S
bench dense-temp1 /tmp/p.upg --gen-tokens 64 --temperature 1
[ -n "${QUICK:-}" ] || UPG_CUDA_HOST_SAMPLE=1 bench dense-temp1-host /tmp/p.upg --gen-tokens 64 --temperature 1
bench dense-batch32-sampled /tmp/p.upg --gen-tokens 32 --batch 32 $S
[ -n "${QUICK:-}" ] || UPG_CUDA_HOST_SAMPLE=1 bench dense-batch32-sampled-host /tmp/p.upg --gen-tokens 32 --batch 32 $S
timeout 60 "$C/upg" run --device cuda --model models/miniphi-29m.upg --seed 7 --max-tokens 48 "It was a dark and stormy night; the" >"$OUT/run-sampled.txt" 2>&1
ts "sampled text (device, seed 7): $(head -c 300 "$OUT/run-sampled.txt" | tr '\n' ' ')"
[ -n "${QUICK:-}" ] || bench trellis /tmp/pt.upg --gen-tokens 64
[ -n "${QUICK:-}" ] || UPG_GPU_MEMORY=12GiB bench dense-12GiB /tmp/p.upg --gen-tokens 64
grep -E "device memory" "$OUT/bench.log" | head -3
# per-kernel GPU time (UPG_CUDA_PROFILE: events around every launch, graphs off); QUICK=1 skips it
# and the comparison benches above
[ -n "${QUICK:-}" ] || for b in 1 32; do
  UPG_CUDA_PROFILE=1 timeout 120 "$C/upg" bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 \
    --batch $b >/dev/null 2>>"$OUT/profile.log"
done
# the step trace (UPG_CUDA_TRACE: graphs and PDL on; each kernel's time to the next's start)
for b in 1 32; do
  UPG_CUDA_TRACE=1 timeout 120 "$C/upg" bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 \
    --batch $b >/dev/null 2>"$OUT/trace-b$b.log"
done
ts "step trace: $(head -1 "$OUT/trace-b1.log")"
[ -f "$OUT/profile.log" ] && ts "kernel profile: $(grep -c calls "$OUT/profile.log") rows in profile.log"
ts "done: logs and kernels in $OUT"
