#!/bin/bash
# Run 221 (prepared 2026-12-06, twenty-first stop; not yet run): q|k|v quantizing its own input on --rotate-residual
# files (selfQuant), experiments/selfq.patch. Run 219 measured the norm kernel before q|k|v at ~5.3 µs a layer on the
# H100 (a chain of round trips) and a one-wave reader quantizing its own 128-column groups from the residual at ~1.9.
# The patch builds it: o and down leave the residual's row-group sums of squares (res_write, every file); on a file
# whose norm gains are ones and whose q|k|v has no input rotation (`synth --rotate-residual`), the new _t1q rope GEMVs
# quantize the residual themselves (GemvSelfQ), take 1/rms from those sums, write h, and the norm kernel before them is
# not launched (UPG_CUDA_SELFQ=0 keeps it, same binary and fatbin). Run 220 ran the first form of it and every launch of
# the 40-parameter kernels failed on launch's 32-argument limit (now 48, TestKernelArgsFit), and that form spilled 52
# bytes in _t1r on sm_90 (now its own _t1q kernels). Prediction (H100): the rotated file's decode +4-5% (76 -> ~72.6 µs a
# layer); the plain file unchanged.
# Before the call: `git apply backend/cuda/experiments/selfq.patch` (on a branch), cross-build upg and cuda.test from
# that tree (CGO_ENABLED=0 go build -ldflags='-s -w' ./cmd/upg; go test -c ... ./backend/cuda), xz both into
# .cuda-carry/h with cl100k_base.tiktoken.gz (the carry limit: xz, not gzip). If every check passes, commit the
# $OUT fatbin and manifest with the patch; TestManifest* then pass.
set -u
R=$PWD; C=$R/.cuda-carry/h; L=$OUT/run221.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 470 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz cuda.test.xz && gunzip -kf cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/r.upg -q > /tmp/synthr.txt 2>&1; echo "synth rotated rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synthp.txt 2>&1; echo "synth plain rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
printf '#!/bin/sh\nexec nvcc --threads 6 "$@"\n' > /tmp/nvcc6 && chmod +x /tmp/nvcc6
(NVCC=/tmp/nvcc6 bash scripts/build-cuda.sh /tmp/full > /tmp/bfull.txt 2>&1; echo "build (full) rc $? $(( $(date +%s)-t0 )) s" >> $L)
cp /tmp/full/kernels.fatbin /tmp/full/kernels.manifest.json $OUT/ 2>> $L
grep -iE 'error' /tmp/bfull.txt | head -5 >> $L
python3 - >> $L <<'PY'
import json
k = json.load(open('/tmp/full/kernels.manifest.json'))['kernels']
for n in ('upg_gemv_k3_g1_t1', 'upg_gemv_k3_g1_t1r', 'upg_gemv_k3_g1_t1q', 'upg_gemv_k2_g1_t1q'):
    print(n, k.get(n, {}).get('sm_90'))
PY
export UPG_CUDA_FATBIN=/tmp/full/kernels.fatbin
wait # the syntheses
note build
# the new path's own test, the fusions' bit-exactness on the demo model, the greedy comparison, signatures
(cd backend/cuda && timeout 200 $C/cuda.test -test.count=1 -test.run 'TestGPUSelfQuantMatchesNorm|TestGPUFusedMatchesUnfused|TestGPUGreedyMatchesCPU|TestGPUSplit|TestKernelSignatures|TestGPUDense' -test.v > /tmp/q.txt 2>&1; echo "quick tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/q.txt) fail $(grep -c -- '--- FAIL' /tmp/q.txt)" >> $L; grep -E -B2 -A6 -- '--- FAIL|panic' /tmp/q.txt | head -40 >> $L; grep -E 'self-quantized|launches' /tmp/q.txt | head -4 >> $L
note quick
bench() { # label, file, selfq
  echo "$1 $(UPG_CUDA_SELFQ=$3 timeout -k 5 100 $C/upg bench --device cuda --model $2 --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode) |rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2; do
  for v in "rot-selfq /tmp/r.upg 1" "rot-norm /tmp/r.upg 0"; do
    set -- $v; left 30 || break; bench $1 $2 $3
  done
done
for v in "plain /tmp/p.upg 1" "plain-selfq0 /tmp/p.upg 0"; do
  set -- $v; left 30 || break; bench $1 $2 $3
done
note bench
left 40 && { echo "== trace rot-selfq" >> $L; UPG_CUDA_TRACE=1 timeout -k 5 60 $C/upg bench --device cuda --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/tr.txt 2>&1; grep -E '^decode ' /tmp/tr.txt >> $L; sed -n '/cuda step trace/,/last records/p' /tmp/tr.txt | grep -E 'gemv.cu:[0-9]+ grid (240|160|1120)x|attn_cluster|rms_rotq \(5 |swiglu_rotq \(35 ' >> $L; }
# the whole GPU suite with the new fatbin (TestManifest* compare the embedded manifest: expected to fail until it lands)
left 120 && {
  (cd backend/cuda && timeout 200 $C/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
  grep -E -A4 -- '--- FAIL' /tmp/suite.txt | head -24 >> $L
}
left 60 && { (cd backend/cuda && timeout 100 compute-sanitizer --tool memcheck $C/cuda.test -test.run 'TestGPUSelfQuantMatchesNorm' > /tmp/mc.txt 2>&1; echo "memcheck rc $? $(grep -E 'ERROR SUMMARY' /tmp/mc.txt)" >> $L); }
note all
