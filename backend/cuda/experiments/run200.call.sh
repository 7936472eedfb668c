#!/bin/bash
# Run 200 (2026-12-05, sixteenth stop): layerskel's attention item without its shared-memory float atomics
# (-DLS_NOATOM: the warps' value sums through slots of their own), against run 199's build; both with
# -DLS_NOROT -DLS_MERGE1, timed inside (-DLS_ATTN_TRACE) and not; modes 4 and 5, alternated twice.
# Run as `bash backend/cuda/experiments/run200.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1"
nvcc $B $E/layerskel.cu -o /tmp/ls_a > /dev/null 2>&1 &
nvcc $B -DLS_NOATOM $E/layerskel.cu -o /tmp/ls_b > /dev/null 2>&1 &
nvcc $B -DLS_ATTN_TRACE -DLS_NOATOM $E/layerskel.cu -o /tmp/ls_bt > /dev/null 2>&1 &
wait
for round in 1 2; do for m in 4 5; do for v in a b; do
  echo "== round $round $v mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v $m 0 0 13 >> $L/layerskel.txt 2>&1
done; done; done
for m in 4 5; do echo "== traced b mode $m" >> $L/layerskel.txt; timeout -k 10 30 /tmp/ls_bt $m 0 0 13 >> $L/layerskel.txt 2>&1; done
