#!/bin/bash
# Run 241 (2026-12-06, twenty-eighth stop): upg_gemv_trellis1_k* — the trellis one-token GEMV whose lookups
# cannot conflict (kernels/trellis.cu: per-lane tables of the hash's pieces and of the codebook, a lane per tile,
# the window's upper piece read from a later position's lookup). Builds the kernels, checks them against the codec's
# decoder (TestGPUTrellisGemv: both one-token kernels, every shape), the kernel's KL on a trellis miniphi against
# the CPU, memcheck, then the Phi-4-shaped trellis file's decode with the new kernel and with the old
# (UPG_CUDA_TRELLIS1=0), alternated, and ncu's view of both. Prediction (H100): the old kernel ~55-65 tok/s; the
# new one issue- or shared-memory-bound at ~2 wavefronts and ~7 instructions a weight-warp, ~3-4x: 180-250 tok/s.
# Carry .cuda-carry/t: upg and cuda.test cross-built from the tree with this script (xz), mt.upg (miniphi-29m,
# `upg compress ../shared/models/miniphi-29m --codec trellis --target-bpw 2.6`: under the 64 MiB carry), cl100k_base.tiktoken.gz,
# miniphi_eval_250k.txt.gz.
set -u
R=$PWD; C=$R/.cuda-carry/t; U=/tmp/u; L=$OUT/run241.txt; F=/tmp/nb/kernels.fatbin
t0=$(date +%s)
T=${T:-575}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken && gunzip -c $C/miniphi_eval_250k.txt.gz > eval.txt
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
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
    print(' ', k, 'sm_90', b.get(k, {}).get('sm_90'), 'sm_80', b.get(k, {}).get('sm_80'))
PY
(cd backend/cuda && UPG_CUDA_FATBIN=$F timeout 150 $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis|TestTrellis' -test.v > /tmp/t0.txt 2>&1; echo "trellis tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/t0.txt) fail $(grep -c -- '--- FAIL' /tmp/t0.txt)" >> $L
grep -E -- '--- FAIL|panic|error' /tmp/t0.txt | head -12 >> $L
note tests
left 80 && { UPG_CUDA_FATBIN=$F timeout 120 $U/upg eval --device cuda --ref-device cpu --model $C/mt.upg --ref $C/mt.upg --text $U/eval.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $?" >> $L; grep -v '^\s*$' /tmp/kl.txt | tail -8 >> $L; }
note kl
wait
ls -l /tmp/pt.upg | awk '{print "file bytes", $5}' >> $L
b() { echo "$1 $(env UPG_CUDA_FATBIN=$F "${@:2}" timeout -k 5 100 $U/upg bench --device cuda --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode|read|effective|device)|rror|cuda:|panic' | head -6 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2; do
  left 45 && b new-$i X=1
  left 45 && b old-$i UPG_CUDA_TRELLIS1=0
done
note bench
left 60 && { (cd backend/cuda && UPG_CUDA_FATBIN=$F timeout 90 compute-sanitizer --tool memcheck $U/cuda.test -test.run 'TestGPUTrellisGemv/.*_n1_tr1true' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); }
left 60 && {
  $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> $L 2>&1
  M='gpu__time_duration.sum,launch__grid_size,launch__block_size,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,smsp__inst_executed.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio'
  for v in new old; do
    e=X=1; [ $v = old ] && e=UPG_CUDA_TRELLIS1=0
    env UPG_CUDA_FATBIN=$F $e timeout 60 ncu --metrics $M -k regex:upg_gemv_trellis --launch-skip 40 --launch-count 8 --csv --page raw \
      $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 24 > /tmp/ncu-$v.csv 2>/dev/null
    echo "ncu $v rc $?" >> $L; cp /tmp/ncu-$v.csv $OUT/
  done
}
note ncu
left 150 && {
  (cd backend/cuda && UPG_CUDA_FATBIN=$F timeout $(( T - 5 - ($(date +%s)-t0) )) $U/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite (new fatbin) rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
  grep -E -- '--- FAIL|^panic' /tmp/suite.txt | head -10 >> $L
  gzip -c /tmp/suite.txt > $OUT/suite.txt.gz
}
note all
cat $L
