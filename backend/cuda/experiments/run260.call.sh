#!/bin/bash
# Run 260 (2026-12-07, thirty-sixth stop): run 259 again after its findings (the Python suite's CPU claims now run
# with CUDA_VISIBLE_DEVICES= as python/tests/run.sh does, test_device.py with the GPU; Python's timed decode no longer
# reuses its warm-up's prompt). The Python package on the GPU (eff4418: upg.Model(device="cuda"), evaluate(device=, ref_device=),
# gpu_layers, DeviceError), any card. Carry .cuda-carry/p: libupg.so built by `pip wheel ./python` from eff4418 (xz;
# its kernels embedded), and upg cross-built from 530d0e3 (xz; its fatbin emptied, so UPG_CUDA_FATBIN names the
# tree's) as the command line the package is compared with.
#   1. python/tests/test_device.py (GPU branch: greedy text and last logits against the CPU, a 2-layer split),
#      test_generate.py and test_logits.py with pytest, if the machine has it (else the same checks inline);
#   2. the bar's file (upg synth --arch phi4 --target-bpw 3.2): Python's decode after a 512-token prompt
#      (Model.generate of 512 ids, 64 tokens, ignore_eos) against `upg bench` on the same file, alternated.
set -u
R=$PWD; C=${C:-$R/.cuda-carry/p}; U=/tmp/u; L=$OUT/run260.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U/site/upg/models && cp python/src/upg/*.py python/src/upg/py.typed $U/site/upg/
xz -dc $C/libupg.so.xz > $U/site/upg/libupg.so && cp models/miniphi-29m.upg $U/site/upg/models/
xz -dc $C/upg.xz > $U/upg && chmod +x $U/upg
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin PYTHONPATH=$U/site
( $U/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/d.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
python3 -c 'import sys, numpy; print("python", sys.version.split()[0], "numpy", numpy.__version__)' >> $L 2>&1
if python3 -c 'import pytest' 2>/dev/null; then
  (cd /tmp && UPG_REPO=$R UPG_CLI=$U/upg timeout 120 python3 -m pytest -p no:cacheprovider -q -rs -v \
    $R/python/tests/test_device.py 2>&1 | grep -E "PASS|FAIL|SKIP|Error|assert|passed|failed" | head -30) >> $L
  (cd /tmp && CUDA_VISIBLE_DEVICES= UPG_REPO=$R UPG_CLI=$U/upg timeout 150 python3 -m pytest -p no:cacheprovider -q -rf \
    $R/python/tests/test_generate.py $R/python/tests/test_logits.py $R/python/tests/test_resources.py 2>&1 | tail -12) >> $L
else
  echo "no pytest: the checks inline" >> $L
  (cd /tmp && timeout 240 python3 - >> $L 2>&1 <<'PY'
import numpy as np, upg
p = upg.demo_model_path()
with upg.Model(p, device="cpu") as cpu, upg.Model(p, device="cuda") as gpu, upg.Model(p, device="cuda", gpu_layers=2) as split:
    print("devices", cpu.info["device"], "|", gpu.info["device"], gpu.info["gpu_layers"], "|", split.info["device"], split.info["gpu_layers"])
    for prompt in ("package main", "It was a bright cold day"):
        a, b, c = (m.generate(prompt, temperature=0, max_tokens=32) for m in (cpu, gpu, split))
        ids = cpu.tokenize(prompt)
        print(repr(prompt), "greedy gpu==cpu", a == b, "split==cpu", a == c, "max |logit diff|", float(np.abs(gpu.logits(ids) - cpu.logits(ids)).max()))
for bad in (dict(device="tpu"), dict(device="cpu", gpu_layers=2)):
    try:
        upg.Model(p, **bad); print(bad, "NO ERROR")
    except upg.InvalidArgumentError as e:
        print(bad, "->", e)
PY
  )
fi
note python-tests
wait
ls -l /tmp/d.upg | awk '{print "file bytes", $5}' >> $L
cat > /tmp/pydecode.py <<'PY'
import sys, upg
with upg.Model(sys.argv[1], device="cuda") as m:
    ids = list(range(1000, 1512))
    m.generate(list(range(3000, 3512)), temperature=0, max_tokens=8, ignore_eos=True)  # warm-up, no prefix in common
    m.generate(ids, temperature=0, max_tokens=64, ignore_eos=True)
    s = m.last_stats
    print("python", m.info["device"], "prompt", s.get("prompt_tokens"), "gen", s.get("generated_tokens"),
          "prefill tok/s %.1f decode tok/s %.2f" % (s.get("prefill_tok_s", 0), s.get("decode_tok_s", 0)))
PY
for i in 1 2; do
  [ $(( $(date +%s)-t0 )) -lt 480 ] || break
  timeout 90 python3 /tmp/pydecode.py /tmp/d.upg >> $L 2>&1
  echo "cli $(timeout 90 $U/upg bench --device cuda --model /tmp/d.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode)' | tr -s ' ' | tr '\n' ' ')" >> $L
done
note all
cat $L
