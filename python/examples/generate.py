#!/usr/bin/env python3
"""Generate and stream text with the bundled demo model (or a model given as the first argument).

    python3 generate.py [MODEL]
"""

import sys

import upg

with upg.Model(sys.argv[1] if len(sys.argv) > 1 else None) as model:
    print(model)
    # Greedy: the same text as `upg run --temperature 0 --max-tokens 48 "package main"`.
    print(model.generate("package main", temperature=0, max_tokens=48))
    print("---")
    # Sampled, streamed piece by piece; the same seed gives the same text. Ctrl-C stops it.
    for piece in model.stream("It was a bright cold day", max_tokens=64, seed=7, stop=["\n\n"]):
        print(piece, end="", flush=True)
    print()
    s = model.last_stats
    print(f"[{s['generated_tokens']} tokens, decode {s['decode_tok_s']:.0f} tok/s, stop: {s['stop_reason']}]")
