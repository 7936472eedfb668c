#!/bin/bash
# Run 211 (prepared 2026-12-05, seventeenth stop): run 210's -DLS_CHECK found the group form's consumers reading
# slots that do not hold their unit, in mode 1 only (g = 8, 16: 4 of 4), never in mode 0 or the cp.async control.
# The site now says which unit was read (1,000,000 + the stamp read less the one expected, mod 2^16: 65,424 = the
# slot's previous turn at 112 slots, 112 its next). The protocol allows a stale read only if a group's copies land
# after copies issued ~50 units later; -DLS_FULL2 (two full barriers a group, even and odd turns) would make that
# need two turns. Builds K16 and K8 (-DLS_TMA -DLS_GROUP=g -DLS_CHECK), K16F and K8F (+ -DLS_FULL2), T16F (timing:
# -DLS_FULL2 -DLS_EARLY -DLS_CH=2, no check) against T16 (run 209's best form), KT (bulk copies a unit, no groups,
# checked: does the per-unit ring read stale units too?).
# Run as `bash backend/cuda/experiments/run211.call.sh`. Writes $OUT/layerskel.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L/layerskel.txt
B="-O3 -std=c++17 -arch=sm_90 -DLS_NOROT -DLS_MERGE1 -DLS_NOATOM -DLS_TMA"
nvcc $B -DLS_GROUP=16 -DLS_CHECK $E/layerskel.cu -o /tmp/ls_K16 > /tmp/bK16.txt 2>&1 &
nvcc $B -DLS_GROUP=8 -DLS_CHECK $E/layerskel.cu -o /tmp/ls_K8 > /tmp/bK8.txt 2>&1 &
nvcc $B -DLS_GROUP=16 -DLS_CHECK -DLS_FULL2 $E/layerskel.cu -o /tmp/ls_K16F > /tmp/bK16F.txt 2>&1 &
nvcc $B -DLS_GROUP=8 -DLS_CHECK -DLS_FULL2 $E/layerskel.cu -o /tmp/ls_K8F > /tmp/bK8F.txt 2>&1 &
nvcc $B -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 -DLS_FULL2 $E/layerskel.cu -o /tmp/ls_T16F > /tmp/bT16F.txt 2>&1 &
nvcc $B -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 $E/layerskel.cu -o /tmp/ls_T16 > /tmp/bT16.txt 2>&1 &
nvcc $B -DLS_CHECK $E/layerskel.cu -o /tmp/ls_KT > /tmp/bKT.txt 2>&1 &
wait
for v in K16 K8 K16F K8F T16F T16 KT; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5)" >> $L/layerskel.txt; done
for a in "K16 1" "K8 1" "KT 1" "K16F 1" "K8F 1" "K16F 1" "K8F 1" "K16F 0" "T16 1" "T16F 1" "T16 0" "T16F 0" "T16 0" "T16F 0"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 2>&1 | grep -v '^weights\|SMs; mode\|^run [12]:' >> $L/layerskel.txt
done
