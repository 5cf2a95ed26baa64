"""No heap allocation in the real-time calls: 10^6 feed+predict(+note_off) of the default
topology under a process-wide malloc/operator-new counter (cpp_step/tests/alloc_count.cpp)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CPP_STEP = Path(__file__).resolve().parents[1] / "cpp_step"
STEPS = 1_000_000


@pytest.fixture(scope="module")
def alloc_count(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("g++")
    assert compiler is not None, "g++ is needed to build the allocation counter"
    exe = tmp_path_factory.mktemp("alloc") / "alloc_count"
    subprocess.run(
        [compiler, "-std=c++17", "-O2", "-I", str(CPP_STEP),
         str(CPP_STEP / "tests" / "alloc_count.cpp"), "-o", str(exe)],
        check=True,
    )  # fmt: skip
    return exe


def run(exe: Path, steps: int) -> dict[str, float]:
    out = subprocess.run([str(exe), str(steps)], check=True, capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", last)}


@pytest.mark.slow
def test_no_allocations_in_a_million_steps(alloc_count: Path) -> None:
    result = run(alloc_count, STEPS)
    assert result["steps"] == STEPS
    assert result["allocations"] == 0
    # The counter is live: a malloc, a new and a std::vector made on purpose are all seen.
    assert result["deliberate"] >= 3
