#!/bin/bash
# Run 262 (2026-12-07, thirty-seventh stop): batch generation from Python on a GPU (469f833: package batch, the C
# ABI's upg_batch_start, upg.Model(max_batch=N).generate_batch). Carry .cuda-carry/q: libupg.so and upg built at
# 469f833 with the fatbin emptied (xz; UPG_CUDA_FATBIN names the tree's).
#   1. python/tests/test_device.py with the GPU (new: test_cuda_batch_agrees_with_cpu), then test_generate.py's
#      batch tests with the GPU hidden;
#   2. the bar's file (upg synth --arch phi4 --target-bpw 3.2): 32 prompts of 64 random ids, 128 tokens each, by
#      generate_batch against `upg bench --batch 32 --distinct-prompts` and four prompts one at a time, alternated.
set -u
R=$PWD; C=${C:-$R/.cuda-carry/q}; U=/tmp/u; L=$OUT/run262.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U/site/upg/models && cp python/src/upg/*.py python/src/upg/py.typed $U/site/upg/
xz -dc $C/libupg.so.xz > $U/site/upg/libupg.so && cp models/miniphi-29m.upg $U/site/upg/models/
xz -dc $C/upg.xz > $U/upg && chmod +x $U/upg
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin PYTHONPATH=$U/site
( $U/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/d.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
(cd /tmp && UPG_REPO=$R UPG_CLI=$U/upg timeout 150 python3 -m pytest -p no:cacheprovider -rA --tb=short \
  $R/python/tests/test_device.py 2>&1 | grep -E "^(PASSED|FAILED|SKIPPED|ERROR)|Error|assert|passed|failed" | head -30) >> $L
(cd /tmp && CUDA_VISIBLE_DEVICES= UPG_REPO=$R UPG_CLI=$U/upg timeout 100 python3 -m pytest -p no:cacheprovider -q -rf \
  -k batch $R/python/tests/test_generate.py 2>&1 | tail -4) >> $L
note python-tests
wait
ls -l /tmp/d.upg | awk '{print "file bytes", $5}' >> $L
cat > /tmp/pybatch.py <<'PY'
import random, sys, time, upg
P, G = 64, 128
rng = random.Random(int(sys.argv[2]))
prompts = lambda n: [[rng.randrange(1000, 90000) for _ in range(P)] for _ in range(n)]
with upg.Model(sys.argv[1], device="cuda", max_batch=32, ctx=1024) as m:
    m.generate_batch(prompts(32), temperature=0, max_tokens=8, ignore_eos=True)  # warm-up: each batch size's graphs
    m.generate(prompts(1)[0], temperature=0, max_tokens=8, ignore_eos=True)
    t = time.perf_counter(); m.generate_batch(prompts(32), temperature=0, max_tokens=G, ignore_eos=True); w = time.perf_counter() - t
    s = m.last_stats
    print("python generate_batch 32x%d+%d: %d tokens, %.3f s, %.1f tok/s (wall %.3f s), max_running %d, preemptions %d, kv_positions %d"
          % (P, G, s["generated_tokens"], s["seconds"], s["tok_s"], w, s["max_running"], s["preemptions"], m.info["kv_positions"]))
    t, n = time.perf_counter(), 0
    for p in prompts(4):
        m.generate(p, temperature=0, max_tokens=G, ignore_eos=True); n += m.last_stats["generated_tokens"]
    w = time.perf_counter() - t
    print("python generate one at a time, 4x%d+%d: %d tokens, %.3f s, %.1f tok/s" % (P, G, n, w, n / w))
PY
for i in 1 2; do
  (cd /tmp && timeout 120 python3 /tmp/pybatch.py /tmp/d.upg $i 2>&1 | tail -3) >> $L
  timeout 120 $U/upg bench --device cuda --model /tmp/d.upg --batch 32 --distinct-prompts --prompt-tokens 64 --gen-tokens 128 2>&1 \
    | grep -iE "decode|prefill|aggregate|batch|memory" | head -8 >> $L
  note round-$i
done
cat $L
