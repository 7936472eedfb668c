"""compress, evaluate and inspect equal the command line's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import upg
from conftest import MODELS, SHARED, run_cli

EVAL_KEYS = {"model", "ppl", "ref_ppl", "ppl_ratio", "kld_mean", "kld_p99", "top1_agreement", "bpw", "file_bytes",
             "scored_tokens", "chunks", "ctx", "kv_cache"}


def test_compress_then_evaluate(tmp_path: Path, cli, shared) -> None:
    src = MODELS / "TinyStories-656K"
    calib = SHARED / "corpus" / "cs336_tinystories_sample.txt"
    out = tmp_path / "ts.upg"
    seen: list[tuple[int, int, str]] = []
    rep = upg.compress(src, out, 4.0, calib, calib_ctx=128, calib_tokens=512, token_weights=True,
                       progress=lambda d, t, s: seen.append((d, t, s)))
    assert out.is_file() and rep["file_bytes"] == out.stat().st_size
    assert rep["bpw"] <= 4.0 and rep["parameters"] == 656000 and rep["quality"]["kld_mean"] >= 0
    assert seen and 0 < seen[-1][0] <= seen[-1][1] == 656000 and any(s.startswith("encoded") for _, _, s in seen)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["ts.upg"]  # no temporary file left

    # The command line writes the same tensors (the files differ in their creation time).
    out2 = tmp_path / "cli.upg"
    run_cli(cli, "compress", str(src), "--out", str(out2), "--target-bpw", "4", "--calib", str(calib), "--calib-ctx", "128", "--calib-tokens", "512",
            "--token-weights", "-q")
    assert upg.inspect(out2)["tensors"] == upg.inspect(out)["tensors"]
    assert json.loads(upg.inspect(out)["metadata"]["provenance"])["settings"]["token_weights"] is True
    out2.unlink()

    ticks: list[tuple[int, int, str]] = []
    r = upg.evaluate(out, text_file=calib, ref=src, ctx=128, progress=lambda d, t, s: ticks.append((d, t, s)))
    assert set(r) == EVAL_KEYS
    want = json.loads(run_cli(cli, "eval", "--model", str(out), "--ref", str(src), "--text", str(calib), "--ctx", "128", "--json").stdout)
    assert r == want
    assert ticks[-1] == (r["chunks"], r["chunks"], "evaluating")
    # Text instead of a file, a Model instead of a path, several models in one pass.
    with upg.Model(out) as m:
        assert upg.evaluate(m, calib.read_text(), ref=src, ctx=128) == r
    both = upg.evaluate_many([out, src], text_file=calib, ref=src, ctx=128)
    assert both[0] == r and both[1]["kld_mean"] < 1e-6
    # The int8 KV cache, as `upg eval --kv-cache q8` scores it (r used the exact f32 cache).
    q8 = upg.evaluate(out, text_file=calib, ref=src, ctx=128, kv_cache="q8")
    assert r["kv_cache"] == "f32" and q8["kv_cache"] == "q8" and q8["ppl"] != r["ppl"]
    want_q8 = run_cli(cli, "eval", "--model", str(out), "--ref", str(src), "--text", str(calib), "--ctx", "128", "--json", "--kv-cache", "q8")
    assert q8 == json.loads(want_q8.stdout)


def test_compress_rotate_residual(tmp_path: Path, shared) -> None:
    # tiny-qwen2-random (untied, split q/k/v with biases) at 8 bits, no calibration: the matrices that
    # read the norms lose their rotation, o and down keep theirs, and the provenance says so.
    out = tmp_path / "r.upg"
    rep = upg.compress(MODELS / "tiny-qwen2-random", out, 8.0, rotate_residual=True)
    enc = {t["name"]: t["encoding"] for t in rep["tensors"]}
    for name, e in enc.items():
        if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight")) or name == "lm_head.weight":
            assert not e.endswith(" rot"), (name, e)
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            assert e.endswith(" rot"), (name, e)
    assert sum(e.endswith(" rot") for e in enc.values()) == 2 * 3 + 1  # o and down in 3 layers, the embedding
    assert json.loads(upg.inspect(out)["metadata"]["provenance"])["settings"]["rotate_residual"] == "0x5eed"
    # the default (None) rotates an untied model's stream as True does; False keeps it plain
    assert upg.compress(MODELS / "tiny-qwen2-random", tmp_path / "d.upg", 8.0)["residual_stream"] == "rotated"
    assert upg.inspect(tmp_path / "d.upg")["tensors"] == upg.inspect(out)["tensors"]
    plain = {t["name"]: t["encoding"] for t in upg.compress(MODELS / "tiny-qwen2-random", tmp_path / "p.upg", 8.0, rotate_residual=False)["tensors"]}
    assert plain["model.layers.0.self_attn.q_proj.weight"].endswith(" rot")
    assert "rotate_residual" not in json.loads(upg.inspect(tmp_path / "p.upg")["metadata"]["provenance"])["settings"]


def test_compress_target_size(tmp_path: Path, shared) -> None:
    # a file size instead of a rate, as `upg compress --target-size`: a ceiling, every byte counted
    src = MODELS / "tiny-qwen2-random"
    out = tmp_path / "s.upg"
    rep = upg.compress(src, out, target_size="1.2MB")
    assert rep["file_bytes"] == out.stat().st_size <= 1_200_000
    assert json.loads(upg.inspect(out)["metadata"]["provenance"])["settings"]["target_bytes"] == 1_200_000
    with pytest.raises(TypeError, match="not both"):
        upg.compress(src, out, 3.2, target_size="1MB")
    with pytest.raises(upg.InvalidArgumentError, match="target_size"):
        upg.compress(src, out, target_size="big")
    with pytest.raises(upg.InvalidArgumentError, match='target_size "0"'):
        upg.compress(src, out, target_size=0)


def test_cancelled_compress_writes_nothing(tmp_path: Path, shared) -> None:
    class Stop(Exception):
        pass

    calls = []

    def progress(done: int, total: int, stage: str) -> None:
        calls.append(stage)
        if len(calls) == 3:
            raise Stop

    calib = SHARED / "corpus" / "cs336_tinystories_sample.txt"
    with pytest.raises(Stop):
        upg.compress(MODELS / "TinyStories-656K", tmp_path / "x.upg", 4.0, calib, calib_ctx=128, progress=progress)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_inspect_equals_cli(cli) -> None:
    demo = upg.demo_model_path()
    got = upg.inspect(demo)
    assert got == json.loads(run_cli(cli, "inspect", "--json", str(demo)).stdout)
    assert got["parameters"] == 28842496 and got["format"] == "upg"
    assert upg.inspect() == got
