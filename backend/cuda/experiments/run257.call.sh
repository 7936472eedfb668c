#!/bin/bash
# Run 257 (2026-12-07, thirty-fourth stop): is the trellis miniphi's greedy divergence from the CPU (run 253: token 40,
# CPU top-2 0.021 apart) the bf16 prefill? Greedy 64 tokens of mt.upg on the CPU and on the GPU with each many-token
# trellis kernel (UPG_CUDA_TRELLIS_MMA unset = bf16 tensor cores, tf32, 0 = fp32 8-token passes), and the KL of each
# from the CPU over the first 60 KB of miniphi_eval_250k.txt (ctx 512). The committed kernels (UPG_CUDA_FATBIN).
# Carry .cuda-carry/f: upg cross-built from dfec075 with kernels.fatbin emptied (xz), mt.upg (`upg compress
# ../shared/models/miniphi-29m --out mt.upg --target-bpw 3.2 --calib models/calib/miniphi-calib.txt --calib-tokens
# 8192 --codec trellis`), the corpus (gzip), and cuda.test (xz) for compute-sanitizer memcheck over TestGPUTrellis1Split
# (the review mend's cases).
set -u
R=$PWD; C=$R/.cuda-carry/f; U=/tmp/u; L=$OUT/run257.txt; F0=$R/backend/cuda/kernels.fatbin
t0=$(date +%s)
T=${T:-400}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test && gunzip -c $C/eval.txt.gz | head -c 60000 > eval.txt
cd $R
P=$(head -c 400 $U/eval.txt)
g() { env "${@:3}" UPG_CUDA_FATBIN=$F0 timeout 60 $U/upg run --device $2 --model $C/mt.upg --temperature 0 -n 64 --ignore-eos --json "$P" 2>/tmp/g.err | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])' > /tmp/g-$1.txt 2>>/tmp/g.err; echo "greedy $1 rc $? $(wc -c < /tmp/g-$1.txt) bytes" >> $L; }
g cpu cpu X=1
g bf16 cuda X=1
g tf32 cuda UPG_CUDA_TRELLIS_MMA=tf32
g fp32 cuda UPG_CUDA_TRELLIS_MMA=0
for v in bf16 tf32 fp32; do cmp -s /tmp/g-cpu.txt /tmp/g-$v.txt && echo "greedy $v = cpu" >> $L || { echo "greedy $v differs from cpu at byte $(cmp /tmp/g-cpu.txt /tmp/g-$v.txt | grep -o 'byte [0-9]*')" >> $L; }; done
head -c 300 /tmp/g.err >> $L
note greedy
k() { left 40 && { env "${@:2}" UPG_CUDA_FATBIN=$F0 timeout 120 $U/upg eval --device cuda --ref-device cpu --model $C/mt.upg --ref $C/mt.upg --text $U/eval.txt --ctx 512 > /tmp/kl-$1.txt 2>&1; echo "eval $1 rc $?: $(grep -iE 'kl|top-1|ppl' /tmp/kl-$1.txt | tr -s ' ' | tr '\n' ' ' | head -c 400)" >> $L; }; }
k bf16 X=1
k tf32 UPG_CUDA_TRELLIS_MMA=tf32
k fp32 UPG_CUDA_TRELLIS_MMA=0
note eval
left 60 && (cd backend/cuda && UPG_CUDA_FATBIN=$F0 timeout $(( T - 10 - ($(date +%s)-t0) )) compute-sanitizer --tool memcheck $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis1Split' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt | tail -1) $(grep -cE -- '--- PASS' /tmp/mc.txt) pass lines $(tail -1 /tmp/mc.txt)" >> $L)
note all
cat $L
