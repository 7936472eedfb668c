#!/bin/bash
# Run 190 (2026-12-05, fifteenth stop): the reproducible kernel build and the #1556-D fix, in one call.
# Carry .cuda-carry with upg.gz and cuda.test.gz cross-built from the working tree (CGO_ENABLED=0 go build
# -ldflags='-s -w' -o .cuda-carry/upg ./cmd/upg; CGO_ENABLED=0 go test -c -o .cuda-carry/cuda.test
# ./backend/cuda; gzip both) and cl100k_base.tiktoken.gz; run as `bash backend/cuda/experiments/run190.call.sh`.
#   1. scripts/build-cuda.sh twice (/tmp/b1, /tmp/b2): the same bytes? (the Phi-4 file made meanwhile)
#   2. sm_90 SASS of the committed fatbin against b1's, kernel by kernel (the renamed shared arrays and the
#      trace's line numbers are the only source changes)
#   3. the GPU suite on b1 (UPG_CUDA_FATBIN), memcheck over the attention tests
#   4. decode after 512 positions, committed fatbin against b1, twice (if time is left)
# Writes $OUT/{times,build,sass,suite,memcheck,bench}.txt and b1's kernels.fatbin and kernels.manifest.json.
# After run 190: suite.txt's list of skip reasons is a script of its own (as run, it printed the lines
# next to each "--- SKIP", which are not the reasons); its counts are unchanged.
set -u
R=$PWD; C=$R/.cuda-carry; L=$OUT
t0=$(date +%s)
note() { echo "$1 $(( $(date +%s)-t0 )) s" >> $L/times.txt; }
cd $C && gunzip -kf upg.gz cuda.test.gz cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
( [ -s /tmp/p.upg ] || $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L/times.txt ) &
spid=$!
# 1. two builds, one after the other (the script's stage directory is fixed)
for b in b1 b2; do
  bash scripts/build-cuda.sh /tmp/$b > /tmp/$b.log 2>&1
  echo "$b rc $? sha256 $(sha256sum /tmp/$b/kernels.fatbin | cut -d' ' -f1) bytes $(stat -c %s /tmp/$b/kernels.fatbin)" >> $L/build.txt
  note $b
done
grep -i 'warning\|setarch' /tmp/b1.log | head -5 >> $L/build.txt
cmp /tmp/b1/kernels.fatbin /tmp/b2/kernels.fatbin >> $L/build.txt 2>&1 && echo "b1 and b2: identical" >> $L/build.txt
python3 - /tmp/b1/kernels.manifest.json backend/cuda/kernels.manifest.json >> $L/build.txt <<'PY'
import json, sys
a, b = (json.load(open(p))['kernels'] for p in sys.argv[1:3])
d = [(k, t, a[k][t], b.get(k, {}).get(t)) for k in a for t in a[k] if a[k][t] != b.get(k, {}).get(t)]
print('manifest kernels against the committed: %d kernels, %d entries differ' % (len(a), len(d)))
for x in d[:20]: print(' ', x)
PY
# 2. SASS, sm_90
for f in backend/cuda/kernels.fatbin /tmp/b1/kernels.fatbin; do cuobjdump -sass -arch sm_90 $f > /tmp/$(basename $(dirname $f)).sass 2>&1; done
python3 - /tmp/cuda.sass /tmp/b1.sass >> $L/sass.txt <<'PY'
import re, sys
def fns(p):
    out, cur = {}, None
    for l in open(p):
        m = re.search(r'Function : (\S+)', l)
        if m: cur = m.group(1); out[cur] = []; continue
        if cur and '/*' in l:
            out[cur].append(re.sub(r'/\* 0x[0-9a-f]{16} \*/', '', l).strip())
    return out
a, b = fns(sys.argv[1]), fns(sys.argv[2])
print('functions: committed %d, b1 %d, only in one: %s' % (len(a), len(b), sorted(set(a) ^ set(b))[:10]))
same = diff_const = diff = 0
for k in a.keys() & b.keys():
    if a[k] == b[k]: same += 1; continue
    strip = lambda xs: [re.sub(r'0x[0-9a-f]+', 'K', x) for x in xs]
    if strip(a[k]) == strip(b[k]): diff_const += 1
    else: diff += 1; print('differs beyond constants:', k)
print('same %d, constants only %d, otherwise %d' % (same, diff_const, diff))
PY
note sass
# 3. correctness on b1
export UPG_CUDA_FATBIN=/tmp/b1/kernels.fatbin
( cd backend/cuda && timeout -k 10 200 $C/cuda.test -test.v -test.count=1 -test.run 'TestGPU|TestTrellis|TestKernelSignatures|TestWarpsFor' -test.skip 'TestGPUBench|TestGPUDecodeBench' > /tmp/suite.txt 2>&1; echo "suite rc $?" >> /tmp/suite.txt )
{ echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)"; grep -- '--- FAIL' /tmp/suite.txt | head -20; python3 - /tmp/suite.txt <<'PY'
# each skip's reason: go test -v prints it on the line after the test's
# "=== RUN" (a subtest's "--- SKIP" comes later, with its parent's result)
import collections, re, sys
lines = open(sys.argv[1]).read().split('\n')
skipped = {m.group(1) for l in lines for m in [re.search(r'--- SKIP: (\S+)', l)] if m}
why = collections.Counter()
for i, l in enumerate(lines[:-1]):
    m = re.match(r'=== RUN\s+(\S+)$', l)
    if m and m.group(1) in skipped:
        why[re.sub(r'^\s*\S+_test\.go:\d+: ', '', lines[i + 1])[:100]] += 1
for r, n in why.most_common(10): print('%5d skipped: %s' % (n, r))
PY
tail -3 /tmp/suite.txt; } > $L/suite.txt
note suite
( cd backend/cuda && timeout -k 10 120 compute-sanitizer --tool memcheck --print-limit 20 $C/cuda.test -test.count=1 -test.run 'TestGPUAttention' > /tmp/mc.txt 2>&1; echo "memcheck rc $?" >> /tmp/mc.txt; tail -30 /tmp/mc.txt > $L/memcheck.txt )
note memcheck
unset UPG_CUDA_FATBIN
# 4. speed, if time is left
wait $spid
if [ $(( $(date +%s)-t0 )) -lt 420 ]; then
  for round in 1 2; do for v in main b1; do
    unset UPG_CUDA_FATBIN; [ $v = b1 ] && export UPG_CUDA_FATBIN=/tmp/b1/kernels.fatbin
    timeout -k 10 60 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 > /tmp/bench.txt 2>&1
    echo "512 $round $v rc $? $(grep -E '^(decode|prefill) ' /tmp/bench.txt | tr -s ' ' | tr '\n' ' ')" >> $L/bench.txt
  done; done
  grep -iE 'gpu|device|bandwidth' /tmp/bench.txt | head -4 >> $L/bench.txt
fi
note bench
cp /tmp/b1/kernels.fatbin /tmp/b1/kernels.manifest.json $L/ 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv >> $L/times.txt 2>&1
note done
