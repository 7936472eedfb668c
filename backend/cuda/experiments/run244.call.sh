#!/bin/bash
# Run 244 (2026-12-06, twenty-ninth stop): the committed build end to end — upg and cuda.test cross-built from HEAD
# (17181b3 or later) with the embedded kernels (no UPG_CUDA_FATBIN), the trellis kernels of run 243 on by default:
# the Phi-4-shaped trellis file's bench with no switches against the old kernels (UPG_CUDA_TRELLIS1=0
# UPG_CUDA_TRELLIS_MMA=0), alternated, then the manifest, trellis and greedy-vs-CPU tests on the embedded fatbin.
# Prediction: as run 243 on an H200 (prefill ~1,548, decode ~103.6); on an H100 somewhat less. Carry .cuda-carry/v:
# upg.xz, cuda.test.xz, cl100k_base.tiktoken.gz.
set -u
R=$PWD; C=$R/.cuda-carry/v; U=/tmp/u; L=$OUT/run244.txt
t0=$(date +%s)
T=${T:-300}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
unset UPG_CUDA_FATBIN
$U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L
b() { echo "$1 $(env "${@:2}" timeout -k 5 100 $U/upg bench --device cuda --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -4 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2; do
  left 40 && b default-$i X=1
  left 60 && b old-$i UPG_CUDA_TRELLIS1=0 UPG_CUDA_TRELLIS_MMA=0
done
note bench
left 60 && { (cd backend/cuda && timeout $(( T - 10 - ($(date +%s)-t0) )) $U/cuda.test -test.count=1 -test.run 'TestManifest|TestGPUTrellis|TestTrellis|TestGPUGreedyMatchesCPU' -test.v > /tmp/t1.txt 2>&1; echo "tests rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/t1.txt) fail $(grep -c -- '--- FAIL' /tmp/t1.txt) skip $(grep -c -- '--- SKIP' /tmp/t1.txt)" >> $L
  grep -E -A2 -- '--- FAIL|^panic' /tmp/t1.txt | head -12 >> $L; gzip -c /tmp/t1.txt > $OUT/t1.txt.gz; }
note all
cat $L
