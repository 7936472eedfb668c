#!/bin/bash
# Run 212 (prepared 2026-12-05, eighteenth stop): run 211's layerskel questions, then the rotated residual stream
# (compress/synth --rotate-residual) on the GPU, in two calls on one warm machine (the tree and one carry must stay
# under the 64 MiB a call takes). Carry made here from the working tree (git-ignored):
#   .cuda-carry/a: upg.gz (CGO_ENABLED=0 go build -ldflags='-s -w' ./cmd/upg), rot.upg.gz, cl100k_base.tiktoken.gz,
#                  miniphi_eval_250k.txt.gz
#   .cuda-carry/b: cuda.test.gz (CGO_ENABLED=0 go test -c -ldflags='-s -w' ./backend/cuda), rot.upg.gz
#   rot.upg: upg compress ../shared/models/miniphi-29m --out rot.upg --target-bpw 3.2 \
#            --calib models/calib/miniphi-calib.txt --calib-tokens 8192 --rotate-residual
# Run as `bash backend/cuda/experiments/run212.call.sh a` (carry [".cuda-carry/a"]), then `... b` (carry
# [".cuda-carry/b"]). Writes $OUT/layerskel.txt (a: run 211 and 1b), $OUT/rot.txt, $OUT/times.txt.
#   a1. run211.call.sh (layerskel: FULL2 under the unit check; predictions in NOTES.md, eighteenth stop), then the
#       chain with the norms' rotations gone (-DLS_RESROT, what a --rotate-residual file allows)
#   a2. KL of the GPU from the CPU over miniphi_eval_250k.txt for the rotated miniphi file (upg eval --device cuda
#       --ref-device cpu)
#   a3. Phi-4-shaped synth files, plain and --rotate-residual: decode after 512 positions, alternated twice
#       (prediction: within ±0.3%, run 179's norms' rotation being 0.2% of the per-op step)
#   b.  the rotated miniphi file: greedy 32 against the CPU (TestGPUGreedyMatchesCPU), memcheck over it
set -u
PART=${1:-a}
R=$PWD; C=$R/.cuda-carry/$PART; L=$OUT; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
# left N: true when at least N of the call's 590 s are left (else the step is skipped, and times.txt says so)
left() { [ $(( 590 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L/times.txt; false; }; }
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test 2>/dev/null
cd $R
if [ $PART = b ]; then
  {
    echo "== greedy, rotated miniphi"
    (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 200 $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | tail -15)
    echo "== memcheck, greedy"
    left 100 && (cd backend/cuda && UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 300 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' 2>&1 | tail -4)
  } >> $L/rot.txt
  note part-b
  exit 0
fi
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
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
  echo "== KL of the GPU from the CPU, rotated miniphi"
  timeout 140 $C/upg eval --device cuda --ref-device cpu --model $C/rot.upg --ref $C/rot.upg --text $C/miniphi_eval_250k.txt --ctx 512 2>&1 | tail -8
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
