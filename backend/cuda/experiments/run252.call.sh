#!/bin/bash
# Run 252 (2026-12-07, thirty-second stop): the one-token trellis kernel's lanes stage their next tile by cp.async
# (UPG_CUDA_TRELLIS1_STAGE, blocks ≤ 256 lanes, 32·K bytes a lane of dynamic shared memory), and run 251's
# question (UPG_CUDA_TRELLIS1_SPLIT=auto against 0), in one call. An sm_90 build of the working tree's kernels
# (N90) for the timings and tests while scripts/build-cuda.sh builds them whole (the fatbin to commit) beside it.
# Decode of the Phi-4-shaped trellis file after 64 positions, alternated twice: committed kernels (stage 0, split
# 0 = main), N90 staged, committed + auto, N90 staged + auto, N90 unstaged (the new kernel's old path).
# Predictions (H100): staged +10-15% (103 → ~115); auto +10-15%; both ~125; batch 32 as main's (~1,287).
# Run it from branch trellis-stage (the staged kernel and its Go side; main keeps run 250's kernel until it is built).
# Carry .cuda-carry/b: upg and cuda.test cross-built from that branch with kernels.fatbin emptied; the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/b; U=/tmp/u; L=$OUT/run252.txt; N=/tmp/n90/kernels.fatbin; F0=/tmp/committed.fatbin
t0=$(date +%s)
T=${T:-570}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
cp backend/cuda/kernels.fatbin $F0
# QUICK=1 (a call of ~3 minutes): no full build; main against staged only, then the split test
QUICK=${QUICK:-0}
BP=
if [ $QUICK != 1 ]; then
  mkdir -p /tmp/nb && (bash scripts/build-cuda.sh /tmp/nb > /tmp/build.txt 2>&1 && cp /tmp/nb/kernels.fatbin /tmp/nb/kernels.manifest.json $OUT/; echo "full build rc $? $(( $(date +%s)-t0 )) s" >> $L) &
  BP=$!
fi
[ -f /tmp/pt.upg ] || ( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
SP=$!
mkdir -p /tmp/n90 && (cd backend/cuda/kernels && nvcc -fatbin -O3 -std=c++17 -lineinfo -gencode=arch=compute_90,code=sm_90 -Xptxas -v upg.cu -o $N > /tmp/n90.txt 2>&1); rc=$?
echo "sm_90 build rc $rc $(( $(date +%s)-t0 )) s" >> $L
grep -A4 "Compiling entry function 'upg_gemv_trellis1" /tmp/n90.txt | grep -E "Compiling|Used|spill" >> $L
if [ $rc != 0 ]; then grep -E "error" /tmp/n90.txt | head -20 >> $L; [ -n "$BP" ] && kill $BP; cat $L; exit 0; fi
wait $SP
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
A="--prompt-tokens 64 --gen-tokens 64"
if [ $QUICK = 1 ]; then
  for i in 1 2; do
    left 14 && b "main-$i" "$A" UPG_CUDA_FATBIN=$F0 UPG_CUDA_TRELLIS1_STAGE=0 UPG_CUDA_TRELLIS1_SPLIT=0
    left 14 && b "staged-$i" "$A" UPG_CUDA_FATBIN=$N UPG_CUDA_TRELLIS1_STAGE=1 UPG_CUDA_TRELLIS1_SPLIT=0
  done
  left 30 && (cd backend/cuda && UPG_CUDA_FATBIN=$N timeout $(( T - ($(date +%s)-t0) - 5 )) $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis1Split|TestGPUTrellisGemv' > /tmp/t.txt 2>&1; echo "tests rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t.txt | grep -v -- '--- PASS' | head -12 >> $L)
  note quick; cat $L; exit 0
fi
for i in 1 2; do
  left 14 && b "main-$i" "$A" UPG_CUDA_FATBIN=$F0 UPG_CUDA_TRELLIS1_STAGE=0 UPG_CUDA_TRELLIS1_SPLIT=0
  left 14 && b "staged-$i" "$A" UPG_CUDA_FATBIN=$N UPG_CUDA_TRELLIS1_STAGE=1 UPG_CUDA_TRELLIS1_SPLIT=0
  left 14 && b "auto-$i" "$A" UPG_CUDA_FATBIN=$F0 UPG_CUDA_TRELLIS1_STAGE=0 UPG_CUDA_TRELLIS1_SPLIT=auto
  left 14 && b "staged+auto-$i" "$A" UPG_CUDA_FATBIN=$N UPG_CUDA_TRELLIS1_STAGE=1 UPG_CUDA_TRELLIS1_SPLIT=auto
done
left 14 && b "n90-unstaged" "$A" UPG_CUDA_FATBIN=$N UPG_CUDA_TRELLIS1_STAGE=0 UPG_CUDA_TRELLIS1_SPLIT=0
note b1
# batch 32 (the GEMMs now share trellis_x4, the activation load run 249's branch shared with an 18% loss)
for i in 1 2; do
  left 14 && b "b32-main-$i" "--prompt-tokens 64 --gen-tokens 16 --batch 32" UPG_CUDA_FATBIN=$F0
  left 14 && b "b32-n90-$i" "--prompt-tokens 64 --gen-tokens 16 --batch 32" UPG_CUDA_FATBIN=$N
done
left 80 && (cd backend/cuda && UPG_CUDA_FATBIN=$N timeout 150 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis|TestTrellis|TestPlanTrellis|TestGPUStreamK' > /tmp/t.txt 2>&1; echo "tests rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt) skip $(grep -c -- '--- SKIP' /tmp/t.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t.txt | grep -v -- '--- PASS' | head -16 >> $L)
note tests
left 60 && { (cd backend/cuda && UPG_CUDA_FATBIN=$N timeout 60 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellis1Split/(7x5120|36000x160|64x512).*' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); grep -m5 -E "Invalid|Program hit|FAIL" /tmp/mc.txt >> $L; }
left 30 && {
  [ -f /tmp/pt2.upg ] || $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> /tmp/synth.txt 2>&1
  M='gpu__time_duration.sum,launch__grid_size,launch__block_size,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active'
  UPG_CUDA_FATBIN=$N UPG_CUDA_TRELLIS1_STAGE=1 UPG_CUDA_TRELLIS1_SPLIT=auto timeout 40 ncu --metrics $M -k regex:'upg_gemv_trellis1|upg_splitk_sum' --launch-skip 20 --launch-count 14 --csv --page raw \
    $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 24 > /tmp/ncu.csv 2>/dev/null
  echo "ncu rc $?" >> $L; cp /tmp/ncu.csv $OUT/
}
wait $BP
grep -E "error" /tmp/build.txt | head -10 >> $L
note all
cat $L
