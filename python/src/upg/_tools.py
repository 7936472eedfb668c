"""upg.compress, upg.evaluate and upg.inspect."""

from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_int32, c_int64, c_uint64
from typing import Any, Callable, Optional, Sequence, Union

from . import _lib
from ._lib import Progress, lib
from ._model import Model, PathLike, _float_opt, _gpu_layers_opt, _int_opt, demo_model_path


def compress(
    src: PathLike,
    out: PathLike,
    target_bpw: Optional[float] = None,
    calib: Optional[PathLike] = None,
    *,
    target_size: Union[int, str, None] = None,
    calib_text: Optional[str] = None,
    calib_tokens: int = 4096,
    calib_ctx: int = 512,
    codec: str = "auto",
    gptq: bool = True,
    threads: Optional[int] = None,
    token_weights: bool = False,
    output_targets: bool = False,
    rotate_residual: Optional[bool] = None,
    progress: Optional[Progress] = None,
) -> dict[str, Any]:
    """Compresses the checkpoint src (a Hugging Face directory or an F16/F32 GGUF) into the .upg file out
    at target_bpw bits per weight (3.2 when neither it nor target_size is given), or to at most
    target_size bytes (an int, or a string with a unit: "9.4MB", "8MiB"), every byte of the file
    counted — as `upg compress` does.

    calib is a calibration text file (or give calib_text): with it the planner spends bits where errors
    cost most and GPTQ compensates each projection's error. token_weights, output_targets and
    rotate_residual are `upg compress`'s --token-weights, --output-targets and --rotate-residual (the
    last rewrites the model with a rotated residual stream first: None, the default, does so where the
    model can take it (a head not tied to the embedding) and keeps it plain otherwise, True makes a
    tied model an error, False keeps every model plain).
    progress(done, total, stage) is called on this thread as parameters are encoded. Returns the
    report `upg compress --json` prints (file_bytes, bpw, ratio_fp32, quality, tensors, ...). Ctrl-C
    cancels; out is then not written.
    """
    if calib is not None and calib_text is not None:
        raise TypeError("give calib (a file) or calib_text, not both")
    if target_bpw is not None and target_size is not None:
        raise TypeError("give target_bpw or target_size, not both")
    if target_size is not None and (isinstance(target_size, bool) or not isinstance(target_size, (int, str))):
        raise TypeError(f"target_size must be an int or a str, not {type(target_size).__name__}")
    if calib_text is not None and not isinstance(calib_text, str):
        raise TypeError(f"calib_text must be a str, not {type(calib_text).__name__}")
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a str, not {type(codec).__name__}")
    if target_bpw is None and target_size is None:
        target_bpw = 3.2
    opts = {
        "target_bpw": _float_opt("target_bpw", target_bpw) if target_bpw is not None else 0,
        "target_size": str(target_size) if target_size is not None else "",
        "calib": os.fsdecode(calib) if calib is not None else "",
        "calib_text": calib_text or "",
        "calib_tokens": _int_opt("calib_tokens", calib_tokens, minimum=1, allow_none=False),
        "calib_ctx": _int_opt("calib_ctx", calib_ctx, minimum=1, allow_none=False),
        "codec": codec,
        "no_gptq": not gptq,
        "threads": _int_opt("threads", threads, minimum=1),
        "token_weights": bool(token_weights),
        "output_targets": bool(output_targets),
        "rotate_residual": bool(rotate_residual) if rotate_residual is not None else None,
    }
    job = c_uint64()
    _lib.call(lib.upg_compress_start, _lib.path_bytes(src), _lib.path_bytes(out), _lib.json_bytes(opts), byref(job))
    return _lib.run_job(job.value, progress)  # type: ignore[no-any-return]


def evaluate(
    model: Union[PathLike, Model, None] = None,
    text: Optional[str] = None,
    *,
    text_file: Optional[PathLike] = None,
    ref: Union[PathLike, Model, None] = None,
    ctx: int = 512,
    threads: Optional[int] = None,
    kv_cache: str = "f32",
    device: str = "auto",
    gpu_layers: Union[int, str, None] = None,
    ref_device: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> dict[str, Any]:
    """Scores model (a path, a Model's file, or None for the demo model) on text (or text_file) as
    `upg eval` does: llama.cpp's perplexity protocol (chunks of ctx tokens, second halves scored, no BOS),
    and, given the reference ref (the uncompressed checkpoint), KL divergence and top-1 agreement.

    Returns the object `upg eval --json` prints: model, ppl, ref_ppl, ppl_ratio, kld_mean, kld_p99,
    top1_agreement, bpw, file_bytes, scored_tokens, chunks, ctx, kv_cache. kv_cache is the scored
    model's KV cache ("f32", exact, measures the weights alone; "f16" or "q8" add the cache's rounding);
    the reference's is f32. device and gpu_layers place the models as Model's do (`upg eval --device`); ref_device
    runs the reference elsewhere (None: on device), e.g. the same file with device="cuda", ref_device="cpu" to
    measure the GPU's divergence from the CPU. progress(done, total, "evaluating") is called after each chunk.
    """
    return evaluate_many(
        [model],
        text,
        text_file=text_file,
        ref=ref,
        ctx=ctx,
        threads=threads,
        kv_cache=kv_cache,
        device=device,
        gpu_layers=gpu_layers,
        ref_device=ref_device,
        progress=progress,
    )[0]


def evaluate_many(
    models: Sequence[Union[PathLike, Model, None]],
    text: Optional[str] = None,
    *,
    text_file: Optional[PathLike] = None,
    ref: Union[PathLike, Model, None] = None,
    ctx: int = 512,
    threads: Optional[int] = None,
    kv_cache: str = "f32",
    device: str = "auto",
    gpu_layers: Union[int, str, None] = None,
    ref_device: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> list[dict[str, Any]]:
    """evaluate for several models in one pass (the reference runs once): one result each, in order."""
    if (text is None) == (text_file is None):
        raise TypeError("give text or text_file (one of them)")
    if text is not None and not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    for name, v in (("kv_cache", kv_cache), ("device", device), ("ref_device", ref_device or "")):
        if not isinstance(v, str):
            raise TypeError(f"{name} must be a str, not {type(v).__name__}")
    paths = [_model_path(m) for m in models]
    if not paths:
        raise TypeError("no models to evaluate")
    opts = {
        "model": paths[0],
        "compare": paths[1:],
        "ref": _model_path(ref) if ref is not None else "",
        "text": text or "",
        "text_file": os.fsdecode(text_file) if text_file is not None else "",
        "ctx": _int_opt("ctx", ctx, minimum=4, allow_none=False),
        "threads": _int_opt("threads", threads, minimum=1),
        "kv_cache": kv_cache,
        "device": device,
        "gpu_layers": _gpu_layers_opt(gpu_layers),
        "ref_device": ref_device or "",
    }
    job = c_uint64()
    _lib.call(lib.upg_evaluate_start, _lib.json_bytes(opts), byref(job))
    return _lib.run_job(job.value, progress)  # type: ignore[no-any-return]


def inspect(path: Optional[PathLike] = None) -> dict[str, Any]:
    """What `upg inspect --json` prints: format, config, parameters, tensor_bytes, bits_per_weight,
    tokenizer, tensors (name, shape, encoding, bytes) and metadata. None: the demo model."""
    return _lib.call_json(lib.upg_inspect, _lib.path_bytes(_model_path(path)))  # type: ignore[no-any-return]


def _model_path(m: Union[PathLike, Model, None]) -> str:
    if m is None:
        return str(demo_model_path())
    if isinstance(m, Model):
        return m.path
    if not isinstance(m, (str, os.PathLike)):
        raise TypeError(f"a model is a path or a upg.Model, not {type(m).__name__}")
    return os.fsdecode(m)

