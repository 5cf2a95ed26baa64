"""The same `lkjam train` under torchrun: two CPU processes, DDP over gloo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lkjam.engine.model_file import load_model


def test_two_process_ddp_run_writes_one_model(tmp_path: Path) -> None:
    out = tmp_path / "ddp.safetensors"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lkjam",
        "train",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--workdir",
        str(tmp_path / "work"),
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    # Only the first process reports and writes.
    assert done.stdout.count("wrote ") == 1
    assert done.stderr.count("stage 3 call_response:") == 1
    meta = load_model(out).meta
    assert meta.provenance["processes"] == 2
    assert meta.provenance["steps"] == 12
