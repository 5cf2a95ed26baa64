"""`python -m lkjam.bench step` runs end to end and ends with its key=value line (no timing
assertions: the figures depend on the machine)."""

from __future__ import annotations

import math
import re

import pytest
from lkjam.training import bench_step


def test_bench_step_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--events", "300", "--torch-events", "50", "--malloc-steps", "2000"]
    assert bench_step.main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.naninf]+)", last)}
    assert set(figures) == {
        "cpp_us_median", "cpp_us_p99", "cpp_us_p999", "recurrent_us", "torch_us_median",
        "speedup", "recurrent_gflops", "mallocs_per_step",
    }  # fmt: skip
    assert figures["mallocs_per_step"] == 0
    assert all(math.isfinite(v) and v > 0 for k, v in figures.items() if k != "mallocs_per_step")
    assert figures["cpp_us_median"] <= figures["cpp_us_p99"] <= figures["cpp_us_p999"]


def test_recurrent_flops_count() -> None:
    sizes = {"features": 409, "hidden": 192, "layers": 2}
    assert bench_step.recurrent_flops(sizes) == 2 * 576 * (409 + 192) + 2 * 576 * (192 + 192)
