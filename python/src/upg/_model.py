"""upg.Model: load a model, generate, stream, chat, tokenize, read logits."""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from ctypes import POINTER, byref, c_float, c_int32, c_int64, c_uint64, c_void_p
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from . import _lib
from ._lib import Progress, lib
from .errors import ClosedError, InvalidArgumentError, ModelNotFoundError, UpgError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
Message = Mapping[str, Any]

# How long one poll of a generation waits in Go before Python gets control
# back (and can raise KeyboardInterrupt): the latency of Ctrl-C.
_POLL_MS = 100
_BUFFER = 1 << 16

DEMO_MODEL = "miniphi-29m.upg"


def demo_model_path() -> Path:
    """The bundled demo model (miniphi-29m, 11.5 MB): $UPG_DEMO_MODEL, else the copy inside the package."""
    env = os.environ.get("UPG_DEMO_MODEL")
    p = Path(env) if env else Path(__file__).resolve().parent / "models" / DEMO_MODEL
    if not p.exists():
        raise ModelNotFoundError(f"the bundled demo model {p} is missing (set UPG_DEMO_MODEL or give a path)")
    return p


def _int_opt(name: str, v: Any, *, minimum: int, allow_none: bool = True) -> int:
    """An optional integer option; None becomes 0 (the library's 'default')."""
    if v is None and allow_none:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, not {type(v).__name__}")
    if v < minimum:
        raise InvalidArgumentError(f"{name} {v} must be ≥ {minimum}{' (or None)' if allow_none else ''}")
    return v


def _gpu_layers_opt(v: Any) -> Union[int, str, None]:
    """gpu_layers: None (every layer), a number of layers ≥ 0, or "auto" (a string the library checks)."""
    if v is None or isinstance(v, str):
        return v
    return _int_opt("gpu_layers", v, minimum=0, allow_none=False)


def _float_opt(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(v).__name__}")
    return float(v)


def _str_list(name: str, v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    items = list(v)
    for s in items:
        if not isinstance(s, str):
            raise TypeError(f"{name} must be a string or a list of strings, not a list holding {type(s).__name__}")
    return items


def _free_model(handle: int) -> None:
    lib.upg_model_free(handle, None)


def _free_gen(handle: int) -> None:
    lib.upg_gen_free(handle)


class Stream(Iterator[str]):
    """The text of one generation as it is produced: iterate it for pieces of text.

    Each piece is complete UTF-8 and clear of stop strings; the pieces joined are
    what `generate` returns. Closing the stream, dropping it (leaving a `for` loop
    over `model.stream(...)` early), or Ctrl-C while it waits cancels the
    generation. After the last piece, `stats` holds the generation's counts and
    speeds.
    """

    def __init__(self, model: Model, handle: int, max_pieces: int) -> None:
        self._model = model
        self._thread = threading.get_ident()
        self._h = handle
        self._max_pieces = max_pieces
        self._buf = ctypes.create_string_buffer(_BUFFER)
        self._n = c_int64()
        self._fin = c_int32()
        self.stats: Optional[dict[str, Any]] = None
        self._finalizer = weakref.finalize(self, _free_gen, handle)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if not self._finalizer.alive:
            raise StopIteration
        addr = ctypes.addressof(self._buf)
        err = c_void_p()
        try:
            while True:
                code = lib.upg_gen_next(
                    self._h, _POLL_MS, self._max_pieces, addr, _BUFFER, byref(self._n), byref(self._fin), byref(err)
                )
                _lib.check(code, err)
                if self._n.value:
                    return ctypes.string_at(addr, self._n.value).decode("utf-8", errors="replace")
                if self._fin.value:
                    self.stats = _lib.call_json(lib.upg_gen_stats, self._h)
                    self._model.last_stats = self.stats
                    self._finalizer()
                    raise StopIteration
        except StopIteration:
            raise
        except BaseException:  # KeyboardInterrupt while waiting, or the generation failed
            self._finalizer()
            raise

    def cancel(self) -> None:
        """Asks the generation to stop after its current step (safe from another thread)."""
        if self._finalizer.alive:
            lib.upg_gen_cancel(self._h)

    def close(self) -> None:
        """Cancels the generation (if it still runs) and frees it."""
        self._finalizer()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Model:
    """A loaded model.

    `path` is a .upg file, a Hugging Face checkpoint directory or an F16/F32/BF16
    GGUF file; None loads the bundled demo model (miniphi-29m). `device` is "auto"
    (an NVIDIA GPU when one is usable, else the CPU), "cpu" or "cuda" (the first
    NVIDIA GPU; DeviceError when there is none, its driver is too old or the
    model does not fit its free memory). `gpu_layers` is how many decoder layers
    run on the GPU, the last ones (`upg run --gpu-layers`): None = every layer,
    N = the last N with the layers before them on the CPU (a model larger than
    the card), 0 = none, "auto" = as many as fit the free device memory.
    `info["device"]` and `info["gpu_layers"]` say where it runs. `ctx` is the context window in tokens
    (None: the model's, at most 4096), `threads` the CPU worker threads (None: one
    per core), `kv_cache` the type of cached keys and values ("f16", "f32" for an
    exact cache, or "q8": int8 with a scale per 32 values, about half of f16's
    memory), `lookup` the most prompt-lookup draft tokens per step (0 = off):
    each step may also feed up to `lookup` tokens that followed the last few
    tokens where they occurred before, and keeps those the model picks
    itself — the same text, greedy or sampled with a seed, faster where the output repeats its input; how many a step
    feeds follows the step times the engine measures (last_stats counts lookup_drafted and lookup_accepted).
    `max_batch` is how many sequences `generate_batch` and `chat_batch` step together (`upg serve
    --max-batch`); above 1 the KV cache is sized as `upg serve` sizes it (half the memory left after the
    weights, at most max_batch full contexts; `info["kv_positions"]`).

    A Model may be used from several threads; calls that run it (generations,
    logits) take turns, while different Models run in parallel. Use it as a
    context manager, or call close(), to unmap the file at a known time.
    """

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        device: str = "auto",
        gpu_layers: Union[int, str, None] = None,
        ctx: Optional[int] = None,
        threads: Optional[int] = None,
        kv_cache: str = "f16",
        lookup: int = 0,
        max_batch: int = 1,
    ) -> None:
        self._h = 0
        if path is None:
            path = demo_model_path()
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        for name, v in (("device", device), ("kv_cache", kv_cache)):
            if not isinstance(v, str):
                raise TypeError(f"{name} must be a str, not {type(v).__name__}")
        opts = {
            "device": device,
            "gpu_layers": _gpu_layers_opt(gpu_layers),
            "ctx": _int_opt("ctx", ctx, minimum=1),
            "threads": _int_opt("threads", threads, minimum=1),
            "kv_cache": kv_cache,
            "lookup": _int_opt("lookup", lookup, minimum=0, allow_none=False),
            "max_batch": _int_opt("max_batch", max_batch, minimum=1, allow_none=False),
        }
        h = c_uint64()
        _lib.call(lib.upg_model_load, _lib.path_bytes(path), _lib.json_bytes(opts), byref(h))
        self._h = h.value
        self._finalizer = weakref.finalize(self, _free_model, self._h)
        self.info: dict[str, Any] = _lib.call_json(lib.upg_model_info, self._h)
        """What the library reports about the model: path, format, device, gpu_layers, architecture, vocab_size, ctx, threads,
        kv_cache, chat_template, bos_token_id, eos_token_ids, parameters, ..."""
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()
        self.last_stats: Optional[dict[str, Any]] = None
        """The statistics of the last generation that finished (tokens, prefill and decode tok/s, stop reason)."""

    # -- life -------------------------------------------------------------

    def close(self) -> None:
        """Cancels running generations, waits for them to stop, and unloads the model."""
        if self._h:
            self._finalizer()
            self._h = 0

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._h == 0

    def _handle(self) -> int:
        if not self._h:
            raise ClosedError("the model was closed")
        return self._h

    def __repr__(self) -> str:
        state = (
            "closed"
            if self.closed
            else f"device={self.info['device']!r}, ctx={self.info['ctx']}, kv_cache={self.info['kv_cache']!r}"
            + (f", max_batch={self.info['max_batch']}" if self.info.get("max_batch", 1) > 1 else "")
        )
        return f"upg.Model({self.info['path']!r}, {state})"

    # -- properties -------------------------------------------------------

    @property
    def path(self) -> str:
        return str(self.info["path"])

    @property
    def vocab_size(self) -> int:
        """Logits per position."""
        return int(self.info["vocab_size"])

    @property
    def ctx(self) -> int:
        """The most positions one generation may hold (prompt and output)."""
        return int(self.info["ctx"])

    @property
    def chat_template(self) -> str:
        """The chat template chat() renders messages with (phi4, phi3, llama2, llama3 or chatml)."""
        return str(self.info["chat_template"])

    # -- tokens -----------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Token ids of text. add_special adds BOS (and the like) as the tokenizer is configured to;
        parse_special turns special tokens written in the text (like <|im_start|>) into their ids."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        h = self._handle()
        data = text.encode("utf-8")
        cap = len(data) + 16
        while True:
            out = (c_int32 * cap)()
            n = c_int64()
            err = c_void_p()
            code = lib.upg_tokenize(h, data, len(data), int(add_special), int(parse_special), out, cap, byref(n), byref(err))
            if code == _lib.CODE_TOO_SMALL:
                _lib.take_string(err)
                cap = n.value
                continue
            _lib.check(code, err)
            return list(out[: n.value])

    def detokenize(self, ids: Iterable[int]) -> str:
        """The text of token ids (special tokens rendered as their text)."""
        arr = _ids_array(ids)
        out, n, err = c_void_p(), c_int64(), c_void_p()
        _lib.check(lib.upg_detokenize(self._handle(), arr, len(arr), byref(out), byref(n), byref(err)), err)
        return _lib.take_string(out, n.value)

    def logits(self, ids: Iterable[int], *, all_positions: bool = False) -> npt.NDArray[np.float32]:
        """Logits (float32) after running the token ids from an empty, exact (float32) cache:
        shape (vocab_size,) for the last position, or (len(ids), vocab_size) with all_positions."""
        import numpy as np

        arr = _ids_array(ids)
        rows = len(arr) if all_positions else 1
        out = np.empty((rows, self.vocab_size), dtype=np.float32)
        _lib.call(
            lib.upg_logits,
            self._handle(),
            arr,
            len(arr),
            int(all_positions),
            out.ctypes.data_as(POINTER(c_float)),
            out.size,
        )
        return out if all_positions else out[0]

    # -- generation -------------------------------------------------------

    def generate(
        self,
        prompt: Union[str, Sequence[int]],
        *,
        max_tokens: Optional[int] = 128,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
    ) -> str:
        """Generates a completion of prompt (text, or token ids used as they are) and returns its text.

        temperature 0 is greedy decoding (the same tokens as `upg run --temperature 0`);
        top_k 0, top_p 1, min_p 0 and repeat_penalty 1 turn those filters off;
        frequency_penalty and presence_penalty (OpenAI's, -2 to 2) lower a token's logit for each
        time / once it was generated, and logit_bias ({token id: -100 to 100}) adds to a token's
        logit; the same seed gives the same text (None: a random seed); format="json" keeps the
        output one JSON object (tokens that cannot continue it are never sampled), and a JSON
        Schema (a dict: type, properties, items, enum, const, anyOf, minItems, maxItems) one value
        it accepts, its properties in the dict's order. Generation ends at end of text,
        at a stop string (not included), after max_tokens tokens (None: no limit), or when
        the context is full. Ctrl-C interrupts it (KeyboardInterrupt).
        """
        req = _request(
            _prompt(prompt),
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )
        return "".join(self._start(req, max_pieces=0))

    def stream(
        self,
        prompt: Union[str, Sequence[int]],
        *,
        max_tokens: Optional[int] = 128,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
    ) -> Stream:
        """Like generate, but returns a Stream yielding the text piece by piece as it is produced."""
        req = _request(
            _prompt(prompt),
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )
        return self._start(req, max_pieces=1)

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: Optional[int] = 512,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
    ) -> str:
        """The assistant's answer to messages (OpenAI's shape: [{"role": "system"|"user"|"assistant",
        "content": "..."}]), rendered with the model's own chat template. Calls that extend the
        previous conversation reuse its cached prefix."""
        req = _request(
            {"messages": _messages(messages)},
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )
        return "".join(self._start(req, max_pieces=0))

    def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: Optional[int] = 512,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
    ) -> Stream:
        """Like chat, but returns a Stream of the answer's pieces."""
        req = _request(
            {"messages": _messages(messages)},
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )
        return self._start(req, max_pieces=1)

    def generate_batch(
        self,
        prompts: Sequence[Union[str, Sequence[int]]],
        *,
        max_tokens: Optional[int] = 128,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
        progress: Optional[Progress] = None,
    ) -> list[str]:
        """Completions of many prompts, generated together: returns their texts in the prompts' order.

        Up to the model's `max_batch` sequences are stepped together (load the model with
        `max_batch=N`), the others joining as those finish, so the weights are read once a step for
        all of them: on a GPU many times one prompt's tokens a second. Each text is the one
        `generate` gives its prompt with the same options (on the CPU token for token; on a GPU,
        whose multi-token kernels round unlike its one-token ones, greedy text may part at a
        near-tie); with a seed, prompt i draws with seed + i, as the server's
        `n` choices do. progress(done, total, stage) is called on this thread as tokens are generated
        (total: the most the prompts may still generate). `last_stats` then holds the batch's
        counts: generated_tokens, seconds, tok_s, max_running, preemptions, and each prompt's stats.
        """
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
            raise TypeError("prompts must be a list of prompts (str, or a list of token ids); use generate for one")
        return self._batch(
            [_prompt(p) for p in prompts],
            progress,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )

    def chat_batch(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_tokens: Optional[int] = 512,
        temperature: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: Optional[Mapping[int, float]] = None,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        ignore_eos: bool = False,
        format: Union[str, Mapping[str, Any], None] = None,
        progress: Optional[Progress] = None,
    ) -> list[str]:
        """The assistant's answers to many conversations (each as `chat` takes it), generated together
        as `generate_batch` generates prompts."""
        if isinstance(conversations, (str, bytes)) or not isinstance(conversations, Sequence):
            raise TypeError("conversations must be a list of message lists; use chat for one")
        return self._batch(
            [{"messages": _messages(c)} for c in conversations],
            progress,
            max_tokens,
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
            logit_bias,
            seed,
            stop,
            ignore_eos,
            format,
        )

    def _batch(self, bases: list[dict[str, Any]], progress: Optional[Progress], *options: Any) -> list[str]:
        if not bases:
            return []
        reqs = [_request(base, *options) for base in bases]
        for i, req in enumerate(reqs):
            if req.get("seed"):  # 0 and None: a random seed each
                req["seed"] = (req["seed"] + i) % (1 << 64) or 1
        job = c_uint64()
        _lib.call(lib.upg_batch_start, self._handle(), _lib.json_bytes({"requests": reqs}), byref(job))
        res = _lib.run_job(job.value, progress)
        self.last_stats = {k: v for k, v in res.items() if k != "results"}
        self.last_stats["requests"] = [r["stats"] for r in res["results"]]
        return [r["text"] for r in res["results"]]

    def _start(self, req: dict[str, Any], max_pieces: int) -> Stream:
        handle = self._handle()
        # A model runs one generation at a time; one started on a thread that holds an
        # unfinished stream of this model would wait for that stream forever.
        me = threading.get_ident()
        if any(s._thread == me and s._finalizer.alive for s in list(self._streams)):
            raise UpgError(
                "this thread has an unfinished stream of this model; read it to the end or close it first "
                "(a model runs one generation at a time)"
            )
        g = c_uint64()
        _lib.call(lib.upg_gen_start, handle, _lib.json_bytes(req), byref(g))
        s = Stream(self, g.value, max_pieces)
        self._streams.add(s)
        return s


def _ids_array(ids: Iterable[int]) -> ctypes.Array[c_int32]:
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of token ids (use tokenize for text)")
    try:
        values = [int(i) for i in ids]  # numpy integers too
    except (TypeError, ValueError) as e:
        raise TypeError(f"ids must be a sequence of int: {e}") from None
    for i, v in enumerate(values):
        if not -(2**31) <= v < 2**31:
            raise InvalidArgumentError(f"token id {v} at index {i} is out of range")
    return (c_int32 * len(values))(*values)


def _prompt(prompt: Union[str, Sequence[int]]) -> dict[str, Any]:
    if isinstance(prompt, str):
        return {"prompt": prompt}
    if isinstance(prompt, bytes):
        raise TypeError("prompt must be a str or a sequence of token ids, not bytes")
    return {"ids": list(_ids_array(prompt))}


def _messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError('messages must be a list of {"role": ..., "content": ...} dicts')
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InvalidArgumentError(f'message {i} is not a {{"role": ..., "content": ...}} mapping')
        content = m["content"]
        if isinstance(content, list):  # OpenAI content parts: text only
            texts = []
            for part in content:
                if not isinstance(part, Mapping) or part.get("type") != "text":
                    raise InvalidArgumentError(f"message {i}: only text content parts are supported")
                texts.append(str(part.get("text", "")))
            content = "".join(texts)
        if not isinstance(content, str) or not isinstance(m["role"], str):
            raise TypeError(f"message {i}: role and content must be strings")
        out.append({"role": m["role"], "content": content})
    return out


def _request(
    base: dict[str, Any],
    max_tokens: Optional[int],
    temperature: float,
    top_k: int,
    top_p: float,
    min_p: float,
    repeat_penalty: float,
    frequency_penalty: float,
    presence_penalty: float,
    logit_bias: Optional[Mapping[int, float]],
    seed: Optional[int],
    stop: Union[str, Sequence[str], None],
    ignore_eos: bool,
    format: Union[str, Mapping[str, Any], None] = None,
) -> dict[str, Any]:
    req = dict(base)
    req["max_tokens"] = _int_opt("max_tokens", max_tokens, minimum=1)
    req["temperature"] = _float_opt("temperature", temperature)
    req["top_k"] = _int_opt("top_k", top_k, minimum=0, allow_none=False)
    req["top_p"] = _float_opt("top_p", top_p)
    req["min_p"] = _float_opt("min_p", min_p)
    req["repeat_penalty"] = _float_opt("repeat_penalty", repeat_penalty)
    req["frequency_penalty"] = _float_opt("frequency_penalty", frequency_penalty)
    req["presence_penalty"] = _float_opt("presence_penalty", presence_penalty)
    if logit_bias is not None:
        if not isinstance(logit_bias, Mapping):
            raise TypeError(f"logit_bias must be a mapping of token id to bias, not {type(logit_bias).__name__}")
        bias = {}
        for k, v in logit_bias.items():
            if isinstance(k, bool) or not hasattr(k, "__index__"):
                raise TypeError(f"logit_bias keys must be token ids (int), not {type(k).__name__}")
            b = _float_opt("logit_bias", v)
            if b != b or b in (float("inf"), float("-inf")):
                raise InvalidArgumentError(f"logit_bias of token {int(k)}: {b} must be a finite number")
            bias[str(int(k))] = b
        req["logit_bias"] = bias
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, not {type(seed).__name__}")
        if not 0 <= seed < 2**64:
            raise InvalidArgumentError(f"seed {seed} must be in [0, 2**64)")
        req["seed"] = seed
    req["stop"] = _str_list("stop", stop)
    req["ignore_eos"] = bool(ignore_eos)
    if format is not None:
        if isinstance(format, Mapping):
            format = dict(format)  # a JSON Schema: its properties in this order
        elif not isinstance(format, str):
            raise TypeError(f"format must be a str, a JSON Schema (a mapping) or None, not {type(format).__name__}")
        req["format"] = format
    for k in ("temperature", "top_p", "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty"):
        v = req[k]
        if v != v or v in (float("inf"), float("-inf")):  # JSON has no NaN or infinity
            raise InvalidArgumentError(f"{k} {v} must be a finite number")
    return req
