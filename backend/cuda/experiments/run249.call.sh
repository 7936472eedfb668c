#!/bin/bash
# Run 249 (prepared 2026-12-07, thirtieth stop, branch trellis-next; not run): two questions about the trellis
# tensor-core kernels, in one call. (1) Steps of 2-8 tokens now that the GEMM splits K (run 248's question):
# UPG_CUDA_TRELLIS_MMA_MIN 2 and 4 against the default 9 (the t8 kernel), batch 8, 4 and 2. (2) The 64-token bf16
# kernel with two tile columns a stage (-DUPG_TRB64_CPS=2: half the barriers, which run 246 found exposed on small
# grids) against one, at batch 32 and 16 and at prefill. The branch's sources also share the activation load
# (trellis_x4) between the tf32 and bf16 kernels: the default build must match run 247's numbers.
# Predictions: the GEMM ahead at 8 and 4 (run 247: a 16-token step 0.56 ms a layer against t8's 2.2), behind at 2;
# CPS=2 +10-20% at batch 32 (1,286 → 1,400-1,550), ±3% at prefill (the 128-token kernel is unchanged).
# (3) The one-token trellis kernel with its next tiles prefetched into L2 (-DUPG_TR1_PF=1: a lane's later tiles of
# the band and its tiles of the next round's band) against none, batch-1 decode alternated twice; and ncu's view of
# upg_gemv_trellis1_k3 (issue, shared-memory pipe, stall reasons), which no run has taken yet. Prediction: the
# band's barrier makes a block's warps load together, so the first round trip of each band is exposed: +10-25%
# decode (H100 102.6 tok/s in run 246).
# Carry .cuda-carry/v2: upg and cuda.test cross-built from the branch with kernels.fatbin emptied; the tokenizer.
set -u
R=$PWD; C=$R/.cuda-carry/v2; U=/tmp/u; L=$OUT/run249.txt; F=/tmp/nb/kernels.fatbin; F2=/tmp/v2/kernels.fatbin; F3=/tmp/v3/kernels.fatbin
t0=$(date +%s)
T=${T:-560}
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
# the variant: sm_90 only, its own copy of the sources (build-cuda.sh's stage directory is one a machine)
( mkdir -p /tmp/v2src /tmp/v2 && cp backend/cuda/kernels/*.cu* /tmp/v2src/ && cd /tmp/v2src && nvcc -fatbin -O3 -std=c++17 -DUPG_TRB64_CPS=2 -gencode=arch=compute_90,code=sm_90 -Xptxas -v upg.cu -o $F2 > /tmp/v2.log 2>&1; echo "variant build rc $? $(( $(date +%s)-t0 )) s" >> $L; grep -A2 "upg_gemm_trellis_bf64_k3" /tmp/v2.log | grep -E "registers|spill" | head -3 >> $L ) &
( mkdir -p /tmp/v3src /tmp/v3 && cp backend/cuda/kernels/*.cu* /tmp/v3src/ && cd /tmp/v3src && nvcc -fatbin -O3 -std=c++17 -DUPG_TR1_PF=1 -gencode=arch=compute_90,code=sm_90 -Xptxas -v upg.cu -o $F3 > /tmp/v3.log 2>&1; echo "variant PF build rc $? $(( $(date +%s)-t0 )) s" >> $L; grep -A2 "upg_gemv_trellis1_k3" /tmp/v3.log | grep -E "registers|spill" | head -3 >> $L ) &
mkdir -p /tmp/nb && bash scripts/build-cuda.sh /tmp/nb > /tmp/build.txt 2>&1; rc=$?; echo "build rc $rc $(( $(date +%s)-t0 )) s" >> $L
if [ $rc != 0 ]; then grep -E "error|rror" /tmp/build.txt | head -30 >> $L; wait; note all; cat $L; exit 0; fi
cp /tmp/nb/kernels.fatbin /tmp/nb/kernels.manifest.json $OUT/
wait
for f in $F $F2 $F3; do
  [ -f $f ] || { echo "no $f" >> $L; continue; }
  (cd backend/cuda && UPG_CUDA_FATBIN=$f timeout 120 $U/cuda.test -test.count=1 -test.run 'TestGPUTrellis|TestTrellis' > /tmp/t.txt 2>&1; echo "tests on $f rc $? pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt)" >> $L; grep -E -A3 -- '--- FAIL|^panic' /tmp/t.txt | head -12 >> $L)
done
note tests
b() { echo "$1 $(env "${@:3}" timeout -k 5 40 $U/upg bench --device cuda --model /tmp/pt.upg $2 2>&1 | grep -E '^(prefill|decode)|rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L; }
for i in 1 2; do
  for f in $F $F3; do left 10 && b "b1-$(basename $(dirname $f))-$i" "--prompt-tokens 64 --gen-tokens 64" UPG_CUDA_FATBIN=$f; done
done
note b1
left 60 && {
  $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> $L 2>&1
  M='gpu__time_duration.sum,launch__grid_size,launch__block_size,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_sector_hit_rate.pct,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,smsp__average_warps_issue_stalled_not_selected_per_issue_active.ratio,smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_no_instruction_per_issue_active.ratio,smsp__average_warps_issue_stalled_dispatch_stall_per_issue_active.ratio,smsp__inst_executed_pipe_lsu.sum,smsp__inst_executed_pipe_alu.sum,smsp__inst_executed_pipe_fma.sum'
  for f in $F $F3; do
    v=$(basename $(dirname $f))
    env UPG_CUDA_FATBIN=$f timeout 60 ncu --metrics $M -k regex:upg_gemv_trellis1 --launch-skip 16 --launch-count 8 --csv --page raw \
      $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 24 > /tmp/ncu-$v.csv 2>/dev/null
    echo "ncu $v rc $?" >> $L; cp /tmp/ncu-$v.csv $OUT/
  done
}
note ncu
for B in 8 4; do
  for M in 9 4 2; do left 8 && b "b$B-min$M" "--prompt-tokens 64 --gen-tokens 16 --batch $B" UPG_CUDA_FATBIN=$F UPG_CUDA_TRELLIS_MMA_MIN=$M; done
done
note min
for i in 1 2; do
  for f in $F $F2; do
    left 10 && b "b32-$(basename $(dirname $f))-$i" "--prompt-tokens 64 --gen-tokens 16 --batch 32" UPG_CUDA_FATBIN=$f
    left 10 && b "prefill-$(basename $(dirname $f))-$i" "--prompt-tokens 512 --gen-tokens 4" UPG_CUDA_FATBIN=$f
  done
done
note all
cat $L
