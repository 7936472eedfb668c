"""The package under test is the installed wheel: library and demo model inside, no source tree."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import upg


def test_installed_from_the_wheel() -> None:
    pkg = Path(upg.__file__).resolve().parent
    assert Path(sys.prefix) in pkg.parents, f"upg imported from {pkg}, not the test environment"
    assert (pkg / "libupg.so").is_file() or (pkg / "libupg.dylib").is_file()
    assert (pkg / "py.typed").is_file()
    assert upg.demo_model_path() == pkg / "models" / "miniphi-29m.upg"
    assert upg.__version__


def test_runs_without_go() -> None:
    if os.environ.get("UPG_TEST_NO_GO") != "1":
        return
    assert shutil.which("go") is None, "python/tests/run.sh runs the tests with Go off PATH"
