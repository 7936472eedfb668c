#!/bin/bash
# Run 263 (2026-12-07, thirty-seventh stop): run 262 found generate_batch's greedy text on the GPU unlike the CPU's
# for some prompt of test_cuda_batch_agrees_with_cpu. The test now says where each text leaves the CPU's and the
# CPU's top-2 gap there (a near-tie, or not). Carry .cuda-carry/q (as run 262).
set -u
R=$PWD; C=${C:-$R/.cuda-carry/q}; U=/tmp/u; L=$OUT/run263.txt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
mkdir -p $U/site/upg/models && cp python/src/upg/*.py python/src/upg/py.typed $U/site/upg/
xz -dc $C/libupg.so.xz > $U/site/upg/libupg.so && cp models/miniphi-29m.upg $U/site/upg/models/
xz -dc $C/upg.xz > $U/upg && chmod +x $U/upg
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin PYTHONPATH=$U/site
(cd /tmp && UPG_REPO=$R UPG_CLI=$U/upg timeout 150 python3 -m pytest -p no:cacheprovider -rA -s --tb=short \
  $R/python/tests/test_device.py 2>&1 | grep -vE "^\s*$" | tail -40) >> $L
(cd /tmp && CUDA_VISIBLE_DEVICES= UPG_REPO=$R UPG_CLI=$U/upg timeout 100 python3 -m pytest -p no:cacheprovider -q -rf \
  -k batch $R/python/tests/test_generate.py 2>&1 | tail -4) >> $L
cat $L
