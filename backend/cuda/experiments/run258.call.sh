#!/bin/bash
# Run 258 (2026-12-07, thirty-fifth stop), on any card: the trellis split tests on HEAD's cuda.test (the review mend
# of 40f2dbc, `trellis1Split` as envIntZero's default, had not run on a GPU), the greedy-vs-CPU test, `upg serve
# --device cuda` answering 503 "loading" on its port before the model is up and serving once it is (840ecc5's
# listen-first start), then HEAD's decode on the bar's file. Carry .cuda-carry/h: upg and cuda.test cross-built
# from 530d0e3 with kernels.fatbin emptied (UPG_CUDA_FATBIN: the committed one), the tokenizer, the corpus.
set -u
R=$PWD; C=${C:-$R/.cuda-carry/h}; U=/tmp/u; L=$OUT/run258.txt
t0=$(date +%s)
T=${T:-300}
left() { [ $(( T - ($(date +%s)-t0) )) -ge $1 ] || { echo "skipped a step needing $1 s" >> $L; false; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader >> $L
mkdir -p $U && cd $U && xz -dc $C/upg.xz > upg && xz -dc $C/cuda.test.xz > cuda.test && chmod +x upg cuda.test
gunzip -c $C/cl100k_base.tiktoken.gz > cl100k_base.tiktoken
mkdir -p /work/shared/tokenizers/tiktoken && cp $U/cl100k_base.tiktoken /work/shared/tokenizers/tiktoken/
cd $R
export UPG_CUDA_FATBIN=$R/backend/cuda/kernels.fatbin
( $U/upg synth --arch phi4 --target-bpw 3.2 --out /tmp/d.upg -q > /tmp/synth.txt 2>&1; echo "synth rc $? $(( $(date +%s)-t0 )) s" >> $L ) &
(cd backend/cuda && timeout 150 $U/cuda.test -test.count=1 -test.v -test.run 'TestGPUTrellis1Split|TestGPUTrellisGemv|TestGPUGreedyMatchesCPU' > /tmp/t.txt 2>&1; echo "tests rc $?" >> $L)
echo "pass $(grep -c -- '--- PASS' /tmp/t.txt) fail $(grep -c -- '--- FAIL' /tmp/t.txt) skip $(grep -c -- '--- SKIP' /tmp/t.txt)" >> $L
grep -E -- '--- FAIL|^panic' /tmp/t.txt | head -10 >> $L
# serve: the port answers before the model is up
$U/upg serve --device cuda --model models/miniphi-29m.upg --port 0 > /tmp/serve.txt 2>&1 &
SP=$!
url=""
for i in $(seq 400); do url=$(grep -o 'msg=loading url=http://[0-9.:]*' /tmp/serve.txt | head -1 | sed 's/.*url=//'); [ -n "$url" ] && break; sleep 0.01; done
echo "loading url: $url" >> $L
[ -n "$url" ] && echo "health while loading: $(curl -s -w ' %{http_code}' $url/health)" >> $L
for i in $(seq 300); do grep -q 'msg=listening' /tmp/serve.txt && break; sleep 0.1; done
echo "health when ready: $(curl -s -w ' %{http_code}' $url/health)" >> $L
echo "completion: $(curl -s $url/v1/completions -H 'Content-Type: application/json' -d '{"model":"miniphi-29m","prompt":"package main","max_tokens":8,"temperature":0}' | head -c 300)" >> $L
kill -TERM $SP; wait $SP; echo "serve exit $?" >> $L
grep -E 'msg=(loading|"model loaded"|listening)' /tmp/serve.txt | cut -c1-200 >> $L
wait
for i in 1 2; do left 40 && echo "decode-$i $(timeout -k 5 120 $U/upg bench --device cuda --model /tmp/d.upg --prompt-tokens 512 --gen-tokens 64 2>&1 | grep -E '^(prefill|decode|device|read|effective)|rror' | tr -s ' ' | tr '\n' ' ')" >> $L; done
echo "all $(( $(date +%s)-t0 )) s" >> $L
cat $L
