"""UPG from Python: run compressed language models, compress and evaluate them.

    import upg

    with upg.Model() as m:                       # the bundled demo model
        print(m.generate("package main", temperature=0, max_tokens=32))
        for piece in m.stream("func main() {"):
            print(piece, end="", flush=True)

    with upg.Model(max_batch=8) as m:           # many prompts stepped together
        texts = m.generate_batch(["package main", "It was"], temperature=0, max_tokens=32)

Everything runs in UPG's Go library (loaded with ctypes; the GIL is released
while it works). Errors raise upg.UpgError subclasses with the library's message.
"""

from __future__ import annotations

from ._lib import version as _version
from ._model import Model, Stream, demo_model_path
from ._tools import compress, evaluate, evaluate_many, inspect
from .errors import (
    CancelledError,
    ClosedError,
    DeviceError,
    InvalidArgumentError,
    ModelFormatError,
    ModelNotFoundError,
    UpgError,
    UpgIOError,
)

__version__ = _version()

__all__ = [
    "Model",
    "Stream",
    "compress",
    "evaluate",
    "evaluate_many",
    "inspect",
    "demo_model_path",
    "UpgError",
    "InvalidArgumentError",
    "ModelNotFoundError",
    "ModelFormatError",
    "ClosedError",
    "CancelledError",
    "UpgIOError",
    "DeviceError",
    "__version__",
]
