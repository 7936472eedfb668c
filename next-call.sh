#!/bin/bash
# Short device call for branch rope-bits (session 35, ~240 s of device time left): the full kernel build with
# rope_pair, then the split rope's tests (TestGPUSplitRopeKV: random parts, bits; TestGPUSplitRopeMatches: the demo
# model with its projections split) and the end-to-end GPU tests; a batch-32 pair if time is left.
set -u
R=$PWD; C=$R/.cuda-carry
exec > >(tee $OUT/log.txt) 2>&1
for b in cuda.test upg; do gunzip -c $C/$b.gz > /tmp/$b; chmod +x /tmp/$b; done
printf '#!/bin/sh\nexec nvcc --threads 8 "$@"\n' > /tmp/nvccw; chmod +x /tmp/nvccw
NVCC=/tmp/nvccw bash scripts/build-cuda.sh /tmp/kfull > $OUT/fullbuild.txt 2>&1; rc=$?; echo "full build rc=$rc"; tail -1 $OUT/fullbuild.txt
if [ $rc != 0 ]; then grep -E "error|Error" $OUT/fullbuild.txt | head -20; exit 1; fi
(cd /tmp/kfull && tar cf $OUT/kfull.tar kernels.fatbin kernels.manifest.json)
export UPG_CUDA_FATBIN=/tmp/kfull/kernels.fatbin
cd $R/backend/cuda
T=/tmp/cuda.test
timeout 60 $T -test.run 'TestGPUSplitRopeKV|TestGPUSplitRopeMatches|TestGPUGreedy|TestGPUFused|TestGPURope' -test.v > $OUT/gputests.txt 2>&1; echo "cuda tests rc=$? pass=$(grep -c -- '--- PASS' $OUT/gputests.txt) fail=$(grep -c -- '--- FAIL' $OUT/gputests.txt)"
grep -E -- "--- FAIL|y\[|cache byte|fuse_test.go|int8 paths" $OUT/gputests.txt | head -10
