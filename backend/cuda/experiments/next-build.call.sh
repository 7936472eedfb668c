#!/bin/bash
# The first device call for next-build.patch, from the repository root with
# the patch applied (git apply backend/cuda/experiments/next-build.patch).
# Carry .cuda-carry (ignored: name it in the run tool's carry) holding,
# gzipped: upg and cuda.test cross-built from the patched tree
#   CGO_ENABLED=0 go build -ldflags='-s -w' -o .cuda-carry/upg ./cmd/upg
#   CGO_ENABLED=0 go test -c -o .cuda-carry/cuda.test ./backend/cuda
# and cl100k_base.tiktoken (../shared/tokenizers/tiktoken/). Keep the tree's
# kernels.fatbin (main's: the comparison). $OUT gets the build's fatbin and
# manifest (commit them when it lands). ~400 s: run it with timeout_s 600.
R=$PWD; C=$R/.cuda-carry; O=/tmp/o; mkdir -p $O $OUT/build
(cd $C && for f in *.gz; do [ -f "$f" ] && gunzip -f "$f"; done; chmod +x upg cuda.test)
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
MAIN=/tmp/main.fatbin; cp backend/cuda/kernels.fatbin $MAIN
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.log 2>&1 &
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5; chmod +x /tmp/nvcc5
NVCC=/tmp/nvcc5 scripts/build-cuda.sh $OUT/build > $O/build.log 2>&1 || { grep -B2 -A6 -i error $O/build.log | head -60; exit 1; }
F=$OUT/build/kernels.fatbin; wait
cd backend/cuda
UPG_CUDA_FATBIN=$F timeout 200 $C/cuda.test -test.v -test.run 'TestGPU|TestQueue' > $O/tests.txt 2>&1; echo "suite rc=$? pass=$(grep -c -- '--- PASS' $O/tests.txt) fail=$(grep -c -- '--- FAIL' $O/tests.txt) skip=$(grep -c -- '--- SKIP' $O/tests.txt)"
grep -E -- '--- FAIL' $O/tests.txt | head; grep -B1 -A2 -- '--- SKIP' $O/tests.txt | grep -v -- '--- SKIP' | sort | uniq -c | sort -rn | head -8 > $OUT/skips.txt
UPG_CUDA_FATBIN=$F timeout 120 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUAttentionCluster$|TestGPUFusedMatchesUnfused' > $O/memcheck.txt 2>&1; echo "memcheck rc=$?: $(grep 'ERROR SUMMARY' $O/memcheck.txt)"
cd $R
b() { n=$1; shift; env "$@" timeout 60 $C/upg bench --device cuda --prompt-tokens ${P:-512} --gen-tokens 64 --model /tmp/p.upg > $O/$n.txt 2>&1; echo "$n: $(grep -E '^decode' $O/$n.txt)"; }
for i in 1 2; do b main$i UPG_CUDA_FATBIN=$MAIN; b next$i UPG_CUDA_FATBIN=$F; done
P=2000 b main2000 UPG_CUDA_FATBIN=$MAIN; P=2000 b next2000 UPG_CUDA_FATBIN=$F
