#!/bin/bash
# Run 233 (2026-12-06, twenty-fifth stop): where each small kernel's warps stall, instruction by instruction, on
# HEAD's kernels (0db1819) — the map the next change to them needs. ncu's warp-state sampling (SourceCounters, the
# shortest interval) over three decode launches each of the cluster attention, the norm and the SwiGLU in a 4-layer
# Phi-4-shaped 3.2-bpw file's decode after 512 positions; the source page (SASS with stall samples per instruction)
# as CSV, and the details page. Carry .cuda-carry/q: upg cross-built from a tree with 0db1819's kernels (xz -9),
# cl100k_base.tiktoken.gz. Prepared and not yet run: the twenty-fifth stop's three starts for it were refused and its
# device time ran out. Each source CSV comes back gzipped: sum the stall-sample columns by SASS line, largest first.
set -u
R=$PWD; C=$R/.cuda-carry/q; L=$OUT/run233.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz && gunzip -kf cl100k_base.tiktoken.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
ncu --version | tail -1 >> $L
h200=0; nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && h200=1
[ $h200 = 1 ] && ( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth full rc $? $(( $(date +%s)-t0 )) s" >> $L; $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/r.upg -q > /tmp/synthr.txt 2>&1; echo "synth rotated rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
$C/upg synth --arch phi4 --target-bpw 3.2 --layers 4 --out /tmp/p4.upg -q > /tmp/synth4.txt 2>&1; echo "synth 4 rc $? $(( $(date +%s)-t0 )) s" >> $L
n=0
for k in upg_attn_cluster_rotq_f16_h128 upg_rms_rotq upg_swiglu_rotq; do
  n=$((n+1))
  left 60 || break
  timeout -k 5 100 ncu --cache-control none --clock-control none --kernel-name regex:"$k" --launch-skip 24 --launch-count 3 \
    --section SourceCounters --section WarpStateStats --section LaunchStats --warp-sampling-interval 0 --import-source no \
    -f -o /tmp/rep$n $C/upg bench --device cuda --model /tmp/p4.upg --prompt-tokens 512 --gen-tokens 12 > /tmp/ncu$n.txt 2>&1
  echo "== ncu $k rc $? $(( $(date +%s)-t0 )) s" >> $L
  grep -E "==ERR|rror" /tmp/ncu$n.txt | head -5 >> $L
  ncu -i /tmp/rep$n.ncu-rep --page source --print-source sass --csv > /tmp/src$n.csv 2> /tmp/srcerr$n.txt
  echo "source page rc $? lines $(wc -l < /tmp/src$n.csv)" >> $L; head -3 /tmp/srcerr$n.txt >> $L
  gzip -c /tmp/src$n.csv > $OUT/src_$k.csv.gz
  ncu -i /tmp/rep$n.ncu-rep --page details > /tmp/det$n.txt 2>&1
  gzip -c /tmp/det$n.txt > $OUT/details_$k.txt.gz
  grep -iE "stall|warp cycles per|duration|registers|issued ipc|active warps" /tmp/det$n.txt | head -20 >> $L
done
wait
if [ $h200 = 1 ]; then # the bar's card: decode after 512 on HEAD's kernels (run 215 measured older ones)
  for i in 1 2 3 4; do
    f=/tmp/p.upg; [ $((i % 2)) = 0 ] && f=/tmp/r.upg
    left 40 && echo "decode-$i $f $(timeout -k 5 120 $C/upg bench --device cuda --model $f --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode|device|read|effective)|rror|panic' | head -7 | tr -s ' ' | tr '\n' ' ')" >> $L
  done
fi
note all
