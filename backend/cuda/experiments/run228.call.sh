#!/bin/bash
# Run 228 (2026-12-06, twenty-fourth stop): is a small kernel's ~5 µs its work or its coldness? Every small kernel
# costs the step ~5 µs wherever it runs (alone, in a writer's tail, in a reader's prologue: runs 217-223), and its
# phases are slow for their work (the attention's keys: 3.3 µs for one 32 KB round trip a block; run 218 put its
# rows in L2 beforehand and nothing changed). Untested: its code. ~136 MB of weights pass through the 50 MB L2 each
# layer, so a kernel's instructions (and its page translations) may come from DRAM each time it runs, one line
# after another. UPG_CUDA_TWICE (new) launches a kernel twice in a row: the second run finds its code warm.
# Carry .cuda-carry/n: upg cross-built from this tree (xz), cl100k_base.tiktoken.gz.
#   1. decode after 512 positions on the bar's file: base, each small kernel twice, each left out, alternated;
#   2. ncu (--cache-control none) of each small kernel and gate|up's GEMV in a 4-layer file's decode: stall reasons;
#   3. cuobjdump: sm_90 instructions a kernel (code bytes = 16 a SASS instruction).
set -u
R=$PWD; C=$R/.cuda-carry/n; L=$OUT/run228.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 560 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz && gunzip -kf cl100k_base.tiktoken.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --layers 4 --out /tmp/p4.upg -q > /tmp/synth4.txt 2>&1; echo "synth 4 rc $?" >> $L ) &
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth plain rc $? $(( $(date +%s)-t0 )) s" >> $L
wait
# 3. code sizes (while nothing else runs on the card: no GPU needed)
cuobjdump -sass -arch sm_90 backend/cuda/kernels.fatbin 2>/dev/null | awk '/Function :/{f=$3} /^[ \t]+\/\*[0-9a-f]+\*\//{n[f]++} END{for(k in n) print n[k]*16, k}' | sort -rn > $OUT/sass_sizes.txt
grep -E "upg_attn_cluster_rotq_f16_h128|upg_rms_rotq|upg_swiglu_rotq|upg_gemv_k3_g1_t1[a-z]*$|upg_argmax" $OUT/sass_sizes.txt | head -12 >> $L
awk '{s+=$1} END{print "all sm_90 code bytes", s}' $OUT/sass_sizes.txt >> $L
b() { # label, env..., then -- and args
  local lab=$1; shift; local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done; shift
  echo "$lab $(env "${env[@]}" timeout -k 5 120 $C/upg bench --device cuda "$@" 2>&1 | grep -E '^(decode)|rror|cuda:|panic' | head -4 | tr -s ' ' | tr '\n' ' ')" >> $L
}
P=(--model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64)
for round in 1 2; do
  left 30 && b base-$round X=1 -- "${P[@]}"
  left 30 && b twice-attn-$round UPG_CUDA_TWICE=upg_attn -- "${P[@]}"
  left 30 && b ablate-attn-$round UPG_CUDA_ABLATE=upg_attn -- "${P[@]}"
  left 30 && b twice-rms-$round UPG_CUDA_TWICE=upg_rms_rotq -- "${P[@]}"
  left 30 && b ablate-rms-$round UPG_CUDA_ABLATE=upg_rms_rotq -- "${P[@]}"
  left 30 && b twice-swiglu-$round UPG_CUDA_TWICE=upg_swiglu_rotq -- "${P[@]}"
  left 30 && b ablate-swiglu-$round UPG_CUDA_ABLATE=upg_swiglu_rotq -- "${P[@]}"
  left 30 && b twice-all3-$round UPG_CUDA_TWICE=upg_attn,upg_rms_rotq,upg_swiglu_rotq -- "${P[@]}"
done
note benches
# 2. ncu: decode launches of the 4-layer file (the prefill's kernels are other names but rms_rotq's; skip past them)
M='regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,gpu__time_duration.sum,smsp__inst_executed.sum,sm__cycles_elapsed.avg,smsp__warps_active.avg.per_cycle_active'
for k in upg_attn_cluster_rotq_f16_h128 upg_rms_rotq upg_swiglu_rotq 'upg_gemv_k3_g1_t1$'; do
  left 60 || break
  timeout -k 5 90 ncu --cache-control none --clock-control none --kernel-name regex:"$k" --launch-skip 24 --launch-count 2 \
    --metrics "$M" $C/upg bench --device cuda --model /tmp/p4.upg --prompt-tokens 512 --gen-tokens 12 > /tmp/ncu.txt 2>&1
  echo "== ncu $k rc $?" >> $L
  grep -E "upg_|stalled|duration|inst_executed|cycles_elapsed|warps_active|ERR|rror" /tmp/ncu.txt | grep -v "^==PROF" | awk '$NF!="0" && $NF!="0.00"' | head -60 >> $L
done
note ncu
ncu --query-metrics --chip gh100 2>/dev/null | grep -iE "icc|inst.*cache|instruction_cache|imc" | head -20 >> $L
note all
