#!/bin/bash
# Run 206 (2026-12-05, seventeenth stop): run 205's group form lifted one producer lane's stream from 0.94 to 1.67,
# 1.92, 2.06 TB/s at g = 4, 8, 16 (mode 1), never waiting for a free slot, and mode 0 to 84.7 µs a layer (mode 5's
# level): still the producer. Here -DLS_PTRACE in the group form (clocks a unit waiting and issuing), g = 32, and
# n = 2, 4 producer warps owning alternate groups. Modes 1, then 0 on the two best.
# Run as `bash backend/cuda/experiments/run206.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -DLS_PTRACE -Xptxas -v"
for v in "16 1" "32 1" "16 2" "8 2" "8 4"; do set -- $v; nvcc $B -DLS_GROUP=$1 -DLS_NPW=$2 $E/layerskel.cu -o /tmp/ls_$1_$2 > /tmp/b$1_$2.txt 2>&1 & done
wait
for v in 16_1 32_1 16_2 8_2 8_4; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5) $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "16_1 1" "32_1 1" "16_2 1" "8_2 1" "8_4 1" "16_1 1" "32_1 1" "16_2 1" "8_2 1" "8_4 1" "16_2 0" "8_2 0" "8_4 0" "32_1 0"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
