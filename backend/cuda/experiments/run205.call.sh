#!/bin/bash
# Run 205 (2026-12-05, seventeenth stop): run 204 timed the producer: ~105 clocks a unit in a free-slot test that
# never waits and ~250-260 issuing the copies (bulk or cp.async alike), 450-460 in all, so one producer streams
# ~3.5 bytes a clock an SM whatever the copy. -DLS_GROUP=g takes the mbarrier operations and copies a unit down to
# a group of g slots (one empty wait, one expect_tx, two bulk copies a run within one matrix). Builds G4, G8, G16
# (-DLS_TMA -DLS_GROUP=g) with the three chain cuts; modes 1 and 0, then mode 3 on G8 (its consumer reads).
# Run as `bash backend/cuda/experiments/run205.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -Xptxas -v"
for g in 4 8 16; do nvcc $B -DLS_GROUP=$g $E/layerskel.cu -o /tmp/ls_G$g > /tmp/bG$g.txt 2>&1 & done
wait
for v in G4 G8 G16; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5) $(grep -A2 "properties for _Z4stepILb0" /tmp/b$v.txt | grep spill | tr '\n' ' ')" >> $L/layerskel.txt; done
for a in "G4 1" "G8 1" "G16 1" "G4 0" "G8 0" "G16 0" "G8 1" "G16 1" "G8 0" "G16 0" "G8 3"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 >> $L/layerskel.txt 2>&1
done
