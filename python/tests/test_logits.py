"""logits() equals transformers' float32 reference."""

from __future__ import annotations

import numpy as np
import pytest

import upg
from conftest import MODELS, reference


@pytest.mark.parametrize("name", ["miniphi-29m", "TinyStories-656K", "tiny-qwen2-random"])
def test_logits_equal_transformers(shared, name: str) -> None:
    with upg.Model(MODELS / name, device="cpu", kv_cache="f32") as m:
        for c in reference(name)["cases"]:
            last = m.logits(c["input_ids"])
            assert last.dtype == np.float32 and last.shape == (m.vocab_size,)
            want = np.asarray(c["last_logits"], dtype=np.float32)
            assert np.abs(last - want).max() < 1e-4
            every = m.logits(np.asarray(c["input_ids"], dtype=np.int64), all_positions=True)
            assert every.shape == (len(c["input_ids"]), m.vocab_size)
            assert np.array_equal(every.argmax(axis=1), c["argmax_per_position"])
            assert np.abs(every[-1] - want).max() < 1e-4


def test_logits_do_not_depend_on_earlier_calls(demo: upg.Model) -> None:
    ids = demo.tokenize("func (b *Buffer) Write(p []byte)")
    a = demo.logits(ids)
    demo.logits(demo.tokenize("something else entirely " * 20))
    demo.generate("package main", max_tokens=8)
    assert np.array_equal(demo.logits(ids), a)
