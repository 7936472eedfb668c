#!/bin/bash
# Run 207 (2026-12-05, seventeenth stop): run 206 timed the group form's producer at ~230 clocks a unit with its
# loop still a unit at a time (only ~90 of them in the waits and copies), so the loop itself bound it; and n > 1
# producer warps hung at g = 16 (alternate groups filled out of order let a consumer pass on the phase before).
# Now the producer takes a run of a group's units a step and the consumers arrive once a group a chunk (arrive
# with a count). Builds G8, G16, G32 (-DLS_TMA -DLS_GROUP=g), G16P (+ -DLS_PTRACE), C (cp.async, modes 5-6).
# Run as `bash backend/cuda/experiments/run207.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -Xptxas -v"
for g in 8 16 32; do nvcc $B -DLS_TMA -DLS_GROUP=$g $E/layerskel.cu -o /tmp/ls_G$g > /tmp/bG$g.txt 2>&1 & done
nvcc $B -DLS_TMA -DLS_GROUP=16 -DLS_PTRACE $E/layerskel.cu -o /tmp/ls_G16P > /tmp/bG16P.txt 2>&1 &
nvcc $B $E/layerskel.cu -o /tmp/ls_C > /tmp/bC.txt 2>&1 &
wait
for v in G8 G16 G32 G16P C; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5) $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "G16 1" "G32 1" "G8 1" "G16 0" "G32 0" "G8 0" "C 5" "C 6" "G16 0" "G32 0" "C 5" "G16P 1" "G16P 0" "G16 4"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
