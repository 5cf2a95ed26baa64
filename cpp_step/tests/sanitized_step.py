"""pytest plugin of the sanitizer run (cpp_step/tests/sanitize.sh): `lkjam._step` becomes the
AddressSanitizer + UndefinedBehaviorSanitizer build named by LKJAM_SANITIZED_STEP.

Loaded with `-p sanitized_step` before any test module, it puts that extension into
sys.modules under the installed module's name, so every `from lkjam import _step` (tests,
lkjam.engine, lkjam.training) gets it, whether lkjam is installed normally or editable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import lkjam

SANITIZED = Path(os.environ["LKJAM_SANITIZED_STEP"]).resolve()
_spec = importlib.util.spec_from_file_location("lkjam._step", SANITIZED)
assert _spec is not None and _spec.loader is not None, SANITIZED
_step = importlib.util.module_from_spec(_spec)
sys.modules["lkjam._step"] = _step
_spec.loader.exec_module(_step)
lkjam._step = _step  # type: ignore[attr-defined]


def pytest_report_header() -> str:
    return f"lkjam._step under ASan + UBSan: {SANITIZED}"


def pytest_sessionfinish() -> None:
    # A test that imported the extension some other way would not have been sanitized.
    assert sys.modules["lkjam._step"] is _step, "lkjam._step was replaced during the run"
