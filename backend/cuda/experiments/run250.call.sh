#!/bin/bash
# Run 250 (2026-12-07, thirty-first stop): the one-token trellis kernel with split-K parts and a plan fitted to
# run 249's ncu times (planTrellis1Split: down in two parts of 96-lane blocks, q|k|v in 128-lane blocks, both in
# one round), built whole by scripts/build-cuda.sh (the fatbin to commit). Then, in order of need: the trellis
# tests (TestGPUTrellis1Split new) on the build; batch-1 decode of the Phi-4-shaped trellis file with
# UPG_CUDA_TRELLIS1_SPLIT=-1 against 0, alternated twice; batch 32 and prefill 512 on the committed fatbin (run
# 247's build) against this build, alternated (run 249's branch build decoded batch 32 at 1,059 where run 247 had
# 1,286: the branch's kernel or the card?); steps of 2 and 3 tokens with UPG_CUDA_TRELLIS_MMA_MIN 2 against the new
# default 4; memcheck over the split cases; ncu's per-launch times with the new plan.
# Predictions (H100): decode 104.5 → ~115-120 tok/s (q|k|v 40.5 → ~33 µs, down 88.4 → ~62 under ncu); batch 32 on
# this build = the committed fatbin's (the bf16 kernel's source is run 247's).
# Carry .cuda-carry/w: upg and cuda.test cross-built from this tree with kernels.fatbin emptied; the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/w; U=/tmp/u; L=$OUT/run250.txt; F=/tmp/nb/kernels.fatbin; F0=$R/backend/cuda/kernels.fatbin
t0=$(date +%s)
T=${T:-570} # the call's budget: pass T=<seconds left after the start> when less
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
cp $F0 /tmp/committed.fatbin; F0=/tmp/committed.fatbin
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L
  $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> /tmp/synth.txt 2>&1 ) &
mkdir -p /tmp/nb && bash scripts/build-cuda.sh /tmp/nb > /tmp/build.txt 2>&1; rc=$?; echo "build rc $rc $(( $(date +%s)-t0 )) s" >> $L
if [ $rc != 0 ]; then grep -E "error|rror" /tmp/build.txt | head -30 >> $L; wait; note all; cat $L; exit 0; fi
cp /tmp/nb/kernels.fatbin /tmp/nb/kernels.manifest.json $OUT/
wait
(cd backend/cuda && UPG_CUDA_FATBIN=$F timeout 150 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis|TestTrellis|TestPlanTrellis' > /tmp/t.txt 2>&1; echo "trellis tests rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt) skip $(grep -c -- '--- SKIP' /tmp/t.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t.txt | head -16 >> $L)
note tests
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2; do
  left 12 && b "b1-split0-$i" "--prompt-tokens 64 --gen-tokens 64" UPG_CUDA_FATBIN=$F UPG_CUDA_TRELLIS1_SPLIT=0
  left 12 && b "b1-auto-$i" "--prompt-tokens 64 --gen-tokens 64" UPG_CUDA_FATBIN=$F UPG_CUDA_TRELLIS1_SPLIT=-1
done
note b1
left 40 && { (cd backend/cuda && UPG_CUDA_FATBIN=$F timeout 60 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellis1Split/(7x5120|36000x160|64x512).*' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); grep -m5 -E "Invalid|Program hit|FAIL" /tmp/mc.txt >> $L; }
for i in 1 2; do
  left 12 && b "b32-committed-$i" "--prompt-tokens 64 --gen-tokens 16 --batch 32" UPG_CUDA_FATBIN=$F0
  left 12 && b "b32-new-$i" "--prompt-tokens 64 --gen-tokens 16 --batch 32" UPG_CUDA_FATBIN=$F
done
note b32
for B in 3 2; do
  for M in 4 2; do left 10 && b "b$B-min$M" "--prompt-tokens 64 --gen-tokens 16 --batch $B" UPG_CUDA_FATBIN=$F UPG_CUDA_TRELLIS_MMA_MIN=$M; done
done
note min
left 30 && {
  M='gpu__time_duration.sum,launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active'
  UPG_CUDA_FATBIN=$F UPG_CUDA_TRELLIS1_SPLIT=-1 timeout 40 ncu --metrics $M -k regex:'upg_gemv_trellis1|upg_splitk_sum' --launch-skip 20 --launch-count 12 --csv --page raw \
    $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 24 > /tmp/ncu-auto.csv 2>/dev/null
  echo "ncu rc $?" >> $L; cp /tmp/ncu-auto.csv $OUT/
}
for i in 1; do
  left 15 && b "prefill-committed-$i" "--prompt-tokens 512 --gen-tokens 4" UPG_CUDA_FATBIN=$F0
  left 15 && b "prefill-new-$i" "--prompt-tokens 512 --gen-tokens 4" UPG_CUDA_FATBIN=$F
done
note all
cat $L
