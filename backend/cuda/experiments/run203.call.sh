#!/bin/bash
# Run 203 (2026-12-05, seventeenth stop): run 202 found the producer side the wall — n cp.async producer warps
# stream 1.83 TB/s at n = 4, 1.38 at 2 (mode 1), so mode 0 at n = 4 is 85.6 µs a layer, no better than mode 5.
# -DLS_TMA moves every unit's copy to the SM's bulk-copy engine (two cp.async.bulk from one lane, completion by
# transaction count on the slot's full barrier). Builds: T (TMA, one producer warp) and C (cp.async, the run-202
# form at NPW=1), both with -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM. Modes 1 and 0 on T; 6 and 5 on T and C alternated.
# Run as `bash backend/cuda/experiments/run203.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -Xptxas -v"
nvcc $B -DLS_TMA $E/layerskel.cu -o /tmp/ls_T > /tmp/bT.txt 2>&1 &
nvcc $B $E/layerskel.cu -o /tmp/ls_C > /tmp/bC.txt 2>&1 &
wait
for v in T C; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5) $(grep -A2 "properties for _Z4step" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "T 1" "T 0" "T 6" "C 6" "T 5" "C 5" "T 6" "C 6" "T 1" "T 0" "T 4"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
