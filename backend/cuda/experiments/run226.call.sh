#!/bin/bash
# Run 226 (2026-12-06, twenty-third stop): every bar of issue #11 measured again on HEAD's binary (run 225's kernels
# embedded), on whatever card the pool lends. Carry .cuda-carry/m: upg cross-built from HEAD (xz), cl100k_base.tiktoken.gz,
# miniphi_eval_250k.txt.gz (../shared/corpus's file).
#   decode after 512 positions (twice) and prefill of 512 on the bar's file (upg synth --arch phi4 --target-bpw 3.2),
#   batch 32 (--gen-tokens 32 --batch 32) with the device memory it reports, the rotated file once, and the GPU's
#   KL from the CPU over miniphi_eval_250k.txt on the demo model.
set -u
R=$PWD; C=$R/.cuda-carry/m; L=$OUT/run226.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz && gunzip -kf cl100k_base.tiktoken.gz miniphi_eval_250k.txt.gz && chmod +x upg
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/r.upg -q > /tmp/synthr.txt 2>&1; echo "synth rotated rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth plain rc $? $(( $(date +%s)-t0 )) s" >> $L
ls -l /tmp/p.upg | awk '{print "bar file bytes", $5}' >> $L
# the KL while the rotated file is written (the CPU reference on the card's host, the model on the GPU)
( timeout 240 $C/upg eval --device cuda --ref-device cpu --model models/miniphi-29m.upg --ref models/miniphi-29m.upg --text $C/miniphi_eval_250k.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $? $(( $(date +%s)-t0 )) s" >> $L )
grep -v '^\s*$' /tmp/kl.txt | tail -12 >> $L
wait
note synth+eval
b() { # label, args
  local lab=$1; shift
  echo "$lab $(timeout -k 5 120 $C/upg bench --device cuda "$@" 2>&1 | grep -E '^(prefill|decode|batch|aggregate|device|read|effective|kernel)|rror|cuda:|panic' | head -9 | tr -s ' ' | tr '\n' ' ')" >> $L
}
left 40 && b plain-1 --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64
left 40 && b rot-1 --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 64
left 40 && b plain-2 --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64
left 60 && b batch32 --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 32 --batch 32
left 40 && b rot-2 --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 64
note all
