"""Musicianship benches on music in no training set: `python -m lkjam.bench music|style`.

music  Accompanies each hand-made tune (`lkjam.tunes`) as `lkjam accompany` would (the
       tune's key signature as the scale, temperature 0.9, top-p 0.95) with several seeds,
       and prints per tune: AI notes per seed, seed_cv (their coefficient of variation),
       coverage, chord_fit, above, doubling and AI onsets per beat at Density 0.5
       (`metrics.onsets_per_beat`: note onsets, so a 3-note chord counts 3); the rule
       harmonizer's chord_fit and coverage on the same tune; density_ratio (AI onsets per
       beat at Density 0.9 over 0.1); and for call and response (the tune cut into 2-bar
       phrases with 2 bars of rest between them, mode call_response): overlap, the median
       answer delay in beats after the phrase end, the median answer length over the phrase
       length, and the share of phrases answered. Then medians and worst cases over tunes
       and a key=value line.
style  Writes a style folder (`lkjam.stylegen`), fine-tunes a style on it with
       `lkjam train --style` (timed; the model file stays in a temporary folder, never in
       the user's styles), and measures the style on the hand-made tunes: AI onsets per beat
       against the style files' own accompaniment, chord_fit and above.

Both print figures only; the issue's targets are shown beside them, nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lkjam import metrics
from lkjam.engine.events import ROLE_INDEX
from lkjam.engine.keys import parse_key
from lkjam.engine.model_file import LoadedModel, ModelFileError, load_model, resolve_style
from lkjam.engine.offline import accompany
from lkjam.stylegen import TEXTURES, write_style
from lkjam.tunes import TUNES, Tune, tune_events

TEMPERATURE, TOP_P = 0.9, 0.95  # `lkjam accompany`'s defaults: what a user hears
DENSITY_LOW, DENSITY_MID, DENSITY_HIGH = 0.1, 0.5, 0.9
PHRASE_BARS = 2  # call and response: 2 bars of tune, then 2 bars for the answer
ROLE_CLIP, ROLE_AI = ROLE_INDEX["clip"], ROLE_INDEX["ai"]


def _highest(a: np.ndarray) -> float:
    return float(a.max())


def _lowest(a: np.ndarray) -> float:
    return float(a.min())


def _farthest_from_zero(a: np.ndarray) -> float:  # early (over the call) or late: both bad
    return float(a[np.argmax(np.abs(a))])


def _farthest_from_one(a: np.ndarray) -> float:  # an answer much shorter or longer than its call
    return float(a[np.argmax(np.abs(np.log(np.maximum(a, 1e-9))))])


# Per-tune figures, each with how to pick the worst tune's value (the "worst" row).
FIGURES: dict[str, Callable[[np.ndarray], float]] = {
    "seed_cv": _highest,
    "coverage": _lowest,
    "chord_fit": _lowest,
    "above": _highest,
    "doubling": _highest,
    "onsets_per_beat": _lowest,
    "rule_chord_fit": _lowest,
    "rule_coverage": _lowest,
    "density_low": _highest,
    "density_high": _lowest,
    "density_ratio": _lowest,
    "overlap": _highest,
    "answer_delay_beats": _farthest_from_zero,
    "answer_length": _farthest_from_one,
    "answered": _lowest,
}


@dataclass
class TuneResult:
    tune: Tune
    ai_notes: list[int]  # per seed, accompany at Density 0.5
    figures: dict[str, float]  # the FIGURES keys
    played: dict[str, np.ndarray] = field(default_factory=dict)  # seed 0, input + AI, per mode


def merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two event arrays as one, in stream order (what the metrics take)."""
    both = np.concatenate([a, b])
    return both[np.lexsort((both["pitch"], both["role"], both["beat"]))]


def run(
    model: LoadedModel,
    tune: Tune,
    melody: np.ndarray,
    *,
    seed: int,
    mode: str = "accompany",
    density: float = DENSITY_MID,
    end_beat: float | None = None,
    chord_lock: bool = True,
) -> np.ndarray:
    """`melody` with the model's AI part, as `lkjam accompany` plays it on the tune's file."""
    ai = accompany(
        model.step,
        melody,
        mode=mode,
        density=density,
        own_density=model.meta.density,
        own_voices=model.meta.voices,
        temperature=TEMPERATURE,
        top_p=TOP_P,
        seed=seed,
        numerator=tune.numerator,
        denominator=tune.denominator,
        scale=parse_key(tune.key_name),
        chord_lock=chord_lock,
        end_beat=end_beat,
    )
    return merged(melody, ai)


def call_response_input(tune: Tune) -> np.ndarray:
    """The tune cut into PHRASE_BARS-bar phrases with PHRASE_BARS bars of rest after each
    (a note running over a phrase's end is cut there)."""
    events = tune_events(tune)
    span = PHRASE_BARS * tune.bar_beats
    phrase = np.floor(events["beat"] / span + 1e-9)
    out = events.copy()
    out["dur"] = np.minimum(out["dur"], (phrase + 1) * span - out["beat"])
    out["beat"] = out["beat"] + phrase * span  # phrase k moves k phrase-lengths later
    return out


def _cv(counts: Sequence[int]) -> float:
    mean = float(np.mean(counts))
    return float(np.std(counts) / mean) if mean > 0 else float("nan")


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.any(~np.isnan(arr)) else float("nan")


def _nanmedian(values: Sequence[float] | np.ndarray) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmedian(arr)) if np.any(~np.isnan(arr)) else float("nan")


def measure_tune(
    model: LoadedModel,
    tune: Tune,
    seeds: Sequence[int] = (0, 1, 2, 3),
    density_seeds: int = 1,
    chord_lock: bool = True,
) -> TuneResult:
    """All FIGURES for one tune (means over seeds; answer delay and length pooled medians).
    `chord_lock` off measures the model's own harmony, without the decoder's chord lock."""
    from lkjam.training.rule_harmonizer import harmonize  # numpy only, but training's

    melody = tune_events(tune)
    played = [run(model, tune, melody, seed=s, chord_lock=chord_lock) for s in seeds]
    ai_notes = [int(np.sum(p["role"] == ROLE_AI)) for p in played]

    def mean_of(metric: Callable[[np.ndarray], float], streams: list[np.ndarray]) -> float:
        return _nanmean([metric(p) for p in streams])

    rule = merged(melody, harmonize(melody, tune.root, tune.minor, tune.bar_beats))

    def density_rate(density: float) -> float:  # AI onsets per beat at another Density
        runs = [
            run(model, tune, melody, seed=s, density=density, chord_lock=chord_lock)
            for s in seeds[:density_seeds]
        ]
        return mean_of(metrics.onsets_per_beat, runs)

    low, high = density_rate(DENSITY_LOW), density_rate(DENSITY_HIGH)
    calls = call_response_input(tune)
    bar_gap = tune.bar_beats  # phrase split for the metrics: longer than any rest in a tune
    answers = [
        run(
            model,
            tune,
            calls,
            seed=s,
            mode="call_response",
            chord_lock=chord_lock,
            end_beat=float(metrics.note_ends(calls).max()) + PHRASE_BARS * tune.bar_beats,
        )
        for s in seeds
    ]
    delays = np.concatenate([metrics.answer_delays(a, phrase_gap=bar_gap) for a in answers])
    lengths = np.concatenate([metrics.answer_lengths(a, phrase_gap=bar_gap) for a in answers])
    figures = {
        "seed_cv": _cv(ai_notes),
        "coverage": mean_of(metrics.coverage, played),
        "chord_fit": mean_of(metrics.chord_fit, played),
        "above": mean_of(metrics.above, played),
        "doubling": mean_of(metrics.doubling, played),
        "onsets_per_beat": mean_of(metrics.onsets_per_beat, played),
        "rule_chord_fit": metrics.chord_fit(rule),
        "rule_coverage": metrics.coverage(rule),
        "density_low": low,
        "density_high": high,
        "density_ratio": high / low if low > 0 else (math.inf if high > 0 else math.nan),
        "overlap": mean_of(metrics.overlap, answers),
        "answer_delay_beats": _nanmedian(delays),
        "answer_length": _nanmedian(lengths),
        "answered": float(np.mean(~np.isnan(delays))) if len(delays) else math.nan,
    }
    return TuneResult(
        tune, ai_notes, figures, {"accompany": played[0], "call_response": answers[0]}
    )


def summarize(values: Sequence[float], worst: Callable[[np.ndarray], float]) -> tuple[float, float]:
    """(median, worst) over tunes, nan ignored."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if len(arr) == 0:
        return math.nan, math.nan
    return float(np.median(arr)), worst(arr)


# Columns of the per-tune table: (header, figure key, width).
COLUMNS = (
    ("cv", "seed_cv", 5),
    ("cover", "coverage", 5),
    ("fit", "chord_fit", 5),
    ("above", "above", 5),
    ("dbl", "doubling", 5),
    ("on/b", "onsets_per_beat", 5),
    ("r.fit", "rule_chord_fit", 5),
    ("r.cov", "rule_coverage", 5),
    ("d.1", "density_low", 5),
    ("d.9", "density_high", 5),
    ("ratio", "density_ratio", 5),
    ("ovl", "overlap", 5),
    ("delay", "answer_delay_beats", 5),
    ("len", "answer_length", 5),
    ("ans", "answered", 5),
)


def _fmt(value: float, width: int) -> str:
    return f"{value:{width}.2f}" if math.isfinite(value) else f"{value!s:>{width}}"


def print_table(results: Sequence[TuneResult]) -> None:
    name_w = max(len(r.tune.name) for r in results)
    notes = [" ".join(map(str, r.ai_notes)) for r in results]
    notes_w = max(len("ai notes/seed"), *map(len, notes))
    head = " ".join(f"{h:>{w}}" for h, _, w in COLUMNS)
    print(f"{'tune':<{name_w}} {'ai notes/seed':<{notes_w}} {head}")
    for r, n in zip(results, notes, strict=True):
        cells = " ".join(_fmt(r.figures[k], w) for _, k, w in COLUMNS)
        print(f"{r.tune.name:<{name_w}} {n:<{notes_w}} {cells}")
    for label, pick in (("median", 0), ("worst", 1)):
        cells = " ".join(
            _fmt(summarize([r.figures[k] for r in results], FIGURES[k])[pick], w)
            for _, k, w in COLUMNS
        )
        print(f"{label:<{name_w}} {'':<{notes_w}} {cells}")


def _load(model_file: Path | None, style: str | None) -> LoadedModel:
    return load_model(model_file if model_file is not None else resolve_style(style or "default"))


def _pick_tunes(text: str) -> list[Tune]:
    if text == "all":
        return list(TUNES)
    by_name = {t.name: t for t in TUNES}
    unknown = [n for n in text.split(",") if n not in by_name]
    if unknown:
        raise ValueError(f"no tune {', '.join(unknown)} (tunes: {', '.join(by_name)})")
    return [by_name[n] for n in text.split(",")]


def _model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, metavar="FILE", help="a model file")
    group.add_argument("--style", metavar="NAME", help="a style name (default: default)")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkjam.bench music", description=__doc__)
    _model_args(parser)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per tune (default 4)")
    parser.add_argument(
        "--density-seeds", type=int, default=1, help="seeds at Density 0.1 and 0.9 (default 1)"
    )
    parser.add_argument("--tunes", default="all", help="'all' or names, comma-separated")
    parser.add_argument("--png", type=Path, metavar="DIR", help="piano rolls of seed 0 here")
    parser.add_argument(
        "--no-chord-lock",
        action="store_true",
        help="the model's own harmony: turn off the decoder's chord lock (on in lkjam accompany)",
    )
    args = parser.parse_args(list(argv))
    try:
        tunes = _pick_tunes(args.tunes)
        model = _load(args.model, args.style)
    except (ValueError, ModelFileError) as exc:
        print(f"bench music: {exc}", file=sys.stderr)
        return 2
    seeds = list(range(max(1, args.seeds)))
    density_seeds = min(max(1, args.density_seeds), len(seeds))
    print(
        f"model {model.path.name} (style {model.meta.style}, own density "
        f"{model.meta.density:.2f} onset times/beat x {model.meta.voices:.2f} notes); "
        f"{len(tunes)} tunes, seeds {seeds[0]}..{seeds[-1]}"
        f", Density 0.1/0.9 with {density_seeds} seed(s); temperature {TEMPERATURE}, "
        f"top-p {TOP_P}, chord lock {'on' if not args.no_chord_lock else 'off'}"
    )
    started = time.perf_counter()
    chord_lock = not args.no_chord_lock
    results = [measure_tune(model, t, seeds, density_seeds, chord_lock) for t in tunes]
    print_table(results)
    print(
        "targets (issue 9): cv <= 0.2, cover >= 0.9, fit >= 0.9 and >= r.fit - 0.05, "
        "above <= 0.1, dbl <= 0.05, ratio >= 3, ovl <= 0.05, delay within 1 beat"
    )
    if args.png is not None:
        _draw(results, args.png, model.path.name)
        print(f"piano rolls: {args.png}")
    medians = {k: summarize([r.figures[k] for r in results], w)[0] for k, w in FIGURES.items()}
    worst = {
        f"worst_{k}": summarize([r.figures[k] for r in results], FIGURES[k])[1]
        for k in ("seed_cv", "coverage", "chord_fit", "above", "density_ratio", "overlap")
    }
    total = {"ai_notes": float(np.mean([n for r in results for n in r.ai_notes]))}
    line = {**total, **medians, **worst, "seconds": time.perf_counter() - started}
    print(
        f"music model={model.path.name} tunes={len(tunes)} seeds={len(seeds)} "
        f"chord_lock={int(chord_lock)} " + " ".join(f"{k}={v:.3f}" for k, v in line.items())
    )
    return 0


def _draw(results: Sequence[TuneResult], folder: Path, model_name: str) -> None:
    from lkjam.pianoroll import PianoRollError, draw

    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        t = r.tune
        for mode, events in r.played.items():
            suffix = "" if mode == "accompany" else f"-{mode}"
            try:
                draw(
                    events,
                    folder / f"{t.name}{suffix}.png",
                    numerator=t.numerator,
                    denominator=t.denominator,
                    title=f"{t.title}, {mode} by {model_name} (seed 0)",
                )
            except PianoRollError as exc:
                print(f"bench music: {exc}", file=sys.stderr)
                return


# ---- style -----------------------------------------------------------------------------


STYLE_FIGURES = ("onsets_per_beat", "chord_fit", "above", "coverage")


def accompaniment_figures(events: np.ndarray) -> dict[str, float]:
    """STYLE_FIGURES of one stream (input + AI)."""
    return {
        "onsets_per_beat": metrics.onsets_per_beat(events),
        "chord_fit": metrics.chord_fit(events),
        "above": metrics.above(events),
        "coverage": metrics.coverage(events),
    }


def _means(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: _nanmean([r[k] for r in rows]) for k in STYLE_FIGURES}


def style_file_figures(paths: Sequence[Path]) -> dict[str, float]:
    """The style files' own accompaniment (every non-human track as the AI), means over files."""
    from lkjam.engine.midi_file import read_midi

    rows = []
    for path in paths:
        events = read_midi(path).events.copy()
        events["role"][events["role"] == ROLE_CLIP] = ROLE_AI
        rows.append(accompaniment_figures(events))
    return _means(rows)


def measure_style(
    model: LoadedModel, seeds: Sequence[int], png: Path | None = None
) -> dict[str, dict[str, float]]:
    """Per tune name: STYLE_FIGURES of the model accompanying it at Density 0.5, means over
    seeds (seed 0 drawn into `png` if given)."""
    out = {}
    for tune in TUNES:
        melody = tune_events(tune)
        played = [run(model, tune, melody, seed=s) for s in seeds]
        out[tune.name] = _means([accompaniment_figures(p) for p in played])
        if png is not None:
            _draw([TuneResult(tune, [], {}, {"accompany": played[0]})], png, model.path.name)
    if png is not None:
        print(f"piano rolls: {png}")
    return out


def _train_style(folder: Path, out: Path, base: Path | None, minutes: float | None) -> float:
    """Run `lkjam train --style` on `folder` into `out`; its wall time in seconds, or nan if
    it failed. Checkpoints and the parse cache go next to `out`: nothing is left behind in
    the user's styles or cache."""
    work = out.parent
    command = [
        sys.executable, "-m", "lkjam", "train", "--style", "benchstyle", str(folder),
        "--out", str(out), "--workdir", str(work / "work"), "--cache", str(work / "cache"),
        "--fresh", "--no-progress",
    ]  # fmt: skip
    if base is not None:
        command += ["--base", str(base)]
    if minutes is not None:
        command += ["--minutes", str(minutes)]
    print("$ lkjam " + " ".join(command[3:]), flush=True)
    started = time.perf_counter()
    code = subprocess.run(command, check=False).returncode
    if code != 0 or not out.exists():
        print(f"bench style: lkjam train failed (exit {code})", file=sys.stderr)
        return math.nan
    return time.perf_counter() - started


def main_style(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkjam.bench style", description=__doc__)
    parser.add_argument("--texture", choices=TEXTURES, default="block")
    parser.add_argument("--files", type=int, default=100, help="style files (default 100)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per tune (default 2)")
    parser.add_argument("--base", type=Path, help="model to fine-tune (default: the shipped one)")
    parser.add_argument("--minutes", type=float, help="training time cap (default: the preset's)")
    parser.add_argument(
        "--trained", type=Path, metavar="FILE", help="measure this style model; don't train"
    )
    parser.add_argument("--png", type=Path, metavar="DIR", help="piano rolls of seed 0 here")
    args = parser.parse_args(list(argv))
    seeds = list(range(max(1, args.seeds)))
    with tempfile.TemporaryDirectory(prefix="lkjam-bench-style-") as tmp:
        root = Path(tmp)
        own = style_file_figures(write_style(root / "midi", args.texture, args.files))
        out, train_s = args.trained, math.nan
        if out is None:
            out = root / "benchstyle.safetensors"
            train_s = _train_style(root / "midi", out, args.base, args.minutes)
            if math.isnan(train_s):
                return 1
        try:
            model = load_model(out)
        except ModelFileError as exc:
            print(f"bench style: {exc}", file=sys.stderr)
            return 2
        per_tune = measure_style(model, seeds, args.png)
    print(f"{'tune':<18} {'on/b':>5} {'fit':>5} {'above':>5} {'cover':>5}")  # STYLE_FIGURES
    for name, row in per_tune.items():
        print(f"{name:<18} " + " ".join(_fmt(row[k], 5) for k in STYLE_FIGURES))
    median = {k: _nanmedian([row[k] for row in per_tune.values()]) for k in STYLE_FIGURES}
    ratio = median["onsets_per_beat"] / own["onsets_per_beat"]
    trained = (
        "given, not trained" if args.trained else f"trained in {train_s:.0f} s (target <= 300 s)"
    )
    print(
        f"style files ({args.texture}, {args.files}): {own['onsets_per_beat']:.2f} onsets/beat, "
        f"chord_fit {own['chord_fit']:.3f}, above {own['above']:.3f}; {trained}\n"
        f"style {out.name} on the tunes (medians): onsets/beat "
        f"{median['onsets_per_beat']:.2f} = {ratio:.2f}x its files' (target 0.75..1.25), "
        f"chord_fit {median['chord_fit']:.3f} (target >= 0.9), above {median['above']:.3f} "
        f"(target <= 0.1), coverage {median['coverage']:.3f}"
    )
    line = {
        "train_s": train_s,
        "own_onsets_per_beat": own["onsets_per_beat"],
        "onsets_ratio": ratio,
        **median,
        "own_chord_fit": own["chord_fit"],
    }
    print(
        f"style texture={args.texture} files={args.files} seeds={len(seeds)} "
        + " ".join(f"{k}={v:.3f}" for k, v in line.items())
    )
    return 0
