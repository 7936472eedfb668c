#!/usr/bin/env python3
"""Complete many prompts together: one prompt a line of a file (or of standard input), one JSON line out each.

    python3 batch.py PROMPTS.txt [MODEL] > completions.jsonl

Up to 16 prompts share each step (the others join as those finish), so the weights are read once a step for all
of them: several times the tokens a second of one prompt at a time, far more on a GPU. Ctrl-C stops it.
"""

import json
import sys

import upg

lines = open(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin
prompts = [line.rstrip("\n") for line in lines if line.strip()]
with upg.Model(sys.argv[2] if len(sys.argv) > 2 else None, max_batch=16) as model:

    def progress(done: int, total: int, stage: str) -> None:
        print(f"\r{stage}: {done}/{total} tokens", end="", file=sys.stderr, flush=True)

    texts = model.generate_batch(prompts, max_tokens=64, temperature=0.7, seed=1, progress=progress)
    s = model.last_stats
    print(f"\n{len(prompts)} prompts, {s['generated_tokens']} tokens in {s['seconds']:.1f} s: {s['tok_s']:.0f} tok/s", file=sys.stderr)
    for prompt, text in zip(prompts, texts):
        print(json.dumps({"prompt": prompt, "completion": text}, ensure_ascii=False))
