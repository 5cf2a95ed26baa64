"""Random step weights that play plenty of notes (tests that need notes, not music)."""

from __future__ import annotations

import numpy as np

from lkjam import _step


def random_weights(topology: str, seed: int = 0) -> dict[str, np.ndarray]:
    t = _step.TOPOLOGIES[topology]
    hidden, rng = t["hidden"], np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for k in range(t["layers"]):
        inputs = t["features"] if k == 0 else hidden
        w[f"gru.weight_ih_l{k}"] = rng.normal(0, 0.1, (3 * hidden, inputs)).astype(np.float32)
        w[f"gru.weight_hh_l{k}"] = rng.normal(0, 0.1, (3 * hidden, hidden)).astype(np.float32)
        w[f"gru.bias_ih_l{k}"] = np.zeros(3 * hidden, np.float32)
        w[f"gru.bias_hh_l{k}"] = np.zeros(3 * hidden, np.float32)
    for head in ("time", "pitch", "velocity", "duration"):
        w[f"heads.{head}.weight"] = rng.normal(0, 0.3, (t[head], hidden)).astype(np.float32)
        w[f"heads.{head}.bias"] = np.zeros(t[head], np.float32)
    # A strong pull towards short shifts, so a random model plays plenty of notes.
    w["heads.time.bias"][:48] = 2.0
    return w
