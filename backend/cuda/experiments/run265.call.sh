#!/bin/bash
# Run 265 (2026-12-08, thirty-ninth stop; prepared last stop, never lent a machine): one Phi-4-shaped layer's
# calibrated compression on the machine's 16 cores, the stop's base binary (f0702ea) against HEAD's (the factor
# built in one buffer, GC at 25%, AVX-512 and NEON micro-kernels), alternated. The checkpoint is last stop's local
# one (tools/synth-hf -layers 1 -vocab 8192: hidden 5120, FFN 17920, 40/10 heads), 1,024 calibration tokens, so
# that its times compare with docs/benchmarks.md's 2-core ones. Carry .cuda-carry/r (upg-base.xz, upg-new.xz built
# with the fatbin emptied, synth-hf.xz, the miniphi tokenizer.json).
set -u
R=$PWD; N=$R/.cuda-carry/r; T=/tmp/r265; L=$OUT/run265.txt
mkdir -p $T; echo "cores $(nproc); $(grep -m1 'model name' /proc/cpuinfo); avx512f $(grep -c -m1 avx512f /proc/cpuinfo)" >> $L
for b in base new synth-hf; do xz -dc $N/$b.xz > $T/$b; done; chmod +x $T/*
s=$SECONDS; $T/synth-hf -layers 1 -vocab 8192 -out $T/p1 -tokenizer $N/tokenizer.json > /dev/null && echo "synth $((SECONDS - s)) s" >> $L
for b in new base; do
  s=$SECONDS
  timeout $((590 - SECONDS)) /usr/bin/time -v $T/$b compress $T/p1 --target-bpw 3.2 --calib $R/models/calib/miniphi-calib.txt \
    --calib-tokens 1024 --json --out $T/$b.upg > $OUT/$b.json 2> $OUT/$b.err
  echo "$b: rc $? in $((SECONDS - s)) s" >> $L
  grep -E "Elapsed|Maximum resident" $OUT/$b.err >> $L
  tr '\r' '\n' < $OUT/$b.err | grep -E "calibration statistics|sensitivity 1/|encoded" >> $L
done
cat $L
