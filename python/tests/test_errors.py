"""Bad paths, corrupt files and bad arguments raise the right exception (and never crash)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import upg
from conftest import MODELS


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(upg.ModelNotFoundError, match="no such file") as e:
        upg.Model(tmp_path / "nope.upg")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, upg.UpgError)
    with pytest.raises(upg.ModelNotFoundError):
        upg.inspect(tmp_path / "nope.upg")


def test_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "junk.upg"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(upg.ModelFormatError, match="not a .upg file"):
        upg.Model(junk)
    with pytest.raises(upg.ModelFormatError):
        upg.inspect(junk)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(upg.ModelFormatError):
        upg.Model(empty)
    other = tmp_path / "model.bin"
    other.write_bytes(b"\0" * 64)
    with pytest.raises(upg.ModelFormatError, match="unrecognised model format"):
        upg.Model(other)
    with pytest.raises(upg.ModelFormatError):
        upg.Model(tmp_path)  # a directory without config.json


def test_corrupt_and_truncated_upg(tmp_path: Path) -> None:
    src = upg.demo_model_path().read_bytes()
    bad = bytearray(src)
    mid = len(bad) // 2
    bad[mid : mid + 16] = bytes(b ^ 0xFF for b in bad[mid : mid + 16])
    p = tmp_path / "corrupt.upg"
    p.write_bytes(bytes(bad))
    with pytest.raises(upg.ModelFormatError, match="checksum mismatch"):
        upg.Model(p)
    t = tmp_path / "truncated.upg"
    t.write_bytes(src[: len(src) // 3])
    with pytest.raises(upg.ModelFormatError):
        upg.Model(t)


def test_corrupt_safetensors(tmp_path: Path, shared) -> None:
    d = tmp_path / "tiny"
    shutil.copytree(MODELS / "tiny-qwen2-random", d)
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(upg.ModelFormatError):
        upg.Model(d)


def test_bad_load_options() -> None:
    with pytest.raises(upg.InvalidArgumentError, match="kv_cache must be f16, f32 or q8"):
        upg.Model(kv_cache="q4")
    with pytest.raises(upg.InvalidArgumentError, match="device must be"):
        upg.Model(device="gpu0")
    with pytest.raises(upg.InvalidArgumentError):
        upg.Model(ctx=0)
    with pytest.raises(upg.InvalidArgumentError):
        upg.Model(threads=-1)
    with pytest.raises(TypeError):
        upg.Model(ctx="big")  # type: ignore[arg-type]
    with pytest.raises(upg.InvalidArgumentError, match="lookup 65 must be in"):
        upg.Model(lookup=65)
    with pytest.raises(upg.InvalidArgumentError, match="lookup -1 must be"):
        upg.Model(lookup=-1)
    with pytest.raises(TypeError):
        upg.Model(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"min_p": -0.1}, "min_p"),
        ({"repeat_penalty": 0}, "repeat_penalty"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": float("inf")}, "presence_penalty"),
        ({"logit_bias": {-1: 1.0}}, "logit_bias"),
        ({"logit_bias": {10**9: 1.0}}, "logit_bias"),
        ({"logit_bias": {5: 101}}, "logit_bias"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": -1}, "seed"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_sampling_options(demo: upg.Model, kwargs: dict, match: str) -> None:
    with pytest.raises(upg.InvalidArgumentError, match=match):
        demo.generate("hi", **kwargs)
    with pytest.raises(upg.InvalidArgumentError, match=match):
        demo.stream("hi", **kwargs)  # raised when called, not at the first piece


def test_bad_requests(demo: upg.Model) -> None:
    with pytest.raises(TypeError):
        demo.generate("hi", temperature="hot")  # type: ignore[arg-type]
    with pytest.raises(upg.InvalidArgumentError, match="out of range"):
        demo.generate([demo.vocab_size + 5])
    with pytest.raises(upg.InvalidArgumentError, match="empty"):
        demo.generate([])
    with pytest.raises(upg.InvalidArgumentError, match="context"):
        demo.generate("word " * 5000)
    with pytest.raises(upg.InvalidArgumentError, match="role"):
        demo.chat([{"role": "tool", "content": "x"}])
    with pytest.raises(upg.InvalidArgumentError):
        demo.chat([{"content": "no role"}])
    with pytest.raises(upg.InvalidArgumentError, match="empty"):
        demo.chat([])
    with pytest.raises(upg.InvalidArgumentError, match="out of range"):
        demo.detokenize([-1])
    with pytest.raises(upg.InvalidArgumentError, match="out of range"):
        demo.logits([1, demo.vocab_size])
    with pytest.raises(upg.InvalidArgumentError, match="empty"):
        demo.logits([])
    with pytest.raises(TypeError):
        demo.logits("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        demo.tokenize(b"bytes")  # type: ignore[arg-type]
    # The model still works after all of that.
    assert demo.generate("package main", temperature=0, max_tokens=4)


def test_closed_model() -> None:
    m = upg.Model()
    s = m.stream("package main", max_tokens=None, ignore_eos=True)
    next(s)
    m.close()
    m.close()  # twice is fine
    assert m.closed
    with pytest.raises(upg.ClosedError):
        m.generate("hi")
    with pytest.raises(upg.ClosedError):
        m.tokenize("hi")
    rest = list(s)  # the open stream was cancelled by close
    assert s.stats is not None and s.stats["stop_reason"] == "cancelled"
    assert len(rest) < 1000


def test_bad_tool_arguments(tmp_path: Path, shared) -> None:
    src = MODELS / "TinyStories-656K"
    with pytest.raises(upg.InvalidArgumentError, match="target_bpw"):
        upg.compress(src, tmp_path / "x.upg", target_bpw=0)
    with pytest.raises(upg.InvalidArgumentError, match="codec"):
        upg.compress(src, tmp_path / "x.upg", codec="zip")
    with pytest.raises(upg.ModelNotFoundError):
        upg.compress(tmp_path / "missing", tmp_path / "x.upg")
    with pytest.raises(upg.ModelNotFoundError):
        upg.compress(src, tmp_path / "x.upg", calib=tmp_path / "missing.txt")
    with pytest.raises(upg.UpgError, match="already compressed"):
        upg.compress(upg.demo_model_path(), tmp_path / "x.upg")
    with pytest.raises(upg.UpgError, match="ties them"):
        upg.compress(src, tmp_path / "x.upg", rotate_residual=True)  # TinyStories ties its embedding and head
    with pytest.raises(upg.UpgError, match="raise target_bpw"):
        upg.compress(MODELS / "stories260K" / "stories260K.gguf", tmp_path / "x.upg", target_bpw=1)
    assert not (tmp_path / "x.upg").exists()
    with pytest.raises(TypeError):
        upg.evaluate(None)  # no text
    with pytest.raises(upg.InvalidArgumentError, match="ctx"):
        upg.evaluate(None, "text", ctx=2)
    with pytest.raises(upg.InvalidArgumentError, match="kv_cache must be f16, f32 or q8"):
        upg.evaluate(None, "text", kv_cache="int8")
    with pytest.raises(upg.UpgError, match="fewer than one context"):
        upg.evaluate(None, "too short")
    with pytest.raises(upg.ModelNotFoundError):
        upg.evaluate(tmp_path / "missing.upg", "text")


def test_generation_inside_an_open_stream(demo: upg.Model) -> None:
    """A second generation on the thread of an unfinished stream would wait forever: it raises."""
    with demo.stream("package main", max_tokens=8) as s:
        next(s)
        with pytest.raises(upg.UpgError, match="unfinished stream"):
            demo.generate("hi")
        demo.logits([1, 2, 3])  # logits do not need the generation
    assert demo.generate("package main", temperature=0, max_tokens=4)
