#!/bin/bash
# Run 199 (2026-12-05, sixteenth stop): where layerskel's attention item (8.8-9.4 µs in runs 197-198) spends its
# time: -DLS_ATTN_TRACE (block 0's item timed inside) with -DLS_NOROT -DLS_MERGE1, modes 4 and 5.
# Run as `bash backend/cuda/experiments/run199.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_ATTN_TRACE $E/layerskel.cu -o /tmp/ls_t > /tmp/bt.txt 2>&1 || tail -20 /tmp/bt.txt >> $L/layerskel.txt
for m in 4 5 4; do
  echo "== mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_t $m 0 0 13 >> $L/layerskel.txt 2>&1
done
