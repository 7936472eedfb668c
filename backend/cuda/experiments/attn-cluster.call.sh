#!/bin/bash
# The first device call for attn-cluster.patch (v3), from the repository root
# with the patch applied (git apply backend/cuda/experiments/attn-cluster.patch).
# Carry .cuda-carry (an ignored folder: name it in the run tool's carry) holding,
# gzipped: upg and cuda.test cross-built from the patched tree
#   CGO_ENABLED=0 go build -ldflags='-s -w' -o .cuda-carry/upg ./cmd/upg
#   CGO_ENABLED=0 go test -c -o .cuda-carry/cuda.test ./backend/cuda
# and cl100k_base.tiktoken (../shared/tokenizers/tiktoken/); move
# backend/cuda/kernels.fatbin aside during the call (the upload stays small) and
# back after. $OUT gets the build's kernels.fatbin and manifest (commit them when
# it lands), tests.txt and a summary on stdout. ~550 s: run it with timeout_s 600.
R=$PWD; C=$R/.cuda-carry; O=/tmp/o; mkdir -p $O $OUT/build
(cd $C && for f in *.gz; do [ -f "$f" ] && gunzip -f "$f"; done; chmod +x upg cuda.test)
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.log 2>&1 & S1=$!
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5; chmod +x /tmp/nvcc5
NVCC=/tmp/nvcc5 scripts/build-cuda.sh $OUT/build > $O/build.log 2>&1 || { grep -B2 -A6 -i error $O/build.log | head -60; exit 1; }
python3 -c "
import json; m=json.load(open('$OUT/build/kernels.manifest.json'))['kernels']
for k,v in m.items():
    if 'cluster' in k: print(k, v.get('sm_90'))"
F=$OUT/build/kernels.fatbin
cd backend/cuda
UPG_CUDA_FATBIN=$F timeout 400 $C/cuda.test -test.run 'TestGPU|TestQueue' > $OUT/tests.txt 2>&1; echo "suite rc=$? pass=$(grep -c -- '--- PASS' $OUT/tests.txt) fail=$(grep -c -- '--- FAIL' $OUT/tests.txt)"
grep -E -- '--- FAIL|cluster kernel vs|codes one step' $OUT/tests.txt | grep -v ' 0 of ' | head -20
UPG_CUDA_FATBIN=$F timeout 150 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUAttentionCluster' > $O/memcheck.txt 2>&1; echo "memcheck: $(grep 'ERROR SUMMARY' $O/memcheck.txt)"
cd $R
wait $S1
b() { n=$1; shift; env "$@" timeout 90 $C/upg bench --device cuda --prompt-tokens ${P:-512} --gen-tokens 64 --model /tmp/p.upg > $O/$n.txt 2>&1; echo "$n: $(grep -E '^decode' $O/$n.txt)"; }
for P in 512 900 64 700; do # alternated twice where it matters most, once at the edges
  export P
  b off$P UPG_CUDA_FATBIN=$F UPG_CUDA_ATTN_CLUSTER=0; b cl$P UPG_CUDA_FATBIN=$F
  if [ $P = 512 ] || [ $P = 900 ]; then b off$P-2 UPG_CUDA_FATBIN=$F UPG_CUDA_ATTN_CLUSTER=0; b cl$P-2 UPG_CUDA_FATBIN=$F; fi
done
unset P
UPG_CUDA_FATBIN=$F UPG_CUDA_TRACE=1 timeout 90 $C/upg bench --device cuda --prompt-tokens 512 --gen-tokens 64 --model /tmp/p.upg > $O/trace.txt 2>&1
grep -A40 "last records" $O/trace.txt | grep -E 'cluster|gemv.cu:461 grid 160x1' | tail -4
