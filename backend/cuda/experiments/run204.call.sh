#!/bin/bash
# Run 204 (2026-12-05, seventeenth stop): run 203 found one bulk-copy producer lane streaming 939 GB/s (mode 1),
# no better than one cp.async warp (977, run 185), with the producer never waiting for a free slot: so the
# producer's own loop is the bound. -DLS_PTRACE times block 0's producer (clocks a unit in the free-slot test and
# in issuing the copies). Builds TP (-DLS_TMA) and CP (cp.async), one producer warp, the three chain cuts.
# Mode 1 at the full ring and at 40 slots, then mode 0. Run as `bash backend/cuda/experiments/run204.call.sh`.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_PTRACE -Xptxas -v"
nvcc $B -DLS_TMA $E/layerskel.cu -o /tmp/ls_TP > /tmp/bTP.txt 2>&1 &
nvcc $B $E/layerskel.cu -o /tmp/ls_CP > /tmp/bCP.txt 2>&1 &
wait
for v in TP CP; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5)" >> $L/layerskel.txt; done
cuobjdump -sass /tmp/ls_TP | awk '/Function : _Z4stepILb0/{f=1} f' | grep -n 'UBLKCP\|SYNCS\|UTMA' | head -20 >> $L/sass.txt
for a in "TP 1 0" "CP 1 0" "TP 1 40" "CP 1 40" "TP 0 0" "CP 0 0"; do
  set -- $a
  echo "== $1 mode $2 slots $3" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 $3 0 13 >> $L/layerskel.txt 2>&1
done
