#!/bin/bash
# Run 265 (2026-12-07, thirty-eighth stop): run 264's compression of one Phi-4-shaped layer (tools/synth-hf: vocab
# 100352, hidden 5120, FFN 17920; 4,096 calibration tokens) with HEAD's upg (linalg's blocked multiply under the
# planner's outputRelErr and GPTQ's lazy update too), on the machine's 16 cores, its progress lines kept. Carry
# .cuda-carry/r (upg-new.xz built at this commit with the fatbin emptied, synth-hf.xz, the miniphi tokenizer.json).
set -u
R=$PWD; N=$R/.cuda-carry/r; T=/tmp/r265; L=$OUT/run265.txt
mkdir -p $T; echo "cores $(nproc); $(grep -m1 'model name' /proc/cpuinfo)" >> $L
xz -dc $N/upg-new.xz > $T/upg-new; xz -dc $N/synth-hf.xz > $T/synth-hf; chmod +x $T/*
s=$SECONDS; $T/synth-hf -layers 1 -out $T/p1 -tokenizer $N/tokenizer.json > /dev/null && echo "synth $((SECONDS - s)) s" >> $L
s=$SECONDS
timeout $((575 - SECONDS)) /usr/bin/time -v $T/upg-new compress $T/p1 --target-bpw 3.2 --calib $R/models/calib/miniphi-calib.txt \
  --calib-tokens 4096 --json --out $T/new.upg > $OUT/new.json 2> $OUT/new.err
echo "new: rc $? in $((SECONDS - s)) s" >> $L
grep -E "Elapsed|Maximum resident" $OUT/new.err >> $L
cat $L
