"""`lkjam train` and `lkjam eval`.

    lkjam train --preset default [--out PATH] [--minutes M]     the default model, 3 stages
    lkjam train --style NAME DIR_OF_MIDI [--human-track N]      a custom style, from default
    torchrun --nproc_per_node=N -m lkjam train ...               the same, with DDP (gloo)

A run keeps resumable checkpoints in a work directory (by default in the user cache,
named after the preset and a hash of its config); running the same command again after an
interruption continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lkjam.engine.model_file import (
    DEFAULT_MODEL_PATH,
    STYLES_DIR,
    ModelFileError,
    read_tensors,
    resolve_style,
    user_dir,
)
from lkjam.training.config import PRESETS, TrainConfig, load_config
from lkjam.training.corpus_sources import load_corpus
from lkjam.training.curriculum import CURRICULUM
from lkjam.training.midi_folder import load_midi_folder
from lkjam.training.pieces import DataError
from lkjam.training.splits import Corpus, split_corpus
from lkjam.training.train import Plan, Stage, World, init_world, train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lkjam train",
        description="Train the default model (three-stage curriculum on the music21 corpus) "
        "or fine-tune a custom style from a folder of MIDI files.",
    )
    p.add_argument("folder", nargs="?", type=Path, help="folder of .mid/.midi files (--style)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--config", type=Path, help="TOML file overriding preset values")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one value"
    )
    p.add_argument("--style", metavar="NAME", help="fine-tune a style from FOLDER")
    p.add_argument(
        "--human-track",
        type=int,
        metavar="N",
        help="(--style) 0-based track index of the human part; default: the highest track",
    )
    p.add_argument(
        "--base", type=Path, help=f"(--style) model to start from (default {DEFAULT_MODEL_PATH})"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="model file to write (default: ./<preset>.safetensors, or "
        f"{STYLES_DIR}/<style>.safetensors for --style)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="wall-time cap of this run (default: the preset's minutes / style_minutes)",
    )
    p.add_argument("--workdir", type=Path, help="checkpoint directory (default: in the cache)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--cache", type=Path, help=f"parsed-data cache (default {user_dir('cache')})")
    p.add_argument(
        "--stop-after", type=int, metavar="STEPS", help="stop (resumably) after STEPS steps"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _default_workdir(kind: str, cfg: TrainConfig, extra: object) -> Path:
    key = json.dumps([cfg.to_dict(), extra], sort_keys=True, default=str)
    return user_dir("cache") / "runs" / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class _UsageError(Exception):
    """A command line that cannot run; the message says why."""


@dataclass
class _Job:
    """What one `lkjam train` command trains: the default model or a style."""

    cfg: TrainConfig
    plan: Plan
    get_corpus: Callable[[], Corpus]
    out: Path
    kind: str  # names the default work directory
    minutes: float | None


def _default_job(args: argparse.Namespace, cfg: TrainConfig, command: str, progress: bool) -> _Job:
    """The default model: the curriculum's stages on the music21 corpus."""
    if args.folder is not None:
        raise _UsageError("a MIDI folder needs --style NAME")
    caps = {"chorales": cfg.chorales, "folk": cfg.folk, "chamber": cfg.chamber}

    def get_corpus() -> Corpus:
        return load_corpus(
            caps,
            cfg.split_seed,
            cfg.held_out,
            valid=cfg.valid,
            cache=args.cache,
            progress=progress,
        )

    plan = Plan(
        [Stage(name, steps, cfg.lr) for name, steps in zip(CURRICULUM, cfg.steps, strict=True)],
        provenance={"command": command, "preset": args.preset},
    )
    out = args.out or Path(f"{args.preset}.safetensors")
    return _Job(cfg, plan, get_corpus, out, args.preset, args.minutes or cfg.minutes)


def _style_job(
    args: argparse.Namespace, cfg: TrainConfig, command: str, world: World, progress: bool
) -> _Job:
    """A style: one stage on the user's MIDI folder, from a base model's weights."""
    if args.folder is None:
        raise _UsageError("--style NAME needs a folder of MIDI files")
    try:  # the engine's rule for style names (a missing style is fine: we make it)
        resolve_style(args.style)
    except ModelFileError:
        pass
    except ValueError as exc:
        raise _UsageError(f"--style: {exc}") from None
    base = args.base or DEFAULT_MODEL_PATH
    tensors, meta = read_tensors(base)
    base_digest = hashlib.sha256(base.read_bytes()).hexdigest()[:16]
    cfg = cfg.replace(topology=meta.topology)
    folder: Path = args.folder

    def get_corpus() -> Corpus:
        pieces, summary = load_midi_folder(
            folder, args.human_track, cache=args.cache, progress=progress
        )
        if world.main:
            print(summary.text(), file=sys.stderr)
        info = {
            "folder": folder.name,
            "files": summary.found,
            "used": summary.used,
            "skipped": {k: len(v) for k, v in summary.skipped.items()},
            "human_track": args.human_track,
        }
        midi = {"midi": (pieces, info)}
        return split_corpus(midi, cfg.split_seed, cfg.held_out, cfg.valid)

    plan = Plan(
        [Stage("style", cfg.style_steps, cfg.style_lr)],
        style=args.style,
        init=tensors,
        init_digest=base_digest,
        provenance={
            "command": command,
            "preset": args.preset,
            "base_model": {
                "file": base.name,
                "style": meta.style,
                "steps": meta.provenance.get("steps"),
                "sha256": base_digest,
            },
        },
    )
    out = args.out or STYLES_DIR / f"{args.style}.safetensors"
    return _Job(
        cfg, plan, get_corpus, out, f"style-{args.style}", args.minutes or cfg.style_minutes
    )


def _shared_corpus(job: _Job, world: World) -> Corpus:
    """The first process parses (and caches) the data; the others then read the cache."""
    corpus = job.get_corpus() if world.main else None
    world.barrier()
    return corpus if corpus is not None else job.get_corpus()


def _workdir(args: argparse.Namespace, job: _Job, corpus: Corpus, world: World) -> Path:
    """The run's checkpoint directory, emptied of a checkpoint with --fresh."""
    run_key = [[s.__dict__ for s in job.plan.stages], job.plan.init_digest, corpus.digest()]
    workdir: Path = args.workdir or _default_workdir(job.kind, job.cfg, run_key)
    if world.main:
        print(f"data: {corpus.describe()}\ncheckpoints: {workdir}", file=sys.stderr)
    if args.fresh and world.main:
        for name in ("state.json", "checkpoint.safetensors"):
            (workdir / name).unlink(missing_ok=True)
    world.barrier()
    return workdir


def train_main(argv: Sequence[str]) -> int:
    started = time.monotonic()
    args = _parser().parse_args(list(argv))
    try:
        cfg = load_config(args.preset, args.config, tuple(args.set))
    except (ValueError, OSError) as exc:
        print(f"lkjam train: {exc}", file=sys.stderr)
        return 2
    world = init_world()
    progress = not args.no_progress
    command = "lkjam train " + " ".join(argv)
    try:
        if args.style is None:
            job = _default_job(args, cfg, command, progress)
        else:
            job = _style_job(args, cfg, command, world, progress)
        corpus = _shared_corpus(job, world)
    except (_UsageError, DataError, ModelFileError) as exc:
        print(f"lkjam train: {exc}", file=sys.stderr)
        return 2
    workdir = _workdir(args, job, corpus, world)
    minutes = job.minutes
    if minutes:  # the cap covers the whole command, parsing included
        minutes = max(0.1, minutes - (time.monotonic() - started) / 60)
    result = train(
        job.cfg,
        corpus,
        job.plan,
        job.out,
        workdir,
        world=world,
        minutes=minutes,
        stop_after=args.stop_after,
        progress=progress,
    )
    if not result.finished:  # --stop-after: the checkpoint is saved, run again to go on
        return 0
    if world.main:
        nll = result.provenance["held_out_nll"]
        print(
            f"wrote {job.out} (style {job.plan.style}, {result.provenance['steps']} steps); "
            "held-out NLL/event " + ", ".join(f"{k}={v}" for k, v in nll.items())
        )
    return 0


def eval_main(argv: Sequence[str]) -> int:
    from lkjam.training.evaluate import main

    return main(argv)
