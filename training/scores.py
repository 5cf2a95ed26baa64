"""Parsed music21 scores become pieces.

Parts become voices ordered by mean pitch. A folk tune keeps only its melody (voice 0) and
its chords as spans, realized per example (training.textures): from the tune's chord
symbols where it has them (`chords == "symbols"`); the corpus has almost none, so otherwise
they are inferred by a simple diatonic rule (`chords == "inferred"`, training.chords).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lkjam.training.chords import infer_chords
from lkjam.training.pieces import (
    CHORDS_INFERRED,
    CHORDS_NONE,
    CHORDS_SYMBOLS,
    Piece,
    make_piece,
    synth_velocity,
)


@dataclass
class _Notes:
    """Notes being collected for one piece (parallel lists)."""

    beat: list[float] = field(default_factory=list)
    dur: list[float] = field(default_factory=list)
    pitch: list[int] = field(default_factory=list)
    voice: list[int] = field(default_factory=list)

    def add(self, beat: float, dur: float, pitch: int, voice: int) -> None:
        if dur > 0 and 0 <= pitch <= 127:
            self.beat.append(beat)
            self.dur.append(dur)
            self.pitch.append(pitch)
            self.voice.append(voice)


def _score_meta(score: object) -> tuple[int, int, int, bool, float]:
    """(numerator, denominator, key root, minor, pickup shift in beats) of a music21 score."""
    from music21 import key, meter, stream

    s: stream.Score = score  # type: ignore[assignment]
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
    ks = s.recurse().getElementsByClass(key.KeySignature).first()
    root, minor = -1, False
    if isinstance(ks, key.Key):
        root, minor = ks.tonic.pitchClass, ks.mode == "minor"
    elif ks is not None:  # a bare signature: the major key has the same scale pitch classes
        root = ks.asKey("major").tonic.pitchClass
    # Bar 0 must start at beat 0 for the bar-phase features: shift pickups forward.
    first: stream.Stream = s.parts.first() or s
    m0 = first.getElementsByClass(stream.Measure).first()
    shift = float(m0.paddingLeft) if m0 is not None else 0.0
    return int(num), int(den), int(root), bool(minor), shift


def _part_notes(part: object, voice: int, shift: float, notes: _Notes) -> None:
    from music21 import stream

    p: stream.Stream = part  # type: ignore[assignment]
    for n in p.stripTies().flatten().notes:
        if n.duration.isGrace:
            continue
        for pt in n.pitches:
            notes.add(float(n.offset) + shift, float(n.quarterLength), int(pt.midi), voice)


def score_to_piece(name: str, score: object, *, folk: bool = False) -> Piece | None:
    """Convert a parsed music21 score. Parts become voices ordered by mean pitch (top =
    voice 0); for `folk` the single melody is voice 0 and chords are added. None if empty."""
    from music21 import harmony

    num, den, root, minor, shift = _score_meta(score)
    bar_beats = 4.0 * num / den
    parts = list(score.parts) or [score]  # type: ignore[attr-defined]
    per_part: list[_Notes] = []
    for part in parts:
        notes = _Notes()
        _part_notes(part, 0, shift, notes)
        if notes.beat:
            per_part.append(notes)
    if not per_part:
        return None
    per_part.sort(key=lambda n: -float(np.mean(n.pitch)))
    all_notes = _Notes()
    for v, notes in enumerate(per_part[:1] if folk else per_part):
        for b, d, p in zip(notes.beat, notes.dur, notes.pitch, strict=True):
            all_notes.add(b, d, p, v)
    chords_kind = CHORDS_NONE
    spans = np.zeros((0, 4))
    if folk:
        mel = per_part[0]
        beat, dur, pitch = np.array(mel.beat), np.array(mel.dur), np.array(mel.pitch)
        symbols = [
            c
            for c in score.flatten().getElementsByClass(harmony.ChordSymbol)  # type: ignore[attr-defined]
            if not isinstance(c, harmony.NoChord) and c.pitches
        ]
        end = float(np.max(beat + dur))
        if symbols:
            chords_kind = CHORDS_SYMBOLS
            starts = [float(c.offset) + shift for c in symbols] + [end]
            chords = [
                (starts[i], starts[i + 1], tuple(dict.fromkeys(p.pitchClass for p in c.pitches)))
                for i, c in enumerate(symbols)
                if starts[i + 1] > starts[i]
            ]
        else:
            if root < 0:
                return None
            chords_kind = CHORDS_INFERRED
            chords = infer_chords(beat, dur, pitch, root, minor, bar_beats)
        spans = np.array(
            [(t0, t1, pcs[0], sum(1 << pc for pc in set(pcs))) for t0, t1, pcs in chords],
            dtype=np.float64,
        ).reshape(-1, 4)
    beat_a = np.array(all_notes.beat, dtype=np.float64)
    voice_a = np.array(all_notes.voice, dtype=np.uint8)
    return make_piece(
        name,
        beat_a,
        np.array(all_notes.dur, dtype=np.float32),
        np.array(all_notes.pitch, dtype=np.uint8),
        synth_velocity(beat_a, voice_a, bar_beats),
        voice_a,
        numerator=num,
        denominator=den,
        key_root=root,
        key_minor=minor,
        chords=chords_kind,
        chord_spans=spans,
    )
