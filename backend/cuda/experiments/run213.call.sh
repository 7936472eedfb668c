#!/bin/bash
# Run 213 (2026-12-05, eighteenth stop): run 212 found a --rotate-residual file's prefill 12% slower on the GPU
# (7,441-7,461 against 8,457-8,470 tok/s, H100): its readers have no rotation, so their quantization plan had
# segments one group wide (128), and upg_rms_rotq reads the whole row in every segment's block (40 a token at
# Phi-4's width, not 5). newQuantPlan now gives unrotated matrices segments as wide as a rotated one's (Go only).
# Carry .cuda-carry/c (upg.gz, cuda.test.gz built with -ldflags='-s -w' from the working tree, cl100k_base.tiktoken.gz);
# run as `bash backend/cuda/experiments/run213.call.sh`. Writes $OUT/run213.txt.
#   1. the GPU suite's rotation, fusion, dense and greedy tests on the change
#   2. Phi-4 synth files, plain and --rotate-residual: prefill and decode after 512, alternated twice
#      (prediction: pr's prefill back to p's, its decode within ±0.7% of p's)
set -u
R=$PWD; C=$R/.cuda-carry/c; L=$OUT/run213.txt
t0=$(date +%s)
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1
  $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/pr.upg -q >> /tmp/synth.txt 2>&1
  echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
spid=$!
(cd backend/cuda && timeout 300 $C/cuda.test -test.count=1 -test.run 'TestGPURotq|TestGPUFused|TestGPUDense|TestGPUGreedyMatchesCPU|TestGPUSwiglu|TestGPUPrefill|TestGPUGemm' > /tmp/suite.txt 2>&1; echo "suite rc $?" >> $L)
grep -c -- '^--- PASS\|^    --- PASS' /tmp/suite.txt >> $L; grep -- '--- FAIL' /tmp/suite.txt | head -20 >> $L; tail -3 /tmp/suite.txt >> $L
echo "suite done $(( $(date +%s)-t0 )) s" >> $L
wait $spid
for i in 1 2; do
  for f in p pr; do
    echo "== $f round $i $(timeout 120 $C/upg bench --device cuda --model /tmp/$f.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode) ' | tr -s ' ' | tr '\n' ' ')" >> $L
  done
done
echo "done $(( $(date +%s)-t0 )) s" >> $L
