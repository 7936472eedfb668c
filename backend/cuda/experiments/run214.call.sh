#!/bin/bash
# Run 214 (2026-12-05, eighteenth stop): unrotated-seg.patch's quantization segments on the rotated miniphi file:
# greedy 32 against the CPU and memcheck, as run 212 b did without the patch. Carry .cuda-carry/d (cuda.test.gz built
# with the patch, rot.upg.gz as run 212's); run as `bash backend/cuda/experiments/run214.call.sh`.
set -u
R=$PWD; C=$R/.cuda-carry/d; L=$OUT/run214.txt
cd $C && gunzip -kf *.gz && chmod +x cuda.test
cd $R/backend/cuda
UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 200 $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | tail -12 >> $L
UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 250 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU|TestGPUDense' 2>&1 | tail -4 >> $L
