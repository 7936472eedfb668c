#!/bin/bash
# Run 238 (2026-12-06, twenty-seventh stop): run 237's racecheck report on the cluster attention, told apart.
# On an H200 it runs run237.call.sh instead (every bar of #11 on HEAD's binary). Carry .cuda-carry/s (run 237's).
#   1. experiments/mbarcheck.cu: the attention's mbarrier set-up alone (kernels 0-2), under racecheck;
#   2. the attention's test under racecheck with every hazard's threads printed (--racecheck-report all);
#   3. racecheck over the other small kernels' tests, each alone (run 237's one run of all of them ran out of time
#      in the attention's), in parallel.
set -u
R=$PWD; C=$R/.cuda-carry/s; U=/tmp/u; L=$OUT/run238.txt
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
if grep -q H200 $L; then bash backend/cuda/experiments/run237.call.sh; exit; fi
mkdir -p $U && xz -dc $C/cuda.test.xz > $U/cuda.test && chmod +x $U/cuda.test
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo backend/cuda/experiments/mbarcheck.cu -o /tmp/mbarcheck >> $L 2>&1
for k in 0 1 2; do
  /tmp/mbarcheck $k >> $L 2>&1
  timeout 60 compute-sanitizer --tool racecheck --racecheck-report all /tmp/mbarcheck $k > /tmp/mb$k.txt 2>&1
  echo "racecheck mbarcheck $k rc $?: $(grep -E 'SUMMARY|kernel' /tmp/mb$k.txt | tr '\n' ' ')" >> $L
  grep -E -A3 'Race|Hazard' /tmp/mb$k.txt | head -16 >> $L
done
echo "-- mbarcheck $(( $(date +%s)-t0 )) s" >> $L
san() { # label, seconds, test pattern, extra flags
  (cd backend/cuda && timeout $2 compute-sanitizer --tool racecheck --print-limit 12 $4 $U/cuda.test -test.count=1 -test.run "$3" > /tmp/rc-$1.txt 2>&1
   echo "racecheck $1 rc $? [$3] $(grep -E 'SUMMARY|^(ok|PASS|FAIL)|--- FAIL' /tmp/rc-$1.txt | tr '\n' ' ') $(( $(date +%s)-t0 )) s" >> $L)
}
san attn 200 'TestGPUAttentionCluster$' '--racecheck-report all' &
san rotq 240 'TestGPURotqMatchesEmulation' &
san swiglu 240 'TestGPUSwigluRotqBlockSizes' &
san selfq 240 'TestGPUSelfQuantMatchesNorm' &
san attnrotq 240 'TestGPUAttentionRotqMatches' &
wait
for f in attn rotq swiglu selfq attnrotq; do echo "== $f" >> $L; grep -E -B1 -A6 'Race reported|Hazard|Error' /tmp/rc-$f.txt | head -40 >> $L; done
gzip -c /tmp/rc-attn.txt > $OUT/rc-attn.txt.gz
echo "-- all $(( $(date +%s)-t0 )) s" >> $L
cat $L
