#!/bin/bash
# Run 215 (2026-12-05/06, nineteenth stop): the decode's shifts off the ALU pipe.
# The one-token GEMV's unit loop (sm_80 SASS of upg_gemv_k3_g1_t1, two units: 64 PRMT, 60 SHF, 49 LOP3, 10 ISETP on
# the ALU pipe; 64 IDP.4A and 25 IMAD on the IMAD pipe) leaves the ALU pipe the busiest (runs 194-196). Of its SHFs,
# 32 take a selector's upper half (>> 16) and 24 build the fourth selector from the planes' bits 3. The tree's
# kernels/gemv.cu now takes both off the ALU pipe (hi16: HMUL2 .H1_H1 by 1.0 on the FMA pipe; sel3: IMAD.HI sums on
# the IDP.4A pipe); measurement switches give the old forms: -DUPG_SEL_HI_SHF, -DUPG_SEL3_SHF, and -DUPG_SEL_HI_IMAD
# (hi16 as IMAD.HI). Counted (sm_80, two units): ALU 183 (main) -> 151 (H1: hi16 only) -> 129 (LAND: both);
# IMAD pipe 89 (+32 HMUL2) -> 125 (+32 HMUL2); H2S (IMAD.HI for both) ALU 129, IMAD pipe 157.
# The change is experiments/sel-pipes.patch (kernels/gemv.cu, kernels/mma.cu, and scripts/build-cuda.sh's --verify
# reading the manifest once and removing its log), applied here to the tree unless it already is.
# Carry .cuda-carry/e (upg.gz, cuda.test.gz: CGO_ENABLED=0 go build/test -c -ldflags='-s -w' from the tree;
# cl100k_base.tiktoken.gz). Run as `bash backend/cuda/experiments/run215.call.sh`. Writes $OUT/run215.txt and, from
# scripts/build-cuda.sh on the tree, $OUT/kernels.fatbin and $OUT/kernels.manifest.json (what would land; its sm_90
# code is LAND's, an sm_90-only build of the tree used for the measurements while the full build runs).
#   1. pipes.cu: HMUL2.H1 and IMAD.HI alone and beside PRMT and IDP.4A (which pipe each takes)
#   2. LAND (full build) and H1 (sm_90); the GPU suite's dense, GEMM, prefill, fused, SwiGLU, rotation and
#      greedy tests on LAND
#   3. Phi-4 synth file, decode after 512 (and prefill): main (embedded) / H1 / LAND alternated twice;
#      batch 32 main / LAND. Prediction: the GEMVs' ALU floor -17% (H1) / -30% (LAND); the per-op GEMVs are
#      latency-bound (run 146), so decode +2-6% for LAND (H2S, IMAD.HI for both, is left for later: its IMAD
#      pipe would carry 157 a loop)
#   4. layerskel mode 3 (the persistent multiply alone, ALU-bound: run 194), old forms (T) against the tree's (S)
#   b. `bash backend/cuda/experiments/run215.call.sh b`, a second call on the warm machine with carry
#      .cuda-carry/f (cuda.test.gz as above, rot.upg.gz: the rotated miniphi file of run 212, made by
#      `upg compress ../shared/models/miniphi-29m --out rot.upg --target-bpw 3.2 --calib models/calib/miniphi-calib.txt
#      --calib-tokens 8192 --rotate-residual`): TestGPUGreedyMatchesCPU on it, the embedded fatbin and LAND's, with
#      the test's CPU spread now taken only over the steps where the CPU's int8 and float paths still agree
set -u
if [ "${1:-a}" = b ]; then
  C=$PWD/.cuda-carry/f; cd $C && gunzip -kf *.gz && chmod +x cuda.test && cd - > /dev/null
  for fb in "" /tmp/b/LAND.fatbin; do
    [ -z "$fb" ] || [ -f "$fb" ] || continue
    echo "== greedy, rotated miniphi, fatbin ${fb:-embedded}" >> $OUT/run215b.txt
    (cd backend/cuda && UPG_CUDA_FATBIN=$fb UPG_CUDA_E2E_MODEL=$C/rot.upg timeout 200 $C/cuda.test -test.run 'TestGPUGreedyMatchesCPU' -test.v 2>&1 | grep -v '^=== ' | tail -14) >> $OUT/run215b.txt
  done
  exit 0
fi
R=$PWD; C=$R/.cuda-carry/e; L=$OUT/run215.txt; E=$R/backend/cuda/experiments; K=$R/backend/cuda/kernels
t0=$(date +%s)
note() { echo "-- $1 $(( $(date +%s)-t0 )) s" >> $L; }
left() { [ $(( 330 - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
cd $C && gunzip -kf *.gz && chmod +x upg cuda.test
cd $R && { grep -q 'DEVI unsigned hi16' backend/cuda/kernels/gemv.cu || patch -p1 < backend/cuda/experiments/sel-pipes.patch > /dev/null; }
mkdir -p /work/shared/tokenizers/tiktoken && cp $C/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader >> $L
( $C/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/p.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
mkdir -p /tmp/b /tmp/land
G="-fatbin -O3 -std=c++17 -lineinfo -Xptxas -v -gencode=arch=compute_90,code=sm_90"
printf '#!/bin/sh\nexec nvcc --threads 5 "$@"\n' > /tmp/nvcc5 && chmod +x /tmp/nvcc5
(NVCC=/tmp/nvcc5 bash scripts/build-cuda.sh /tmp/land > /tmp/bLANDFULL.txt 2>&1; echo "build LAND (full) rc $? $(( $(date +%s)-t0 )) s" >> $L; cp /tmp/land/kernels.fatbin /tmp/land/kernels.manifest.json $OUT/) &
lpid=$!
(cd $K && nvcc $G upg.cu -o /tmp/b/LAND.fatbin > /tmp/bLAND.txt 2>&1) &
(cd $K && nvcc $G -DUPG_SEL3_SHF upg.cu -o /tmp/b/H1.fatbin > /tmp/bH1.txt 2>&1) &
LB="-O3 -std=c++17 -arch=sm_90 -DLS_MERGE1 -DLS_NOATOM -DLS_TMA -DLS_GROUP=16 -DLS_EARLY -DLS_CH=2 -DLS_FULL2 -DLS_NOROT"
nvcc $LB -DUPG_SEL_HI_SHF -DUPG_SEL3_SHF $E/layerskel.cu -o /tmp/ls_T > /tmp/bLT.txt 2>&1 &
nvcc $LB $E/layerskel.cu -o /tmp/ls_S > /tmp/bLS.txt 2>&1 &
nvcc -O3 -std=c++17 -arch=sm_90 $E/pipes.cu -o /tmp/pipes > /tmp/bP.txt 2>&1 && { echo "== pipes"; timeout 60 /tmp/pipes; } >> $L 2>&1
note pipes
for j in $(jobs -p); do [ $j = $lpid ] || wait $j; done # the synthesis and every build but the full one
note builds
for v in H1 LT LS P LAND; do echo "build $v: $(grep -iE 'error' /tmp/b$v.txt | head -3)" >> $L; done
for v in H1 LAND; do echo "$v $(grep -A2 "Compiling entry function 'upg_gemv_k3_g1_t1'" /tmp/b$v.txt | tail -2 | tr '\n' ' ')" >> $L; done
bench() { # label, fatbin or "", args...
  local lab=$1 fb=$2; shift 2
  unset UPG_CUDA_FATBIN; [ -n "$fb" ] && export UPG_CUDA_FATBIN=$fb
  echo "$lab $(timeout -k 5 100 $C/upg bench --device cuda --model /tmp/p.upg "$@" 2>&1 | grep -E '^(prefill|decode) |rror' | tr -s ' ' | tr '\n' ' ')" >> $L
  unset UPG_CUDA_FATBIN
}
# the device time is short this stop: the deciding comparison first (main against LAND, alternated), then the
# correctness of LAND, then H1, the skeleton and batch 32 as time allows
for v in main LAND main LAND; do
  left 40 || break
  fb=/tmp/b/$v.fatbin; [ $v = main ] && fb=""
  bench "b1 $v" "$fb" --prompt-tokens 512 --gen-tokens 64
done
note bench
# 2. correctness of LAND against the CPU emulation and the CPU model
left 100 && {
  (cd backend/cuda && UPG_CUDA_FATBIN=/tmp/b/LAND.fatbin timeout 90 $C/cuda.test -test.count=1 -test.run 'TestGPUDense|TestGPUGemm|TestGPUPrefill|TestGPUFused|TestGPUGreedyMatchesCPU|TestGPUSwiglu|TestGPURotq' -test.v > /tmp/suite.txt 2>&1; echo "suite LAND rc $?" >> $L)
  echo "pass $(grep -c -- '--- PASS' /tmp/suite.txt) fail $(grep -c -- '--- FAIL' /tmp/suite.txt)" >> $L; grep -- '--- FAIL' /tmp/suite.txt | head -8 >> $L
  grep -E 'greedy tokens identical|within' /tmp/suite.txt | head -8 >> $L; tail -2 /tmp/suite.txt >> $L
}
note suite
for a in "T 3" "S 3" "T 3" "S 3"; do
  set -- $a
  left 20 || break
  echo "== ls $1 mode $2 $(timeout -k 5 15 /tmp/ls_$1 $2 0 0 13 2>&1 | grep -oE '[0-9.]+ us a layer|waited [0-9.]+ us|[0-9.]+ us for free|rror.*' | tr '\n' ' ')" >> $L
done
note layerskel
for v in H1 main LAND; do
  left 40 || break
  fb=/tmp/b/$v.fatbin; [ $v = main ] && fb=""
  bench "b1 $v" "$fb" --prompt-tokens 512 --gen-tokens 64
done
left 60 && bench "b32 main" "" --prompt-tokens 512 --gen-tokens 32 --batch 32
left 60 && bench "b32 LAND" /tmp/b/LAND.fatbin --prompt-tokens 512 --gen-tokens 32 --batch 32
wait $lpid
grep -E '^upg_gemv_k3_g1_t1 |^upg_gemv_k3_g1_t1r ' /tmp/bLANDFULL.txt >> $L
note all
