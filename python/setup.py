"""Build hook: compiles UPG's Go C ABI (../capi) into the package.

`pip install ./python` and `pip wheel ./python` run this from a checkout of
the repository: it needs Go (>= 1.26, on PATH or in $GO) and a C compiler
for cgo. The wheel it makes holds the shared library and the bundled demo
model, and installs on machines with neither. $UPG_SOURCE points at another
checkout of the Go module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py as _build_py

try:  # setuptools >= 70.1 has its own
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # Debian 12's setuptools 66 uses the wheel package's
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

HERE = Path(__file__).resolve().parent
DEMO_MODEL = "models/miniphi-29m.upg"


def library_name() -> str:
    if sys.platform == "darwin":
        return "libupg.dylib"
    if sys.platform == "win32":
        return "upg.dll"
    return "libupg.so"


def module_root() -> Path:
    env = os.environ.get("UPG_SOURCE")
    root = Path(env).resolve() if env else HERE.parent
    if not (root / "go.mod").is_file() or not (root / "capi").is_dir():
        raise SystemExit(
            f"upg: building the package needs the UPG Go sources (go.mod and capi/) in {root}; "
            "build from a checkout of the repository (pip install ./python) or set UPG_SOURCE"
        )
    return root


def go_binary() -> str:
    go = os.environ.get("GO") or shutil.which("go")
    if not go and Path("/usr/local/go/bin/go").exists():
        go = "/usr/local/go/bin/go"
    if not go:
        raise SystemExit("upg: building the package needs Go >= 1.26 (https://go.dev/dl/) and a C compiler")
    return go


class build_py(_build_py):
    """Builds the Python sources, then the Go library and the demo model beside them."""

    def run(self) -> None:
        super().run()
        root = module_root()
        pkg = Path(self.build_lib).resolve() / "upg"
        pkg.mkdir(parents=True, exist_ok=True)
        lib = pkg / library_name()
        env = dict(os.environ, CGO_ENABLED="1")
        env.setdefault("GOFLAGS", "-mod=mod")
        cmd = [go_binary(), "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(lib), "./capi"]
        print("upg: compiling the Go library:", " ".join(cmd), file=sys.stderr, flush=True)
        try:
            subprocess.run(cmd, cwd=root, env=env, check=True)
        except FileNotFoundError as e:
            raise SystemExit(f"upg: cannot run Go: {e}")
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"upg: go build failed (exit {e.returncode}); cgo needs a C compiler (gcc or clang)")
        header = lib.with_suffix(".h")
        if header.exists():  # the C header is documentation; keep it out of the package
            header.unlink()
        demo = root / DEMO_MODEL
        if demo.is_file():
            (pkg / "models").mkdir(exist_ok=True)
            shutil.copyfile(demo, pkg / DEMO_MODEL)


class bdist_wheel(_bdist_wheel):
    """A platform wheel that needs no particular Python ABI (the library is loaded with ctypes)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(distclass=BinaryDistribution, cmdclass={"build_py": build_py, "bdist_wheel": bdist_wheel})
