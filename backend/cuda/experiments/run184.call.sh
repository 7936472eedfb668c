#!/bin/bash
# Prepared as run 184, not run (no device was lent after run 183). One call, ~300 s:
# the chainload microbenchmark (experiments/chainload.cu: hand-off and chase latencies under a DRAM
# stream), the layerskel persistent-step skeleton (experiments/layerskel.cu: µs a Phi-4 layer with the
# weights streamed under the small ops' chains, its floor, and without run-ahead), then kv-evict-first.patch (sm_90 build of a patched copy) against main at 3,072 positions
# (attn_split) and at batch 32; epilogue-prefetch.patch (sm_90) against main after 512 positions, twice. Carry .cuda-carry with upg.gz (cross-built from main) and
# cl100k_base.tiktoken.gz; run as `bash backend/cuda/experiments/run184.call.sh`.
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT; mkdir -p /tmp/b
t0=$(date +%s)
cd $C && gunzip -kf upg.gz cl100k_base.tiktoken.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
# the model file and the two patched builds (CPU) run beside the microbenchmarks (GPU)
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1 ) &
( cp -r backend/cuda/kernels /tmp/kv && cd /tmp/kv && patch -p4 < $R/backend/cuda/experiments/kv-evict-first.patch > /tmp/patch.txt && nvcc -fatbin -O3 -std=c++17 -lineinfo --threads 7 -Xptxas -v -gencode=arch=compute_90,code=sm_90 upg.cu -o /tmp/b/KV.fatbin > /tmp/build.txt 2>&1; echo "build rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
( cp -r backend/cuda/kernels /tmp/ep && cd /tmp/ep && patch -p4 < $R/backend/cuda/experiments/epilogue-prefetch.patch > /tmp/patch-ep.txt && nvcc -fatbin -O3 -std=c++17 -lineinfo --threads 7 -Xptxas -v -gencode=arch=compute_90,code=sm_90 upg.cu -o /tmp/b/EP.fatbin > /tmp/build-ep.txt 2>&1; echo "build EP rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
nvcc -O3 -std=c++17 -arch=sm_90 $R/backend/cuda/experiments/chainload.cu -o /tmp/chainload > $L/chainload.txt 2>&1 && timeout -k 10 60 /tmp/chainload >> $L/chainload.txt 2>&1
echo "chainload rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt
# layerskel (512 threads a block: 15 consumer warps; 1024: 31): mode (0 step, 1 stream alone, 2 no
# run-ahead, 3 multiply alone, 4 chain alone, 5 the step with each warp fetching its own units, 6 as 5
# without the small ops), ring slots (0: all that fit), evict-first, attention splits a kv head
pids=
for th in 512 1024; do
  nvcc -O3 -std=c++17 -arch=sm_90 -DLS_THREADS=$th -Xptxas -v $R/backend/cuda/experiments/layerskel.cu -o /tmp/layerskel$th > /tmp/layerskel-build$th.txt 2>&1 &
  pids="$pids $!"
done
wait $pids
for th in 512 1024; do
  echo "== build $th: $(grep -A2 "properties for _Z4step" /tmp/layerskel-build$th.txt | tr '\n' ' ')" >> $L/layerskel.txt
  [ -x /tmp/layerskel$th ] || tail -30 /tmp/layerskel-build$th.txt >> $L/layerskel.txt
done
for a in "512 0 0 0 13" "512 1 0 0 13" "512 3 0 0 13" "512 4 0 0 13" "512 5 0 0 13" "512 6 0 0 13" "512 2 0 0 13" "512 0 0 1 13" "512 0 64 0 13" "512 0 0 0 8" "1024 0 0 0 13" "1024 1 0 0 13" "1024 3 0 0 13" "1024 5 0 0 13" "512 5 0 1 13" "512 0 0 0 13"; do
  set -- $a; th=$1; shift
  echo "== layerskel threads $th, args $*" >> $L/layerskel.txt
  timeout -k 10 30 /tmp/layerskel$th "$@" >> $L/layerskel.txt 2>&1
  rc=$?
  # a run that gives up (its waits trap after 0.5 s) exits 1; one past the timeout hung
  # outside them (a barrier): the others would too, and the benches below need the time
  { [ $rc = 124 ] || [ $rc = 137 ]; } && { echo "timed out: the remaining layerskel runs skipped" >> $L/layerskel.txt; break; }
done
echo "layerskel $(( $(date +%s)-t0 )) s" >> $L/times.txt
cd $R
wait
for round in 1 2; do for v in main EP; do
  unset UPG_CUDA_FATBIN; [ $v = EP ] && export UPG_CUDA_FATBIN=/tmp/b/EP.fatbin
  $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 > /tmp/bench.txt 2>&1
  echo "512 $round $v $(grep -E '^(decode) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -i error /tmp/bench.txt | head -2)" >> $L/bench.txt
done; done
for v in main KV; do
  unset UPG_CUDA_FATBIN; [ $v = KV ] && export UPG_CUDA_FATBIN=/tmp/b/KV.fatbin
  $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 3072 --gen-tokens 64 > /tmp/bench.txt 2>&1
  echo "3072 $v $(grep -E '^(decode) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ') $(grep -i error /tmp/bench.txt | head -2)" >> $L/bench.txt
done
for v in main KV; do
  unset UPG_CUDA_FATBIN; [ $v = KV ] && export UPG_CUDA_FATBIN=/tmp/b/KV.fatbin
  $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 32 --batch 32 > /tmp/bench.txt 2>&1
  echo "b32 $v $(grep -E '^(decode) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ')" >> $L/bench.txt
done
echo "all $(( $(date +%s)-t0 )) s" >> $L/times.txt
