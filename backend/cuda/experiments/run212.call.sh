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
#   1. run211.call.sh (layerskel: FULL2 under the unit check; predictions in NOTES.md, eighteenth stop), then the
#      chain with the norms' rotations gone (-DLS_RESROT, what a --rotate-residual file allows)
#   2. the rotated miniphi file: greedy 32 against the CPU (TestGPUGreedyMatchesCPU), KL of the GPU from the CPU
#      over miniphi_eval_250k.txt (upg eval --device cuda --ref-device cpu), memcheck over the greedy test
#   3. Phi-4-shaped synth files, plain and --rotate-residual: decode after 512 positions, alternated twice
#      (prediction: within ±0.3%, run 179's norms' rotation being 0.2% of the per-op step)
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
# left N: true when at least N of the call's 590 s are left (else the step is skipped, and times.txt says so)
left() { [ $(( 590 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L/times.txt; false; }; }
cd $C && gunzip -kf upg.gz cuda.test.gz rot.upg.gz cl100k_base.tiktoken.gz miniphi_eval_250k.txt.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1
  $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/pr.upg -q >> /tmp/synth.txt 2>&1
  echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
spid=$!
bash $E/run211.call.sh
note run211
# 1b. the persistent step's chain on a --rotate-residual file: -DLS_RESROT (the norms without gain or rotation; o's
#     input and the SwiGLU keep theirs) against T16F (run 211's build: no rotation anywhere) and B16F (every
#     rotation), FULL2 group form; modes 4 (the chain alone) and 0 (the step), alternated. Prediction (H100 runs
#     197-200: the norms' rotations ~3.8 of 6.0 µs): RESROT's chain ~2.2 µs a layer above T16F's, ~3.8 below B16F's.
B="-O3 -std=c++17 -arch=sm_90 -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 -DLS_FULL2"
nvcc $B -DLS_RESROT $E/layerskel.cu -o /tmp/ls_R16F > /tmp/bR16F.txt 2>&1 &
p1=$!
nvcc $B $E/layerskel.cu -o /tmp/ls_B16F > /tmp/bB16F.txt 2>&1 &
wait $p1 $!
for v in R16F B16F; do echo "== build $v: $(grep -i 'error' /tmp/b$v.txt | head -5)" >> $L/layerskel.txt; done
for a in "T16F 4" "R16F 4" "B16F 4" "T16F 0" "R16F 0" "B16F 0" "T16F 4" "R16F 4" "B16F 4" "T16F 0" "R16F 0" "B16F 0"; do
  set -- $a
  echo "== $1 mode $2" >> $L/layerskel.txt
  timeout -k 5 20 /tmp/ls_$1 $2 0 0 13 2>&1 | grep -v '^weights\|SMs; mode\|^run [12]:' >> $L/layerskel.txt
done
note resrot
left 150 && {
  echo "== greedy, rotated miniphi"
  (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 120 $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | tail -15)
  echo "== KL of the GPU from the CPU, rotated miniphi"
  left 130 && timeout 120 $C/upg eval --device cuda --ref-device cpu --model $C/rot.upg --ref $C/rot.upg --text $C/miniphi_eval_250k.txt --ctx 512 2>&1 | tail -8
  echo "== memcheck, greedy"
  left 200 && (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 180 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' 2>&1 | tail -4)
} >> $L/rot.txt
note rotated-miniphi
wait $spid
for i in 1 2; do
  for f in p pr; do
    left 60 || break 2
    echo "== decode $f round $i" >> $L/rot.txt
    timeout 120 $C/upg bench --device cuda --model /tmp/$f.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -i 'tok/s\|decode\|prefill' | head -4 >> $L/rot.txt
  done
done
note bench
