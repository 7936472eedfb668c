#!/bin/bash
# Run 264 (2026-12-07, thirty-eighth stop): (1) test_cuda_batch_agrees_with_cpu as f4f4336 has it (every prompt's
# departure printed); (2) a calibrated compression of one Phi-4-shaped layer (vocab 100352, hidden 5120, FFN 17920;
# tools/synth-hf) on the machine's 16 cores: linalg's blocked algebra (upg-new, built at this commit) first, then
# b5c5dee's column-by-column loops (upg in .cuda-carry/q) in what is left of the call. Carry .cuda-carry/q and
# .cuda-carry/r (upg-new.xz, synth-hf.xz, the miniphi tokenizer.json).
set -u
R=$PWD; Q=$R/.cuda-carry/q; N=$R/.cuda-carry/r; U=/tmp/u; T=/tmp/r264; L=$OUT/run264.txt
mkdir -p $T $U/site/upg/models
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L; echo "cores $(nproc)" >> $L
cp python/src/upg/*.py python/src/upg/py.typed $U/site/upg/ && xz -dc $Q/libupg.so.xz > $U/site/upg/libupg.so
cp models/miniphi-29m.upg $U/site/upg/models/
(cd /tmp && UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin PYTHONPATH=$U/site UPG_REPO=$R timeout 100 python3 -m pytest \
  -p no:cacheprovider -s -q --tb=line -k batch_agrees $R/python/tests/test_device.py 2>&1 | tail -12) >> $L
xz -dc $N/upg-new.xz > $T/upg-new; xz -dc $Q/upg.xz > $T/upg-old; xz -dc $N/synth-hf.xz > $T/synth-hf; chmod +x $T/*
s=$SECONDS; $T/synth-hf -layers 1 -out $T/p1 -tokenizer $N/tokenizer.json > /dev/null && echo "synth $((SECONDS - s)) s" >> $L
C="compress $T/p1 --target-bpw 3.2 --calib $R/models/calib/miniphi-calib.txt --calib-tokens 4096 --json"
for b in new old; do
  left=$((570 - SECONDS)); [ $left -lt 30 ] && { echo "$b: no time left" >> $L; break; }
  s=$SECONDS
  timeout $left /usr/bin/time -v $T/upg-$b $C --out $T/$b.upg > $OUT/$b.json 2> $OUT/$b.err
  echo "$b: rc $? in $((SECONDS - s)) s (limit $left)" >> $L
  grep -E "Elapsed|Maximum resident" $OUT/$b.err >> $L
done
cat $L
