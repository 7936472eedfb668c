#!/bin/bash
# Run 239 (2026-12-06, twenty-seventh stop): what run 238 left. Its racecheck of the other small kernels' tests never
# ran (set -u and a missing fourth argument), and its grep missed mbarcheck's hazard lines. Carry .cuda-carry/s.
#   1. mbarcheck kernel 0 (one block: thread 0 inits and arrives, a __syncthreads, every thread waits) under racecheck
#      with every hazard printed: is it the attention's warning class ("(Warp Level Programming) Potential RAW hazard
#      (CUDA barrier operation)" on the mbarrier's bytes)?
#   2. racecheck over the norm's, SwiGLU's, self-quantizing q|k|v's and the split attention's tests, each alone, in
#      parallel; and the attention's test once more in analysis form (which instruction pairs, how many hazards).
set -u
R=$PWD; C=$R/.cuda-carry/s; U=/tmp/u; L=$OUT/run239.txt
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && xz -dc $C/cuda.test.xz > $U/cuda.test && chmod +x $U/cuda.test
nvcc -O3 -std=c++17 -arch=sm_90 -lineinfo backend/cuda/experiments/mbarcheck.cu -o /tmp/mbarcheck >> $L 2>&1
timeout 60 compute-sanitizer --tool racecheck --racecheck-report all --print-limit 4 /tmp/mbarcheck 0 > /tmp/mb0.txt 2>&1
echo "racecheck mbarcheck 0 rc $?" >> $L
grep -v 'Saved host backtrace\|Host Frame' /tmp/mb0.txt | head -30 | cut -c1-300 >> $L
timeout 60 compute-sanitizer --tool racecheck --print-limit 10 /tmp/mbarcheck 0 > /tmp/mb0a.txt 2>&1
grep -v 'Saved host backtrace\|Host Frame' /tmp/mb0a.txt | head -30 | cut -c1-300 >> $L
echo "-- mbarcheck $(( $(date +%s)-t0 )) s" >> $L
san() { # label, seconds, test pattern
  (cd backend/cuda && timeout $2 compute-sanitizer --tool racecheck --print-limit 200 $U/cuda.test -test.count=1 -test.run "$3" > /tmp/rc-$1.txt 2>&1
   echo "racecheck $1 rc $? [$3] $(grep -E 'SUMMARY|^(ok|PASS|FAIL)|--- FAIL' /tmp/rc-$1.txt | tr '\n' ' ') $(( $(date +%s)-t0 )) s" >> $L)
}
san rotq 200 'TestGPURotqMatchesEmulation' &
san swiglu 200 'TestGPUSwigluRotqBlockSizes' &
san selfq 200 'TestGPUSelfQuantMatchesNorm' &
san attnrotq 200 'TestGPUAttentionRotqMatches' &
san attn 200 'TestGPUAttentionCluster$' &
wait
for f in rotq swiglu selfq attnrotq attn; do
  echo "== $f: instruction pairs reported (write line, read line: count)" >> $L
  grep -A1 'Race reported' /tmp/rc-$f.txt | grep -oE '(Write|Read) access at .* in [a-z_]+\.cu:[0-9]+' | sed -E 's/ at .* in / /' | paste - - | sort | uniq -c | head -20 >> $L
done
for f in rotq swiglu selfq attnrotq attn; do gzip -c /tmp/rc-$f.txt > $OUT/rc-$f.txt.gz; done
echo "-- all $(( $(date +%s)-t0 )) s" >> $L
cat $L
