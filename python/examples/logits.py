#!/usr/bin/env python3
"""Research use: next-token probabilities and a text's perplexity from logits (numpy float32).

    python3 logits.py [MODEL]
"""

import sys

import numpy as np

import upg


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# kv_cache="f32": the exact cache (logits always run through a float32 cache; this also makes
# generation exact).
with upg.Model(sys.argv[1] if len(sys.argv) > 1 else None, kv_cache="f32") as model:
    ids = model.tokenize("func (b *Buffer) Write(p []byte) (n int, err error) {")
    logp = log_softmax(model.logits(ids))  # the last position: shape (vocab_size,)
    print("most likely next tokens:")
    for t in np.argsort(-logp)[:5]:
        print(f"  {model.detokenize([int(t)])!r:>12}  p = {np.exp(logp[t]):.3f}")

    text = "The capital of France is Paris. The capital of Italy is Rome."
    ids = model.tokenize(text)
    lp = log_softmax(model.logits(ids, all_positions=True))  # shape (len(ids), vocab_size)
    nll = -lp[np.arange(len(ids) - 1), ids[1:]].mean()
    print(f"perplexity of {text!r}: {np.exp(nll):.2f} over {len(ids) - 1} predicted tokens")
