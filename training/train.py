"""The training loop: stages in turn, resumable checkpoints, held-out NLL, DDP when launched
by torchrun.

A run lives in a work directory:
- `state.json`: config, position (stage, step), per-stage results, data summary;
- `checkpoint.safetensors`: model weights (`model.*`) and AdamW moments (`adam.*`), so a
  resume continues exactly where the run stopped (the window sampler is seeded by step);
- `best.safetensors`: the stage's best weights so far on the validation pieces (carved
  from the training pieces, not the held-out ones); a stage ends with them, so a budget
  that turns out too long for the data cannot overfit the shipped model;
- `stage<k>-<name>.safetensors`: a model file after each stage (for the ablation).
Nothing is ever unpickled: weights are safetensors, the rest JSON.

Loss and NLL are per event: the time head's NLL plus, where the next AI event is not
WAIT, the pitch, velocity and duration heads' NLLs, summed and divided by the number of
events.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lkjam.engine.model_file import ModelMeta, save_model
from lkjam.training.config import TrainConfig
from lkjam.training.curriculum import (
    HEADS,
    Augment,
    Example,
    Mixture,
    accompaniment_rates,
    held_out_examples,
)
from lkjam.training.model import JamGRU, export_tensors, import_tensors
from lkjam.training.splits import Corpus
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from lkjam import __version__, _step

STATE_FILE = "state.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
BEST_FILE = "best.safetensors"  # the stage's best weights on the validation pieces


@dataclass
class Stage:
    name: str  # a key of curriculum.STAGES
    steps: int
    lr: float


@dataclass
class Plan:
    """What to train: stages in order, from which weights, into which model file."""

    stages: list[Stage]
    style: str = "default"
    init: dict[str, np.ndarray] | None = None  # start weights (a style starts from default)
    init_digest: str = ""  # names the start weights: a checkpoint from others is not resumed
    provenance: dict[str, Any] = field(default_factory=dict)  # extra facts for the model file


# ---------------------------------------------------------------------------------------
# Distributed helpers: a single process is world size 1 and needs no process group.


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every process if it is true on any (e.g. "stop now")."""
        if self.size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)


def init_world() -> World:
    """Join the process group when launched by torchrun (gloo: works on CPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size())


# ---------------------------------------------------------------------------------------
# Loss and held-out NLL


def nll_sums(
    logits: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Summed NLL per head over the positions whose target is >= 0 (logits (B, T, C),
    targets (B, T))."""
    return {
        h: F.cross_entropy(
            logits[h].reshape(-1, logits[h].shape[-1]),
            targets[h].reshape(-1),
            ignore_index=-1,
            reduction="sum",
        )
        for h in HEADS
    }


def _pad_batch(
    examples: Sequence[Example], limit: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Features (B, T, F) and targets (B, T) of each stream's first `limit` events. Both are
    computed on the whole stream, so the rows kept are exactly the whole stream's rows."""
    length = min(limit, max(len(e.events) for e in examples))
    feats = np.zeros((len(examples), length, _step.FEATURES), dtype=np.float32)
    tg = {h: np.full((len(examples), length), -1, dtype=np.int64) for h in HEADS}
    for i, e in enumerate(examples):
        n = min(length, len(e.events))
        feats[i, :n] = e.encode()[:n]
        for h, v in _step.targets(e.events).items():
            tg[h][i, :n] = v[:n]
    return torch.from_numpy(feats), {h: torch.from_numpy(v) for h, v in tg.items()}


@torch.no_grad()
def held_out_nll(
    model: JamGRU, examples: Sequence[Example], batch: int = 16, limit: int = 1024
) -> dict[str, float]:
    """NLL per event over held-out streams run from a reset state, as the engine runs them
    (the first `limit` events of each: long chamber pieces would dominate the cost)."""
    model.eval()
    sums = dict.fromkeys(HEADS, 0.0)
    events = 0
    ordered = sorted(examples, key=lambda e: len(e.events))  # similar lengths pad less
    for i in range(0, len(ordered), batch):
        feats, tg = _pad_batch(ordered[i : i + batch], limit)
        logits, _ = model(feats)
        for h, s in nll_sums(logits, tg).items():
            sums[h] += float(s)
        events += int((tg["time"] >= 0).sum())
    model.train()
    out = {h: sums[h] / max(events, 1) for h in HEADS}
    out["nll"] = sum(sums.values()) / max(events, 1)
    out["events"] = events
    return out


# ---------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON


def _save_checkpoint(
    workdir: Path, model: JamGRU, opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    tensors = {f"model.{k}": v for k, v in export_tensors(model).items()}
    names = dict(model.named_parameters())
    steps: dict[str, float] = {}
    for name, p in names.items():
        st = opt.state.get(p)
        if st:
            tensors[f"adam.{name}.exp_avg"] = st["exp_avg"].numpy().copy()
            tensors[f"adam.{name}.exp_avg_sq"] = st["exp_avg_sq"].numpy().copy()
            steps[name] = float(st["step"])
    state = {**state, "adam_steps": steps}
    # Write both to temporary names first, then replace: a kill mid-write leaves the old pair.
    tmp_ck = workdir / (CHECKPOINT_FILE + ".tmp")
    tmp_st = workdir / (STATE_FILE + ".tmp")
    save_file(tensors, str(tmp_ck))
    tmp_st.write_text(json.dumps(state, indent=1))
    os.replace(tmp_ck, workdir / CHECKPOINT_FILE)
    os.replace(tmp_st, workdir / STATE_FILE)


def _load_checkpoint(workdir: Path, model: JamGRU, opt: torch.optim.Optimizer) -> None:
    state = json.loads((workdir / STATE_FILE).read_text())
    tensors = load_file(str(workdir / CHECKPOINT_FILE))
    import_tensors(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for name, p in model.named_parameters():
        if name in state["adam_steps"]:
            opt.state[p] = {
                "step": torch.tensor(state["adam_steps"][name], dtype=torch.float32),
                "exp_avg": torch.from_numpy(tensors[f"adam.{name}.exp_avg"]),
                "exp_avg_sq": torch.from_numpy(tensors[f"adam.{name}.exp_avg_sq"]),
            }


def read_state(workdir: Path) -> dict[str, Any] | None:
    path = workdir / STATE_FILE
    if not path.exists() or not (workdir / CHECKPOINT_FILE).exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


# ---------------------------------------------------------------------------------------
# The loop


def lr_at(peak: float, progress: float, warmup: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak (progress in 0..1)."""
    if progress < warmup:
        return peak * (progress + 1e-3) / warmup
    t = min(1.0, (progress - warmup) / max(1e-9, 1.0 - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * t)))


def _optimizer(model: JamGRU, cfg: TrainConfig, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)


@dataclass
class Result:
    finished: bool  # False: stopped early (stop_after, Ctrl-C); run again to resume
    provenance: dict[str, Any]


class StopRequest:
    """Ctrl-C or SIGTERM: finish the current step, save a checkpoint, stop (resumable).
    A second Ctrl-C stops at once. Installed only in the main thread (signals need it)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(
    cfg: TrainConfig,
    corpus: Corpus,
    plan: Plan,
    out: Path,
    workdir: Path,
    *,
    world: World | None = None,
    minutes: float | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> Result:
    """Train `plan` on `corpus`, resuming from `workdir` if it holds this run's checkpoint.

    `minutes` caps the wall time of this invocation (stages share it by their remaining
    steps, and each stage's learning-rate schedule follows whichever runs out first);
    `stop_after` stops, resumably, after that many steps in this invocation, as does
    Ctrl-C / SIGTERM."""
    with StopRequest() as stop:
        return _train(
            cfg,
            corpus,
            plan,
            out,
            workdir,
            world or World(),
            minutes,
            stop_after,
            stop,
            progress,
            log,
        )


@dataclass
class _Run:
    """One `train` call under way: the model, its optimizer and the state its checkpoints
    hold."""

    cfg: TrainConfig
    corpus: Corpus
    plan: Plan
    workdir: Path
    world: World
    log: Callable[[str], None]
    model: JamGRU
    net: torch.nn.Module  # what the steps run: the model, wrapped in DDP across processes
    opt: torch.optim.Optimizer
    state: dict[str, Any]
    done_here: int = 0  # steps taken by this call

    @property
    def best_file(self) -> Path:
        return self.workdir / BEST_FILE


def _set_threads(cfg: TrainConfig, world: World) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif world.size > 1:  # processes share the machine's cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.size))


def _start(
    cfg: TrainConfig,
    corpus: Corpus,
    plan: Plan,
    workdir: Path,
    world: World,
    log: Callable[[str], None],
) -> tuple[JamGRU, torch.optim.Optimizer, dict[str, Any]]:
    """The model, optimizer and state to start from: this run's checkpoint in `workdir` if
    there is one, else the plan's start weights."""
    torch.manual_seed(cfg.seed)
    model = JamGRU(_step.TOPOLOGIES[cfg.topology])
    if plan.init is not None:
        import_tensors(model, plan.init)
    # As JSON sees it (tuples become lists), to compare with a saved state.
    run_id = json.loads(
        json.dumps(
            {
                "config": cfg.to_dict(),
                "stages": [s.__dict__ for s in plan.stages],
                "init": plan.init_digest,
                "data": corpus.digest(),
            }
        )
    )
    state: dict[str, Any] = {**run_id, "stage": 0, "step": 0, "results": [], "seconds": 0.0}
    state["best"] = None  # {"nll", "step"} of the stage's best validation so far
    workdir.mkdir(parents=True, exist_ok=True)
    opt = _optimizer(model, cfg, plan.stages[0].lr)
    saved = read_state(workdir)
    if saved is not None and all(saved.get(k) == v for k, v in run_id.items()):
        state = saved
        _load_checkpoint(workdir, model, opt)
        if world.main:
            log(f"resuming {workdir}: stage {state['stage'] + 1}, step {state['step']}")
    return model, opt, state


def _train(
    cfg: TrainConfig,
    corpus: Corpus,
    plan: Plan,
    out: Path,
    workdir: Path,
    world: World,
    minutes: float | None,
    stop_after: int | None,
    stop: StopRequest,
    progress: bool,
    log: Callable[[str], None],
) -> Result:
    deadline = time.monotonic() + minutes * 60 if minutes else None
    _set_threads(cfg, world)
    model, opt, state = _start(cfg, corpus, plan, workdir, world, log)
    aug = Augment(cfg.transpose, cfg.jitter, cfg.velocity_noise, cfg.scale_known)
    held = {
        s.name: held_out_examples(s.name, corpus.held_out, cfg.split_seed, cfg.eval_pieces)
        for s in plan.stages
    }
    net: torch.nn.Module = model
    if world.size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    run = _Run(cfg, corpus, plan, workdir, world, log, model, net, opt, state)

    def halt() -> bool:
        return stop.requested or (stop_after is not None and run.done_here >= stop_after)

    while run.state["stage"] < len(plan.stages):
        k = run.state["stage"]
        stage = plan.stages[k]
        mixture = Mixture(stage.name, corpus.train, aug)
        valid = held_out_examples(stage.name, corpus.valid, cfg.split_seed, cfg.eval_pieces)
        budget = _stage_budget(plan, k, run.state["step"], deadline)
        if run.state["step"] == 0:  # each stage starts a fresh optimizer from the last weights
            run.opt = _optimizer(model, cfg, stage.lr)
            run.state["best"] = None
        stopped, ema, seconds = _train_stage(run, stage, mixture, valid, budget, halt, progress)
        if stopped:
            _stop(run, seconds)
            return Result(False, {})
        _end_stage(run, stage, valid, held, seconds, ema)
    provenance: dict[str, Any] = {}
    if world.main:
        provenance = _write_model(out, model, cfg, corpus, plan, run.state, world)
    world.barrier()
    return Result(True, provenance)


def _stage_budget(plan: Plan, k: int, step: int, deadline: float | None) -> float | None:
    """Seconds for the rest of stage `k` (at `step`): the time left, shared by the stages'
    remaining steps; None without a deadline."""
    if deadline is None:
        return None
    left = [s.steps for s in plan.stages[k:]]
    left[0] -= step
    share = left[0] / max(1, sum(left))
    return max(0.0, (deadline - time.monotonic()) * share - 10.0)


def _train_stage(
    run: _Run,
    stage: Stage,
    mixture: Mixture,
    valid: Sequence[Example],
    budget: float | None,
    halt: Callable[[], bool],
    progress: bool,
) -> tuple[bool, float | None, float]:
    """Steps of the current stage until it is done, its `budget` of seconds is spent or
    `halt` says so. Returns (halted, the training loss's moving average, the stage's
    seconds)."""
    cfg, world, state = run.cfg, run.world, run.state
    k = state["stage"]
    per_rank = max(1, cfg.batch // world.size)
    t_stage, base_seconds = time.monotonic(), float(state["seconds"])
    bar = tqdm(
        total=stage.steps,
        initial=state["step"],
        desc=f"stage {k + 1}/{len(run.plan.stages)} {stage.name}",
        unit="step",
        disable=not (progress and world.main),
        dynamic_ncols=True,
    )
    ema: float | None = None
    rate_events, rate_t0 = 0, time.monotonic()
    stopped = False
    while state["step"] < stage.steps:
        step = state["step"]
        elapsed = time.monotonic() - t_stage
        progress_frac = step / stage.steps
        if budget is not None:
            progress_frac = max(progress_frac, elapsed / max(budget, 1e-9))
        out_of_time = budget is not None and elapsed >= budget
        halted = halt()
        if world.any(out_of_time or halted):
            stopped = halted and not out_of_time
            break
        rng = np.random.default_rng([cfg.seed, k, step, world.rank])
        lr = lr_at(stage.lr, progress_frac, cfg.warmup)
        value, events = _optimize(run, mixture, rng, per_rank, lr)
        state["step"] = step + 1
        run.done_here += 1
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        rate_events += events * world.size
        now = time.monotonic()
        bar.update(1)
        postfix = {"loss": f"{ema:.3f}", "ev_s": f"{rate_events / (now - rate_t0):.0f}"}
        if state["best"] is not None:
            postfix["valid"] = f"{state['best']['nll']:.3f}"
        bar.set_postfix(postfix)
        if world.main and valid and state["step"] % cfg.eval_every == 0:
            _validate(run.model, valid, state, run.best_file)
        if world.main and state["step"] % cfg.checkpoint_every == 0:
            state["seconds"] = base_seconds + (now - t_stage)
            _save_checkpoint(run.workdir, run.model, run.opt, state)
    bar.close()
    return stopped, ema, base_seconds + time.monotonic() - t_stage


def _optimize(
    run: _Run, mixture: Mixture, rng: np.random.Generator, per_rank: int, lr: float
) -> tuple[float, int]:
    """One optimizer step on a batch drawn with `rng`: (loss per event, events in the batch)."""
    for g in run.opt.param_groups:
        g["lr"] = lr
    batch = mixture.batch(rng, per_rank, run.cfg.window)
    feats = torch.from_numpy(batch.features)  # (B, T, F)
    tg = {h: torch.from_numpy(v) for h, v in batch.targets.items()}  # (B, T)
    logits, _ = run.net(feats)
    n = max(1, batch.events)
    loss = torch.stack(list(nll_sums(logits, tg).values())).sum() / n
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.opt.step()
    return loss.item(), batch.events


def _stop(run: _Run, seconds: float) -> None:
    """A halted stage: save a checkpoint to resume from."""
    run.state["seconds"] = seconds
    if run.world.main:
        _save_checkpoint(run.workdir, run.model, run.opt, run.state)
        run.log(
            f"stopped after {run.done_here} steps (checkpoint saved in {run.workdir}); "
            "run the same command to resume"
        )
    run.world.barrier()


def _end_stage(
    run: _Run,
    stage: Stage,
    valid: Sequence[Example],
    held: Mapping[str, Sequence[Example]],
    seconds: float,
    ema: float | None,
) -> None:
    """Keep the stage's best validated weights, then held-out NLL on every stage's data, a
    model file and a checkpoint."""
    world, state, model = run.world, run.state, run.model
    k = state["stage"]
    if world.main and valid:
        _validate(model, valid, state, run.best_file)
    world.barrier()
    if run.best_file.exists():  # every process restores the same weights
        import_tensors(model, load_file(str(run.best_file)))
    world.barrier()
    if world.main:
        best = state["best"] or {}
        nll = {name: held_out_nll(model, ex) for name, ex in held.items() if ex}
        result = {
            "name": stage.name,
            "steps": state["step"],
            "best_step": best.get("step", state["step"]),
            "valid_nll": round(best["nll"], 4) if best else None,
            "seconds": round(seconds, 1),
            "train_loss": None if ema is None else round(ema, 4),
            "held_out_nll": {name: round(v["nll"], 4) for name, v in nll.items()},
        }
        run.log(
            f"stage {k + 1} {stage.name}: {result['steps']} steps (best {result['best_step']}),"
            f" train loss {result['train_loss']}, held-out NLL/event "
            + ", ".join(f"{n} {v:.3f}" for n, v in result["held_out_nll"].items())
        )
        state["results"].append(result)
        state["stage"], state["step"], state["seconds"] = k + 1, 0, 0.0
        stage_file = run.workdir / f"stage{k + 1}-{stage.name}.safetensors"
        _write_model(stage_file, model, run.cfg, run.corpus, run.plan, state, world)
        _save_checkpoint(run.workdir, model, run.opt, state)
        run.best_file.unlink(missing_ok=True)
    else:
        state["stage"], state["step"] = k + 1, 0
    world.barrier()


def _validate(
    model: JamGRU, examples: Sequence[Example], state: dict[str, Any], best_file: Path
) -> None:
    """Validation NLL; a new best is written to `best_file` (which the stage ends with)."""
    nll = held_out_nll(model, examples)["nll"]
    if state["best"] is None or nll < state["best"]["nll"]:
        tmp = best_file.with_name(best_file.name + ".tmp")
        save_file(export_tensors(model), str(tmp))
        os.replace(tmp, best_file)
        state["best"] = {"nll": nll, "step": state["step"]}


def _write_model(
    path: Path,
    model: JamGRU,
    cfg: TrainConfig,
    corpus: Corpus,
    plan: Plan,
    state: Mapping[str, Any],
    world: World,
) -> dict[str, Any]:
    results = list(state["results"])
    provenance: dict[str, Any] = {
        **plan.provenance,
        "lkjam": __version__,
        "torch": torch.__version__,
        "processes": world.size,
        "config": cfg.to_dict(),
        "data": corpus.info,
        "split": {"seed": cfg.split_seed, "held_out": cfg.held_out, "by": "piece"},
        "stages": results,
        "steps": sum(r["steps"] for r in results),
        "held_out_nll": results[-1]["held_out_nll"] if results else {},
    }
    density, voices = accompaniment_rates(
        plan.stages[-1].name, corpus.train, np.random.default_rng(cfg.seed)
    )
    meta = ModelMeta(
        topology=cfg.topology,
        style=plan.style,
        provenance=provenance,
        density=density,
        voices=voices,
    )
    save_model(path, export_tensors(model), meta)
    return provenance
