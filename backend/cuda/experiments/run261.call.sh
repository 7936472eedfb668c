#!/bin/bash
# Run 261 (2026-12-07, thirty-sixth stop): e9f4c58's Converse rule on a GPU (a conversation's cache reused only from
# where one of its steps began), through the Python package: python/tests/test_device.py with the machine's GPU
# (its GPU branch now asks the same sampled request twice on one model, and after another request, for one text),
# then the rest of the suite with CUDA_VISIBLE_DEVICES= as python/tests/run.sh runs it. Carry .cuda-carry/p:
# libupg.so from `pip wheel ./python` at e9f4c58 (xz), upg cross-built from 530d0e3 (xz; fatbin emptied).
set -u
R=$PWD; C=${C:-$R/.cuda-carry/p}; U=/tmp/u; L=$OUT/run261.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
mkdir -p $U/site/upg/models && cp python/src/upg/*.py python/src/upg/py.typed $U/site/upg/
xz -dc $C/libupg.so.xz > $U/site/upg/libupg.so && cp models/miniphi-29m.upg $U/site/upg/models/
xz -dc $C/upg.xz > $U/upg && chmod +x $U/upg
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin PYTHONPATH=$U/site
(cd /tmp && UPG_REPO=$R UPG_CLI=$U/upg timeout 150 python3 -m pytest -p no:cacheprovider -rA --tb=short \
  $R/python/tests/test_device.py 2>&1 | grep -E "^(PASSED|FAILED|SKIPPED|ERROR)|Error|assert|passed|failed" | head -30) >> $L
(cd /tmp && CUDA_VISIBLE_DEVICES= UPG_REPO=$R UPG_CLI=$U/upg timeout 200 python3 -m pytest -p no:cacheprovider -q -rf \
  $R/python/tests 2>&1 | tail -6) >> $L
cat $L
