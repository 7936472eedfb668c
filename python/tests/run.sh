#!/usr/bin/env bash
# The Python package's tests (scripts/test.sh runs this): builds the wheel
# from this checkout, installs it into a fresh virtual environment that sees
# the system's packages (Debian's python3-numpy and python3-pytest; no
# package index is needed), builds the upg command line the package is
# compared with, and runs pytest with Go off PATH.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

# A Python with numpy and pytest: $PYTHON, python3, or Debian's.
py=""
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import numpy, pytest, setuptools, wheel, venv' 2>/dev/null; then
    py=$(command -v "$cand"); break
  fi
done
if [ -z "$py" ]; then
  echo "python tests need python3 with numpy, pytest, setuptools, wheel and venv" >&2
  echo "(Debian: apt-get install python3-pytest python3-numpy python3-setuptools python3-wheel python3-venv)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
"$py" -m venv --system-site-packages "$tmp/venv"
# --no-build-isolation: build with the installed setuptools and wheel, as where no index is reachable.
"$tmp/venv/bin/pip" wheel -q --no-build-isolation --no-deps --no-index -w "$tmp/dist" ./python
"$tmp/venv/bin/pip" install -q --no-index "$tmp"/dist/upg-*.whl
go build -o "$tmp/upg" ./cmd/upg
echo "wheel $(basename "$tmp"/dist/upg-*.whl) built and installed, upg built: $((SECONDS - start))s"

cd "$tmp"
# test_device.py sees the machine's GPUs (on one with an NVIDIA driver, the GPU against the CPU); the rest
# assert the CPU's properties (bit-identical tokens however a prompt is split into steps, so one seed gives one
# text with prompt lookup or a reused prefix; transformers' logits within 1e-4), so they run with the GPUs
# hidden from the driver (CUDA_VISIBLE_DEVICES=): device "auto" is the CPU there, and the command line's too.
run_pytest() { # pytest's 5 ("no tests collected": a -k that selects none of this half) is not a failure
  local rc=0
  PATH=/usr/bin:/bin UPG_TEST_NO_GO=1 UPG_REPO="$repo" UPG_CLI="$tmp/upg" \
    "$tmp/venv/bin/python" -m pytest -p no:cacheprovider -q -rs --durations=8 "$@" || rc=$?
  [ $rc = 0 ] || [ $rc = 5 ]
}
run_pytest "$@" "$repo/python/tests/test_device.py"
CUDA_VISIBLE_DEVICES= run_pytest "$@" --ignore="$repo/python/tests/test_device.py" "$repo/python/tests"
