#!/bin/bash
# Run 202 (2026-12-05, sixteenth stop): run 201 found no overlap between the stream and the chain where each warp
# streams its own units (mode 5). Mode 0 streams through the ring from producer warps that never wait for
# activations; with one such warp the stream alone was ~1 TB/s (run 185). -DLS_NPW=n gives it n producer warps:
# mode 1 (the stream alone) and mode 0 (the step) at n = 4 and 2, with -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM.
# Run as `bash backend/cuda/experiments/run202.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -Xptxas -v"
nvcc $B -DLS_NPW=4 $E/layerskel.cu -o /tmp/ls_4 > /tmp/b4.txt 2>&1 &
nvcc $B -DLS_NPW=2 $E/layerskel.cu -o /tmp/ls_2 > /tmp/b2.txt 2>&1 &
wait
for v in 4 2; do echo "== build $v: $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "4 1" "4 0" "2 0" "2 1" "4 3"; do
  set -- $a
  echo "== npw $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
