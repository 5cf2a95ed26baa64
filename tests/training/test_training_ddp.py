"""The same `lkjam train` under torchrun: two CPU processes, DDP over gloo.

torchrun runs this file as each process's script (see `_rank_main`): it runs `lkjam train`
and records the weights that rank trained with, so the test can compare the ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lkjam.engine.model_file import load_model, read_tensors
from lkjam.training.model import JamGRU, export_tensors
from safetensors.numpy import load_file, save_file


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


def _rank_main(record_dir: Path, argv: list[str]) -> int:
    """One torchrun process: `lkjam train argv`, recording the digest of the weights each
    training step starts from and the weights the run ends with, in `record_dir`.

    Training has no hook for a rank's weights, so the model class's forward is wrapped: it
    is looked up on the class whatever module builds the model (DDP calls it too)."""
    from lkjam.cli import main

    steps: list[str] = []
    trained: list[JamGRU] = []
    forward = JamGRU.forward

    def recording_forward(self: JamGRU, *args: Any, **kwargs: Any) -> Any:
        if self.training and torch.is_grad_enabled():  # held-out NLL runs in eval mode
            steps.append(_digest(export_tensors(self)))
            trained[:] = [self]
        return forward(self, *args, **kwargs)

    JamGRU.forward = recording_forward
    code = main(argv)
    rank = os.environ["RANK"]
    save_file(export_tensors(trained[0]), str(record_dir / f"rank{rank}.safetensors"))
    (record_dir / f"rank{rank}.json").write_text(json.dumps(steps))
    return int(code)


def test_two_process_ddp_run_writes_one_model_from_ranks_in_step(tmp_path: Path) -> None:
    out = tmp_path / "ddp.safetensors"
    record = tmp_path / "ranks"
    record.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        __file__,
        str(record),
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
    # Each rank trains on its own batches (seeded by rank), so only the gradients averaged
    # by DDP keep them in step: the weights every step starts from are the same on both.
    steps = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(steps[0]) == 12 and len(set(steps[0])) > 1  # 12 steps that moved the weights
    assert steps[0] == steps[1]
    # Both end with the same weights, and they are the model file's.
    final = [load_file(str(record / f"rank{r}.safetensors")) for r in (0, 1)]
    written, _ = read_tensors(out)
    assert _digest(final[0]) == _digest(final[1]) == _digest(written)


if __name__ == "__main__":
    sys.exit(_rank_main(Path(sys.argv[1]), sys.argv[2:]))
