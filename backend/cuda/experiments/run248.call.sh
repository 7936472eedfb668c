#!/bin/bash
# Run 248 (2026-12-07, thirtieth stop): the committed build end to end (run 247's fatbin embedded, pick's rule: 64-token
# bf16 blocks up to 64 tokens, 128 past; split-K on) on the Phi-4-shaped trellis file — prefill of 512, decode, batch
# 32 — and run 245's question again now that the GEMM splits K: steps of 2, 4 and 8 tokens with
# UPG_CUDA_TRELLIS_MMA_MIN at 2 and 4 against the default 9 (the t8 kernel). Prediction: the GEMM ahead at 8 and 4
# (run 247's 16-token step took 0.56 ms a layer against the t8 kernel's 2.2), behind at 2.
# Carry .cuda-carry/z: upg cross-built from this tree (embedded kernels), the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/z; U=/tmp/u; L=$OUT/run248.txt
t0=$(date +%s)
T=${T:-110}
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && chmod +x upg && gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
$U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
left 10 && b default "--prompt-tokens 512 --gen-tokens 64"
left 10 && b b32 "--prompt-tokens 512 --gen-tokens 16 --batch 32"
for B in 8 4 2; do
  for M in 9 4 2; do left 6 && b "b$B-min$M" "--prompt-tokens 64 --gen-tokens 16 --batch $B" UPG_CUDA_TRELLIS_MMA_MIN=$M; done
done
left 10 && b default-2 "--prompt-tokens 512 --gen-tokens 64"
echo "-- all $(( $(date +%s)-t0 )) s" >> $L
cat $L
