#!/bin/bash
# Run 194 (2026-12-05, sixteenth stop): what holds layerskel's multiply alone (mode 3, 30.4 µs a layer on an
# H100, twice its integer-pipe and issue floors; splitting the IDP.4A chain changed nothing, run 193). ncu of
# one launch of mode 3 (dp4a, 512 threads): scheduler, warp states, pipes, instruction mix, the source
# counters' top stalls. Run as `bash backend/cuda/experiments/run194.call.sh`. Writes $OUT/{times,ncu}.txt.
set -u
R=$PWD; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo $E/layerskel.cu -o /tmp/ls > /tmp/ls-build.txt 2>&1 || tail -20 /tmp/ls-build.txt >> $L/times.txt
note build
timeout -k 10 240 ncu --clock-control none --launch-count 1 --kernel-name regex:step \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
  --section InstructionStats --section Occupancy --section SourceCounters --section MemoryWorkloadAnalysis \
  /tmp/ls 3 0 0 13 > $L/ncu.txt 2>&1
echo "ncu rc $?" >> $L/times.txt
note all
