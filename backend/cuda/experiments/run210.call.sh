#!/bin/bash
# Run 210-211 (2026-12-05, seventeenth stop; 211: the site is 1,000,000 + the stamp read less the one expected): run 209 kept failing in mode 1 (g = 8, 32, once 16) with the bytes
# announced before the copies, so that was not it. -DLS_CHECK stamps each unit's index into its last scale and
# checks it where a consumer reads it: a failure at site 9 is a unit read before its bytes landed (a phase passed on
# parity); site 0 again is something else. Builds K8, K16 (-DLS_TMA -DLS_GROUP=g -DLS_CHECK) and KC (cp.async, the
# check's own control). Run as `bash backend/cuda/experiments/run210.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_CHECK -Xptxas -v"
nvcc $B -DLS_TMA -DLS_GROUP=8 $E/layerskel.cu -o /tmp/ls_K8 > /tmp/bK8.txt 2>&1 &
nvcc $B -DLS_TMA -DLS_GROUP=16 $E/layerskel.cu -o /tmp/ls_K16 > /tmp/bK16.txt 2>&1 &
true
wait
for v in K8 K16 KC; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5)" >> $L/layerskel.txt; done
for a in "K16 1" "K8 1" "K16 1" "K8 1"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 2>&1 | grep -v '^weights\|SMs; mode\|^run [12]:' >> $L/layerskel.txt
done
