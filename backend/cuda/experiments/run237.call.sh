#!/bin/bash
# Run 237 (2026-12-06, twenty-seventh stop): every bar of issue #11 on HEAD's binary (e3bc43f: run 231's kernels,
# the rotated residual stream the default), asked of an H200 — no H200 has been lent since run 215, whose kernels
# were older. On any other card it stops at once (GO=1 runs it anyway); its first form's H100 branch (racecheck and
# initcheck over the small kernels, answered by runs 237-239) is `git show 8d65b11:backend/cuda/experiments/run237.call.sh`. Carry .cuda-carry/s: upg and cuda.test
# cross-built from e3bc43f (xz), cl100k_base.tiktoken.gz, miniphi_eval_250k.txt.gz (../shared/corpus's file).
#   the KL of the GPU's distribution from the CPU's over miniphi_eval_250k.txt on the demo model (while the bar's files
#   are written), decode after 512 positions and prefill of 512 on the bar's file (upg synth --arch phi4 --target-bpw
#   3.2) alternated with the plain one (--rotate-residual=false), batch 32 with its device memory, the GEMVs alone
#   (UPG_CUDA_ABLATE: run 163's split on HEAD), then the GPU suite on the embedded kernels as far as the time allows.
set -u
R=$PWD; C=${C:-$R/.cuda-carry/s}; U=/tmp/u; L=$OUT/run237.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
T=${T:-560} # seconds this call may take (less when the device budget is short)
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
grep -q H200 $L || [ "${GO:-0}" = 1 ] || { echo "not an H200: stopped (GO=1 runs it anyway)" >> $L; cat $L; exit 0; }
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken && gunzip -c $C/miniphi_eval_250k.txt.gz > eval.txt
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
# SHORT=1 (a short budget): the default file alone, its decode, batch 32 and the GEMVs alone; no KL, plain file or suite
SHORT=${SHORT:-0}
( $U/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/d.upg -q > /tmp/synthd.txt 2>&1; echo "synth default rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
if [ "$SHORT" != 1 ]; then
  ( $U/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual=false --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth plain rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
  ( timeout 200 $U/upg eval --device cuda --ref-device cpu --model models/miniphi-29m.upg --ref models/miniphi-29m.upg --text $U/eval.txt --ctx 512 > /tmp/kl.txt 2>&1; echo "eval rc $? $(( $(date +%s)-t0 )) s" >> $L )
  grep -v '^\s*$' /tmp/kl.txt | tail -12 >> $L
fi
wait
ls -l /tmp/d.upg /tmp/p.upg 2>/dev/null | awk '{print "file bytes", $5, $9}' >> $L
note synth+eval
b() { # label, env..., then -- and args
  local lab=$1; shift; local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done; shift
  echo "$lab $(env "${env[@]}" timeout -k 5 120 $U/upg bench --device cuda "$@" 2>&1 | grep -E '^(prefill|decode|batch|aggregate|device|read|effective)|rror|cuda:|panic' | head -9 | tr -s ' ' | tr '\n' ' ')" >> $L
}
D=(--model /tmp/d.upg --prompt-tokens 512 --gen-tokens 64); P=(--model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64)
for i in $(seq ${N:-2}); do # N rounds of the two files, alternated
  left 40 && b default-$i X=1 -- "${D[@]}"
  [ "$SHORT" = 1 ] || { left 40 && b plain-$i X=1 -- "${P[@]}"; }
done
left 60 && b batch32-default X=1 -- --model /tmp/d.upg --prompt-tokens 512 --gen-tokens 32 --batch 32
left 40 && b gemvs-alone UPG_CUDA_ABLATE=upg_attn,upg_rms_rotq,upg_swiglu_rotq -- "${D[@]}"
[ "$SHORT" = 1 ] || { left 40 && b no-attention UPG_CUDA_ABLATE=upg_attn -- "${D[@]}"; }
left 40 && b default-3 X=1 -- "${D[@]}"
note benches
[ "$SHORT" != 1 ] && left 120 && {
  (cd backend/cuda && timeout $(( T - 5 - ($(date +%s)-t0) )) $U/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite (embedded kernels) rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
  grep -E -- '--- FAIL|^panic' /tmp/suite.txt | head -10 >> $L
  gzip -c /tmp/suite.txt > $OUT/suite.txt.gz
}
note all
cat $L
