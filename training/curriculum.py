"""The curriculum: which roles each piece plays in each stage, augmentation, and windows.

A *view* turns a `Piece` (voices) into an event stream (roles) for one training example:
- `harmonize`: the melody is human, every other voice ai;
- `accompany`: as harmonize, and sometimes the bass line is a clip (known ahead, as a
  playing Live clip would be). The human is always the melody: the AI's part is the
  accompaniment under it, never another melody;
- `call_response`: the melody is cut into 2- or 4-bar phrases that alternate human, ai,
  human, ...; the other voices are either dropped or become clip context.

A folk tune's chords are realized in a comping texture drawn per example
(`lkjam.training.textures`) before the view is applied.

Every example is labelled with the conditioning of docs/event-stream.md (encoding v2), so
that the model is told what it is asked to do, as the engine tells it live:
- the mode: call and response for the `call_response` view, accompany otherwise;
- the density (AI onsets per beat) and voices (AI notes per onset time): in accompany mode,
  those of the AI notes in the next `CONDITION_BARS` bars from each event, which is what the
  engine's Density control asks for; in call and response, those of the AI's turns over the
  whole example, constant, since silence while the human plays is the mode's own rule.

A stage is a mixture of (source, view, weight). Stage 3 keeps some stage 1 and 2 data
so that the model does not forget them.

Features and targets come from `lkjam._step.encode` / `targets`, the same C++ code the
engine runs. They are computed per window after augmentation (about 0.5 µs per event,
around 1% of a training step), so every window gets fresh transposition and timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from lkjam.training.pieces import ROLE_AI, ROLE_CLIP, ROLE_HUMAN, Piece, make_piece, synth_velocity
from lkjam.training.textures import TEXTURES, realize

from lkjam import _step

View = Callable[[Piece, np.random.Generator], np.ndarray]  # -> roles uint8[N] (-1 = drop)

DROP = 255  # a role value meaning "leave this note out"
CONDITION_BARS = 2  # accompany: density and voices are those of the AI's next 2 bars


def harmonize(piece: Piece, rng: np.random.Generator) -> np.ndarray:
    return np.where(piece.voice == 0, ROLE_HUMAN, ROLE_AI).astype(np.uint8)


def accompany(piece: Piece, rng: np.random.Generator) -> np.ndarray:
    roles = harmonize(piece, rng)
    bass = piece.voices - 1
    if piece.voices >= 3 and rng.random() < 0.5:
        roles[piece.voice == bass] = ROLE_CLIP
    return roles


def call_response(piece: Piece, rng: np.random.Generator) -> np.ndarray:
    """Melody phrases alternate human / ai every 2 or 4 bars (the human starts)."""
    phrase = piece.bar_beats * int(rng.choice([2, 4]))
    melody = piece.voice == 0
    ai_turn = (np.floor(piece.events["beat"] / phrase).astype(np.int64) % 2) == 1
    roles = np.where(ai_turn, ROLE_AI, ROLE_HUMAN).astype(np.uint8)
    context = ROLE_CLIP if rng.random() < 0.5 else DROP
    roles[~melody] = context
    return roles


VIEWS: dict[str, View] = {
    "harmonize": harmonize,
    "accompany": accompany,
    "call_response": call_response,
}
VIEW_MODES = {
    "harmonize": _step.MODE_ACCOMPANY,
    "accompany": _step.MODE_ACCOMPANY,
    "call_response": _step.MODE_CALL_RESPONSE,
}


def with_accompaniment(piece: Piece, rng: np.random.Generator) -> Piece:
    """A folk tune with its chords realized in a random texture (voices 1, 2); other
    pieces as they are."""
    if not len(piece.chord_spans):
        return piece
    melody = piece.events[piece.voice == 0]
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    notes = realize(piece.chord_spans, melody, piece.bar_beats, texture)
    extra = np.array(notes, dtype=np.float64).reshape(-1, 4)
    beat = np.concatenate([melody["beat"], extra[:, 0]])
    voice = np.concatenate([np.zeros(len(melody)), extra[:, 3]]).astype(np.uint8)
    return make_piece(
        piece.name,
        beat,
        np.concatenate([melody["dur"], extra[:, 1]]).astype(np.float32),
        np.concatenate([melody["pitch"], extra[:, 2]]).astype(np.uint8),
        synth_velocity(beat, voice, piece.bar_beats),
        voice,
        numerator=piece.numerator,
        denominator=piece.denominator,
        key_root=piece.key_root,
        key_minor=piece.key_minor,
        chords=piece.chords,
    )


def ai_rates(ai_beats: np.ndarray, span: float) -> tuple[float, float]:
    """(AI onsets per beat, AI notes per onset time) of sorted AI onsets over `span` beats."""
    if not len(ai_beats) or span <= 0:
        return 0.0, 0.0
    times = len(np.unique(np.round(ai_beats, 4)))
    return len(ai_beats) / span, len(ai_beats) / times


def conditioning(events: np.ndarray, mode: int, bar_beats: float) -> np.ndarray:
    """(N, 3) rows of (mode, density, voices) for a sorted stream: see the module doc."""
    beats = events["beat"]
    ai = np.sort(beats[events["role"] == ROLE_AI])
    rows = np.zeros((len(events), 3), dtype=np.float64)
    rows[:, 0] = mode
    if mode == _step.MODE_CALL_RESPONSE:
        # Rates over the bars the AI plays in (its turns), not over the human's turns.
        turn_bars = len(np.unique(np.floor(ai / bar_beats)))
        rows[:, 1:] = ai_rates(ai, turn_bars * bar_beats)
        return rows
    window = CONDITION_BARS * bar_beats
    lo = np.searchsorted(ai, beats, side="left")
    hi = np.searchsorted(ai, beats + window, side="left")
    count = hi - lo
    rows[:, 1] = count / window
    # Distinct onset times in each window, from a running count of new times.
    new_time = np.concatenate([[1], (np.diff(ai) > 1e-4).astype(np.int64)]) if len(ai) else ai
    distinct = np.concatenate([[0], np.cumsum(new_time)])
    times = distinct[hi] - distinct[lo]
    rows[:, 2] = np.where(times > 0, count / np.maximum(times, 1), 0.0)
    return rows


# stage name -> [(source, view, weight)]; "midi" is a user's folder (custom styles).
STAGES: dict[str, list[tuple[str, str, float]]] = {
    "harmonize": [("chorales", "harmonize", 0.5), ("folk", "harmonize", 0.5)],
    "interplay": [
        ("chamber", "accompany", 0.35),
        ("chorales", "accompany", 0.3),
        ("folk", "accompany", 0.35),
    ],
    "call_response": [
        ("folk", "call_response", 0.2),
        ("chorales", "call_response", 0.1),
        ("chamber", "call_response", 0.05),
        # Earlier stages, against forgetting: with the mode in the input the two regimes no
        # longer contradict each other, but the accompaniment must stay in practice.
        ("chorales", "harmonize", 0.2),
        ("folk", "harmonize", 0.2),
        ("chamber", "accompany", 0.1),
        ("chorales", "accompany", 0.15),
    ],
    # A style's accompaniment tracks are what its AI plays; its melodies also train answers.
    "style": [("midi", "accompany", 0.8), ("midi", "call_response", 0.2)],
}
CURRICULUM = ("harmonize", "interplay", "call_response")


@dataclass(frozen=True)
class Augment:
    transpose: int = 6  # semitones: uniform in -transpose .. transpose-1, kept in 0..127
    jitter: float = 0.03  # beats: largest standard deviation of human onset jitter
    velocity: float = 8.0  # standard deviation of per-note velocity noise
    scale_known: float = 0.7  # probability that the key / scale is given (Live 12 scale)


NO_AUGMENT = Augment(transpose=0, jitter=0.0, velocity=0.0, scale_known=1.0)


@dataclass
class Example:
    """One stream ready for the model: events plus its meter, scale and conditioning."""

    events: np.ndarray  # EVENT_DTYPE, sorted
    numerator: int
    denominator: int
    scale_root: int  # -1 = unknown
    scale_intervals: tuple[int, ...]
    conditioning: np.ndarray  # (N, 3) float64: mode, density, voices per event

    @property
    def mode(self) -> int:
        return int(self.conditioning[0, 0]) if len(self.conditioning) else _step.MODE_ACCOMPANY

    def encode(self) -> np.ndarray:
        """(N, FEATURES) float32, from a reset state."""
        return _step.encode(
            self.events,
            self.numerator,
            self.denominator,
            self.scale_root,
            list(self.scale_intervals),
            self.conditioning,
        )


def make_example(piece: Piece, view: str, rng: np.random.Generator, aug: Augment) -> Example:
    """Realize chords, apply a view, then augmentation, and return the labelled stream."""
    piece = with_accompaniment(piece, rng)
    roles = VIEWS[view](piece, rng)
    keep = roles != DROP
    ev = piece.events[keep].copy()
    ev["role"] = roles[keep]
    shift = 0
    if aug.transpose:
        lo = max(-aug.transpose, -int(ev["pitch"].min()))
        hi = min(aug.transpose - 1, 127 - int(ev["pitch"].max()))
        shift = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        ev["pitch"] = (ev["pitch"].astype(np.int16) + shift).astype(np.uint8)
    if aug.velocity:
        gain = rng.uniform(0.75, 1.25)
        vel = ev["vel"] * gain + rng.normal(0.0, aug.velocity, len(ev))
        ev["vel"] = np.clip(np.rint(vel), 1, 127).astype(np.uint8)
    if aug.jitter:
        # Humans play off the grid; clips are quantised in Live and the AI's own notes
        # come from the shift bins, so only human onsets move.
        human = ev["role"] == ROLE_HUMAN
        sd = rng.uniform(0.0, aug.jitter)
        ev["beat"][human] = np.maximum(ev["beat"][human] + rng.normal(0.0, sd, human.sum()), 0.0)
    order = np.lexsort((ev["pitch"], ev["role"], ev["beat"]))  # stream order (event-stream.md)
    known = piece.key_root >= 0 and rng.random() < aug.scale_known
    return Example(
        events=ev[order],
        numerator=piece.numerator,
        denominator=piece.denominator,
        scale_root=(piece.key_root + shift) % 12 if known else -1,
        scale_intervals=piece.scale_intervals if known else (),
        conditioning=conditioning(ev[order], VIEW_MODES[view], piece.bar_beats),
    )


def window_arrays(ex: Example, start: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features (T, F) and targets {head: (T,)} of events [start, start + length), T <= length.

    Targets look past the window: the stream is encoded up to WAIT_HORIZON beats after the
    window's last event, so the last rows still see their next AI event."""
    ev = ex.events
    stop = min(start + length, len(ev))
    horizon = ev["beat"][stop - 1] + _step.WAIT_HORIZON
    end = int(np.searchsorted(ev["beat"], horizon, side="right"))
    sub = Example(
        ev[start:end],
        ex.numerator,
        ex.denominator,
        ex.scale_root,
        ex.scale_intervals,
        ex.conditioning[start:end],
    )
    feats = sub.encode()[: stop - start]
    tg = {k: v[: stop - start] for k, v in _step.targets(sub.events).items()}
    return feats, tg


HEADS = ("time", "pitch", "velocity", "duration")


@dataclass
class Batch:
    features: np.ndarray  # (B, T, F) float32, zero padding
    targets: dict[str, np.ndarray]  # head -> (B, T) int64, -1 = not trained (padding, WAIT)

    @property
    def events(self) -> int:
        return int((self.targets["time"] >= 0).sum())


class Mixture:
    """Samples training windows from a stage's mixture of (source, view, weight)."""

    def __init__(
        self,
        stage: str,
        pieces: Mapping[str, Sequence[Piece]],
        aug: Augment,
    ) -> None:
        entries = [(s, v, w) for s, v, w in STAGES[stage] if pieces.get(s)]
        if not entries:
            raise ValueError(f"stage {stage!r}: none of its sources has pieces")
        self.entries = entries
        weights = np.array([w for _, _, w in entries])
        self.weights = weights / weights.sum()
        self.pieces = pieces
        self.aug = aug
        # Longer pieces hold more windows: sample pieces by event count.
        self.piece_p = {
            s: np.array([len(p.events) for p in pieces[s]], dtype=np.float64) for s, _, _ in entries
        }
        for s in self.piece_p:
            self.piece_p[s] /= self.piece_p[s].sum()

    def batch(self, rng: np.random.Generator, size: int, length: int) -> Batch:
        feats = np.zeros((size, length, _step.FEATURES), dtype=np.float32)
        tg = {h: np.full((size, length), -1, dtype=np.int64) for h in HEADS}
        for b in range(size):
            source, view, _ = self.entries[int(rng.choice(len(self.entries), p=self.weights))]
            piece = self.pieces[source][
                int(rng.choice(len(self.pieces[source]), p=self.piece_p[source]))
            ]
            ex = make_example(piece, view, rng, self.aug)
            start = int(rng.integers(0, max(1, len(ex.events) - length + 1)))
            f, t = window_arrays(ex, start, length)
            feats[b, : len(f)] = f
            for h in HEADS:
                tg[h][b, : len(f)] = t[h]
        return Batch(feats, tg)


def accompaniment_rates(
    stage: str, pieces: Mapping[str, Sequence[Piece]], rng: np.random.Generator, count: int = 300
) -> tuple[float, float]:
    """Median (AI onsets per beat, AI notes per onset time) of a stage's accompany-mode
    examples: what the model plays when the engine asks for its own density."""
    entries = [
        (s, v)
        for s, v, _ in STAGES[stage]
        if pieces.get(s) and VIEW_MODES[v] == _step.MODE_ACCOMPANY
    ]
    rates = []
    for k in range(count if entries else 0):
        source, view = entries[k % len(entries)]
        group = pieces[source]
        ex = make_example(group[int(rng.integers(len(group)))], view, rng, NO_AUGMENT)
        beats = ex.events["beat"]
        ai = beats[ex.events["role"] == ROLE_AI]
        if len(ai):
            rates.append(ai_rates(ai, float(beats[-1] - beats[0]) or 1.0))
    if not rates:
        return 2.0, 2.0
    density, voices = np.median(np.array(rates), axis=0)
    return round(float(density), 3), round(float(voices), 3)


def held_out_examples(
    stage: str, pieces: Mapping[str, Sequence[Piece]], seed: int, per_source: int
) -> list[Example]:
    """Fixed held-out streams for a stage (whole pieces, no augmentation, seeded views)."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for source, view, _ in STAGES[stage]:
        for piece in list(pieces.get(source, ()))[:per_source]:
            out.append(make_example(piece, view, rng, NO_AUGMENT))
    return out
