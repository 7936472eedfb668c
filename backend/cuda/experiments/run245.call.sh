#!/bin/bash
# Run 245 (2026-12-06, twenty-ninth stop): steps of 2-8 tokens of a trellis file — the tensor-core GEMM
# (UPG_CUDA_TRELLIS_MMA_MIN=2) against one pass of the t8 kernel (the default, 9) — by `upg bench --batch B` on the
# Phi-4-shaped trellis file, alternated. Prediction from run 243's per-pass costs (t8 ~44 ms a pass over the model,
# the GEMM ~41 ms for 64 tokens, less with fewer token tiles): the GEMM ahead at 4 and 8, about even at 2.
# Carry .cuda-carry/w: upg.xz cross-built from this tree (embedded kernels), cl100k_base.tiktoken.gz.
set -u
R=$PWD; C=$R/.cuda-carry/w; U=/tmp/u; L=$OUT/run245.txt
t0=$(date +%s)
T=${T:-150}
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && chmod +x upg && gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
[ -f /tmp/pt.upg ] || $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1
echo "synth $(( $(date +%s)-t0 )) s" >> $L
b() { echo "$1 $(env "${@:2}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg --prompt-tokens 64 --gen-tokens 16 --batch ${B} 2>&1 | grep -E '^decode|rror|panic' | head -2 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for B in 8 4 2; do
  left 20 && b "batch $B t8" UPG_CUDA_TRELLIS_MMA_MIN=9
  left 20 && b "batch $B gemm" UPG_CUDA_TRELLIS_MMA_MIN=2
  left 20 && b "batch $B t8" UPG_CUDA_TRELLIS_MMA_MIN=9
  left 20 && b "batch $B gemm" UPG_CUDA_TRELLIS_MMA_MIN=2
done
echo "-- all $(( $(date +%s)-t0 )) s" >> $L
cat $L
