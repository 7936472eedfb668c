"""Fixtures for the upg package's tests.

python/tests/run.sh builds the wheel, installs it into a fresh virtual
environment and runs these tests with that environment's Python; it sets
UPG_REPO (the checkout) and UPG_CLI (an `upg` binary built from it, the
reference the package is compared with).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

import upg

REPO = Path(os.environ.get("UPG_REPO", Path(__file__).resolve().parents[2]))
SHARED = Path(os.environ.get("UPG_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"


def pytest_report_header(config: Any) -> str:
    return f"upg {upg.__version__} from {Path(upg.__file__).parent}; shared data {SHARED}"


def _missing(why: str) -> None:
    """A missing fixture skips the test, and fails it under CI=true (where every fixture must be there)."""
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def cli() -> Path:
    p = os.environ.get("UPG_CLI")
    if not p:
        _missing("UPG_CLI (an upg binary) is not set; python/tests/run.sh sets it")
    return Path(p)


def run_cli(cli: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cli), *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="session")
def shared() -> Path:
    if not MODELS.is_dir():
        _missing(f"shared test data not found at {SHARED}")
    return SHARED


def reference(name: str) -> dict[str, Any]:
    return json.loads((MODELS / name / "reference_outputs.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def demo() -> Iterator[upg.Model]:
    with upg.Model() as m:
        yield m
