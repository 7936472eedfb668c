#!/bin/bash
# Run 187 (2026-12-05): experiments/gemv-acc.patch (the one- and two-token GEMVs' dp4a sums in UPG_GEMV_ACC
# independent chains a group instead of one; integer sums, so the same bits) built for sm_90 at 2 and 4 chains,
# against main's committed fatbin; and main's whole GPU suite on the card lent (the first on an H100, if that
# is what comes). Carry .cuda-carry (upg.gz, cuda.test.gz, cl100k_base.tiktoken.gz); ~400 s. Writes
# $OUT/{times,gpu,suite,quick,build,bench}.txt.
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; mkdir -p /tmp/b
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
cd $C && gunzip -kf upg.gz cuda.test.gz cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv > $L/gpu.txt 2>&1
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; note "synth rc $?" ) &
spid=$!
bpids=
for n in 2 4; do
  ( rm -rf /tmp/k$n && cp -r backend/cuda/kernels /tmp/k$n && cd /tmp/k$n && patch -p4 < $R/backend/cuda/experiments/gemv-acc.patch > /tmp/patch$n.txt 2>&1 &&
    nvcc -fatbin -O3 -std=c++17 -lineinfo --threads 4 -DUPG_GEMV_ACC=$n -Xptxas -v -gencode=arch=compute_90,code=sm_90 upg.cu -o /tmp/b/A$n.fatbin > /tmp/build$n.txt 2>&1
    note "build A$n rc $?" ) &
  bpids="$bpids $!"
done
# main's suite on this card while the CPU builds (the committed fatbin, embedded in cuda.test)
( cd backend/cuda && UPG_REQUIRE_GPU=1 timeout -k 10 240 $C/cuda.test -test.count=1 -test.run 'TestGPU|TestTrellis|TestKernelSignatures|TestWarpsFor' \
    -test.skip 'TestGPUBench|TestGPUDecodeBench' -test.v > /tmp/suite.txt 2>&1; echo "suite rc $?" >> /tmp/suite.txt )
{ tail -3 /tmp/suite.txt; echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)"; grep -E -- '^--- FAIL|^    --- FAIL' /tmp/suite.txt | head -20; } > $L/suite.txt
note suite
wait $bpids
for n in 2 4; do
  { cat /tmp/patch$n.txt; grep -iE ' error|warning' /tmp/build$n.txt | head -5; grep -A2 'upg_gemv_k3_g1_t1r\?\b' /tmp/build$n.txt | grep -E 'registers|spill' | head -4; } >> $L/build.txt
done
# the patched kernels' quick checks (the same bits as main's are expected)
for n in 2 4; do
  [ -s /tmp/b/A$n.fatbin ] || continue
  ( cd backend/cuda && UPG_CUDA_FATBIN=/tmp/b/A$n.fatbin timeout -k 10 120 $C/cuda.test -test.count=1 \
      -test.run 'TestGPUDenseGemv|TestGPUGemv|TestGPUGreedyMatchesCPU|TestGPUFusedMatchesUnfused' > /tmp/q$n.txt 2>&1; echo "A$n quick rc $?" >> $L/quick.txt )
  grep -E -- '--- FAIL|^FAIL|^ok|panic' /tmp/q$n.txt | head -8 >> $L/quick.txt
done
note quick
wait $spid
bench() { # label, fatbin or "", args...
  local lab=$1 fb=$2; shift 2
  unset UPG_CUDA_FATBIN; [ -n "$fb" ] && export UPG_CUDA_FATBIN=$fb
  timeout -k 10 120 $C/upg bench --device cuda --model /tmp/p.upg "$@" > /tmp/bench.txt 2>&1
  echo "$lab rc $? $(grep -E '^(decode|prefill) |bandwidth|copy' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -iE 'error|panic' /tmp/bench.txt | head -2 | tr '\n' ' ')" >> $L/bench.txt
}
for round in 1 2; do
  bench "512 main $round" "" --prompt-tokens 512 --gen-tokens 64
  [ -s /tmp/b/A2.fatbin ] && bench "512 A2 $round" /tmp/b/A2.fatbin --prompt-tokens 512 --gen-tokens 64
  [ -s /tmp/b/A4.fatbin ] && bench "512 A4 $round" /tmp/b/A4.fatbin --prompt-tokens 512 --gen-tokens 64
done
note decode
bench "b32 main" "" --prompt-tokens 512 --gen-tokens 32 --batch 32
[ -s /tmp/b/A2.fatbin ] && bench "b32 A2" /tmp/b/A2.fatbin --prompt-tokens 512 --gen-tokens 32 --batch 32
# the step trace of main and A2 (per kernel µs)
for v in main A2; do
  unset UPG_CUDA_FATBIN; [ $v = A2 ] && export UPG_CUDA_FATBIN=/tmp/b/A2.fatbin
  UPG_CUDA_TRACE=1 timeout -k 10 90 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/trace$v.txt 2>&1
  echo "== trace $v" >> $L/bench.txt; grep -E '^decode|mean .* µs' /tmp/trace$v.txt | head -18 >> $L/bench.txt
done
unset UPG_CUDA_FATBIN
note all
