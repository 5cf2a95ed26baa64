"""`lkjam eval [MODEL]`: a model against real music and a Markov baseline, on held-out pieces.

Held-out sets (pieces the model never saw: the split seed, fraction and corpus caps come
from the model's provenance):
- `chorales`: Bach chorales, soprano human, the lower voices ai (harmonization);
- `folk`: folk tunes, melody human, chord voices ai (harmonization);
- `call_response`: folk tunes whose melody phrases alternate human / ai, other voices
  dropped or clip context (curriculum.call_response, seeded).

Figures, per set and overall:
- NLL per event (nats, docs/event-stream.md targets) of the model (`Step.feed_batch`
  logits: the compiled step, no torch) and of the Markov chain fitted on the training split;
- music metrics (lkjam.metrics) of the real AI part, of the model's, of the
  Markov chain's and of the rule harmonizer's (lkjam.training.rule_harmonizer). The model
  and the chain accompany the held-out input by the engine's own decoding rule
  (lkjam.engine.decoder via lkjam.engine.offline), in the mode of the set (accompany, or
  call and response) and at Density 0.5, with the decoder's chord lock and yielding as the
  engine plays them (`--no-locks`: the model alone). Harmony figures (NiCR, chord
  fit, doubling, pitch-class entropy, coverage, above) pool the two harmonization sets;
  overlap, answer delay and answer length come from the call-and-response set, measured
  against the human part only;
- what a musician hears from the model: `seed_cv`, the coefficient of variation of its AI
  note count per piece over `SEEDS` seeds (mean over pieces), and `density_ratio`, its AI
  onsets per beat at Density 0.9 over those at 0.1.

The last line printed is key=value, for scripts.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lkjam.engine.decoder import Planner
from lkjam.engine.model_file import ModelFileError, load_model, resolve_style
from lkjam.engine.offline import accompany
from lkjam.training import rule_harmonizer
from lkjam.training.config import TrainConfig
from lkjam.training.corpus_sources import load_corpus
from lkjam.training.curriculum import NO_AUGMENT, Example, make_example
from lkjam.training.markov import MarkovModel, event_nll
from lkjam.training.midi_folder import load_midi_folder
from lkjam.training.pieces import DataError, Piece
from lkjam.training.splits import split_pieces

from lkjam import _step, metrics

HARMONY = ("nicr", "chord_fit", "doubling", "pc_entropy", "coverage", "above", "gap_bars")
CALL_RESPONSE = ("overlap", "answer_delay_beats", "answer_length")
WHO = ("model", "real", "markov", "rule")
SEEDS = 4  # seeds per piece for seed_cv
INPUT_ROLES = (_step.ROLE_HUMAN, _step.ROLE_CLIP)
# Source and curriculum view of each held-out set, and which metrics it reports.
SETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "chorales": ("chorales", "harmonize", HARMONY),
    "folk": ("folk", "harmonize", HARMONY),
    "call_response": ("folk", "call_response", CALL_RESPONSE),
}
GAP_BARS = 4  # silence between pieces when they are pooled into one stream


@dataclass
class Sampling:
    temperature: float = 0.9
    top_p: float = 0.95
    seed: int = 0
    density: float = 0.5  # the Density control
    own_density: float = 2.0  # the model's own accompaniment (ModelMeta)
    own_voices: float = 2.0
    locks: bool = True  # the decoder's chord lock and call-and-response yielding


@dataclass
class SetResult:
    name: str
    pieces: int
    events: int
    nll: dict[str, float] = field(default_factory=dict)  # "model"/"markov" -> nats per event
    figures: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> who -> value
    seed_cv: float = float("nan")
    onsets: dict[float, float] = field(default_factory=dict)  # Density -> AI onsets per beat


def examples_for(pieces: Sequence[Piece], view: str, seed: int) -> list[Example]:
    """Whole pieces, no augmentation, the view's random choices seeded (fixed sets)."""
    rng = np.random.default_rng(seed)
    return [make_example(p, view, rng, NO_AUGMENT) for p in pieces]


def configure(planner: Planner, ex: Example) -> None:
    planner.reset()
    planner.set_meter(ex.numerator, ex.denominator)
    if ex.scale_root >= 0:
        planner.set_scale(ex.scale_root, list(ex.scale_intervals))
    else:
        planner.clear_scale()


def model_nll(step: _step.Step, examples: Sequence[Example]) -> tuple[float, int]:
    """Total NLL (nats) and events of whole streams, each from a reset state (the engine's
    view), with logits from the compiled step."""
    total, events = 0.0, 0
    for ex in examples:
        configure(step, ex)
        logits = step.feed_batch(ex.events, ex.conditioning)
        nll, n = event_nll(logits, _step.targets(ex.events))
        total, events = total + nll, events + n
    return total, events


def _merged(inputs: np.ndarray, ai: np.ndarray) -> np.ndarray:
    both = np.concatenate([inputs, ai])
    return both[np.lexsort((both["pitch"], both["role"], both["beat"]))]


def accompaniments(
    planner: Planner,
    examples: Sequence[Example],
    sampling: Sampling,
    seed_offset: int = 0,
    density: float | None = None,
) -> list[np.ndarray]:
    """Each example's input (human and clip notes) with the planner's AI part, played in
    the example's mode, in place of the real one."""
    out = []
    for i, ex in enumerate(examples):
        inputs = ex.events[np.isin(ex.events["role"], INPUT_ROLES)]
        scale = (ex.scale_root, ex.scale_intervals) if ex.scale_root >= 0 else None
        ai = accompany(
            planner,
            inputs,
            mode="call_response" if ex.mode == _step.MODE_CALL_RESPONSE else "accompany",
            density=sampling.density if density is None else density,
            own_density=sampling.own_density,
            own_voices=sampling.own_voices,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            chord_lock=sampling.locks,
            yielding=sampling.locks,
            seed=sampling.seed + i + 1000 * seed_offset,
            numerator=ex.numerator,
            denominator=ex.denominator,
            scale=scale,
        )
        out.append(_merged(inputs, ai))
    return out


def rule_accompaniments(pieces: Sequence[Piece], examples: Sequence[Example]) -> list[np.ndarray]:
    """The rule harmonizer's block chords under each example's human part."""
    out = []
    for piece, ex in zip(pieces, examples, strict=True):
        inputs = ex.events[np.isin(ex.events["role"], INPUT_ROLES)]
        melody = ex.events[ex.events["role"] == _step.ROLE_HUMAN]
        ai = rule_harmonizer.harmonize(melody, piece.key_root, piece.key_minor, piece.bar_beats)
        out.append(_merged(inputs, ai))
    return out


def seed_cv(runs: Sequence[Sequence[np.ndarray]]) -> float:
    """Mean over pieces of the coefficient of variation of the AI note count over runs."""
    counts = np.array([[np.sum(s["role"] == _step.ROLE_AI) for s in run] for run in runs], float)
    mean = counts.mean(axis=0)
    cv = np.where(mean > 0, counts.std(axis=0) / np.maximum(mean, 1e-9), 0.0)
    return float(cv.mean()) if len(cv) else float("nan")


def pooled(streams: Sequence[np.ndarray]) -> np.ndarray:
    """One stream of all pieces one after another, GAP_BARS 4/4 bars apart, so that
    frame-weighted shares and phrase statistics pool over pieces."""
    parts, offset = [], 0.0
    for s in streams:
        if len(s) == 0:
            continue
        moved = s.copy()
        moved["beat"] += offset
        parts.append(moved)
        offset = float(metrics.note_ends(moved).max()) + 4.0 * GAP_BARS
    return np.concatenate(parts) if parts else np.zeros(0, dtype=streams[0].dtype)


def figures(stream: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    fns: dict[str, Callable[[np.ndarray], float]] = {
        "nicr": metrics.nicr,
        "chord_fit": metrics.chord_fit,
        "doubling": metrics.doubling,
        "pc_entropy": metrics.pc_entropy,
        # Coverage and register are measured against the melody, the human part.
        "coverage": lambda s: metrics.coverage(s, input_roles=(_step.ROLE_HUMAN,)),
        "above": lambda s: metrics.above(s, input_roles=(_step.ROLE_HUMAN,)),
        # Longest silence of the AI while the melody plays, in 4-beat bars, over all pieces
        # (a piece break is a long rest, which ends a silence).
        "gap_bars": lambda s: metrics.longest_gap(s, input_roles=(_step.ROLE_HUMAN,)) / 4.0,
        # Call and response is about the human's turns: clip context is not a turn.
        "overlap": lambda s: metrics.overlap(s, input_roles=(_step.ROLE_HUMAN,)),
        "answer_delay_beats": lambda s: metrics.answer_delay(s, input_roles=(_step.ROLE_HUMAN,)),
        "answer_length": lambda s: _nanmean(
            metrics.answer_lengths(s, input_roles=(_step.ROLE_HUMAN,))
        ),
    }
    return {name: fns[name](stream) for name in names}


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate_set(
    name: str,
    pieces: Sequence[Piece],
    examples: Sequence[Example],
    step: _step.Step,
    markov: MarkovModel,
    sampling: Sampling,
) -> SetResult:
    wanted = SETS[name][2]
    result = SetResult(name, len(examples), int(sum(len(ex.events) for ex in examples)))
    total, n = model_nll(step, examples)
    result.nll["model"] = total / max(n, 1)
    total, n = 0.0, 0
    for ex in examples:
        t, k = markov.nll(ex.events)
        total, n = total + t, n + k
    result.nll["markov"] = total / max(n, 1)
    runs = [accompaniments(step, examples, sampling, seed_offset=k) for k in range(SEEDS)]
    result.seed_cv = seed_cv(runs)
    if "coverage" in wanted:  # accompaniment sets: how the Density control moves the AI
        for density in (0.1, 0.9):
            played = pooled(accompaniments(step, examples, sampling, density=density))
            result.onsets[density] = metrics.onsets_per_beat(played)
    markov_step = markov.step()
    by_who = {
        "model": figures(pooled(runs[0]), wanted),
        "real": figures(pooled([ex.events for ex in examples]), wanted),
        "markov": figures(pooled(accompaniments(markov_step, examples, sampling)), wanted),
        "rule": figures(pooled(rule_accompaniments(pieces, examples)), wanted)
        if "coverage" in wanted
        else dict.fromkeys(wanted, float("nan")),
    }
    result.figures = {m: {who: by_who[who][m] for who in by_who} for m in wanted}
    return result


def fit_markov(train: dict[str, list[Piece]], seed: int) -> MarkovModel:
    """The baseline sees the training split through the same views as the held-out sets."""
    streams = [
        ex.events
        for source, view, _ in SETS.values()
        for ex in examples_for(train.get(source, []), view, seed)
    ]
    return MarkovModel().fit(streams)


def _pool_harmony(results: Sequence[SetResult]) -> dict[str, dict[str, float]]:
    """Harmony figures over both harmonization sets, weighted by their pieces."""
    sets = [r for r in results if "nicr" in r.figures]
    out: dict[str, dict[str, float]] = {}
    for m in HARMONY:
        out[m] = {}
        for who in WHO:
            vals = [
                (r.figures[m][who], r.pieces) for r in sets if not math.isnan(r.figures[m][who])
            ]
            weight = sum(w for _, w in vals)
            if m == "gap_bars":  # the longest, not an average
                out[m][who] = max((v for v, _ in vals), default=float("nan"))
            else:
                out[m][who] = sum(v * w for v, w in vals) / weight if weight else float("nan")
    return out


def report(results: Sequence[SetResult], model_name: str) -> list[str]:
    """The table and the final key=value line."""
    lines = [f"{'set':<19}{'metric':<20}" + "".join(f"{w:>9}" for w in WHO)]

    def fmt(v: float | None) -> str:
        return f"{'-':>9}" if v is None else f"{v:>9.3f}"

    for r in results:
        head = f"{r.name} ({r.pieces})"
        lines.append(
            f"{head:<19}{'nll/event':<20}{fmt(r.nll['model'])}{fmt(None)}{fmt(r.nll['markov'])}"
        )
        for m, who in r.figures.items():
            lines.append(f"{'':<19}{m:<20}" + "".join(fmt(who[w]) for w in WHO))
        lines.append(f"{'':<19}{'seed_cv':<20}{fmt(r.seed_cv)}")
        for density, rate in r.onsets.items():
            lines.append(f"{'':<19}{f'onsets/beat @{density}':<20}{fmt(rate)}")
    events = sum(r.events for r in results)
    nll = sum(r.nll["model"] * r.events for r in results) / max(events, 1)
    markov_nll = sum(r.nll["markov"] * r.events for r in results) / max(events, 1)
    harmony = _pool_harmony(results)
    cr = next((r.figures for r in results if "overlap" in r.figures), None)
    lines.append(f"{'all':<19}{'nll/event':<20}{fmt(nll)}{fmt(None)}{fmt(markov_nll)}")
    for m in HARMONY:
        lines.append(f"{'harmony':<19}{m:<20}" + "".join(fmt(harmony[m][w]) for w in WHO))
    nan = float("nan")
    accompanied = [r for r in results if r.onsets]
    low = sum(r.onsets[0.1] * r.pieces for r in accompanied)
    high = sum(r.onsets[0.9] * r.pieces for r in accompanied)
    cvs = [(r.seed_cv, r.pieces) for r in results if "nicr" in r.figures]
    values = {
        "nll": nll,
        "markov_nll": markov_nll,
        "nicr": harmony["nicr"]["model"],
        "nicr_real": harmony["nicr"]["real"],
        "chord_fit": harmony["chord_fit"]["model"],
        "chord_fit_real": harmony["chord_fit"]["real"],
        "rule_chord_fit": harmony["chord_fit"]["rule"],
        "coverage": harmony["coverage"]["model"],
        "seed_cv": sum(v * w for v, w in cvs) / max(sum(w for _, w in cvs), 1) if cvs else nan,
        "above": harmony["above"]["model"],
        "gap_bars": harmony["gap_bars"]["model"],
        "density_ratio": high / low if low > 0 else nan,
        "doubling": harmony["doubling"]["model"],
        "doubling_real": harmony["doubling"]["real"],
        "pc_entropy": harmony["pc_entropy"]["model"],
        "pc_entropy_real": harmony["pc_entropy"]["real"],
        "overlap": cr["overlap"]["model"] if cr else nan,
        "answer_delay_beats": cr["answer_delay_beats"]["model"] if cr else nan,
        "answer_length": cr["answer_length"]["model"] if cr else nan,
    }
    lines.append(f"model: {model_name}")
    lines.append(" ".join(f"{k}={v:.4f}" for k, v in values.items()))
    return lines


def style_figures(
    step: _step.Step, pieces: Sequence[Piece], sampling: Sampling
) -> dict[str, dict[str, float]]:
    """A style against its own files: the model accompanies each file's human part (Density
    0.5) and its part is compared with the file's own accompaniment ("real")."""
    examples = examples_for(pieces, "harmonize", sampling.seed)
    by_who = {
        "model": pooled(accompaniments(step, examples, sampling)),
        "real": pooled([ex.events for ex in examples]),
    }
    human = (_step.ROLE_HUMAN,)
    out: dict[str, dict[str, float]] = {}
    for who, stream in by_who.items():
        ai = stream["role"] == _step.ROLE_AI
        out[who] = {
            "onsets_per_beat": metrics.onsets_per_beat(stream),
            "chord_fit": metrics.chord_fit(stream),
            "above": metrics.above(stream, input_roles=human),
            "coverage": metrics.coverage(stream, input_roles=human),
            "mean_pitch": float(stream["pitch"][ai].mean()) if ai.any() else float("nan"),
        }
    return out


def style_report(figs: dict[str, dict[str, float]], pieces: int, model_name: str) -> list[str]:
    lines = [f"{'style files (' + str(pieces) + ')':<26}{'model':>9}{'real':>9}"]
    for m in figs["model"]:
        lines.append(f"{m:<26}{figs['model'][m]:>9.3f}{figs['real'][m]:>9.3f}")
    real_rate = figs["real"]["onsets_per_beat"]
    values = {
        "onsets_ratio": figs["model"]["onsets_per_beat"] / real_rate if real_rate else math.nan,
        "chord_fit": figs["model"]["chord_fit"],
        "chord_fit_real": figs["real"]["chord_fit"],
        "above": figs["model"]["above"],
        "above_real": figs["real"]["above"],
        "coverage": figs["model"]["coverage"],
        "pitch_shift": figs["model"]["mean_pitch"] - figs["real"]["mean_pitch"],
    }
    lines.append(f"model: {model_name}")
    lines.append(" ".join(f"{k}={v:.4f}" for k, v in values.items()))
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lkjam eval", description=__doc__.splitlines()[0])
    p.add_argument(
        "model",
        nargs="?",
        type=Path,
        default=None,
        metavar="MODEL",
        help="a model file (default: the shipped model, or --style)",
    )
    p.add_argument("--style", default=None, help="a style name (see `lkjam train --style`)")
    p.add_argument(
        "--midi",
        type=Path,
        default=None,
        metavar="DIR",
        help="compare the model with the held-out files of this MIDI folder (a style's own "
        "folder, split as its training split it) instead of the corpus sets",
    )
    p.add_argument(
        "--human-track", type=int, default=None, metavar="N", help="(--midi) as lkjam train"
    )
    p.add_argument(
        "--pieces", type=int, default=40, metavar="N", help="held-out pieces per set (default 40)"
    )
    p.add_argument(
        "--corpus-cap",
        type=int,
        default=None,
        metavar="N",
        help="corpus items tried per source (default: the model's training caps, "
        "so the parse cache of training is reused); smaller is faster",
    )
    p.add_argument("--temperature", type=float, default=Sampling.temperature)
    p.add_argument("--top-p", type=float, default=Sampling.top_p)
    p.add_argument("--seed", type=int, default=Sampling.seed)
    p.add_argument(
        "--no-locks",
        action="store_true",
        help="the model alone: no chord lock, and answers may start over the human's notes",
    )
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {list(SETS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()

    def fail(message: str) -> int:
        print(f"lkjam eval: {message}", file=sys.stderr)
        return 2

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SETS]
    if unknown or not sets:
        return fail(f"--sets: unknown set(s) {unknown}; known: {', '.join(SETS)}")
    if args.pieces < 1:
        return fail(f"--pieces must be at least 1 (got {args.pieces})")
    if args.model is not None and args.style is not None:
        return fail("give a MODEL file or --style, not both")
    try:
        model = load_model(args.model if args.style is None else resolve_style(args.style))
    except (ModelFileError, ValueError) as exc:
        return fail(str(exc))

    # The split the model was trained with, so these pieces are ones it never saw.
    prov = model.meta.provenance
    cfg = TrainConfig()
    config = prov.get("config", {}) if isinstance(prov.get("config"), dict) else {}
    split = prov.get("split", {}) if isinstance(prov.get("split"), dict) else {}
    seed = int(split.get("seed", config.get("split_seed", cfg.split_seed)))
    fraction = float(split.get("held_out", config.get("held_out", cfg.held_out)))
    sampling = Sampling(
        args.temperature,
        args.top_p,
        args.seed,
        own_density=model.meta.density,
        own_voices=model.meta.voices,
        locks=not args.no_locks,
    )
    model_name = f"{model.path} ({model.meta.topology}, style {model.meta.style})"
    if args.midi is not None:
        try:
            pieces, summary = load_midi_folder(args.midi, args.human_track, progress=False)
        except DataError as exc:
            return fail(str(exc))
        _, held = split_pieces(pieces, seed, fraction)
        print(f"{summary.text()}; {len(held)} held out (split seed {seed}, fraction {fraction})")
        figs = style_figures(model.step, held[: args.pieces], sampling)
        print("\n".join(style_report(figs, len(held[: args.pieces]), model_name)))
        return 0
    sources = sorted({SETS[s][0] for s in sets})
    caps = {
        s: int(args.corpus_cap if args.corpus_cap is not None else config.get(s, getattr(cfg, s)))
        for s in sources
    }
    try:
        corpus = load_corpus(caps, seed, fraction, progress=not args.quiet)
    except DataError as exc:
        return fail(str(exc))
    markov = fit_markov(corpus.train, args.seed)

    results = []
    for name in sets:
        source, view, _ = SETS[name]
        pieces = corpus.held_out.get(source, [])[: args.pieces]
        if not pieces:
            return fail(f"no held-out {source} pieces (corpus caps {caps}, held out {fraction})")
        try:
            results.append(
                evaluate_set(
                    name,
                    pieces,
                    examples_for(pieces, view, args.seed),
                    model.step,
                    markov,
                    sampling,
                )
            )
        except ValueError as exc:  # a bad sampling option, named by the step
            return fail(str(exc))
    print(
        f"held out by piece (split seed {seed}, fraction {fraction}); Markov fitted on "
        f"{sum(len(v) for v in corpus.train.values())} training pieces; "
        f"{time.perf_counter() - started:.1f} s"
    )
    print("\n".join(report(results, model_name)))
    return 0
