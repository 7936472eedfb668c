"""Generation from Python equals the command line's and transformers' greedy text."""

from __future__ import annotations

import pytest

import upg
from conftest import MODELS, reference, run_cli

PROMPTS = [c["prompt"] for c in reference("miniphi-29m")["cases"]] if MODELS.is_dir() else []


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generate_equals_upg_run(demo: upg.Model, cli, prompt: str) -> None:
    want = run_cli(cli, "run", "--model", demo.path, "--temperature", "0", "--max-tokens", "48", prompt).stdout
    got = demo.generate(prompt, temperature=0, max_tokens=48)
    assert got == want
    assert demo.last_stats is not None and demo.last_stats["generated_tokens"] > 0


@pytest.mark.parametrize("prompt", PROMPTS)
def test_stream_pieces_join_to_generate(demo: upg.Model, prompt: str) -> None:
    text = demo.generate(prompt, temperature=0, max_tokens=64)
    stream = demo.stream(prompt, temperature=0, max_tokens=64)
    pieces = list(stream)
    assert len(pieces) > 1
    assert all(pieces)
    assert "".join(pieces) == text
    assert stream.stats is not None and stream.stats["stop_reason"] in ("length", "eos")


def test_stop_strings_and_seeds(demo: upg.Model) -> None:
    full = demo.generate("package main", temperature=0, max_tokens=40)
    cut = full.index("fmt") if "fmt" in full else len(full) // 2
    stop = full[cut : cut + 3]
    got = demo.generate("package main", temperature=0, max_tokens=40, stop=stop)
    assert got == full[: full.index(stop)]
    assert demo.last_stats is not None and demo.last_stats["stop_reason"] == "stop"
    a = demo.generate("It was", seed=7, max_tokens=24, temperature=1.0)
    b = demo.generate("It was", seed=7, max_tokens=24, temperature=1.0)
    assert a == b


def test_sampled_generate_equals_upg_run_with_the_same_seed(demo: upg.Model, cli) -> None:
    args = ["--temperature", "0.9", "--top-k", "20", "--top-p", "0.9", "--min-p", "0.02", "--repeat-penalty", "1.1"]
    want = run_cli(cli, "run", "--model", demo.path, *args, "--seed", "42", "--max-tokens", "32", "It was").stdout
    got = demo.generate(
        "It was", temperature=0.9, top_k=20, top_p=0.9, min_p=0.02, repeat_penalty=1.1, seed=42, max_tokens=32
    )
    assert got == want


def test_penalties_and_logit_bias_equal_upg_run(demo: upg.Model, cli) -> None:
    """OpenAI's frequency and presence penalties: the same text as the command line's flags, not the plain text."""
    prompt = "x := []int{1, 1, 1, 1, 1, 1, 1, 1"
    args = ["--temperature", "0", "--frequency-penalty", "1.5", "--presence-penalty", "0.5", "--max-tokens", "24"]
    want = run_cli(cli, "run", "--model", demo.path, *args, prompt).stdout
    got = demo.generate(prompt, temperature=0, frequency_penalty=1.5, presence_penalty=0.5, max_tokens=24)
    assert got == want
    assert got != demo.generate(prompt, temperature=0, max_tokens=24)
    x = demo.tokenize(" x", add_special=False)
    assert len(x) == 1
    assert demo.generate(prompt, temperature=0, max_tokens=8, logit_bias={x[0]: 100}) == " x" * 8
    chat = demo.chat([{"role": "user", "content": "Hi"}], temperature=0, max_tokens=6, logit_bias={x[0]: 100})
    assert chat == " x" * 6


def test_format_json(demo: upg.Model, cli) -> None:
    """format="json": one JSON object, the same as upg run --format json; bad formats are refused."""
    import json

    prompt = '\tin := `{"name": "gopher", "age": 3}`\n\tout := `'
    want = run_cli(cli, "run", "--model", demo.path, "--temperature", "0", "--format", "json", prompt).stdout
    got = demo.generate(prompt, temperature=0, max_tokens=200, format="json")
    assert got == want
    json.loads(got)
    assert demo.last_stats is not None and demo.last_stats["stop_reason"] == "eos"
    with pytest.raises(upg.InvalidArgumentError, match="format"):
        demo.generate(prompt, format="yaml")


def test_format_schema(demo: upg.Model, cli, tmp_path) -> None:
    """format=<JSON Schema>: one value it accepts, the same as upg run --format FILE; bad schemas name the keyword."""
    import json

    schema = {
        "type": "object",
        "properties": {"name": {"enum": ["gopher", "ada"]}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    path = tmp_path / "user.json"
    path.write_text(json.dumps(schema))
    prompt = '\tin := `{"name": "gopher", "age": 3}`\n\tout := `'
    want = run_cli(cli, "run", "--model", demo.path, "--temperature", "0", "--format", str(path), prompt).stdout
    got = demo.generate(prompt, temperature=0, max_tokens=200, format=schema)
    assert got == want
    u = json.loads(got)
    assert list(u) == ["name", "age"] and u["name"] in ("gopher", "ada") and isinstance(u["age"], int)
    with pytest.raises(upg.InvalidArgumentError, match='"not"'):
        demo.generate(prompt, format={"type": "string", "not": {"const": "a"}})
    with pytest.raises(TypeError, match="format"):
        demo.generate(prompt, format=3)  # type: ignore[arg-type]


def test_format_nested_models(demo: upg.Model) -> None:
    """A schema as pydantic's model_json_schema() writes nested models ($defs, $ref, Optional as anyOf, max_length,
    a date): the answer is one value of it, its dates and lengths kept."""
    import json
    import re

    schema = {
        "$defs": {
            "Address": {
                "properties": {
                    "city": {"maxLength": 16, "title": "City", "type": "string"},
                    "since": {"format": "date", "title": "Since", "type": "string"},
                },
                "required": ["city", "since"],
                "title": "Address",
                "type": "object",
                "additionalProperties": False,
            }
        },
        "properties": {
            "name": {"maxLength": 12, "title": "Name", "type": "string"},
            "home": {"$ref": "#/$defs/Address"},
            "work": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
        },
        "required": ["name", "home", "work"],
        "title": "Person",
        "type": "object",
        "additionalProperties": False,
    }
    got = json.loads(demo.generate("Ada lives in Oslo.", temperature=0, max_tokens=300, format=schema))
    assert list(got) == ["name", "home", "work"], got
    date = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    for a in (got["home"], got["work"]):
        if a is not None:
            assert list(a) == ["city", "since"] and len(a["city"]) <= 16 and date.match(a["since"]), a
    assert len(got["name"]) <= 12
    with pytest.raises(upg.InvalidArgumentError, match="refers to itself"):
        demo.generate("x", format={"$defs": {"N": {"type": "object", "properties": {"next": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/N"}]}}}}, "$ref": "#/$defs/N"})


def test_lookup_keeps_the_text(demo: upg.Model) -> None:
    """Prompt lookup drafts tokens and keeps those the model picks: the same text, greedy or sampled with a seed."""
    prompt = "func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n\nfunc mul("
    greedy = demo.generate(prompt, temperature=0, max_tokens=48)
    sampled = demo.generate(prompt, temperature=0.8, seed=5, max_tokens=48)
    with upg.Model(demo.path, lookup=4) as m:
        assert m.info["lookup"] == 4
        assert m.generate(prompt, temperature=0, max_tokens=48) == greedy
        st = m.last_stats
        assert st is not None and 0 < st["lookup_accepted"] <= st["lookup_drafted"], st
        assert m.generate(prompt, temperature=0.8, seed=5, max_tokens=48) == sampled


def test_transformers_greedy_text(shared) -> None:
    """The uncompressed checkpoint with an exact cache continues as transformers does (32 tokens)."""
    with upg.Model(MODELS / "miniphi-29m", kv_cache="f32") as m:
        for c in reference("miniphi-29m")["cases"]:
            assert m.generate(c["input_ids"], temperature=0, max_tokens=32) == c["greedy_text"]


def test_chat(demo: upg.Model) -> None:
    assert demo.chat_template == "phi4"
    msgs = [{"role": "system", "content": "You write Go."}, {"role": "user", "content": "Write a main function."}]
    a = demo.chat(msgs, temperature=0, max_tokens=24)
    assert a
    assert "".join(demo.chat_stream(msgs, temperature=0, max_tokens=24)) == a
    parts = [{"role": "user", "content": [{"type": "text", "text": "Write a main"}, {"type": "text", "text": " function."}]}]
    assert demo.chat([msgs[0], *parts], temperature=0, max_tokens=24) == a


def test_tokenize_round_trip(demo: upg.Model, cli, shared) -> None:
    for c in reference("miniphi-29m")["cases"]:
        ids = demo.tokenize(c["prompt"])
        assert ids == c["input_ids"]
        assert demo.detokenize(ids) == c["prompt"]
    text = "héllo wörld 🙂 <|im_start|> end"
    want = [int(t) for t in run_cli(cli, "tokenize", "--model", demo.path, text).stdout.split()]
    assert demo.tokenize(text) == want
    assert demo.detokenize(demo.tokenize(text)) == text
    assert demo.detokenize(demo.tokenize("a\x00b")) == "a\x00b"  # NULs cross the boundary
    assert demo.tokenize("") == []
    assert demo.detokenize([]) == ""
    long = "abc def " * 5000
    assert demo.detokenize(demo.tokenize(long)) == long


def test_prompt_as_token_ids(demo: upg.Model) -> None:
    ids = demo.tokenize("package main")
    assert demo.generate(ids, temperature=0, max_tokens=16) == demo.generate("package main", temperature=0, max_tokens=16)


def test_generation_ends_when_the_context_is_full(shared) -> None:
    with upg.Model(ctx=32) as m:
        m.generate("package main", temperature=0, max_tokens=None, ignore_eos=True)
        assert m.last_stats is not None
        assert m.last_stats["stop_reason"] == "context"
        # Every position is used: the last token sampled needs none (it is never fed).
        assert m.last_stats["prompt_tokens"] + m.last_stats["generated_tokens"] == 32 + 1


def test_leaving_a_stream_early_cancels_it(demo: upg.Model) -> None:
    for piece in demo.stream("package main", max_tokens=None, ignore_eos=True):
        break
    # The dropped stream gave the model back: the next generation does not wait for it.
    assert demo.generate("package main", temperature=0, max_tokens=4)
    s = demo.stream("package main", max_tokens=None, ignore_eos=True)
    next(s)
    s.cancel()
    rest = list(s)
    assert s.stats is not None and s.stats["stop_reason"] == "cancelled" and len(rest) < 50


def test_generate_batch_equals_generate(demo: upg.Model) -> None:
    """A batch gives each prompt generate's text (greedy; sampled with seed + i), in order, with more prompts than max_batch."""
    prompts = ["func (b *Buffer) Write(", "The old man looked at the sea and", "type Reader interface {"]
    prompts += ["package main", "It was a dark and stormy night", [1, 450, 2030]]
    with upg.Model(demo.path, max_batch=4, ctx=512) as m:
        assert m.info["max_batch"] == 4 and m.info["kv_positions"] >= 4 * 512
        assert "max_batch=4" in repr(m)
        want = [m.generate(p, temperature=0, max_tokens=32) for p in prompts]
        seen = []
        got = m.generate_batch(prompts, temperature=0, max_tokens=32, progress=lambda d, t, s: seen.append((d, t, s)))
        assert got == want
        stats = m.last_stats
        assert stats is not None and stats["max_running"] == 4 and len(stats["requests"]) == len(prompts)
        assert stats["generated_tokens"] == sum(r["generated_tokens"] for r in stats["requests"]) > 0
        assert seen and seen[-1] == (stats["generated_tokens"], stats["generated_tokens"], "generating")
        sampled = m.generate_batch(prompts[:3], temperature=1.0, seed=11, max_tokens=24)
        assert sampled == [m.generate(p, temperature=1.0, seed=11 + i, max_tokens=24) for i, p in enumerate(prompts[:3])]
        assert len(set(sampled)) == 3
        convs = [[{"role": "user", "content": "Tell me a story."}], [{"role": "user", "content": "Write some Go."}]]
        assert m.chat_batch(convs, temperature=0, max_tokens=16) == [m.chat(c, temperature=0, max_tokens=16) for c in convs]
        assert m.generate_batch([]) == []


def test_generate_batch_errors(demo: upg.Model) -> None:
    with pytest.raises(TypeError, match="use generate for one"):
        demo.generate_batch("package main")  # type: ignore[arg-type]
    with pytest.raises(upg.InvalidArgumentError, match="request 1: prompt token id 99999999"):
        demo.generate_batch(["a", [99999999]])
    with pytest.raises(upg.InvalidArgumentError, match="max_batch"):
        upg.Model(demo.path, max_batch=0)

    def stop(done: int, total: int, stage: str) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo.generate_batch(["package main"] * 3, max_tokens=400, ignore_eos=True, progress=stop)
    assert demo.generate("package main", temperature=0, max_tokens=8)  # the model is usable after the cancelled batch
