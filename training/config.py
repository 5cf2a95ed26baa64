"""Training presets: one dataclass of plain values with commented defaults.

A preset is overridden by a TOML file and then by `--set key=value` on the command line;
unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    topology: str = "default"  # a name in lkjam._step.TOPOLOGIES (the shipped step's sizes)
    # Corpus items tried per source: caps the one-off parse time (~0.1 s per item).
    chorales: int = 413  # all four-part Bach chorales the corpus has
    folk: int = 1200  # Essen / O'Neill / Ryan's / Nottingham tunes
    chamber: int = 100  # madrigals, masses, quartets
    held_out: float = 0.1  # fraction of pieces held out (by piece)
    valid: float = 0.05  # fraction of the remaining pieces that picks each stage's best step
    split_seed: int = 1  # seed of the held-out split
    seed: int = 0  # seed of model init and window sampling
    window: int = 256  # events per training window
    batch: int = 32  # windows per step, over all DDP processes
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of a stage spent warming the learning rate up
    grad_clip: float = 1.0  # max gradient norm
    # Steps per stage: harmonize, interplay, call_response (see curriculum.CURRICULUM).
    # About 0.3 s per step on 2 free CPU cores (~20k events/s): ~29 min, ~33 with parsing.
    steps: tuple[int, ...] = (1800, 1800, 2200)
    minutes: float = 55.0  # wall-time cap of the whole run; 0 = none (see train.train)
    style_steps: int = 600  # steps of a custom-style fine-tune (`lkjam train --style`)
    style_lr: float = 5e-4
    style_minutes: float = 4.5  # wall-time cap of a style fine-tune
    eval_pieces: int = 40  # held-out pieces per (source, view) for a stage's NLL
    eval_every: int = 250  # steps between validation checks (the best weights end the stage)
    checkpoint_every: int = 100  # steps between resumable checkpoints
    # Augmentation
    transpose: int = 6  # semitones each way
    jitter: float = 0.03  # beats: largest std of human onset jitter
    velocity_noise: float = 8.0  # std of per-note velocity noise
    scale_known: float = 0.7  # probability that the key / scale is given
    threads: int = 0  # torch threads per process; 0 = torch's default

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return from_dict(self.to_dict() | changes)


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Build a config; unknown keys and wrongly typed values raise ValueError naming the key."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown training config key(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(TrainConfig(), key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
                raise ValueError(f"config key {key!r} must be a list of integers (got {value!r})")
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(value) is not type(default):
            raise ValueError(f"config key {key!r} must be {type(default).__name__} (got {value!r})")
        values[key] = value
    return TrainConfig(**values)


PRESETS: dict[str, TrainConfig] = {
    "default": TrainConfig(),
    # A seconds-long run for tests: the tiny compiled topology on a handful of pieces.
    "tiny": TrainConfig(
        topology="tiny",
        chorales=8,
        folk=8,
        chamber=1,
        held_out=0.25,
        window=32,
        batch=4,
        lr=1e-2,
        steps=(4, 4, 4),
        style_steps=4,
        minutes=0.0,
        style_minutes=0.0,
        eval_pieces=2,
        eval_every=2,
        checkpoint_every=2,
    ),
}


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with a JSON value (bare words are strings): ("steps", [10, 10, 10])."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key=value (got {text!r})")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def load_config(
    preset: str, toml_file: Path | None = None, overrides: tuple[str, ...] = ()
) -> TrainConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    data = PRESETS[preset].to_dict()
    if toml_file is not None:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ValueError("a TOML config file needs Python 3.11 or later") from None
        with open(toml_file, "rb") as f:
            data |= tomllib.load(f)
    data |= dict(parse_override(o) for o in overrides)
    return from_dict(data)
