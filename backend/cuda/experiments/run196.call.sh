#!/bin/bash
# Run 196 (2026-12-05, sixteenth stop): what layerskel's mode-3 warps stall on (ncu's per-issue stall ratios),
# the one-at-a-time loop and -DLS_PAIR. Run as `bash backend/cuda/experiments/run196.call.sh`. Writes $OUT/ncu-*.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo $E/layerskel.cu -o /tmp/ls_one > /dev/null 2>&1 &
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo -DLS_PAIR $E/layerskel.cu -o /tmp/ls_pair > /dev/null 2>&1 &
wait
for v in one pair; do
  timeout -k 10 120 ncu --clock-control none --launch-count 1 --kernel-name regex:step \
    --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' /tmp/ls_$v 3 0 0 13 > $L/ncu-$v.txt 2>&1
  echo "ncu $v rc $?" >> $L/ncu-$v.txt
done
