#!/bin/bash
# Diagnostic call (session 35, after run 114): run 114's TestGPUSplitFusionsMatch found the demo model's logits
# different with upg_splitk_rope_kv when its q|k|v projection splits (UPG_CUDA_SPLIT_MIN_UNITS=1). Which side is
# wrong, and is it the kernel (TestGPUSplitRopeKV: random parts, bits against the two kernels) or PDL (the fused
# kernel now launched with it)? Kernels: the committed fatbin (run 114's full build).
set -u
R=$PWD; C=$R/.cuda-carry
exec > >(tee $OUT/log.txt) 2>&1
gunzip -c $C/cuda.test.gz > /tmp/cuda.test; chmod +x /tmp/cuda.test
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin
cd $R/backend/cuda
T=/tmp/cuda.test
echo "== kernel-level, PDL on"; timeout 60 $T -test.run 'TestGPUSplitRopeKV' 2>&1 | grep -E -- "--- FAIL|y\[|cache byte|^(ok|PASS|FAIL)" | head -8
echo "== kernel-level, PDL off"; UPG_CUDA_PDL=0 timeout 60 $T -test.run 'TestGPUSplitRopeKV' 2>&1 | grep -E -- "--- FAIL|y\[|cache byte|^(ok|PASS|FAIL)" | head -8
echo "== e2e, PDL on"; timeout 60 $T -test.run 'TestGPUSplitFusionsMatch' -test.v 2>&1 | grep -E -- "fuse_test|--- " | head -8
echo "== e2e, PDL off"; UPG_CUDA_PDL=0 timeout 60 $T -test.run 'TestGPUSplitFusionsMatch' -test.v 2>&1 | grep -E -- "fuse_test|--- " | head -8
for s in 1 0; do
  echo "== against the CPU, every projection split (min units 1), rope in the sum=$s"
  UPG_CUDA_SPLIT_MIN_UNITS=1 UPG_CUDA_SPLITK_ROPE=$s timeout 90 $T -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | grep -E "int8 paths|last prompt|--- " | head -6
done
echo "== fused against unfused, min units 1"; UPG_CUDA_SPLIT_MIN_UNITS=1 timeout 60 $T -test.run 'TestGPUFusedMatchesUnfused' -test.v 2>&1 | grep -E "fuse_test|--- " | head -6
echo "== memcheck + racecheck of the kernel test"; timeout 90 compute-sanitizer --tool racecheck $T -test.run 'TestGPUSplitRopeKV/h8_H2' 2>&1 | tail -2
