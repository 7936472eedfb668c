"""Exceptions raised by upg. Every error the Go library reports is an UpgError
subclass carrying the library's message (one line naming the file and the
problem, as the command line prints it)."""

from __future__ import annotations


class UpgError(Exception):
    """Base class of the errors UPG reports."""


class InvalidArgumentError(UpgError, ValueError):
    """An argument is out of range or malformed (a sampling option, a message role, a token id)."""


class ModelNotFoundError(UpgError, FileNotFoundError):
    """A path that does not exist."""


class ModelFormatError(UpgError):
    """A file that is not a model UPG can run: corrupt, truncated, of an unknown or unsupported format."""


class ClosedError(UpgError):
    """The model (or generation) was closed."""


class CancelledError(UpgError):
    """The operation was cancelled (Ctrl-C raises KeyboardInterrupt instead)."""


class UpgIOError(UpgError, OSError):
    """An operating-system error other than a missing file (permissions, a full disk)."""


class DeviceError(UpgError):
    """The GPU asked for cannot be used: no NVIDIA driver or GPU, a driver too old, too little free device memory
    for the model (the message names what is needed and what is free)."""


# The C ABI's error codes (capi/handles.go).
_BY_CODE: dict[int, type[UpgError]] = {
    1: UpgError,
    2: InvalidArgumentError,
    3: ModelNotFoundError,
    4: ModelFormatError,
    5: ClosedError,
    6: CancelledError,
    7: UpgIOError,
    9: DeviceError,
}


def _error(code: int, message: str) -> UpgError:
    return _BY_CODE.get(code, UpgError)(message)
