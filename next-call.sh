#!/bin/bash
# One device call for branch sum-rms (session 35, after run 113): upg_splitk_rms_rotq — a residual projection's
# split-K sum and the next RMSNorm's rotation in one launch, a token's segments one thread-block cluster
# (UPG_CUDA_SUM_NORM=0 compares) — and upg_splitk_rope_kv_* / upg_attn_rotq_* launched with PDL (they waited with
# pdl_wait but were launched without it). Prediction (run 113's batch-32 trace: o's and down's sums 2.2-2.3 µs each
# beside rms_rotq ~5.5 µs, two boundaries a layer): ~2 µs a fusion, batch 32 +2-3%, batch 16 +1-2%, prefill +0-2%,
# batch 1 unchanged (its GEMVs finish their own split parts). The PDL fix: +0.5% at batch 32 at most.
# Carry: .cuda-carry (cuda.test.gz, engine.test.gz, upg.gz cross-built from this branch with kernels.fatbin
# emptied; cl100k.tiktoken.gz). Run: bash next-call.sh. If kept: commit $OUT's kfull.tar into backend/cuda.
set -u
R=$PWD; C=$R/.cuda-carry
exec > >(tee $OUT/log.txt) 2>&1
for b in cuda.test engine.test upg; do gunzip -c $C/$b.gz > /tmp/$b; chmod +x /tmp/$b; done
mkdir -p /work/shared/tokenizers/tiktoken; gunzip -c $C/cl100k.tiktoken.gz > /work/shared/tokenizers/tiktoken/cl100k_base.tiktoken
(UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin /tmp/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg > /tmp/synth.txt 2>&1; echo synth rc=$? >> /tmp/synth.txt) &
SP=$!
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvccw; chmod +x /tmp/nvccw
NVCC=/tmp/nvccw bash scripts/build-cuda.sh /tmp/kfull > $OUT/fullbuild.txt 2>&1; rc=$?; echo "full build rc=$rc"; tail -1 $OUT/fullbuild.txt
if [ $rc != 0 ]; then grep -E "error|Error" $OUT/fullbuild.txt | head -20; kill $SP; exit 1; fi
grep -E "upg_splitk_rms_rotq|upg_cluster_probe|upg_rms_rotq " $OUT/fullbuild.txt | head -3
(cd /tmp/kfull && tar cf $OUT/kfull.tar kernels.fatbin kernels.manifest.json)
export UPG_CUDA_FATBIN=/tmp/kfull/kernels.fatbin
cd $R/backend/cuda
timeout 200 /tmp/cuda.test -test.run 'TestGPU|TestQueue' -test.v > $OUT/gputests.txt 2>&1; echo "cuda tests rc=$? pass=$(grep -c -- '--- PASS' $OUT/gputests.txt) fail=$(grep -c -- '--- FAIL' $OUT/gputests.txt) skip=$(grep -c -- '--- SKIP' $OUT/gputests.txt)"
grep -E -- "--- FAIL|cases fused|launches [0-9]+ ->" $OUT/gputests.txt | head -12
timeout 120 compute-sanitizer --tool memcheck /tmp/cuda.test -test.run 'TestGPUSplitRmsRotq|TestGPUSplitFusionsMatch' > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -1 $OUT/memcheck.txt
cd $R/engine
UPG_REQUIRE_GPU=1 timeout 100 /tmp/engine.test -test.run 'TestGPU' > $OUT/enginetests.txt 2>&1; echo "engine gpu tests rc=$?"; tail -1 $OUT/enginetests.txt
cd $R
wait $SP; tail -1 /tmp/synth.txt
B="/tmp/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512"
for r in 1 2; do for s in 1 0; do
  echo "== batch 32 sum-norm=$s round $r"; UPG_CUDA_SUM_NORM=$s timeout 60 $B --gen-tokens 32 --batch 32 2>&1 | grep -E "^decode" | head -1
done; done
for s in 1 0; do echo "== batch 1 sum-norm=$s"; UPG_CUDA_SUM_NORM=$s timeout 60 $B --gen-tokens 64 2>&1 | grep -E "^(prefill|decode)" | head -2; done
for s in 1 0; do echo "== batch 16 sum-norm=$s"; UPG_CUDA_SUM_NORM=$s timeout 60 $B --gen-tokens 32 --batch 16 2>&1 | grep -E "^decode" | head -1; done
echo "== trace batch 32"; UPG_CUDA_TRACE=1 timeout 60 $B --gen-tokens 32 --batch 32 > /tmp/t32.txt 2>&1; grep -E "splitk|rms_rotq" /tmp/t32.txt | cut -c1-240 | head -8
