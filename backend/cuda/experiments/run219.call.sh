#!/bin/bash
# Run 219 (2026-12-06, twenty-first stop): a norm reader that quantizes its own input (rotated-residual files).
# Run 217: the norm's work moved into the residual GEMV's tail costs what the kernel did (a chain of fence, count,
# loads, rotation, quantization: ~5 µs on the H100 either way). But in a --rotate-residual file the norm has no
# rotation and no gain, and a 128-column group's int8 codes do not depend on 1/rms: so the reader (q|k|v, gate|up,
# the head) can quantize its own units' groups straight from the float residual in its prologue (one L2 round trip
# of 20 KB a block where it copies 5 KB of int8 today, ~0.3 µs of shuffles) and scale its sums by 1/rms at the end
# (from the 160 row-group sums of squares the writer's last parts would leave). No norm kernel, no chain.
# experiments/qin.patch (-DUPG_SIM_QIN, sm_90, timing only: y stands in for the residual and the sums), with
# UPG_CUDA_ABLATE=upg_rms_rotq. Prediction: QIN+ABL within ~1-3 µs a layer of ABL (H100: ~350-355 against ABL ~360
# and MAIN90 ~326); if so, the real form (and --rotate-residual as synth's default) is worth building.
# Carry .cuda-carry/g (as run 217). Run as `bash backend/cuda/experiments/run219.call.sh`; writes $OUT/run219.txt.
set -u
R=$PWD; C=$R/.cuda-carry/g; L=$OUT/run219.txt; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
[ -f /tmp/synth.ok ] || rm -f /tmp/p.upg # (a first try synthesized without the tokenizer)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
[ -f /tmp/p.upg ] || ( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L; touch /tmp/synth.ok ) &
rm -rf /tmp/kq && mkdir -p /tmp/b /tmp/kq/backend/cuda && cp -r backend/cuda/kernels /tmp/kq/backend/cuda/
(cd /tmp/kq && patch -p1 < $E/qin.patch > /tmp/patch.txt 2>&1; echo "patch rc $?" >> $L)
G="-fatbin -O3 -std=c++17 -lineinfo -Xptxas -v -gencode=arch=compute_90,code=sm_90"
[ -f /tmp/b/MAIN90.fatbin ] || (cd backend/cuda/kernels && nvcc --threads 4 $G upg.cu -o /tmp/b/MAIN90.fatbin > /tmp/bMAIN90.txt 2>&1) &
(cd /tmp/kq/backend/cuda/kernels && nvcc --threads 4 $G -DUPG_SIM_QIN upg.cu -o /tmp/b/QIN.fatbin > /tmp/bQIN.txt 2>&1) &
wait
note builds
for k in upg_gemv_k3_g1_t1 upg_gemv_k3_g1_t1r; do echo "build QIN $k: $(grep -iE 'error' /tmp/bQIN.txt | head -3) $(grep -A2 "Compiling entry function '$k'" /tmp/bQIN.txt | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')" >> $L; done
bench() { # label, fatbin, ablate, args...
  local lab=$1 fb=$2 ab=$3; shift 3
  echo "$lab $(UPG_CUDA_FATBIN=$fb UPG_CUDA_ABLATE=$ab timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg "$@" 2>&1 | grep -E '^(prefill|decode) |rror' | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2; do
  for v in "MAIN90 -" "MAIN90 upg_rms_rotq" "QIN upg_rms_rotq"; do
    set -- $v
    left 40 || break
    ab=$2; [ $ab = - ] && ab=
    bench "b1 $1 ablate=$2" /tmp/b/$1.fatbin "$ab" --prompt-tokens 512 --gen-tokens 64
  done
done
note bench
for v in "MAIN90 upg_rms_rotq" "QIN upg_rms_rotq"; do
  set -- $v
  left 60 || break
  echo "== trace $1 ablate=$2" >> $L
  UPG_CUDA_TRACE=1 UPG_CUDA_FATBIN=/tmp/b/$1.fatbin UPG_CUDA_ABLATE=$2 timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/tr_$1.txt 2>&1
  grep -E '^decode ' /tmp/tr_$1.txt >> $L; sed -n '/cuda step trace/,/last records/p' /tmp/tr_$1.txt | grep -E 'gemv.cu:[0-9]+ grid (240|160|1120|3136)x|attn_cluster|rms_rotq \(5 |swiglu_rotq \(35 ' >> $L
done
note all
