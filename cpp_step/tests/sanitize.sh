#!/usr/bin/env bash
# The step tests under AddressSanitizer and UndefinedBehaviorSanitizer (CI: .ci/run).
#
# Builds lkjam._step with -DLKJAM_SANITIZE=ON (-fsanitize=address,undefined,float-cast-overflow,
# -fno-sanitize-recover=all: any report fails the run) in its own build directory, then runs
# the step tests with that extension in place of the installed one (sanitized_step.py).
# Python itself is not instrumented, so the ASan runtime is preloaded, with libstdc++ (ASan's
# __cxa_throw interceptor needs it loaded at start, or the first C++ exception aborts); leak
# detection is off because the interpreter keeps its allocations until exit. The allocation counter cannot
# run under ASan (both replace malloc): tests/step/test_step_alloc.py builds it with UBSan only.
#
# Usage: bash cpp_step/tests/sanitize.sh [pytest args]   (from a set-up clone: .venv exists)
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate

out=build/sanitize
# The package is built by scikit-build-core as for the wheel (same CMakeLists.txt), into a
# target folder of its own; only its _step extension is used.
python -m pip install -q --no-deps --upgrade --target "$out/site" \
  -C build-dir="$out/cmake" -C cmake.build-type=RelWithDebInfo \
  -C cmake.define.LKJAM_SANITIZE=ON .
step=$(find "$out/site/lkjam" -maxdepth 1 -name '_step*.so' -print -quit)
[ -n "$step" ] || { echo "sanitize.sh: no _step extension in $out/site/lkjam" >&2; exit 1; }
echo "sanitize.sh: the step tests on $step (ASan + UBSan)"

LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so.6)" \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LKJAM_SANITIZED_STEP="$PWD/$step" LKJAM_SANITIZER_RUN=1 \
  PYTHONPATH="$PWD/cpp_step/tests${PYTHONPATH:+:$PYTHONPATH}" \
  python -m pytest -q -p sanitized_step -p no:cacheprovider \
  tests/step/test_step_api.py tests/step/test_step_encoding.py tests/step/test_step_parity.py \
  tests/step/test_step_reference.py tests/step/test_step_alloc.py "$@"
