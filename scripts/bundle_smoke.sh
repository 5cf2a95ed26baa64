#!/usr/bin/env bash
# The standalone engine: build the one-folder PyInstaller bundle (installers/lkjam_engine.spec)
# from the wheel, then smoke-test it (scripts/smoke_bundle.py): its commands, `lkjam install`
# recording the bundle for Live's autostart, and an engine that starts with no Python in its
# environment, opens its MIDI ports and answers a DEALER's hello; prints its start time and size.
#   bash scripts/bundle_smoke.sh [WHEEL]   (default: the wheel scripts/wheel_smoke.sh left,
#                                           else one built here)
# PYTHON=... picks the Python (default python3), RUNS=... the engine starts to time (5).
# Runs on Linux (needs jackd: scripts/setup.sh), macOS and Windows (Git Bash), as the
# workflow does. Leaves the bundle in build/bundle-smoke/dist/lkjam.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PYTHON:-python3}
out=$root/build/bundle-smoke
wheel=${1:-$(ls build/wheel-smoke/wheelhouse/lkjam-*.whl 2>/dev/null || true)}
rm -rf "$out"
mkdir -p "$out"

"$python" -m venv "$out/venv"
bin=$out/venv/bin
exe=""
if [ -d "$out/venv/Scripts" ]; then # Windows
  bin=$out/venv/Scripts
  exe=.exe
fi
"$bin/python" -m pip install -q --upgrade pip
if [ -z "$wheel" ]; then
  echo "== pip wheel"
  "$bin/python" -m pip wheel -q --no-deps -w "$out/wheel" --config-settings=build-dir="$out/cmake" .
  wheel=$(ls "$out"/wheel/lkjam-*.whl)
fi
echo "== bundle from $(basename "$wheel")"
# The wheel, not the checkout: the spec freezes the installed package as a musician gets it.
"$bin/python" -m pip install -q --only-binary :all: "$wheel" pyinstaller
started=$(date +%s)
"$bin/pyinstaller" --noconfirm --log-level WARN --distpath "$out/dist" --workpath "$out/work" \
  installers/lkjam_engine.spec
bundle=$out/dist/lkjam
echo "built $bundle in $(($(date +%s) - started)) s: $(du -sh "$bundle" | cut -f1)," \
  "$(find "$bundle" -type f | wc -l) files"

echo "== smoke test"
cd "$out" # not the source tree: the smoke test imports only the installed lkjam
"$bin/python" "$root/scripts/smoke_bundle.py" "$bundle/lkjam$exe" \
  --runs "${RUNS:-5}" --reference "$bin/lkjam$exe"
