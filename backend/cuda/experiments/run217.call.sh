#!/bin/bash
# Run 217 (2026-12-06, twenty-first stop): the RMSNorm's work in the tail of the GEMV that writes the residual.
# Run 179 put the whole norm kernel (upg_rms_rotq, two a layer) at 10% of the step (386 -> 425 tok/s left out),
# nearly all of it its launch boundary and round trips, not its arithmetic; run 180 put its work into every block
# of the reading GEMV (-38%). Here it goes to the *writing* GEMV instead (o and down, whose epilogue adds to the
# residual): the block that completes a 1,024-row segment of the residual (a counter a segment, after the split
# parts' own) loads the segment, rotates it and quantizes it as upg_rms_rotq's block does, without the 1/rms (the
# int8 codes do not depend on it; the reader's sums would be scaled by it, one multiply). So the norm's work runs
# five segments in parallel inside the GEMV's tail and the norm kernel's boundary is gone.
# experiments/norm-tail.patch (-DUPG_SIM_NTAIL, timing only: static buffers stand in for the reader's gain, signs,
# codes and factors) is applied to a copy of kernels/; UPG_CUDA_ABLATE=upg_rms_rotq leaves the norm kernel out.
# Prediction: SIM+ABL within ~2-3 µs a layer of ABL (the tail ~1-1.5 µs on each of two GEMVs' critical paths,
# against ~3.3 µs a norm kernel): decode ~405-415 against MAIN90 ~389 and ABL ~425-430. If it lands there, the
# real form (the reader's 1/rms from five segment sums, a second xq buffer, the queue's fusion) is worth building.
# Also: HEAD's GPU suite (TestAlike's alike() in TestGPUGreedyMatchesCPU first run on a GPU since its move).
# Carry .cuda-carry/g (upg.gz, cuda.test.gz: CGO_ENABLED=0 go build/test -c -ldflags='-s -w' from d20a214;
# cl100k_base.tiktoken.gz). Run as `bash backend/cuda/experiments/run217.call.sh`; writes $OUT/run217.txt.
set -u
R=$PWD; C=$R/.cuda-carry/g; L=$OUT/run217.txt; E=$R/backend/cuda/experiments
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 540 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
rm -rf /tmp/ksim /tmp/b && mkdir -p /tmp/b /tmp/ksim/backend/cuda && cp -r backend/cuda/kernels /tmp/ksim/backend/cuda/
(cd /tmp/ksim && patch -p1 < $E/norm-tail.patch > /tmp/patch.txt 2>&1; echo "patch rc $?" >> $L)
G="-fatbin -O3 -std=c++17 -lineinfo -Xptxas -v -gencode=arch=compute_90,code=sm_90"
(cd backend/cuda/kernels && nvcc --threads 4 $G upg.cu -o /tmp/b/MAIN90.fatbin > /tmp/bMAIN90.txt 2>&1) &
(cd /tmp/ksim/backend/cuda/kernels && nvcc --threads 4 $G -DUPG_SIM_NTAIL upg.cu -o /tmp/b/SIM.fatbin > /tmp/bSIM.txt 2>&1) &
wait
note builds
for v in MAIN90 SIM; do
  echo "build $v: $(grep -iE 'error' /tmp/b$v.txt | head -3) $(ls -la /tmp/b/$v.fatbin 2>&1 | awk '{print $5}')" >> $L
  for k in upg_gemv_k3_g1_t1 upg_gemv_k3_g2_t1 upg_gemv_k4_g1_t1; do
    echo "  $k $(grep -A2 "Compiling entry function '$k'" /tmp/b$v.txt | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')" >> $L
  done
done
bench() { # label, fatbin, ablate, args...
  local lab=$1 fb=$2 ab=$3; shift 3
  echo "$lab $(UPG_CUDA_FATBIN=$fb UPG_CUDA_ABLATE=$ab timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg "$@" 2>&1 | grep -E '^(prefill|decode) |rror' | tr -s ' ' | tr '\n' ' ')" >> $L
}
for round in 1 2; do
  for v in "MAIN90 -" "MAIN90 upg_rms_rotq" "SIM upg_rms_rotq" "SIM -"; do
    set -- $v
    left 40 || break
    ab=$2; [ $ab = - ] && ab=
    bench "b1 $1 ablate=${2}" /tmp/b/$1.fatbin "$ab" --prompt-tokens 512 --gen-tokens 64
  done
done
note bench
# the step trace (per call site: each kernel's share of the step) for MAIN90 and SIM+ABL
for v in "MAIN90 -" "SIM upg_rms_rotq"; do
  set -- $v
  left 60 || break
  ab=$2; [ $ab = - ] && ab=
  echo "== trace $1 ablate=$2" >> $L
  UPG_CUDA_TRACE=1 UPG_CUDA_FATBIN=/tmp/b/$1.fatbin UPG_CUDA_ABLATE=$ab timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg --prompt-tokens 512 --gen-tokens 16 > /tmp/tr_$1.txt 2>&1
  grep -E '^decode ' /tmp/tr_$1.txt >> $L; sed -n '/cuda step trace/,/last records/p' /tmp/tr_$1.txt | head -24 >> $L
done
note trace
# HEAD's GPU suite (embedded fatbin)
left 120 && {
  (cd backend/cuda && timeout 200 $C/cuda.test -test.count=1 -test.v > /tmp/suite.txt 2>&1; echo "suite rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt) skip $(grep -c -- '--- SKIP' /tmp/suite.txt)" >> $L
  grep -- '--- FAIL' /tmp/suite.txt | head -8 >> $L
  grep -A12 -- '--- .*TestGPUGreedyMatchesCPU' /tmp/suite.txt | head -16 >> $L; tail -2 /tmp/suite.txt >> $L
}
note all
