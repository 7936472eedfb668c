#!/bin/bash
# Run 224 (prepared 2026-12-06, twenty-second stop; not yet run): the self-quantizing q|k|v GEMV (_t1q) with its first
# two units of weights asked for after its PDL wait instead of before (t1q-late.patch). Run 222's trace: with the norm
# kernel before q|k|v gone, down (the GEMV before it) took 13.34 -> 14.49 µs, its successor's 240 blocks now launching
# early and loading two units each beside its tail; run 223: 14.87. Prediction (H100): down back to ~13.3 µs, q|k|v
# +0.3-0.5 µs (its first weights one latency later, beside the prologue's loads), the rotated file +0.5-1%.
# TRIG90 (pdl-late-res.patch): the one-token GEMVs with a residual epilogue (o, down) trigger their dependents after
# their unit loop instead of right after their wait, so the next kernel's blocks launch as the stream ends, on every
# file. Prediction: down ~13.3 on the rotated file, but the norm after o loses its early start: within ±1% on both.
# Carry .cuda-carry/k: upg and cuda.test cross-built from main (CGO_ENABLED=0 go build -ldflags='-s -w' ./cmd/upg;
# CGO_ENABLED=0 go test -c -ldflags='-s -w' ./backend/cuda; xz -9) and cl100k_base.tiktoken.gz. Three sm_90-only measurement builds of kernels/ (MAIN90: main's sources; LATE90, TRIG90: the patches),
# loaded through UPG_CUDA_FATBIN and alternated on `upg synth --arch phi4 --target-bpw 3.2 --rotate-residual`.
set -u
R=$PWD; C=$R/.cuda-carry/k; L=$OUT/run224.txt
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && xz -dkf upg.xz cuda.test.xz && gunzip -kf cl100k_base.tiktoken.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --rotate-residual --out /tmp/r.upg -q > /tmp/synthr.txt 2>&1; echo "synth rotated rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
stage() { rm -rf /tmp/k$1 && cp -r backend/cuda/kernels /tmp/k$1; } # kernels/ as the tree has them now
build() { # sm_90 only
  (cd /tmp/k$1 && nvcc -fatbin -O3 -std=c++17 -arch=sm_90 -Xptxas -v upg.cu -o /tmp/$1.fatbin > /tmp/b$1.txt 2>&1; echo "build $1 rc $? $(( $(date +%s)-t0 )) s" >> $L)
}
stage MAIN90
for v in "LATE90 t1q-late" "TRIG90 pdl-late-res"; do
  set -- $v; git apply backend/cuda/experiments/$2.patch && stage $1; git apply -R backend/cuda/experiments/$2.patch
done
for v in MAIN90 LATE90 TRIG90; do build $v & done
wait
for v in MAIN90 LATE90 TRIG90; do echo "$v $(grep -A2 "entry function 'upg_gemv_k3_g1_t1q'" /tmp/b$v.txt | grep spill)" >> $L; done
note build
bench() { # label, fatbin
  echo "$1 $(UPG_CUDA_FATBIN=$2 timeout -k 5 100 $C/upg bench --device cuda --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode) |rror|cuda:|panic' | head -3 | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2 3; do
  for v in MAIN90 LATE90 TRIG90; do left 30 && bench $v /tmp/$v.fatbin; done
done
note bench
# the landed code with its embedded fatbin: the withGPU refactor's first GPU run (e2e_test.go, selfq_test.go)
left 60 && { (cd backend/cuda && timeout 120 $C/cuda.test -test.count=1 -test.run 'TestGPUGreedyMatchesCPU|TestGPUSelfQuantMatchesNorm|TestGPUPstepMatchesPerOp' -test.v > /tmp/g.txt 2>&1; echo "greedy+selfq tests (embedded) rc $?" >> $L); grep -E -- '^(--- |ok|FAIL)|panic' /tmp/g.txt | head -12 >> $L; cp /tmp/g.txt $OUT/; }
trace_of() { # label
  echo "== trace $1" >> $L
  UPG_CUDA_FATBIN=/tmp/$1.fatbin UPG_CUDA_TRACE=1 timeout -k 5 60 $C/upg bench --device cuda --model /tmp/r.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/trace$1.txt 2>&1
  grep -E '^decode |rror|cuda:|panic' /tmp/trace$1.txt | head -3 >> $L
  sed -n '/cuda step trace/,/last records/p' /tmp/trace$1.txt > $OUT/trace-$1.txt
  grep -E 'gemv.cu:[0-9]+ grid (240|160|1120)x|attn_cluster|rms_rotq \(5 |swiglu_rotq \(35 ' $OUT/trace-$1.txt >> $L
}
for v in MAIN90 LATE90 TRIG90; do left 40 && trace_of $v; done
# LATE90 against the norm kernel (the test main's fatbin passes: run 223)
left 60 && { (cd backend/cuda && UPG_CUDA_FATBIN=/tmp/LATE90.fatbin timeout 90 $C/cuda.test -test.count=1 -test.run 'TestGPUSelfQuantMatchesNorm' -test.v > /tmp/q.txt 2>&1; echo "selfq test (LATE90) rc $?" >> $L); grep -E -- '--- (PASS|FAIL)|selfq_test|panic' /tmp/q.txt | head -6 >> $L; }
note all
