"""Chords for folk tunes that have no chord symbols: one diatonic triad per span."""

from __future__ import annotations

import numpy as np


def _triads(root: int, minor: bool) -> list[tuple[int, ...]]:
    """Diatonic triads of a key, most common first (the order is a prior)."""
    if minor:  # i, V (harmonic minor), iv, VI, III, VII
        steps = [(0, 3, 7), (7, 11, 2), (5, 8, 0), (8, 0, 3), (3, 7, 10), (10, 2, 5)]
    else:  # I, V, IV, vi, ii, iii
        steps = [(0, 4, 7), (7, 11, 2), (5, 9, 0), (9, 0, 4), (2, 5, 9), (4, 7, 11)]
    return [tuple((root + s) % 12 for s in chord) for chord in steps]


def infer_chords(
    beat: np.ndarray,
    dur: np.ndarray,
    pitch: np.ndarray,
    root: int,
    minor: bool,
    bar_beats: float,
    seg: float | None = None,
) -> list[tuple[float, float, tuple[int, ...]]]:
    """One diatonic triad per `seg` beats (default: half a bar, a bar in short meters) that
    best covers the melody.

    Returns (start, end, pitch classes with the root first). Each melody note votes for the
    triads containing its pitch class with its overlap in beats (double on the segment's
    first beat); common chords get a small prior, and the last segment prefers the tonic.
    """
    if len(beat) == 0:
        return []
    if seg is None:
        seg = bar_beats / 2 if bar_beats >= 4 else bar_beats
    end = float(np.max(beat + dur))
    chords = _triads(root, minor)
    prior = np.array([0.3, 0.2, 0.15, 0.05, 0.0, -0.05])
    out: list[tuple[float, float, tuple[int, ...]]] = []
    starts = np.arange(0.0, end, seg)
    for i, t0 in enumerate(starts):
        t1 = t0 + seg
        overlap = np.clip(np.minimum(beat + dur, t1) - np.maximum(beat, t0), 0.0, None)
        weight = overlap * np.where(np.isclose(beat, t0), 2.0, 1.0)
        if weight.sum() <= 0:
            if out:  # a rest: the previous chord rings on
                out[-1] = (out[-1][0], float(t1), out[-1][2])
            continue
        pcs = pitch % 12
        score = (
            np.array([np.sum(np.where(np.isin(pcs, c), weight, -0.5 * weight)) for c in chords])
            + prior * seg
        )
        if i == len(starts) - 1:
            score[0] += seg
        out.append((float(t0), float(t1), chords[int(np.argmax(score))]))
    return out
