#!/bin/bash
# tinystories-text.sh UPG OUT SEED0 N: N stories sampled from TinyStories-656K
# itself (temperature 0.9, no top-k/top-p/min-p truncation, seeds SEED0..),
# one per paragraph, each started by one of eight openings. The shared data
# has only five real TinyStories (3.8 KB); these samples are the calibration
# and evaluation text of the second model in docs/benchmarks.md (trellis
# quality), e.g.
#   scripts/tinystories-text.sh /tmp/upg ts-calib.txt 1 400
#   scripts/tinystories-text.sh /tmp/upg ts-eval.txt 100001 300
set -euo pipefail
upg=$1 out=$2 s0=$3 n=$4
model=${MODEL:-../shared/models/TinyStories-656K}
prompts=("Once upon a time" "One day," "Lily and Tom" "There was a little" "Tim had a big" "Once there was a" "Sue wanted to" "The sun was")
: > "$out"
for i in $(seq 0 $((n-1))); do
  p=${prompts[$((i % 8))]}
  t=$("$upg" run --model "$model" --seed $((s0+i)) --temperature 0.9 --top-k 0 --top-p 1 --min-p 0 -n 400 --stop '<|end_story|>' "$p" 2>/dev/null)
  printf '%s%s\n\n' "$p" "$t" >> "$out"
done
