#!/bin/bash
# Run 198 (2026-12-05, sixteenth stop): the heads' merge in layerskel's chain read in two batched L2 round trips
# (-DLS_MERGE1) instead of one dependent load a split, both without rotations (-DLS_NOROT, run 197); modes 4
# and 5, alternated twice, block 0's phases. Run as `bash backend/cuda/experiments/run198.call.sh`.
# Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_NOROT -Xptxas -v $E/layerskel.cu -o /tmp/ls_a > /tmp/ba.txt 2>&1 &
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -Xptxas -v $E/layerskel.cu -o /tmp/ls_b > /tmp/bb.txt 2>&1 &
wait
for v in a b; do echo "== build $v: $(grep -A2 "properties for _Z4step" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for round in 1 2; do for m in 4 5; do for v in a b; do
  echo "== round $round $v mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v $m 0 0 13 >> $L/layerskel.txt 2>&1
done; done; done
