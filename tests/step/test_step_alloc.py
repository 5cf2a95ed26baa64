"""No heap allocation in the real-time calls: 10^6 feed+predict(+note_off) of the default
topology under a process-wide malloc/operator-new counter (cpp_step/tests/alloc_count.cpp).

In the sanitizer run (cpp_step/tests/sanitize.sh sets LKJAM_SANITIZER_RUN=1) the counter is
built with UndefinedBehaviorSanitizer only, and runs without the preloaded ASan runtime:
AddressSanitizer replaces malloc itself, so it cannot share a process with a counter that
interposes malloc. ASan checks the same calls through the extension in the other step tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CPP_STEP = Path(__file__).resolve().parents[2] / "cpp_step"
STEPS = 1_000_000
SANITIZER_RUN = os.environ.get("LKJAM_SANITIZER_RUN") == "1"
UBSAN = ["-fsanitize=undefined,float-cast-overflow", "-fno-sanitize-recover=all", "-g"]


@pytest.fixture(scope="module")
def alloc_count(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("g++")
    assert compiler is not None, "g++ is needed to build the allocation counter"
    exe = tmp_path_factory.mktemp("alloc") / "alloc_count"
    flags = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", *(UBSAN if SANITIZER_RUN else [])]
    source = CPP_STEP / "tests" / "alloc_count.cpp"
    subprocess.run([compiler, *flags, "-I", str(CPP_STEP), str(source), "-o", str(exe)], check=True)
    return exe


def run(exe: Path, steps: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # no ASan runtime here
    out = subprocess.run(
        [str(exe), str(steps)], check=True, capture_output=True, text=True, env=env
    )
    last = out.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", last)}


@pytest.mark.slow
def test_no_allocations_in_a_million_steps(alloc_count: Path) -> None:
    result = run(alloc_count, STEPS)
    assert result["steps"] == STEPS
    assert result["allocations"] == 0
    # The counter is live: a malloc, a new and a std::vector made on purpose are all seen.
    assert result["deliberate"] >= 3
