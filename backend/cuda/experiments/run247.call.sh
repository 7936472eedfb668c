#!/bin/bash
# Run 247 (2026-12-07, thirtieth stop): split-K for the trellis tensor-core kernels (tf32 and bf16: block z of gridDim.z
# takes its share of the tile columns, the parts summed by upg_splitk_sum, where the grid leaves SMs idle: run 246
# found the bf16 kernels' small grids — o, q|k|v, down at 512 tokens; every matrix at 32 — latency-bound, and batch 32
# slower than tf32). Builds the kernels, TestGPUTrellisGemv (split and not), memcheck, then the Phi-4-shaped trellis
# file: prefill of 512 and batch-32 decode for tf32 and bf16 (64- and 128-token blocks), split-K on and off, alternated.
# Prediction: bf16-128 with split ~2,300-2,600 tok/s prefill (run 246: 1,920 without); batch 32 with split ≥ tf32's 355.
# Carry .cuda-carry/y: upg and cuda.test cross-built from this tree with kernels.fatbin emptied, the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/y; U=/tmp/u; L=$OUT/run247.txt; F=/tmp/nb/kernels.fatbin
t0=$(date +%s)
T=${T:-575}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
export UPG_CUDA_FATBIN=$F
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
mkdir -p /tmp/nb && bash scripts/build-cuda.sh /tmp/nb > /tmp/build.txt 2>&1; rc=$?; echo "build rc $rc $(( $(date +%s)-t0 )) s" >> $L
if [ $rc != 0 ]; then grep -E "error|rror" /tmp/build.txt | head -30 >> $L; cp /tmp/build.txt $OUT/; wait; note all; cat $L; exit 0; fi
cp /tmp/nb/kernels.fatbin /tmp/nb/kernels.manifest.json $OUT/
python3 - backend/cuda/kernels.manifest.json /tmp/nb/kernels.manifest.json >> $L <<'PY'
import json, sys
a, b = (json.load(open(p))['kernels'] for p in sys.argv[1:3])
d = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
print('manifest: %d kernels, %d differ: %s' % (len(b), len(d), ' '.join(d)))
for k in d:
    if 'trellis' in k: print(' ', k, 'sm_90', b.get(k, {}).get('sm_90'), 'sm_86', b.get(k, {}).get('sm_86'))
PY
(cd backend/cuda && timeout 200 $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis|TestTrellis|TestPDL|TestKernelSig' -test.v > /tmp/t0.txt 2>&1; echo "tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/t0.txt) fail $(grep -c -- '--- FAIL' /tmp/t0.txt)" >> $L
grep -E -A3 -- '--- FAIL|^panic' /tmp/t0.txt | head -30 >> $L; grep -E 'relative error' /tmp/t0.txt | head -5 >> $L; gzip -c /tmp/t0.txt > $OUT/t0.txt.gz
note tests
wait
ls -l /tmp/pt.upg | awk '{print "file bytes", $5}' >> $L
b() { echo "$1 $(env "${@:3}" timeout -k 5 60 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -4 | tr -s ' ' | tr '\n' ' ')" >> $L; }
P="--prompt-tokens 512 --gen-tokens 4"
for i in 1 2; do
  left 25 && b tf32-nosplit-$i "$P" UPG_CUDA_TRELLIS_MMA=tf32 UPG_CUDA_TRELLIS_SPLIT=0
  left 25 && b tf32-split-$i "$P" UPG_CUDA_TRELLIS_MMA=tf32
  left 25 && b bf64-split-$i "$P" UPG_CUDA_TRELLIS_TOK=64
  left 25 && b bf128-split-$i "$P" UPG_CUDA_TRELLIS_TOK=128
  left 25 && b bf128-nosplit-$i "$P" UPG_CUDA_TRELLIS_TOK=128 UPG_CUDA_TRELLIS_SPLIT=0
  left 25 && b auto-$i "$P"
done
note prefill
Q="--prompt-tokens 64 --gen-tokens 16 --batch 32"
for i in 1 2; do
  left 25 && b b32-tf32-nosplit-$i "$Q" UPG_CUDA_TRELLIS_MMA=tf32 UPG_CUDA_TRELLIS_SPLIT=0
  left 25 && b b32-tf32-split-$i "$Q" UPG_CUDA_TRELLIS_MMA=tf32
  left 25 && b b32-bf64-split-$i "$Q" UPG_CUDA_TRELLIS_TOK=64
  left 25 && b b32-bf128-split-$i "$Q" UPG_CUDA_TRELLIS_TOK=128
done
Q="--prompt-tokens 64 --gen-tokens 16 --batch 16"
left 25 && b b16-t8 "$Q" UPG_CUDA_TRELLIS_MMA_MIN=17
left 25 && b b16-tf32-split "$Q" UPG_CUDA_TRELLIS_MMA=tf32
left 25 && b b16-bf64-split "$Q" UPG_CUDA_TRELLIS_TOK=64
note batch
left 50 && { (cd backend/cuda && timeout 70 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellisGemv/(7x5120|64x512).*_(n11|n70|n150)_.*splittrue' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); grep -m5 -E "Invalid|Program hit|FAIL" /tmp/mc.txt >> $L; }
left 45 && { (cd backend/cuda && UPG_CUDA_BENCH=1 UPG_CUDA_TRELLIS_TOK=128 timeout 60 $U/cuda.test -test.count=1 -test.run 'TestGPUBenchMany' -test.v > /tmp/bm.txt 2>&1; echo "bench-many (bf128) rc $?" >> $L); grep -E 'trellis n=' /tmp/bm.txt | sed 's/^ *//' >> $L; }
note all
cat $L
