#!/bin/bash
# Run 222 (2026-12-06, twenty-second stop): the self-quantizing q|k|v (selfq.patch, run 221: +1.6% on the H100 on a
# --rotate-residual file) with run 221's fatbin embedded, checked before it lands. Run 221's own test had failed
# before reaching the GPU (synth was given a tokenizer path that does not exist); fixed. Carry .cuda-carry/i: upg and
# cuda.test cross-built from the tree with that fatbin (xz), cl100k_base.tiktoken.gz.
#   1. TestGPUSelfQuantMatchesNorm (self-quantized q|k|v against the norm kernel, bounded by the int8 paths' spread
#      from the GPU's float path); memcheck over it
#   2. TestGPUGreedyMatchesCPU on a 2-layer Phi-4-shaped --rotate-residual synth file (the CPU as the oracle of the
#      self-quantized step: its q|k|v are 3-bit groups of 128, one part, so every decode step takes it)
#   3. the step trace on the 40-layer rotated file, UPG_CUDA_SELFQ=1 and 0 (where run 221's 1.2 µs a layer went)
#   4. decode after 512: rotated with selfq, rotated without, plain; alternated twice
#   5. the whole GPU suite with the embedded fatbin
set -u
R=$PWD; C=$R/.cuda-carry/i; L=$OUT/run222.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 560 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz cuda.test.xz && gunzip -kf cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/r.upg -q > /tmp/synthr.txt 2>&1; echo "synth rotated rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth plain rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
$C/upg synth --arch phi4 --layers 2 --target-bpw 3.2 --rotate-residual --out /tmp/r2.upg -q > /tmp/synth2.txt 2>&1; echo "synth 2-layer rc $?" >> $L
(cd backend/cuda && timeout 150 $C/cuda.test -test.count=1 -test.run 'TestGPUSelfQuantMatchesNorm|TestSelfQuantArgs|TestKernelArgsFit' -test.v > /tmp/q.txt 2>&1; echo "selfq tests rc $?" >> $L)
grep -E -- '--- (PASS|FAIL)|selfq_test|panic|rror' /tmp/q.txt | head -12 >> $L
(cd backend/cuda && UPG_CUDA_E2E_MODEL=/tmp/r2.upg timeout 200 $C/cuda.test -test.count=1 -test.run 'TestGPUGreedyMatchesCPU' -test.v > /tmp/g.txt 2>&1; echo "greedy r2 rc $?" >> $L)
grep -E -- '--- (PASS|FAIL)|e2e_test|panic|rror' /tmp/g.txt | head -12 >> $L
note tests
wait
tr() { echo "== trace $1" >> $L; UPG_CUDA_SELFQ=$2 UPG_CUDA_TRACE=1 timeout -k 5 60 $C/upg bench --device cuda --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/tr$2.txt 2>&1; grep -E '^decode ' /tmp/tr$2.txt >> $L; sed -n '/cuda step trace/,/last records/p' /tmp/tr$2.txt > $OUT/trace-selfq$2.txt; grep -E 'gemv.cu:[0-9]+ grid (240|160|1120)x|attn_cluster|rms_rotq \(|swiglu_rotq \(' $OUT/trace-selfq$2.txt >> $L; }
left 60 && tr selfq1 1
left 60 && tr selfq0 0
note traces
bench() { # label, file, selfq
  echo "$1 $(UPG_CUDA_SELFQ=$3 timeout -k 5 100 $C/upg bench --device cuda --model $2 --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode) |rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2; do
  for v in "rot-selfq /tmp/r.upg 1" "rot-norm /tmp/r.upg 0" "plain /tmp/p.upg 1"; do
    set -- $v; left 30 || break; bench $1 $2 $3
  done
done
note bench
left 130 && {
  (cd backend/cuda && timeout 200 $C/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
  grep -E -B3 -A6 -- '--- FAIL|panic' /tmp/suite.txt | head -30 >> $L
}
left 60 && { (cd backend/cuda && timeout 100 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUSelfQuantMatchesNorm' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); tail -5 /tmp/mc.txt >> $L; }
note all
