#!/bin/bash
# Run 243 (2026-12-06, twenty-ninth stop): upg_gemm_trellis_k* — the trellis codec's many-token multiply on tensor
# cores (kernels/trellis.cu: a warp decodes its band's tiles straight into mma.sync m16n8k8 tf32 A fragments, 64
# tokens a block) — and run 242's question, the one-token upg_gemv_trellis1_k*'s speed. Builds the kernels, checks
# both against the codec's decoder (TestGPUTrellisGemv: n = 11 and 70 on the new kernel, within 2e-3), the KL of a
# trellis miniphi on the GPU against the CPU, then the Phi-4-shaped trellis file's prefill of 512 and decode with
# both new kernels and with neither (UPG_CUDA_TRELLIS1=0 UPG_CUDA_TRELLIS_MMA=0), alternated, and memcheck.
# Predictions (H100): prefill 181 -> 1,500-4,500 tok/s (smem-bound: ~60 wavefronts a warp-tile); decode 67 -> 180-250.
# Carry .cuda-carry/u: upg and cuda.test cross-built from this tree with kernels.fatbin emptied (the carry's 64 MiB;
# every command here names the new build's fatbin), mt.upg (miniphi-29m, trellis, 2.6 bpw), the tokenizer, the corpus.
set -u
R=$PWD; C=$R/.cuda-carry/u; U=/tmp/u; L=$OUT/run243.txt; F=/tmp/nb/kernels.fatbin
t0=$(date +%s)
T=${T:-575}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && xz -dc $C/mt.upg.xz > mt.upg && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken && gunzip -c $C/miniphi_eval_250k.txt.gz > eval.txt
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
export UPG_CUDA_FATBIN=$F
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
mkdir -p /tmp/nb && bash scripts/build-cuda.sh /tmp/nb > /tmp/build.txt 2>&1; rc=$?; echo "build rc $rc $(( $(date +%s)-t0 )) s" >> $L
if [ $rc != 0 ]; then grep -E "error|rror" /tmp/build.txt | head -20 >> $L; cp /tmp/build.txt $OUT/; wait; note all; cat $L; exit 0; fi
cp /tmp/nb/kernels.fatbin /tmp/nb/kernels.manifest.json $OUT/
python3 - backend/cuda/kernels.manifest.json /tmp/nb/kernels.manifest.json >> $L <<'PY'
import json, sys
a, b = (json.load(open(p))['kernels'] for p in sys.argv[1:3])
d = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
print('manifest: %d kernels, %d differ: %s' % (len(b), len(d), ' '.join(d)))
for k in d:
    if 'trellis' in k: print(' ', k, 'sm_90', b.get(k, {}).get('sm_90'), 'sm_80', b.get(k, {}).get('sm_80'))
PY
(cd backend/cuda && timeout 150 $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis|TestTrellis' -test.v > /tmp/t0.txt 2>&1; echo "trellis tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/t0.txt) fail $(grep -c -- '--- FAIL' /tmp/t0.txt)" >> $L
grep -E -A2 -- '--- FAIL|^panic' /tmp/t0.txt | head -16 >> $L; gzip -c /tmp/t0.txt > $OUT/t0.txt.gz
note tests
left 80 && { timeout 120 $U/upg eval --device cuda --ref-device cpu --model $U/mt.upg --ref $U/mt.upg --text $U/eval.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $?" >> $L; grep -v '^\s*$' /tmp/kl.txt | tail -8 >> $L; }
note kl
wait
ls -l /tmp/pt.upg | awk '{print "file bytes", $5}' >> $L
b() { echo "$1 $(env "${@:2}" timeout -k 5 100 $U/upg bench --device cuda --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode|effective)|rror|cuda:|panic' | head -6 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2; do
  left 45 && b new-$i UPG_CUDA_TRELLIS1=1 UPG_CUDA_TRELLIS_MMA=1
  left 60 && b old-$i UPG_CUDA_TRELLIS1=0 UPG_CUDA_TRELLIS_MMA=0
done
note bench
left 70 && { (cd backend/cuda && UPG_CUDA_BENCH=1 timeout 60 $U/cuda.test -test.count=1 -test.run 'TestGPUBenchMany' -test.v > /tmp/bm.txt 2>&1; echo "bench-many rc $?" >> $L); grep -E 'trellis n=|dense n=[0-9]+: ' /tmp/bm.txt | sed 's/^ *//' >> $L; }
left 60 && { (cd backend/cuda && timeout 90 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellisGemv/.*_(n1_tr1true|n70)' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); grep -m5 -E "Invalid|Program hit" /tmp/mc.txt >> $L; }
note all
cat $L
