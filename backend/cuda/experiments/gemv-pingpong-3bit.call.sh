#!/bin/bash
# The device call for gemv-pingpong-3bit.patch (NOTES.md, runs 154-157),
# run from the repository root with the patch applied. Carry .cuda-carry
# (named in the run's carry, listed in .git/info/exclude), gzipped: upg and
# cuda.test cross-built from main (CGO_ENABLED=0 go build -ldflags='-s -w'
# ./cmd/upg; CGO_ENABLED=0 go test -c ./backend/cuda), cl100k_base.tiktoken
# and miniphi_eval_250k.txt from ../shared. Build the Go binaries first,
# then move backend/cuda/kernels.fatbin aside while calling (the 64 MiB
# limit; go:embed needs it for the build). Writes kernels.fatbin and
# kernels.manifest.json to $OUT: commit both if the patch lands.
cd "$(dirname "$0")/../../.." || exit 1
R=$PWD; C=$R/.cuda-carry
(cd $C && gunzip -f *.gz && chmod +x upg cuda.test)
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.log 2>&1 & S1=$!
$C/upg synth --arch phi4 --layers 8 --target-bpw 4.5 --out /tmp/p45.upg -q > /tmp/synth45.log 2>&1 & S2=$!
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5; chmod +x /tmp/nvcc5
NVCC=/tmp/nvcc5 scripts/build-cuda.sh $OUT > /tmp/build.log 2>&1 || { grep error /tmp/build.log | head -30; exit 1; }
grep -E "upg_gemv_k(3|4)_g(1|2)_t1 " /tmp/build.log
F=$OUT/kernels.fatbin
wait $S1 $S2
bench() { "$@" bench --device cuda --prompt-tokens 512 --gen-tokens 64 | grep -E '^decode' | tr '\n' ' '; echo; }
for i in 1 2; do
  echo "4-bit g64, 8 layers, main:  $(bench $C/upg --model /tmp/p45.upg)"
  echo "4-bit g64, 8 layers, patch: $(UPG_CUDA_FATBIN=$F bench $C/upg --model /tmp/p45.upg)"
  echo "3.2 bpw, main:              $(bench $C/upg --model /tmp/p.upg)"
  echo "3.2 bpw, patch:             $(UPG_CUDA_FATBIN=$F bench $C/upg --model /tmp/p.upg)"
done
cd $R/backend/cuda
UPG_CUDA_FATBIN=$F timeout 240 $C/cuda.test -test.run 'TestGPU|TestQueue' -test.v > /tmp/suite.log 2>&1 &
UPG_CUDA_FATBIN=$F timeout 200 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGemvWideRows|TestGPUGemvSplit|TestGPUGreedyMatchesCPU|TestGPUGemvRope$' > /tmp/memcheck.log 2>&1 &
cd $R
echo "KL: $(UPG_CUDA_FATBIN=$F $C/upg eval --device cuda --ref-device cpu --model models/miniphi-29m.upg --ref models/miniphi-29m.upg --text $C/miniphi_eval_250k.txt --ctx 512 2>&1 | tail -3 | tr '\n' ' ')"
wait
echo "suite: $(grep -c -- '--- PASS' /tmp/suite.log) pass, $(grep -c -- '--- FAIL' /tmp/suite.log) fail; $(tail -1 /tmp/suite.log)"
grep -A5 -- "--- FAIL" /tmp/suite.log | head -30; tail -3 /tmp/memcheck.log
