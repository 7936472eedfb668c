#!/bin/bash
# Run 197 (2026-12-05, sixteenth stop): what the Hadamard rotations cost layerskel's chain (the norms, o's input,
# the SwiGLU): -DLS_NOROT against the build as is, modes 4 (the chain alone) and 5 (the step), alternated twice,
# with block 0's phases. Run as `bash backend/cuda/experiments/run197.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
nvcc -O3 -std=c++17 -arch=sm_90 $E/layerskel.cu -o /tmp/ls_rot > /dev/null 2>&1 &
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_NOROT $E/layerskel.cu -o /tmp/ls_norot > /dev/null 2>&1 &
wait
for round in 1 2; do for m in 4 5; do for v in rot norot; do
  echo "== round $round $v mode $m" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/ls_$v $m 0 0 13 >> $L/layerskel.txt 2>&1
done; done; done
