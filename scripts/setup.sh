#!/usr/bin/env bash
# Create .venv and install lkjam with its training and test extras.
# torch comes from the CPU wheel pinned in pyproject (2.13.x).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q ".[train,test]"
