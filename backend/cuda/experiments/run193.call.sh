#!/bin/bash
# Run 193 (2026-12-05, sixteenth stop): after run 192 (IDP.4A issues beside the decode's LOP3/SHF/PRMT, not on
# their pipe; mma in place of dp4a slower), is the multiply alone (layerskel mode 3) latency-bound? The unit's
# 32 IDP.4A as 1, 2 or 4 chains (-DLS_ACC), at 512 and 1,024 threads, modes 3 and 6; pipes.cu timed over each
# SM's span. Carry nothing beyond the tree; run as `bash backend/cuda/experiments/run193.call.sh`.
# Writes $OUT/{times,pipes,layerskel}.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/times.txt
nvcc -O3 -std=c++17 -arch=sm_90 $E/pipes.cu -o /tmp/pipes > /tmp/pipes-build.txt 2>&1 &
p0=$!
pids=
for v in "512 1" "512 2" "512 4" "1024 1" "1024 2"; do
  set -- $v
  nvcc -O3 -std=c++17 -arch=sm_90 -DLS_THREADS=$1 -DLS_ACC=$2 -Xptxas -v $E/layerskel.cu -o /tmp/ls_$1_$2 > /tmp/ls-build-$1_$2.txt 2>&1 &
  pids="$pids $!"
done
wait $p0
tail -5 /tmp/pipes-build.txt >> $L/pipes.txt
timeout -k 5 60 /tmp/pipes >> $L/pipes.txt 2>&1
note pipes
wait $pids
for v in 512_1 512_2 512_4 1024_1 1024_2; do
  echo "== build $v: $(grep -A2 "properties for _Z4step" /tmp/ls-build-$v.txt | tr '\n' ' ')" >> $L/layerskel.txt
  [ -x /tmp/ls_$v ] || tail -30 /tmp/ls-build-$v.txt >> $L/layerskel.txt
done
note builds
for round in 1 2; do for m in 3 6; do for v in 512_1 512_2 512_4 1024_1 1024_2; do
  echo "== round $round $v mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v $m 0 0 13 >> $L/layerskel.txt 2>&1
  rc=$?
  { [ $rc = 124 ] || [ $rc = 137 ]; } && echo "timed out" >> $L/layerskel.txt
done; done; done
note all
