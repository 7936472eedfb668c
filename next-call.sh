#!/bin/bash
# One device call for branch next-three = next-two (qkv-rope + overlap-sampled) merged onto main 65c55b7 (penalties,
# logit bias, JSON mode; TestGPUSampleAdditive), 2026-12-02 session 35; not yet built or run. qkv-rope: the fused q|k|v projection's split-K sum with rope_kv in it (upg_splitk_rope_kv_*,
# kernels/fused.cu; ropeEpilogue in ops.go; the MatMul · Rope · Rope · StoreKV fusion in fuse.go),
# UPG_CUDA_SPLITK_ROPE=0 compares. overlap-sampled: SampleAsync reads upg_sample's results back asynchronously
# (rows from page-locked memory), so sampled decoding overlaps too; --no-overlap compares.
# Prediction for overlap-sampled: `upg bench --temperature 0.7` batch 1 +1.5-3% with overlap (as greedy's in
# runs 111-112); TestGPUSampleAsync and TestGPUOverlap's sampled case pass on the async path.
# Carry: .cuda-carry with cuda.test.gz, engine.test.gz and upg.gz cross-built from this branch (kernels.fatbin
# emptied for the build, as in backend/cuda/NOTES.md), cl100k.tiktoken.gz. Run: bash next-call.sh.
# If kept: commit $OUT's kfull.tar (kernels.fatbin, kernels.manifest.json) into backend/cuda.
# Prediction (run 110's batch-32 phase trace: qkv's split-K sum 2.19 µs + rope_kv 5.69 µs a layer, two
# boundaries): one launch of ~3 µs, batch 32 +2-3%, batch 16 +1-2%, prefill +0-1%, batch 1 unchanged (its qkv
# GEMV finishes its own split parts: the epilogue there is upg_rope_kv as before).
set -u
R=$PWD; C=$R/.cuda-carry
exec > >(tee $OUT/log.txt) 2>&1
for b in cuda.test engine.test upg; do gunzip -c $C/$b.gz > /tmp/$b; chmod +x /tmp/$b; done
mkdir -p /work/shared/tokenizers/tiktoken; gunzip -c $C/cl100k.tiktoken.gz > /work/shared/tokenizers/tiktoken/cl100k_base.tiktoken
(UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin /tmp/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg > /tmp/synth.txt 2>&1; echo synth rc=$? >> /tmp/synth.txt) &
SP=$!
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvccw; chmod +x /tmp/nvccw
NVCC=/tmp/nvccw bash scripts/build-cuda.sh /tmp/kfull > $OUT/fullbuild.txt 2>&1; echo "full build rc=$?"; tail -2 $OUT/fullbuild.txt
grep -E "upg_splitk_rope_kv" $OUT/fullbuild.txt | head -2
(cd /tmp/kfull && tar cf $OUT/kfull.tar kernels.fatbin kernels.manifest.json)
export UPG_CUDA_FATBIN=/tmp/kfull/kernels.fatbin
cd $R/backend/cuda
timeout 200 /tmp/cuda.test -test.run 'TestGPU|TestQueue' -test.v > $OUT/gputests.txt 2>&1; echo "cuda tests (GPU and queue, new kernels) rc=$? pass=$(grep -c -- '--- PASS' $OUT/gputests.txt) fail=$(grep -c -- '--- FAIL' $OUT/gputests.txt) skip=$(grep -c -- '--- SKIP' $OUT/gputests.txt)"; grep -E -- "--- FAIL|SplitRope" $OUT/gputests.txt | head
timeout 100 compute-sanitizer --tool memcheck /tmp/cuda.test -test.run 'TestGPUSplitRopeMatches|TestGPUFusedMatchesUnfused|TestGPUSampleAsync|TestGPUSampleAdditive' > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $OUT/memcheck.txt
cd $R/engine
UPG_REQUIRE_GPU=1 timeout 100 /tmp/engine.test -test.run 'TestGPU' > $OUT/enginetests.txt 2>&1; echo "engine gpu tests rc=$?"; tail -2 $OUT/enginetests.txt
cd $R
wait $SP; tail -1 /tmp/synth.txt
B="/tmp/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512"
for r in 1 2; do for s in 1 0; do
  echo "== batch 32 rope-in-sum=$s round $r"; UPG_CUDA_SPLITK_ROPE=$s timeout 60 $B --gen-tokens 32 --batch 32 2>&1 | grep -E "^decode" | head -1
  echo "== batch 1 rope-in-sum=$s round $r"; UPG_CUDA_SPLITK_ROPE=$s timeout 60 $B --gen-tokens 64 2>&1 | grep -E "^(prefill|decode)" | head -2
done; done
for r in 1 2; do for o in "" "--no-overlap"; do
  echo "== batch 1 sampled (temperature 0.7) [$o] round $r"; timeout 60 $B --gen-tokens 64 --temperature 0.7 $o 2>&1 | grep -E "^decode" | head -1
done; done
for s in 1 0; do echo "== batch 16 rope-in-sum=$s"; UPG_CUDA_SPLITK_ROPE=$s timeout 60 $B --gen-tokens 32 --batch 16 2>&1 | grep -E "^decode" | head -1; done
echo "== trace batch 32"; UPG_CUDA_TRACE=1 timeout 60 $B --gen-tokens 32 --batch 32 > /tmp/t32.txt 2>&1; grep -E "splitk|rope_kv" /tmp/t32.txt | cut -c1-240 | head -6
