#!/bin/bash
# Run 186 (2026-12-05): chainload.cu, then epilogue-prefetch.patch and kv-evict-first.patch (sm_90 builds of patched copies of
# kernels/) against main's fatbin: decode after 512 positions alternated twice (EP), after 3,072 positions
# and at batch 32 (KV). Carry .cuda-carry (upg.gz, cl100k_base.tiktoken.gz); ~250 s.
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; mkdir -p /tmp/b
t0=$(date +%s)
cd $C && gunzip -kf upg.gz cl100k_base.tiktoken.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1 ) &
for v in KV:kv-evict-first EP:epilogue-prefetch; do
  n=${v%%:*}; p=${v#*:}
  ( rm -rf /tmp/k$n && cp -r backend/cuda/kernels /tmp/k$n && cd /tmp/k$n && patch -p4 < $R/backend/cuda/experiments/$p.patch > /tmp/patch$n.txt && nvcc -fatbin -O3 -std=c++17 -lineinfo -Xptxas -v -gencode=arch=compute_90,code=sm_90 upg.cu -o /tmp/b/$n.fatbin > /tmp/build$n.txt 2>&1; echo "build $n rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
done
# chainload (experiments/chainload.cu: a hand-off and L2/DRAM chase steps under a DRAM stream) while the CPU builds
nvcc -O3 -std=c++17 -arch=sm_90 $R/backend/cuda/experiments/chainload.cu -o /tmp/chainload > $L/chainload.txt 2>&1 && timeout -k 10 60 /tmp/chainload >> $L/chainload.txt 2>&1
echo "chainload rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt
wait
for n in KV EP; do grep -iE 'error|spill stores' /tmp/build$n.txt | grep -v ' 0 bytes spill' | head -8 > $L/build$n.txt; done
bench() { # label, env fatbin or "", args...
  local lab=$1 fb=$2; shift 2
  unset UPG_CUDA_FATBIN; [ -n "$fb" ] && export UPG_CUDA_FATBIN=$fb
  timeout -k 10 120 $C/upg bench --device cuda --model /tmp/p.upg "$@" > /tmp/bench.txt 2>&1
  echo "$lab rc $? $(grep -E '^(decode|prefill) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -iE 'error|panic' /tmp/bench.txt | head -2 | tr '\n' ' ')" >> $L/bench.txt
}
for round in 1 2; do
  bench "512 main $round" "" --prompt-tokens 512 --gen-tokens 64
  bench "512 EP $round" /tmp/b/EP.fatbin --prompt-tokens 512 --gen-tokens 64
done
bench "3072 main" "" --prompt-tokens 3072 --gen-tokens 64
bench "3072 KV" /tmp/b/KV.fatbin --prompt-tokens 3072 --gen-tokens 64
bench "b32 main" "" --prompt-tokens 512 --gen-tokens 32 --batch 32
bench "b32 KV" /tmp/b/KV.fatbin --prompt-tokens 512 --gen-tokens 32 --batch 32
echo "all $(( $(date +%s)-t0 )) s" >> $L/times.txt
