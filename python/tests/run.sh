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
PATH=/usr/bin:/bin UPG_TEST_NO_GO=1 UPG_REPO="$repo" UPG_CLI="$tmp/upg" \
  "$tmp/venv/bin/python" -m pytest -p no:cacheprovider -q -rs --durations=8 "$@" "$repo/python/tests"
