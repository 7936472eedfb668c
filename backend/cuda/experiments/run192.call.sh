#!/bin/bash
# Run 192 (2026-12-05, sixteenth stop): is the one-token multiply's floor set by one integer pipe, and what
# does tensor-core mma in place of dp4a give the persistent skeleton? Carry .cuda-carry with upg.gz
# (cross-built from this commit) and cl100k_base.tiktoken.gz; run as `bash backend/cuda/experiments/run192.call.sh`.
#   1. (CPU, background) the Phi-4-shaped 3.2-bpw file
#   2. pipes.cu: PRMT, LOP3, IDP.4A, SHF, IMAD, FFMA, IADD3 throughput alone and in pairs
#   3. layerskel.cu built as is (dp4a) and with -DLS_MMA, 512 threads: modes 3 (multiply alone), 6 (stream and
#      multiply), 5 (the step), alternated twice
#   4. main's decode after 512 positions on this card, twice (the standing number at this commit)
# Writes $OUT/{times,pipes,layerskel,bench}.txt.
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader >> $L/times.txt
cd $C && gunzip -kf upg.gz cl100k_base.tiktoken.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
spid=$!
nvcc -O3 -std=c++17 -arch=sm_90 $E/pipes.cu -o /tmp/pipes > /tmp/pipes-build.txt 2>&1 &
p1=$!
nvcc -O3 -std=c++17 -arch=sm_90 -Xptxas -v $E/layerskel.cu -o /tmp/ls_dp4a > /tmp/ls-build-dp4a.txt 2>&1 &
p2=$!
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_MMA -Xptxas -v $E/layerskel.cu -o /tmp/ls_mma > /tmp/ls-build-mma.txt 2>&1 &
p3=$!
wait $p1
tail -5 /tmp/pipes-build.txt >> $L/pipes.txt
timeout -k 5 60 /tmp/pipes >> $L/pipes.txt 2>&1
note pipes
wait $p2 $p3
for v in dp4a mma; do
  echo "== build $v: $(grep -A2 "properties for _Z4step" /tmp/ls-build-$v.txt | tr '\n' ' ')" >> $L/layerskel.txt
  [ -x /tmp/ls_$v ] || tail -30 /tmp/ls-build-$v.txt >> $L/layerskel.txt
done
note builds
for round in 1 2; do for m in 3 6 5; do for v in dp4a mma; do
  echo "== round $round $v mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v $m 0 0 13 >> $L/layerskel.txt 2>&1
  rc=$?
  { [ $rc = 124 ] || [ $rc = 137 ]; } && echo "timed out" >> $L/layerskel.txt
done; done; done
note layerskel
wait $spid
for round in 1 2; do
  timeout -k 10 90 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 > /tmp/bench.txt 2>&1
  echo "512 $round rc $? $(grep -E '^(decode|prefill|read) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ')" >> $L/bench.txt
done
grep -iE 'bandwidth|device' /tmp/bench.txt | head -4 >> $L/bench.txt
note all
