#!/bin/bash
# Run 251 (prepared 2026-12-07, thirty-first stop; not run): the one-token trellis kernel's split-K plan timed, on the
# committed kernels (no build: the upg carried has the fatbin embedded). Run 250's "auto" never reached the plan
# (the env parse dropped -1); the switch now takes UPG_CUDA_TRELLIS1_SPLIT=auto. Batch-1 decode of the Phi-4-shaped
# trellis file, 0 (planTrellis1) against auto (planTrellis1Split: down in 2 parts of 96-lane blocks, q|k|v in
# 128-lane blocks, one round each), alternated three times; ncu's per-launch times under auto; then the trellis
# tests as committed (their tensor-core bounds changed after run 250 without a GPU run).
# Prediction (H100): 103 → ~115-120 tok/s (q|k|v 40.5 → ~33 µs, down 68-88 → ~62 under ncu). If auto wins, make it
# the default (trellis1Split's initial value) and update TestPlanTrellis1's doc and benchmarks.md.
# Carry .cuda-carry/a: upg and cuda.test cross-built from HEAD with the fatbin embedded (xz), the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/a; U=/tmp/u; L=$OUT/run251.txt
t0=$(date +%s)
T=${T:-300}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
$U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2 3; do
  left 12 && b "b1-split0-$i" "--prompt-tokens 64 --gen-tokens 64" UPG_CUDA_TRELLIS1_SPLIT=0
  left 12 && b "b1-auto-$i" "--prompt-tokens 64 --gen-tokens 64" UPG_CUDA_TRELLIS1_SPLIT=auto
done
note b1
left 40 && {
  $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> $L 2>&1
  M='gpu__time_duration.sum,launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active'
  UPG_CUDA_TRELLIS1_SPLIT=auto timeout 40 ncu --metrics $M -k regex:'upg_gemv_trellis1|upg_splitk_sum' --launch-skip 20 --launch-count 14 --csv --page raw \
    $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 24 > /tmp/ncu-auto.csv 2>/dev/null
  echo "ncu rc $?" >> $L; cp /tmp/ncu-auto.csv $OUT/
}
left 60 && (cd backend/cuda && timeout 100 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis|TestTrellis|TestPlanTrellis|TestGPUStreamK|TestManifest' > /tmp/t.txt 2>&1; echo "tests rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt)" >> $L; grep -E -A2 -- '--- FAIL|^panic' /tmp/t.txt | grep -v -- '--- PASS' | head -16 >> $L)
note all
cat $L
