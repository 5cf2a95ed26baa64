"""Model files of random weights: a stand-in for the benches and tests, where the notes
matter but not their music. Never for users."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lkjam import _step
from lkjam.engine.model_file import ModelMeta, save_model


def random_tensors(
    topology: str = "tiny", seed: int = 0, head_bias: Mapping[str, Mapping[int, float]] = {}
) -> dict[str, np.ndarray]:
    """Random weights for a compiled topology. `head_bias` adds to chosen output biases,
    e.g. {"time": {0: 30.0}} makes every plan "now" (shift 0)."""
    sizes = _step.TOPOLOGIES[topology]
    rng = np.random.default_rng(seed)
    hidden, features = sizes["hidden"], sizes["features"]
    tensors: dict[str, np.ndarray] = {}
    for k in range(sizes["layers"]):
        inputs = features if k == 0 else hidden
        tensors[f"gru.weight_ih_l{k}"] = rng.normal(0, 0.3, (3 * hidden, inputs))
        tensors[f"gru.weight_hh_l{k}"] = rng.normal(0, 0.3, (3 * hidden, hidden))
        tensors[f"gru.bias_ih_l{k}"] = rng.normal(0, 0.1, 3 * hidden)
        tensors[f"gru.bias_hh_l{k}"] = rng.normal(0, 0.1, 3 * hidden)
    for head in ("time", "pitch", "velocity", "duration"):
        tensors[f"heads.{head}.weight"] = rng.normal(0, 0.3, (sizes[head], hidden))
        bias = rng.normal(0, 0.1, sizes[head])
        for index, value in head_bias.get(head, {}).items():
            bias[index] += value
        tensors[f"heads.{head}.bias"] = bias
    return {k: v.astype(np.float32) for k, v in tensors.items()}


def random_model(
    path: Path,
    topology: str = "tiny",
    seed: int = 0,
    style: str = "random",
    head_bias: Mapping[str, Mapping[int, float]] = {},
) -> Path:
    """Write a model file of random weights (a stand-in where no trained model is needed)."""
    meta = ModelMeta(topology=topology, style=style, provenance={"data": "random", "seed": seed})
    save_model(path, random_tensors(topology, seed, head_bias), meta)
    return path
