#!/usr/bin/env python3
"""Throughput of Model.generate_batch against the same prompts generated one at a time, on one model.

    python3 python/tools/bench_batch.py [--model M] [--device auto] [--prompts 16] [--prompt-tokens 64]
                                        [--tokens 128] [--max-batch 16] [--repeats 2] [--threads N]

Prompts are random token ids (a fresh set each round, so that no cache is reused); every request is greedy with
ignore_eos, so each generates exactly --tokens tokens. Each round runs the batch, then the same number of prompts
one at a time with Model.generate (the two interleaved, so that drift affects both alike), and prints generated
tokens a second for both, prompt processing included, and their ratio.
"""

from __future__ import annotations

import argparse
import random
import time

import upg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    rng = random.Random(1)
    kw = dict(temperature=0, max_tokens=a.tokens, ignore_eos=True)
    with upg.Model(a.model, device=a.device, threads=a.threads, max_batch=a.max_batch, ctx=a.prompt_tokens + a.tokens + 64) as m:
        vocab = m.info["vocab_size"]

        def prompts(n: int) -> list[list[int]]:
            return [[rng.randrange(vocab // 8, vocab) for _ in range(a.prompt_tokens)] for _ in range(n)]

        m.generate_batch(prompts(a.max_batch), temperature=0, max_tokens=4, ignore_eos=True)  # warm-up (a GPU's graphs)
        print(f"{m!r}: {a.prompts} prompts of {a.prompt_tokens} ids, {a.tokens} tokens each")
        for r in range(a.repeats):
            t = time.perf_counter()
            m.generate_batch(prompts(a.prompts), **kw)
            batch = m.last_stats["generated_tokens"] / (time.perf_counter() - t)
            together = m.last_stats["max_running"]
            t, n = time.perf_counter(), 0
            for p in prompts(a.prompts):
                m.generate(p, **kw)
                n += m.last_stats["generated_tokens"]
            alone = n / (time.perf_counter() - t)
            print(f"round {r + 1}: generate_batch {batch:.1f} tok/s (at most {together} together), "
                  f"one at a time {alone:.1f} tok/s: {batch / alone:.2f}x")


if __name__ == "__main__":
    main()
