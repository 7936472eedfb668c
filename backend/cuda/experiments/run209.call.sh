#!/bin/bash
# Run 209 (2026-12-05, seventeenth stop): runs 207-208 failed in mode 1 at g = 8 and 32 (a launch failure, a consumer's
# wait given up). Suspect: the group's bytes were announced (expect_tx) after its copies, so a run that landed first
# took the transaction count below zero. Now each run's bytes are announced before its copies and the group's one
# arrival comes at its end. Builds F8, F16, F32 (-DLS_TMA -DLS_GROUP=g), F16c2 (+ -DLS_EARLY -DLS_CH=2): mode 1 twice
# at each size, mode 0 on F16 and F16c2, then modes 3 (the multiply alone) and 4 (the chain alone).
# Run as `bash backend/cuda/experiments/run209.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -Xptxas -v"
for g in 8 16 32; do nvcc $B -DLS_GROUP=$g $E/layerskel.cu -o /tmp/ls_F$g > /tmp/bF$g.txt 2>&1 & done
nvcc $B -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 $E/layerskel.cu -o /tmp/ls_F16c2 > /tmp/bF16c2.txt 2>&1 &
wait
for v in F8 F16 F32 F16c2; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5)" >> $L/layerskel.txt; done
for a in "F8 1" "F16 1" "F32 1" "F16c2 1" "F8 1" "F16 1" "F32 1" "F16c2 1" "F16 0" "F16c2 0" "F8 0" "F16 3" "F16 4"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 2>&1 | grep -v '^weights\|SMs; mode' >> $L/layerskel.txt
done
