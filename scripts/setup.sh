#!/usr/bin/env bash
# Set up lkjam from a clone: system packages on Debian/Ubuntu (a C++17 compiler and,
# for real MIDI ports without a sound card, JACK), then .venv with lkjam and its
# training and test extras. torch comes from the CPU wheel pinned in pyproject (2.13.x).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null; then
  missing=()
  command -v g++ >/dev/null || missing+=(g++)
  command -v jackd >/dev/null || missing+=(jackd2)
  python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q ".[train,test]"
echo "lkjam is installed in .venv ($(python -c 'import lkjam; print(lkjam.__version__)'))"
