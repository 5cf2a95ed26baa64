"""`python -m lkjam.bench step`: the cost of one real-time step, C++ against PyTorch.

Measured in one run, default topology, same weights on both sides (the shipped default
model if present, else seeded random ones):
- cpp: µs per `Step.feed` + `Step.predict` called from Python (median, p99, p99.9);
- recurrent: µs of the GRU layers alone, timed inside C++ by cpp_step/tests/time_recurrent.cpp
  (built with g++ -O3 and run here, random weights of the same topology), and their effective
  GFLOP/s counting the dense work 2·3H·(in + H) per layer;
- torch: µs per eager step of JamGRU in `torch.inference_mode` with 1 thread: the GRU on one
  event's precomputed features, the four heads, then temperature/top-p sampling of each;
- mallocs per step: from cpp_step/tests/alloc_count.cpp, built with g++ and run here.
The last line is key=value figures. Figures, not assertions: nothing here can fail a build.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lkjam.engine.events import make_events
from lkjam.engine.model_file import DEFAULT_MODEL_PATH, ModelFileError, read_tensors
from lkjam.training.model import HEADS, JamGRU, export_tensors, import_tensors

from lkjam import _step

CPP_STEP = Path(__file__).resolve().parents[1] / "cpp_step"
TEMPERATURE = 1.0
TOP_P = 0.95


def bench_stream(n: int, seed: int = 0) -> np.ndarray:
    """A plausible mixed stream: human melody, clip chords, AI answers, musical shifts."""
    rng = np.random.default_rng(seed)
    shifts = rng.choice([0.0, 0.25, 0.5, 1.0, 1 / 3, 2.0], n, p=[0.3, 0.25, 0.2, 0.15, 0.05, 0.05])
    return make_events(
        np.cumsum(shifts), rng.choice([0.0, 0.5, 1.0, 2.0], n), rng.integers(36, 96, n),
        rng.integers(40, 120, n), rng.choice(3, n, p=[0.4, 0.3, 0.3]),
    )  # fmt: skip


def weights() -> tuple[dict[str, np.ndarray], str]:
    try:
        tensors, meta = read_tensors(DEFAULT_MODEL_PATH)
        if meta.topology == "default":
            return tensors, f"shipped model {DEFAULT_MODEL_PATH.name}"
    except ModelFileError:
        pass
    torch.manual_seed(0)
    return export_tensors(JamGRU(_step.TOPOLOGIES["default"])), "random weights (seed 0)"


def time_cpp(step: _step.Step, events: np.ndarray, warmup: int) -> np.ndarray:
    """µs of each feed+predict call, as the engine makes them (one Python call each)."""
    rows = [
        (float(e["beat"]), int(e["role"]), int(e["pitch"]), int(e["vel"]), float(e["dur"]))
        for e in events
    ]
    feed, predict, clock = step.feed, step.predict, time.perf_counter_ns
    out = np.empty(len(rows) - warmup)
    for i, (beat, role, pitch, vel, dur) in enumerate(rows):
        t0 = clock()
        feed(beat, role, pitch, vel, dur)
        predict(TEMPERATURE, TOP_P, 0.0)
        t1 = clock()
        if i >= warmup:
            out[i - warmup] = (t1 - t0) / 1e3
    return out


def _sample(logits: torch.Tensor, generator: torch.Generator) -> int:
    """Temperature + top-p sampling of one head, the same rule as the C++ step."""
    probs = torch.softmax(logits / TEMPERATURE, dim=-1)
    sorted_p, order = torch.sort(probs, descending=True)
    keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < TOP_P  # smallest prefix reaching top_p
    kept = sorted_p * keep
    choice = torch.multinomial(kept / kept.sum(), 1, generator=generator)
    return int(order[choice])


def time_torch(model: JamGRU, features: np.ndarray, warmup: int) -> np.ndarray:
    """µs of each eager single-event step: GRU + heads + sampling (features precomputed)."""
    torch.set_num_threads(1)
    x = torch.from_numpy(features)[:, None, None, :]  # (N, B=1, T=1, F)
    generator = torch.Generator().manual_seed(0)
    out = np.empty(len(features) - warmup)
    h = None
    with torch.inference_mode():
        for i in range(len(features)):
            t0 = time.perf_counter_ns()
            logits, h = model(x[i], h)
            if _sample(logits["time"][0, 0], generator) != _step.WAIT:
                for head in HEADS[1:]:
                    _sample(logits[head][0, 0], generator)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                out[i - warmup] = (t1 - t0) / 1e3
    return out


def run_cpp_tool(name: str, optimize: str, args: Sequence[int]) -> dict[str, float] | None:
    """Builds cpp_step/tests/<name>.cpp with g++ and runs it; the figures of its last line
    (key=value), or None without g++."""
    compiler = shutil.which("g++")
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / name
        subprocess.run(
            [compiler, "-std=c++17", optimize, "-I", str(CPP_STEP),
             str(CPP_STEP / "tests" / f"{name}.cpp"), "-o", str(exe)],
            check=True,
        )  # fmt: skip
        run = subprocess.run(
            [str(exe), *map(str, args)], check=True, capture_output=True, text=True
        )
    last = run.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", last)}


def mallocs_per_step(steps: int) -> float:
    """Runs the allocation counter (10^5 default-topology steps by default); nan without g++."""
    figures = run_cpp_tool("alloc_count", "-O2", [steps])
    return float("nan") if figures is None else figures["allocations"] / figures["steps"]


def recurrent_us(reps: int = 1000, rounds: int = 20) -> float:
    """µs of the default topology's GRU layers alone: the median over `rounds` of the mean of
    `reps` runs, built at -O3 as the extension is; nan without g++."""
    figures = run_cpp_tool("time_recurrent", "-O3", [reps, rounds])
    return float("nan") if figures is None else figures["recurrent_us"]


def recurrent_flops(sizes: dict[str, int]) -> int:
    """Dense multiply-adds x 2 of the GRU layers for one event."""
    h, inputs = sizes["hidden"], [sizes["features"]] + [sizes["hidden"]] * (sizes["layers"] - 1)
    return sum(2 * 3 * h * (n + h) for n in inputs)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkjam.bench step", description=__doc__)
    parser.add_argument("--events", type=int, default=30000, help="timed C++ calls")
    parser.add_argument("--torch-events", type=int, default=2000, help="timed PyTorch steps")
    parser.add_argument("--malloc-steps", type=int, default=100000, help="steps under the counter")
    args = parser.parse_args(argv)

    tensors, source = weights()
    warmup = 1000
    events = bench_stream(args.events + warmup)
    step = _step.Step("default", tensors)
    step.seed(0)
    cpp = time_cpp(step, events, warmup)
    recurrent = recurrent_us()

    model = JamGRU(_step.TOPOLOGIES["default"]).eval()
    import_tensors(model, tensors)
    torch_us = time_torch(model, _step.encode(events[: args.torch_events + 100]), 100)
    mallocs = mallocs_per_step(args.malloc_steps)

    sizes = _step.TOPOLOGIES["default"]
    gflops = recurrent_flops(sizes) / (recurrent * 1e3)
    med, p99, p999 = (float(np.percentile(cpp, q)) for q in (50, 99, 99.9))
    torch_med = float(np.median(torch_us))
    print(f"default topology ({sizes['layers']} x {sizes['hidden']}), {source}")
    print(f"cpp_step feed+predict from Python: median {med:.1f} µs, p99 {p99:.1f}, "
          f"p99.9 {p999:.1f} ({len(cpp)} calls)")  # fmt: skip
    print(f"  recurrent layers alone: {recurrent:.1f} µs = {gflops:.0f} GFLOP/s effective")
    print(f"  everything else (features, heads, sampling, Python call): {med - recurrent:.1f} µs")
    print(f"PyTorch eager step (1 thread, inference_mode): median {torch_med:.1f} µs, "
          f"p99 {np.percentile(torch_us, 99):.1f} ({len(torch_us)} steps)")  # fmt: skip
    print(f"speedup {torch_med / med:.1f}x; mallocs per step {mallocs:g}")
    print(
        f"cpp_us_median={med:.2f} cpp_us_p99={p99:.2f} cpp_us_p999={p999:.2f} "
        f"recurrent_us={recurrent:.2f} torch_us_median={torch_med:.2f} "
        f"speedup={torch_med / med:.2f} recurrent_gflops={gflops:.1f} mallocs_per_step={mallocs:g}"
    )
    return 0
