#!/bin/bash
# Run 246 (2026-12-07, thirtieth stop): upg_gemm_trellis_bf64/bf128_k* — the trellis codec's many-token multiply in
# bf16 (mma.sync m16n8k16: a lane's A register is a pair of neighbouring positions, one funnel shift a pair; one tile
# column a stage; 4 bands × 64 tokens or 8 bands × 128 tokens a block) against run 243's tf32 kernel. Builds the
# kernels, checks them against the codec's decoder (TestGPUTrellisGemv, within trellisBF16Tol), memcheck, the trellis
# miniphi's KL GPU vs CPU, then the Phi-4-shaped trellis file: prefill of 512 (auto, 64, 128, tf32; alternated),
# batch 32, decode with the one-token kernel's plan counting whole rounds of its grid (UPG_CUDA_TRELLIS1_ROUNDS=1:
# gate|up 20 → 12 tile-times a lane, down 10 → 7; prediction +10-25% decode), and run 245's question (steps of 2-8 tokens: UPG_CUDA_TRELLIS_MMA_MIN=2 against 9), and an ncu of gate|up.
# Prediction (from run 243's shared-memory wavefront count, ~5.0 a token-stage → 3.5 (64) / 2.4 (128)): prefill
# 1,548 → 2,200-3,300 tok/s on an H200; KL ≤ 0.0004.
# Carry .cuda-carry/x: upg and cuda.test cross-built from this tree with kernels.fatbin emptied (every command names
# the new build's fatbin), mt.upg (miniphi-29m, trellis), the tokenizer, the corpus.
set -u
R=$PWD; C=$R/.cuda-carry/x; U=/tmp/u; L=$OUT/run246.txt; F=/tmp/nb/kernels.fatbin
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
(cd backend/cuda && timeout 200 $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis|TestTrellis|TestPDL|TestKernelSig|TestSig' -test.v > /tmp/t0.txt 2>&1; echo "tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/t0.txt) fail $(grep -c -- '--- FAIL' /tmp/t0.txt)" >> $L
grep -E -A3 -- '--- FAIL|^panic' /tmp/t0.txt | head -30 >> $L; gzip -c /tmp/t0.txt > $OUT/t0.txt.gz
note tests
left 90 && { timeout 120 $U/upg eval --device cuda --ref-device cpu --model $U/mt.upg --ref $U/mt.upg --text $U/eval.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $?" >> $L; grep -v '^\s*$' /tmp/kl.txt | tail -6 >> $L; }
note kl
wait
ls -l /tmp/pt.upg | awk '{print "file bytes", $5}' >> $L
b() { echo "$1 $(env "${@:3}" timeout -k 5 60 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode|aggregate|effective)|rror|cuda:|panic' | head -6 | tr -s ' ' | tr '\n' ' ')" >> $L; }
P="--prompt-tokens 512 --gen-tokens 8"
for i in 1 2; do
  left 30 && b auto-$i "$P" UPG_CUDA_TRELLIS_MMA=
  left 30 && b tf32-$i "$P" UPG_CUDA_TRELLIS_MMA=tf32
  left 30 && b tok64-$i "$P" UPG_CUDA_TRELLIS_TOK=64
  left 30 && b tok128-$i "$P" UPG_CUDA_TRELLIS_TOK=128
done
note prefill
D="--prompt-tokens 512 --gen-tokens 64"
for i in 1 2; do
  left 30 && b dec-frac-$i "$D" UPG_CUDA_TRELLIS1_ROUNDS=0
  left 30 && b dec-rounds-$i "$D" UPG_CUDA_TRELLIS1_ROUNDS=1
done
note decode
Q="--prompt-tokens 512 --gen-tokens 16 --batch 32"
left 40 && b b32-auto "$Q" UPG_CUDA_TRELLIS_MMA=
left 40 && b b32-tf32 "$Q" UPG_CUDA_TRELLIS_MMA=tf32
for B in 8 4 2; do
  left 25 && b "b$B-t8" "--prompt-tokens 64 --gen-tokens 16 --batch $B" UPG_CUDA_TRELLIS_MMA_MIN=9
  left 25 && b "b$B-gemm" "--prompt-tokens 64 --gen-tokens 16 --batch $B" UPG_CUDA_TRELLIS_MMA_MIN=2
done
note batch
left 60 && { (cd backend/cuda && timeout 90 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellisGemv/.*_(n11_.*tok64|n150_.*tok128|n3_.*min2)' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); grep -m5 -E "Invalid|Program hit" /tmp/mc.txt >> $L; }
left 60 && { (cd backend/cuda && UPG_CUDA_BENCH=1 timeout 60 $U/cuda.test -test.count=1 -test.run 'TestGPUBenchMany' -test.v > /tmp/bm.txt 2>&1; echo "bench-many rc $?" >> $L); grep -E 'trellis n=|dense n=[0-9]+: ' /tmp/bm.txt | sed 's/^ *//' >> $L; }
left 50 && { UPG_CUDA_GRAPHS=0 timeout 60 ncu --kernel-name regex:upg_gemm_trellis --launch-skip 2 --launch-count 2 --section SpeedOfLight --section Occupancy --section LaunchStats --metrics smsp__inst_executed.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active $U/upg bench --device cuda --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 2 > /tmp/ncu.txt 2>&1; echo "ncu rc $?" >> $L; grep -E "upg_gemm|Duration|Registers Per|Achieved Occ|Theoretical Occ|wavefronts|conflicts|hmma|issue_active|inst_executed|Block Size|Grid Size|Memory Throughput" /tmp/ncu.txt | head -40 >> $L; }
note all
cat $L
