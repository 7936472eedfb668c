"""The ctypes layer over UPG's C ABI (capi/main.go documents every function).

ctypes releases the GIL during each foreign call, so other Python threads run
while Go works. A generation's steps run on the calling thread (with the
model's worker threads); compress, evaluate and batch generations run on Go's
threads and are polled (run_job).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from ctypes import POINTER, byref, c_char_p, c_float, c_int32, c_int64, c_uint64, c_void_p
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import UpgError, _error

CODE_TOO_SMALL = 8


def _library_path() -> Path:
    env = os.environ.get("UPG_LIBRARY")
    if env:
        return Path(env)
    name = {"darwin": "libupg.dylib", "win32": "upg.dll"}.get(sys.platform, "libupg.so")
    return Path(__file__).resolve().parent / name


def _load() -> ctypes.CDLL:
    path = _library_path()
    if not path.exists():
        raise ImportError(
            f"upg: the compiled library {path} is missing; install the package with pip "
            "(pip install ./python builds it with Go) rather than importing the source tree"
        )
    lib = ctypes.CDLL(str(path))
    sig = {
        "upg_free": (None, [c_void_p]),
        "upg_version": (c_int32, [POINTER(c_void_p)]),
        "upg_model_load": (c_int32, [c_char_p, c_char_p, POINTER(c_uint64), POINTER(c_void_p)]),
        "upg_model_info": (c_int32, [c_uint64, POINTER(c_void_p), POINTER(c_void_p)]),
        "upg_model_free": (c_int32, [c_uint64, POINTER(c_void_p)]),
        "upg_tokenize": (
            c_int32,
            [c_uint64, c_char_p, c_int64, c_int32, c_int32, POINTER(c_int32), c_int64, POINTER(c_int64), POINTER(c_void_p)],
        ),
        "upg_detokenize": (
            c_int32,
            [c_uint64, POINTER(c_int32), c_int64, POINTER(c_void_p), POINTER(c_int64), POINTER(c_void_p)],
        ),
        "upg_logits": (c_int32, [c_uint64, POINTER(c_int32), c_int64, c_int32, POINTER(c_float), c_int64, POINTER(c_void_p)]),
        "upg_gen_start": (c_int32, [c_uint64, c_char_p, POINTER(c_uint64), POINTER(c_void_p)]),
        "upg_gen_next": (
            c_int32,
            [c_uint64, c_int32, c_int32, c_void_p, c_int64, POINTER(c_int64), POINTER(c_int32), POINTER(c_void_p)],
        ),
        "upg_gen_stats": (c_int32, [c_uint64, POINTER(c_void_p), POINTER(c_void_p)]),
        "upg_gen_cancel": (c_int32, [c_uint64]),
        "upg_gen_free": (c_int32, [c_uint64]),
        "upg_batch_start": (c_int32, [c_uint64, c_char_p, POINTER(c_uint64), POINTER(c_void_p)]),
        "upg_compress_start": (c_int32, [c_char_p, c_char_p, c_char_p, POINTER(c_uint64), POINTER(c_void_p)]),
        "upg_evaluate_start": (c_int32, [c_char_p, POINTER(c_uint64), POINTER(c_void_p)]),
        "upg_job_wait": (
            c_int32,
            [
                c_uint64,
                c_int32,
                POINTER(c_int64),
                POINTER(c_int64),
                POINTER(c_int64),
                c_void_p,
                c_int64,
                POINTER(c_int32),
                POINTER(c_void_p),
            ],
        ),
        "upg_job_result": (c_int32, [c_uint64, POINTER(c_void_p), POINTER(c_void_p)]),
        "upg_job_cancel": (c_int32, [c_uint64]),
        "upg_job_free": (c_int32, [c_uint64]),
        "upg_inspect": (c_int32, [c_char_p, POINTER(c_void_p), POINTER(c_void_p)]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


lib = _load()


def take_string(p: c_void_p, n: int | None = None) -> str:
    """Copies a string the library allocated and frees it."""
    if not p.value:
        return ""
    try:
        raw = ctypes.string_at(p.value, n) if n is not None else ctypes.string_at(p.value)
    finally:
        lib.upg_free(p)
    return raw.decode("utf-8", errors="replace")


def check(code: int, err: c_void_p) -> None:
    """Raises the UpgError subclass of a non-zero code with the library's message."""
    if code == 0:
        return
    msg = take_string(err) if err.value else f"upg error {code}"
    raise _error(code, msg)


def call(fn: Any, *args: Any) -> None:
    """Calls fn(*args, &err) and raises on failure."""
    err = c_void_p()
    check(fn(*args, byref(err)), err)


def call_json(fn: Any, *args: Any) -> Any:
    """Calls fn(*args, &out, &err) and parses the JSON it writes to out."""
    out, err = c_void_p(), c_void_p()
    check(fn(*args, byref(out), byref(err)), err)
    return json.loads(take_string(out))


def path_bytes(p: str | os.PathLike[str]) -> bytes:
    return os.fsencode(p)


def json_bytes(v: Any) -> bytes:
    return json.dumps(v, ensure_ascii=False).encode("utf-8")


def version() -> str:
    out = c_void_p()
    lib.upg_version(byref(out))
    return take_string(out)


Progress = Callable[[int, int, str], object]
"""progress(done, total, stage): compress counts parameters encoded, evaluate chunks scored, a batch
generation tokens generated (against the most its requests may still generate)."""

_JOB_POLL_MS = 100


def run_job(handle: int, progress: Optional[Progress]) -> Any:
    """Polls a job until it finishes, calling progress on this thread whenever it moved.
    Ctrl-C (or an exception from progress) cancels the job and waits for it to stop."""
    done, total, updates, fin = c_int64(), c_int64(), c_int64(), c_int32()
    stage = ctypes.create_string_buffer(256)
    seen = -1

    def poll() -> bool:
        call(lib.upg_job_wait, handle, _JOB_POLL_MS, byref(done), byref(total), byref(updates), stage, len(stage), byref(fin))
        return bool(fin.value)

    try:
        while True:
            finished = poll()
            if progress is not None and updates.value != seen:
                seen = updates.value
                progress(done.value, total.value, stage.value.decode("utf-8", errors="replace"))
            if finished:
                return call_json(lib.upg_job_result, handle)
    except BaseException:
        lib.upg_job_cancel(handle)
        try:  # it stops at its next progress report and cleans up (a compression's temporary file)
            while not poll():
                pass
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
        raise
    finally:
        lib.upg_job_free(handle)


__all__ = ["lib", "call", "call_json", "check", "take_string", "path_bytes", "json_bytes", "version", "run_job", "Progress", "UpgError", "CODE_TOO_SMALL"]
