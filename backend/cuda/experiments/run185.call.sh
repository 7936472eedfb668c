#!/bin/bash
# Prepared as run 185 (2026-12-05, no device lent): the persistent step (experiments/pstep.cu, pstep.go) and
# the skeleton's modes in one call of ~420 s. Carry .cuda-carry with upg.gz and cuda.test.gz cross-built
# from this commit (CGO_ENABLED=0 go build -ldflags='-s -w' -o .cuda-carry/upg ./cmd/upg; CGO_ENABLED=0 go
# test -c -o .cuda-carry/cuda.test ./backend/cuda; gzip both) and cl100k_base.tiktoken.gz; run as
# `bash backend/cuda/experiments/run185.call.sh`. Writes $OUT/{times,build,pstep,memcheck,bench,layerskel}.txt.
#   1. (CPU, background) the Phi-4-shaped 3.2-bpw file; the kernels with upg_pstep, sm_90 only
#   2. (GPU, meanwhile) layerskel at 512 and 1,024 threads: modes 0-6
#   3. the persistent step's tests (TestPstep*, TestGPUPstepMatchesPerOp) on the pstep fatbin, then memcheck
#   4. decode after 512 positions: main's fatbin against the pstep fatbin with UPG_CUDA_PSTEP=1, twice;
#      the step trace of one pstep run
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; E=$R/backend/cuda/experiments; mkdir -p /tmp/b
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
cd $C && gunzip -kf upg.gz cuda.test.gz cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
spid=$!
( cd $E && nvcc -fatbin -O3 -std=c++17 -lineinfo --threads 8 -Xptxas -v -gencode=arch=compute_90,code=sm_90 pstep.cu -o /tmp/b/PS.fatbin > /tmp/build.txt 2>&1; echo "build rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
bpid=$!
# 2. the skeleton while the CPU builds
pids=
for th in 512 1024; do
  nvcc -O3 -std=c++17 -arch=sm_90 -DLS_THREADS=$th -Xptxas -v $E/layerskel.cu -o /tmp/layerskel$th > /tmp/layerskel-build$th.txt 2>&1 &
  pids="$pids $!"
done
wait $pids
for th in 512 1024; do
  echo "== build $th: $(grep -A2 "properties for _Z4step" /tmp/layerskel-build$th.txt | tr '\n' ' ')" >> $L/layerskel.txt
  [ -x /tmp/layerskel$th ] || tail -30 /tmp/layerskel-build$th.txt >> $L/layerskel.txt
done
for a in "512 0 0 0 13" "512 1 0 0 13" "512 3 0 0 13" "512 4 0 0 13" "512 5 0 0 13" "512 6 0 0 13" "512 2 0 0 13" "512 0 0 1 13" "1024 0 0 0 13" "1024 5 0 0 13" "512 0 0 0 13"; do
  set -- $a; th=$1; shift
  echo "== layerskel threads $th, args $*" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/layerskel$th "$@" >> $L/layerskel.txt 2>&1
  rc=$?
  { [ $rc = 124 ] || [ $rc = 137 ]; } && { echo "timed out: the remaining layerskel runs skipped" >> $L/layerskel.txt; break; }
done
note layerskel
# 3. the persistent step's correctness
wait $bpid
grep -B1 -A3 'upg_pstep' /tmp/build.txt > $L/build.txt; grep -i 'error' /tmp/build.txt | head -20 >> $L/build.txt
if [ -s /tmp/b/PS.fatbin ]; then
  export UPG_CUDA_FATBIN=/tmp/b/PS.fatbin
  ( cd backend/cuda && timeout -k 10 150 $C/cuda.test -test.v -test.count=1 -test.run 'TestPstep|TestPutPsMat|TestGPUPstep|TestGPUGreedyMatchesCPU' > $L/pstep.txt 2>&1; echo "tests rc $?" >> $L/pstep.txt )
  note tests
  ( cd backend/cuda && timeout -k 10 150 compute-sanitizer --tool memcheck --print-limit 20 $C/cuda.test -test.count=1 -test.run 'TestGPUPstepMatchesPerOp' > /tmp/mc.txt 2>&1; echo "memcheck rc $?" >> /tmp/mc.txt; tail -40 /tmp/mc.txt > $L/memcheck.txt )
  note memcheck
  unset UPG_CUDA_FATBIN
fi
# 4. speed
wait $spid
for round in 1 2; do for v in main PS; do
  unset UPG_CUDA_FATBIN UPG_CUDA_PSTEP
  [ $v = PS ] && export UPG_CUDA_FATBIN=/tmp/b/PS.fatbin UPG_CUDA_PSTEP=1
  timeout -k 10 90 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 > /tmp/bench.txt 2>&1
  echo "512 $round $v rc $? $(grep -E '^(decode|prefill) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -iE 'error|whole step|panic' /tmp/bench.txt | head -3 | tr '\n' ' ')" >> $L/bench.txt
done; done
# without graphs too (a driver may refuse to capture the cooperative launch)
export UPG_CUDA_FATBIN=/tmp/b/PS.fatbin UPG_CUDA_PSTEP=eager
timeout -k 10 90 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 > /tmp/bench.txt 2>&1
echo "512 eager PS rc $? $(grep -E '^(decode|prefill) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -iE 'error|whole step|panic' /tmp/bench.txt | head -3 | tr '\n' ' ')" >> $L/bench.txt
export UPG_CUDA_FATBIN=/tmp/b/PS.fatbin UPG_CUDA_PSTEP=1 UPG_CUDA_TRACE=1
timeout -k 10 90 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/trace.txt 2>&1
tail -40 /tmp/trace.txt >> $L/bench.txt
note all
