"""Comping textures: a folk tune's chords played as an accompanist would, under the melody.

A chord span is a row of `Piece.chord_spans`: (start beat, end beat, root pitch class,
pitch-class bitmask). `realize` turns the spans into notes in one texture, drawn afresh for
every training example, so the model sees the same tune comped in several ways and the
conditioning (AI onsets per beat, notes per onset) tells it which one is asked for.

Voicings sit under the melody: the upper notes are the chord tones in close position below
the lowest melody note of the span (and above a floor, so they stay a chord, not a rumble);
the bass is the root in octave 2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TEXTURES = ("block", "half", "pad", "oompah", "arpeggio", "alberti")
UPPER_VOICE, BASS_VOICE = 1, 2  # voice numbers of the realized notes (melody is voice 0)
_CEILING = 67  # G4: the upper notes' highest pitch, melody allowing
_FLOOR = 48  # C3: no upper note below this
_BASS = 36  # C2: the bass root's octave

Note = tuple[float, float, int, int]  # (beat, dur, pitch, voice)


def chord_pcs(root: int, mask: int) -> list[int]:
    """The chord's pitch classes, root first, then upwards from it."""
    return [(root + i) % 12 for i in range(12) if mask >> ((root + i) % 12) & 1]


def close_voicing(pcs: list[int], melody_low: int) -> list[int]:
    """Chord tones in close position, top note at least 2 semitones under the melody."""
    ceiling = max(_FLOOR + 11, min(_CEILING, melody_low - 2))
    notes = sorted(ceiling - (ceiling - pc) % 12 for pc in pcs)
    return [p + 12 if p < _FLOOR else p for p in notes]


def _beats(t0: float, t1: float, step: float) -> list[float]:
    return [float(b) for b in np.arange(t0, t1 - 1e-6, step)]


def _strikes(t0: float, t1: float, bar_beats: float) -> list[float]:
    """The span's start and every downbeat inside it."""
    first_bar = np.ceil(t0 / bar_beats - 1e-9) * bar_beats
    return [t0] + [b for b in _beats(first_bar, t1, bar_beats) if b > t0 + 1e-6]


def _held(times: list[float], t1: float) -> list[tuple[float, float]]:
    """(onset, duration) for onsets held until the next one (the last until t1)."""
    return [(t, (times[i + 1] if i + 1 < len(times) else t1) - t) for i, t in enumerate(times)]


def _struck(times: list[float], t1: float, upper: list[int], bass: int) -> list[Note]:
    """Chord and bass struck at each of `times`, held until the next (the last until t1)."""
    out: list[Note] = []
    for t, d in _held(times, t1):
        out.append((t, d, bass, BASS_VOICE))
        out += [(t, d, p, UPPER_VOICE) for p in upper]
    return out


def _oompah(t0: float, t1: float, bar: float, upper: list[int], bass: int) -> list[Note]:
    """Bass on the bar's strong beat(s), the chord on the others (a waltz in 3/4)."""
    out: list[Note] = []
    strong = 3.0 if bar == 3.0 else 2.0
    for t in _beats(t0, t1, 1.0):
        d = min(1.0, t1 - t)
        if (t % bar) % strong < 1e-6:
            out.append((t, d, bass, BASS_VOICE))
        else:
            out += [(t, d, p, UPPER_VOICE) for p in upper]
    return out


def _broken(t0: float, t1: float, order: list[int]) -> list[Note]:
    """One note per eighth, cycling through `order` from each span's start."""
    times = _beats(t0, t1, 0.5)
    return [(t, min(0.5, t1 - t), order[i % len(order)], UPPER_VOICE) for i, t in enumerate(times)]


def _arpeggio(t0: float, t1: float, bar: float, upper: list[int], bass: int) -> list[Note]:
    low = upper[0] - 12 if upper[0] - 12 >= _BASS + 7 else upper[0]
    rising = [low] + [p for p in upper if p > low]
    return _broken(t0, t1, rising + rising[-2:0:-1])


def _alberti(t0: float, t1: float, bar: float, upper: list[int], bass: int) -> list[Note]:
    low, mid, high = upper[0], upper[len(upper) // 2], upper[-1]
    return _broken(t0, t1, [low, high, mid, high])


_REALIZERS: dict[str, Callable[[float, float, float, list[int], int], list[Note]]] = {
    "block": lambda t0, t1, bar, up, bass: _struck(_beats(t0, t1, 1.0), t1, up, bass),
    "half": lambda t0, t1, bar, up, bass: _struck(
        _beats(t0, t1, 2.0 if bar != 3 else 3.0), t1, up, bass
    ),
    "pad": lambda t0, t1, bar, up, bass: _struck(_strikes(t0, t1, bar), t1, up, bass),
    "oompah": _oompah,
    "arpeggio": _arpeggio,
    "alberti": _alberti,
}


def realize(spans: np.ndarray, melody: np.ndarray, bar_beats: float, texture: str) -> list[Note]:
    """Notes of `spans` (K, 4) in `texture` under `melody` (EVENT_DTYPE of the melody notes)."""
    make = _REALIZERS[texture]
    starts = melody["beat"]
    ends = starts + melody["dur"]
    out: list[Note] = []
    for t0, t1, root, mask in spans:
        inside = (starts < t1) & (ends > t0)
        low = int(melody["pitch"][inside].min()) if inside.any() else 72
        pcs = chord_pcs(int(root), int(mask))
        bass = _BASS + (int(root) - _BASS) % 12
        out += make(float(t0), float(t1), bar_beats, close_voicing(pcs, low), bass)
    return out
