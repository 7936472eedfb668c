#!/bin/bash
# Run 256 (2026-12-07, thirty-fourth stop), main at dfec075: the review mend's TestGPUTrellis1Split (split -1, 0, 2, 3
# and the 36000x1024 case) and TestGPUTrellisGemv on the committed kernels; the bars of #11 on HEAD's binary (decode
# after 512 positions three times, batch 32, the small kernels' share by UPG_CUDA_ABLATE); then the whole GPU suite.
# Carry .cuda-carry/e: upg and cuda.test cross-built from dfec075 with kernels.fatbin emptied (the committed one is in
# the tree: UPG_CUDA_FATBIN points at it), xz, and the tokenizer synth's file needs (gzip). BENCH_ONLY=1 skips the tests
# (the first call ran them and had no tokenizer for the file).
set -u
R=$PWD; C=$R/.cuda-carry/e; U=/tmp/u; L=$OUT/run256.txt; F0=$R/backend/cuda/kernels.fatbin
t0=$(date +%s)
T=${T:-540}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && gunzip -c $C/cl100k_base.tiktoken.gz > /work/shared/tokenizers/tiktoken/cl100k_base.tiktoken
cd $R
[ "${BENCH_ONLY:-0}" = 1 ] && S=1 || S=0
( $U/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s $(stat -c %s /tmp/p.upg)" >> $L ) &
SP=$!
[ $S = 0 ] && (cd backend/cuda && UPG_CUDA_FATBIN=$F0 timeout 120 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis1Split|TestGPUTrellisGemv' > /tmp/t1.txt 2>&1; echo "split tests rc $? pass $(grep -c -- '--- PASS' /tmp/t1.txt) fail $(grep -c -- '--- FAIL' /tmp/t1.txt) skip $(grep -c -- '--- SKIP' /tmp/t1.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t1.txt | head -16 >> $L; grep -E -- '^(=== RUN|--- PASS).*Trellis1Split' /tmp/t1.txt | grep PASS | head -12 >> $L)
note tests
wait $SP
b() { echo "$1 $(env "${@:3}" UPG_CUDA_FATBIN=$F0 timeout -k 5 60 $U/upg bench --device cuda --model /tmp/p.upg $2 2>&1 | grep -E '^(prefill|decode|batch|aggregate|device|read|effective)|rror|cuda:|panic' | head -9 | tr -s ' ' | tr '\n' ' ')" >> $L; }
A="--prompt-tokens 512 --gen-tokens 64"
for i in 1 2 3; do left 30 && b "decode512-$i" "$A" X=1; done
left 40 && b "batch32" "--prompt-tokens 512 --gen-tokens 32 --batch 32" X=1
left 30 && b "ablate-small" "$A" UPG_CUDA_ABLATE=upg_attn,upg_rms_rotq,upg_swiglu_rotq
left 30 && b "ablate-attn" "$A" UPG_CUDA_ABLATE=upg_attn
note bench
[ $S = 0 ] && left 60 && (cd backend/cuda && UPG_CUDA_FATBIN=$F0 timeout $(( T - 10 - ($(date +%s)-t0) )) $U/cuda.test -test.count=1 -test.v > /tmp/t2.txt 2>&1; echo "suite rc $? pass $(grep -c -- '--- PASS' /tmp/t2.txt) fail $(grep -c -- '--- FAIL' /tmp/t2.txt) skip $(grep -c -- '--- SKIP' /tmp/t2.txt)" >> $L; grep -E -- '--- FAIL' /tmp/t2.txt | head -8 >> $L)
note all
cat $L
