#!/bin/bash
# Run 201 (2026-12-05, sixteenth stop): modes 6 (stream and multiply, no chain), 5 and 4 of run 200's build
# (-DLS_NOROT -DLS_MERGE1 -DLS_NOATOM): where mode 5's extra time goes. As run, layerskel also printed block 0's
# phases in mode 6 (only its q|k|v phase is recorded there); that print was taken out again, so mode 6 now prints
# its totals only.
# Run as `bash backend/cuda/experiments/run201.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
nvcc -O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM $E/layerskel.cu -o /tmp/ls_b > /dev/null 2>&1
for m in 6 5 6 5 4; do echo "== mode $m" >> $L/layerskel.txt; timeout -k 10 30 /tmp/ls_b $m 0 0 13 >> $L/layerskel.txt 2>&1; done
