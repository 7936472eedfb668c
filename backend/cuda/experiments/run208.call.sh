#!/bin/bash
# Run 208 (2026-12-05, seventeenth stop): run 207's group form (g = 16) streams 2.83 TB/s with the multiply (mode 1,
# 48.9 µs a layer, mode 6's level) and the step (mode 0) is 78.4 against mode 5's 86.7-87.1 — but still about the sum
# of mode 1 and the chain alone (24.9): the producer waits for free slots ~52 µs a layer, so the ring is full, held by
# the consumers' chunks (15 warps x 4 units of 112 slots, each group freed only when its last chunk is done).
# -DLS_EARLY frees each unit once its warp holds it in registers; -DLS_CH=2 halves the chunks. Builds G16 (run 207's),
# E16 and E8 (-DLS_EARLY), E16c2 (+ -DLS_CH=2). Modes 1 and 0 alternated. Last, run 207's failure (g = 8, mode 1)
# under compute-sanitizer (memcheck, then synccheck), each held to 60 s.
# Run as `bash backend/cuda/experiments/run208.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -Xptxas -v"
nvcc $B -DLS_GROUP=16 $E/layerskel.cu -o /tmp/ls_G16 > /tmp/bG16.txt 2>&1 &
nvcc $B -DLS_GROUP=16 -DLS_EARLY $E/layerskel.cu -o /tmp/ls_E16 > /tmp/bE16.txt 2>&1 &
nvcc $B -DLS_GROUP=8 -DLS_EARLY $E/layerskel.cu -o /tmp/ls_E8 > /tmp/bE8.txt 2>&1 &
nvcc $B -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 $E/layerskel.cu -o /tmp/ls_E16c2 > /tmp/bE16c2.txt 2>&1 &
nvcc $B -DLS_GROUP=8 -lineinfo $E/layerskel.cu -o /tmp/ls_G8 > /tmp/bG8.txt 2>&1 &
wait
for v in G16 E16 E8 E16c2; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5) $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "G16 1" "E16 1" "E8 1" "E16c2 1" "G16 0" "E16 0" "E8 0" "E16c2 0" "G16 1" "E16 1" "E8 1" "E16c2 1" "G16 0" "E16 0" "E8 0" "E16c2 0"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
for tool in memcheck synccheck; do
  echo "== G8 mode 1 under $tool" >> $L/layerskel.txt
  timeout -k 5 60 compute-sanitizer --tool $tool --print-limit 4 /tmp/ls_G8 1 0 0 13 2>&1 | grep -v '^run [12]:' | head -60 >> $L/layerskel.txt
done
