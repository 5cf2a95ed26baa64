#!/usr/bin/env bash
# The test suite: real JACK servers, real sockets, the compiled extension.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pytest -q
