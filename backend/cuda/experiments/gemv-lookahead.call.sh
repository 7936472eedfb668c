#!/bin/bash
# The device call for gemv-lookahead.patch (NOTES.md, runs 148-153), run from
# the repository root with the patch applied. Carry .cuda-carry (named in
# the run's carry, listed in .git/info/exclude), gzipped: upg and cuda.test
# cross-built from main (CGO_ENABLED=0 go build -ldflags='-s -w' ./cmd/upg;
# CGO_ENABLED=0 go test -c ./backend/cuda), cl100k_base.tiktoken and
# miniphi_eval_250k.txt from ../shared. Move backend/cuda/kernels.fatbin
# aside while calling (the 64 MiB limit). Writes kernels.fatbin and
# kernels.manifest.json to $OUT: commit both if the patch lands.
cd "$(dirname "$0")/../../.." || exit 1
R=$PWD; C=$R/.cuda-carry
(cd $C && gunzip -f *.gz && chmod +x upg cuda.test)
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
$C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.log 2>&1 & SP=$!
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5; chmod +x /tmp/nvcc5
NVCC=/tmp/nvcc5 scripts/build-cuda.sh $OUT > /tmp/build.log 2>&1 || { grep error /tmp/build.log | head -30; kill $SP; exit 1; }
grep -E "upg_gemv_k3_g1_t1r? " /tmp/build.log
F=$OUT/kernels.fatbin
# the six pre-wait code loads must come before ACQBULK (run 152: D had 5 after it)
cuobjdump -sass -fun upg_gemv_k3_g1_t1 -arch sm_90 $F | grep -n -E "ACQBULK|LDG" | head -16
wait $SP
bench() { "$@" bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 64 | grep -E '^decode' | tr '\n' ' '; echo; }
for i in 1 2; do
  echo "main:         $(bench $C/upg)"
  echo "look-ahead:   $(UPG_CUDA_FATBIN=$F bench $C/upg)"
done
echo "main, PDL off:       $(UPG_CUDA_PDL=0 bench $C/upg)"
echo "look-ahead, PDL off: $(UPG_CUDA_PDL=0 UPG_CUDA_FATBIN=$F bench $C/upg)"
echo "batch 32: $(UPG_CUDA_FATBIN=$F $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 32 --batch 32 | grep -E '^decode')"
cd $R/backend/cuda
UPG_CUDA_FATBIN=$F timeout 240 $C/cuda.test -test.run 'TestGPU|TestQueue' -test.v > /tmp/suite.log 2>&1 & TP=$!
UPG_CUDA_FATBIN=$F timeout 200 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUGemvWideRows|TestGPUGemvSplit|TestGPUGreedyMatchesCPU|TestGPUGemvRope$' > /tmp/memcheck.log 2>&1 &
cd $R
echo "KL: $(UPG_CUDA_FATBIN=$F $C/upg eval --device cuda --ref-device cpu --model models/miniphi-29m.upg --ref models/miniphi-29m.upg --text $C/miniphi_eval_250k.txt --ctx 512 2>&1 | tail -3 | tr '\n' ' ')"
wait
echo "suite: $(grep -c -- '--- PASS' /tmp/suite.log) pass, $(grep -c -- '--- FAIL' /tmp/suite.log) fail; $(tail -1 /tmp/suite.log)"
grep -A5 -- "--- FAIL" /tmp/suite.log | head -30; tail -3 /tmp/memcheck.log
