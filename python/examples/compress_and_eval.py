#!/usr/bin/env python3
"""Compress a checkpoint, then measure what it kept against the original.

    python3 compress_and_eval.py SRC OUT.upg CALIB.txt EVAL.txt [TARGET_BPW]

For example, from the repository (with ../shared):
    python3 python/examples/compress_and_eval.py ../shared/models/TinyStories-656K /tmp/ts.upg \\
        ../shared/corpus/cs336_tinystories_sample.txt ../shared/corpus/cs336_tinystories_sample.txt 4
"""

import sys

import upg

src, out, calib, text = sys.argv[1:5]
bpw = float(sys.argv[5]) if len(sys.argv) > 5 else 3.2


def progress(done: int, total: int, stage: str) -> None:
    pct = 100 * done / total if total else 0
    print(f"\r{pct:5.1f}% {stage[:60]:<60}", end="", file=sys.stderr, flush=True)


report = upg.compress(src, out, bpw, calib, calib_ctx=128, progress=progress)
print(file=sys.stderr)
print(f"{out}: {report['file_bytes']} bytes, {report['bpw']:.3f} bits/weight, {report['ratio_fp32']:.2f}x smaller than fp32")

r = upg.evaluate(out, text_file=text, ref=src, ctx=128, progress=progress)
print(file=sys.stderr)
print(f"PPL {r['ppl']:.3f} (reference {r['ref_ppl']:.3f}, ratio {r['ppl_ratio']:.3f}), "
      f"KLD {r['kld_mean']:.4f}, top-1 agreement {100 * r['top1_agreement']:.1f}%")
