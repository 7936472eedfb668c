#!/bin/bash
# Run 240 (2026-12-06, twenty-eighth stop): where the trellis codec's one-token GEMV spends its time. The trellis
# file decoded at 59 tok/s on the H200 (docs/benchmarks.md, 0a7ed9e: 7% of the read bandwidth) and its kernel
# (kernels/trellis.cu) has not changed since; the notes put it on its shared-memory table lookups (a 4,096-float
# table indexed by each weight's random 12-bit window: bank conflicts), never measured. This call measures the
# baseline decode and prefill of a Phi-4-shaped trellis file on HEAD's binary, then ncu over one token's trellis
# GEMVs of a 2-layer file: speed of light, occupancy, warp stalls, shared-memory wavefronts and bank conflicts.
# Carry .cuda-carry/s (upg cross-built from e3bc43f: the trellis path is HEAD's).
set -u
R=$PWD; C=$R/.cuda-carry/s; U=/tmp/u; L=$OUT/run240.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && chmod +x upg && cd $R
( $U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --out /tmp/pt.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
$U/upg synth --arch phi4 --codec trellis --target-bpw 3.2 --layers 2 --out /tmp/pt2.upg -q >> $L 2>&1
$U/upg inspect /tmp/pt2.upg 2>&1 | grep -i -E "trellis|bits|codec" | head -12 >> $L
note small-file
M='sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum,launch__grid_size,launch__block_size,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem,smsp__inst_executed.sum,smsp__inst_executed_op_shared_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,smsp__inst_executed_op_global_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__data_pipe_lsu_wavefronts.sum,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio,smsp__average_warps_issue_stalled_wait_per_issue_active.ratio,smsp__average_warps_issue_stalled_lg_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio,smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio,smsp__average_warps_issue_stalled_not_selected_per_issue_active.ratio,smsp__average_warps_issue_stalled_selected_per_issue_active.ratio,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__warps_eligible.avg.per_cycle_active'
timeout 200 ncu --metrics $M -k regex:upg_gemv_trellis_k._t1 --launch-skip 20 --launch-count 10 --csv --page raw \
  $U/upg bench --device cuda --model /tmp/pt2.upg --prompt-tokens 16 --gen-tokens 16 > /tmp/ncu.csv 2>/tmp/ncu.err
echo "ncu rc $?" >> $L; tail -3 /tmp/ncu.err >> $L
cp /tmp/ncu.csv $OUT/ncu240.csv
note ncu
wait
note synth-full
b() { echo "$1 $(timeout -k 5 150 $U/upg bench --device cuda "${@:2}" 2>&1 | grep -E '^(prefill|decode|batch|aggregate|device|read|effective)|rror|cuda:|panic' | head -9 | tr -s ' ' | tr '\n' ' ')" >> $L; }
ls -l /tmp/pt.upg | awk '{print "file bytes", $5}' >> $L
b trellis-1 --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 64
b trellis-2 --model /tmp/pt.upg --prompt-tokens 512 --gen-tokens 64
note all
cat $L
