#!/bin/bash
# Run 218 (2026-12-06, twenty-first stop): this layer's cached key and value rows asked into L2 by the q|k|v GEMV.
# Run 217's trace (H100): the cluster attention takes 11.0 µs a layer, its keys' and values' phases one DRAM round
# trip each (run 169: 3.3 and 1.9 µs on the H200) — rows written in earlier steps, evicted since by the token's
# 5.5 GB of weights. experiments/kv-prefetch.patch (-DUPG_SIM_KVPF, sm_90): before its PDL wait, every block of the
# q|k|v GEMV (240 blocks, one wave) issues prefetch.global.L2 for its share of the 128-byte lines of the rows of
# positions < the step's (2.6 MB a layer at 512), so the attention's loads hit L2. Timing only in that it assumes the
# sequence's cache blocks are 0, 1, 2, ... (true for upg bench's one fresh sequence). Prediction: attention
# 11.0 -> ~9.5-10 µs a layer, decode +1.5-3%; against it, run 72/30/40's lesson that traffic beside the chain
# lengthens its round trips (2.6 MB beside q|k|v's 15.7 MB of weights).
# Carry .cuda-carry/g (as run 217). Run as `bash backend/cuda/experiments/run218.call.sh`; writes $OUT/run218.txt.
set -u
R=$PWD; C=$R/.cuda-carry/g; L=$OUT/run218.txt; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
[ -f /tmp/synth.ok ] || rm -f /tmp/p.upg # (a first try synthesized without the tokenizer)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
[ -f /tmp/p.upg ] || ( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L; touch /tmp/synth.ok ) &
rm -rf /tmp/kkv && mkdir -p /tmp/b /tmp/kkv/backend/cuda && cp -r backend/cuda/kernels /tmp/kkv/backend/cuda/
(cd /tmp/kkv && patch -p1 < $E/kv-prefetch.patch > /tmp/patch.txt 2>&1; echo "patch rc $?" >> $L)
G="-fatbin -O3 -std=c++17 -lineinfo -Xptxas -v -gencode=arch=compute_90,code=sm_90"
[ -f /tmp/b/MAIN90.fatbin ] || (cd backend/cuda/kernels && nvcc --threads 4 $G upg.cu -o /tmp/b/MAIN90.fatbin > /tmp/bMAIN90.txt 2>&1) &
(cd /tmp/kkv/backend/cuda/kernels && nvcc --threads 4 $G -DUPG_SIM_KVPF upg.cu -o /tmp/b/KVPF.fatbin > /tmp/bKVPF.txt 2>&1) &
wait
note builds
echo "build KVPF: $(grep -iE 'error' /tmp/bKVPF.txt | head -3) $(grep -A2 "Compiling entry function 'upg_gemv_k3_g1_t1r'" /tmp/bKVPF.txt | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')" >> $L
bench() { # label, fatbin, args...
  local lab=$1 fb=$2; shift 2
  echo "$lab $(UPG_CUDA_FATBIN=$fb timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg "$@" 2>&1 | grep -E '^(prefill|decode) |rror' | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2 3; do
  for v in MAIN90 KVPF; do
    left 40 || break
    bench "b1 $v" /tmp/b/$v.fatbin --prompt-tokens 512 --gen-tokens 64
  done
done
for v in MAIN90 KVPF; do
  left 40 || break
  bench "b1 $v after 1500" /tmp/b/$v.fatbin --prompt-tokens 1500 --gen-tokens 64
done
note bench
for v in MAIN90 KVPF; do
  left 60 || break
  echo "== trace $v" >> $L
  UPG_CUDA_TRACE=1 UPG_CUDA_FATBIN=/tmp/b/$v.fatbin timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/tr_$v.txt 2>&1
  grep -E '^decode ' /tmp/tr_$v.txt >> $L; sed -n '/cuda step trace/,/last records/p' /tmp/tr_$v.txt | grep -E 'gemv.cu:[0-9]+ grid (240|160|1120)x|attn_cluster|rms_rotq \(5 |swiglu_rotq \(35 ' >> $L
done
left 60 && { (cd backend/cuda && UPG_CUDA_FATBIN=/tmp/b/KVPF.fatbin timeout 100 $C/cuda.test -test.count=1 -test.run 'TestGPUGreedyMatchesCPU|TestGPUFused|TestGPUAttention' > /tmp/q.txt 2>&1; echo "KVPF quick tests rc $? $(tail -1 /tmp/q.txt)" >> $L); }
note all
