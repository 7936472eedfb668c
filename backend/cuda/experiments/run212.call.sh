#!/bin/bash
# Run 212 (prepared 2026-12-05, eighteenth stop, no device that stop): run 211's layerskel questions, then the
# rotated residual stream (compress/synth --rotate-residual) on the GPU, in one call (one cold start).
# Carry .cuda-carry (git-ignored; see below) made here from the working tree:
#   CGO_ENABLED=0 go build -ldflags='-s -w' -o .cuda-carry/upg ./cmd/upg
#   CGO_ENABLED=0 go test -c -o .cuda-carry/cuda.test ./backend/cuda
#   upg compress ../shared/models/miniphi-29m --out .cuda-carry/rot.upg --target-bpw 3.2 \
#     --calib models/calib/miniphi-calib.txt --calib-tokens 8192 --rotate-residual
#   gzip upg cuda.test rot.upg; cl100k_base.tiktoken.gz and miniphi_eval_250k.txt.gz as in runs 185-192
# Run as `bash backend/cuda/experiments/run212.call.sh` (carry [".cuda-carry"]). Writes $OUT/layerskel.txt (run
# 211), $OUT/rot.txt, $OUT/times.txt.
#   1. run211.call.sh (layerskel: FULL2 under the unit check; predictions in NOTES.md, eighteenth stop)
#   2. the rotated miniphi file: greedy 32 against the CPU (TestGPUGreedyMatchesCPU), KL of the GPU from the CPU
#      over miniphi_eval_250k.txt (upg eval --device cuda --ref-device cpu), memcheck over the greedy test
#   3. Phi-4-shaped synth files, plain and --rotate-residual: decode after 512 positions, alternated twice
#      (prediction: within ±0.3%, run 179's norms' rotation being 0.2% of the per-op step)
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
cd $C && gunzip -kf upg.gz cuda.test.gz rot.upg.gz cl100k_base.tiktoken.gz miniphi_eval_250k.txt.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1
  $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/pr.upg -q >> /tmp/synth.txt 2>&1
  echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
spid=$!
bash $E/run211.call.sh
note run211
{
  echo "== greedy, rotated miniphi"
  (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 300 $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | tail -15)
  echo "== KL of the GPU from the CPU, rotated miniphi"
  timeout 400 $C/upg eval --device cuda --ref-device cpu --model $C/rot.upg --ref $C/rot.upg --text $C/miniphi_eval_250k.txt --ctx 512 2>&1 | tail -8
  echo "== memcheck, greedy"
  (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 400 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' 2>&1 | tail -4)
} >> $L/rot.txt
note rotated-miniphi
wait $spid
for i in 1 2; do
  for f in p pr; do
    echo "== decode $f round $i" >> $L/rot.txt
    timeout 120 $C/upg bench --device cuda --model /tmp/$f.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -i 'tok/s\|decode\|prefill' | head -4 >> $L/rot.txt
  done
done
note bench
