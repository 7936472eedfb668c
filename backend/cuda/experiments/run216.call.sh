set -u
R=$PWD; C=$R/.cuda-carry/f; L=$OUT/run216.txt
cd $C && gunzip -kf *.gz && chmod +x cuda.test; cd $R
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5 && chmod +x /tmp/nvcc5
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> $L
( NVCC=/tmp/nvcc5 bash scripts/build-cuda.sh /tmp/x > /tmp/build.txt 2>&1; echo "build rc $?" >> $L
  cmp /tmp/x/kernels.fatbin backend/cuda/kernels.fatbin && echo "fatbin: identical to the committed one" >> $L
  cp /tmp/x/kernels.manifest.json $OUT/; cp /tmp/x/kernels.manifest.json backend/cuda/
  NVCC=/tmp/nvcc5 bash scripts/build-cuda.sh --verify >> $L 2>&1; echo "verify rc $?" >> $L
  ls /tmp | grep -c tmp >> $L ) &
cd backend/cuda
for m in "" $C/rot.upg; do echo "== greedy, model ${m:-demo}" >> $L; UPG_CUDA_E2E_MODEL=$m timeout 100 $C/cuda.test -test.count=1 -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | grep -E 'e2e_test|^--- |^ok|^FAIL|panic' >> $L; done
timeout 300 $C/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite rc $?" >> $L
echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
grep -- '--- FAIL' /tmp/suite.txt | head >> $L; tail -3 /tmp/suite.txt >> $L; cp /tmp/suite.txt $OUT/
wait
cat $L
