#!/bin/bash
# Run 195 (2026-12-05, sixteenth stop): layerskel's multiply alone (mode 3) with a warp's units two at a time,
# their decodes interleaved (-DLS_PAIR), against the one-at-a-time loop, alternated twice; ncu's scheduler and
# pipe summary of one -DLS_PAIR launch. Run as `bash backend/cuda/experiments/run195.call.sh`.
# Writes $OUT/{times,layerskel,ncu}.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/times.txt
nvcc -O3 -std=c++17 -arch=sm_90 -Xptxas -v $E/layerskel.cu -o /tmp/ls_one > /tmp/b1.txt 2>&1 &
p1=$!
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_PAIR -Xptxas -v $E/layerskel.cu -o /tmp/ls_pair > /tmp/b2.txt 2>&1 &
p2=$!
wait $p1 $p2
for v in 1 2; do echo "== build $v: $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | tr '\n' ' ')" >> $L/layerskel.txt; done
note builds
for round in 1 2; do for v in one pair; do
  echo "== round $round $v mode 3" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v 3 0 0 13 >> $L/layerskel.txt 2>&1
done; done
note timings
timeout -k 10 120 ncu --clock-control none --launch-count 1 --kernel-name regex:step \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
  --section InstructionStats /tmp/ls_pair 3 0 0 13 > $L/ncu.txt 2>&1
echo "ncu rc $?" >> $L/times.txt
note all
