#!/bin/bash
# Run 253 (2026-12-07, thirty-third stop), from main's tree with two changes not yet built on a device: the trellis
# GEMMs' activation load shared as trellis_x4 (run 252 timed it inside the staged build: batch 32 as main's), and
# UPG_CUDA_TRELLIS1_SPLIT's default "auto" (run 252: 105.4 against 103.0-103.3 tok/s). One call:
#   scripts/build-cuda.sh builds the kernels whole (the fatbin and manifest to commit, copied to $OUT when done);
#   meanwhile greedy 64 tokens of the trellis miniphi (mt.upg) on the CPU and on the GPU with split auto and 0 (the
#   committed kernels: the one-token kernel is the same source), and the Phi-4-shaped trellis file's decode, split 0
#   against auto, alternated twice; then, on the new build: the trellis, stream-K, PDL and signature tests and the
#   greedy e2e test, batch 32 against the committed kernels, and the KL of the GPU's distribution from the CPU's on
#   mt.upg over miniphi_eval_250k.txt.
# Carry .cuda-carry/c: upg and cuda.test cross-built from the tree with kernels.fatbin emptied, mt.upg (`upg compress
# ../shared/models/miniphi-29m --out mt.upg --target-bpw 3.2 --calib models/calib/miniphi-calib.txt --calib-tokens
# 8192 --codec trellis`), the tokenizer and the corpus (gzip).
set -u
R=$PWD; C=$R/.cuda-carry/c; U=/tmp/u; L=$OUT/run253.txt; NB=/tmp/nb; F0=/tmp/committed.fatbin
t0=$(date +%s)
T=${T:-500}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken && gunzip -c $C/eval.txt.gz > eval.txt
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
cp backend/cuda/kernels.fatbin $F0
mkdir -p $NB && (bash scripts/build-cuda.sh $NB > /tmp/build.txt 2>&1 && cp $NB/kernels.fatbin $NB/kernels.manifest.json $OUT/; echo "full build rc $? $(( $(date +%s)-t0 )) s" >> $L) &
BP=$!
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
SP=$!
P=$(head -c 400 $U/eval.txt)
g() { env "${@:3}" timeout 60 $U/upg run --device $2 --model $C/mt.upg --temperature 0 -n 64 --ignore-eos --json "$P" 2>/tmp/g.err | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])' > /tmp/g-$1.txt 2>>/tmp/g.err; echo "greedy $1 rc $? $(wc -c < /tmp/g-$1.txt) bytes" >> $L; }
g cpu cpu X=1
g cuda-auto cuda UPG_CUDA_FATBIN=$F0
g cuda-0 cuda UPG_CUDA_FATBIN=$F0 UPG_CUDA_TRELLIS1_SPLIT=0
for v in cuda-auto cuda-0; do cmp -s /tmp/g-cpu.txt /tmp/g-$v.txt && echo "greedy $v = cpu" >> $L || { echo "greedy $v differs from cpu:" >> $L; diff /tmp/g-cpu.txt /tmp/g-$v.txt | head -6 >> $L; }; done
head -c 300 /tmp/g.err >> $L
note greedy
wait $SP
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
A="--prompt-tokens 64 --gen-tokens 64"
for i in 1 2; do
  left 14 && b "split0-$i" "$A" UPG_CUDA_FATBIN=$F0 UPG_CUDA_TRELLIS1_SPLIT=0
  left 14 && b "auto-$i" "$A" UPG_CUDA_FATBIN=$F0
done
note decode
wait $BP
grep -E "error" /tmp/build.txt | head -10 >> $L
[ -s $NB/kernels.fatbin ] || { echo "no build" >> $L; cat $L; exit 0; }
left 60 && (cd backend/cuda && UPG_CUDA_FATBIN=$NB/kernels.fatbin timeout 150 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis|TestTrellis|TestPlanTrellis|TestGPUStreamK|TestPDL|TestKernelSig|TestGPUGreedyMatchesCPU' > /tmp/t.txt 2>&1; echo "tests rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt) skip $(grep -c -- '--- SKIP' /tmp/t.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t.txt | grep -v -- '--- PASS' | head -16 >> $L)
note tests
B="--prompt-tokens 64 --gen-tokens 16 --batch 32"
for i in 1 2; do
  left 14 && b "b32-committed-$i" "$B" UPG_CUDA_FATBIN=$F0
  left 14 && b "b32-new-$i" "$B" UPG_CUDA_FATBIN=$NB/kernels.fatbin
done
note b32
left 90 && { UPG_CUDA_FATBIN=$NB/kernels.fatbin timeout $(( T - 5 - ($(date +%s)-t0) )) $U/upg eval --device cuda --ref-device cpu --model $C/mt.upg --ref $C/mt.upg --text $U/eval.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $?" >> $L; grep -v '^\s*$' /tmp/kl.txt | tail -8 >> $L; }
note all
cat $L
