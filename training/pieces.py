"""A piece of music as the training data holds it: events, voices, meter, key and chords.

A `Piece` is one piece of music as a sorted `EVENT_DTYPE` array plus a parallel `voice`
array (0 = the melody / top part, higher = lower parts), its meter and its key. Roles
in `Piece.events` are the default assignment (voice 0 human, the rest ai); the training
curriculum reassigns them per stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lkjam.engine.events import EVENT_DTYPE
from lkjam.engine.keys import MAJOR, MINOR

from lkjam import _step

ROLE_HUMAN, ROLE_CLIP, ROLE_AI = _step.ROLE_HUMAN, _step.ROLE_CLIP, _step.ROLE_AI
CHORDS_NONE, CHORDS_SYMBOLS, CHORDS_INFERRED = "", "symbols", "inferred"
CHORD_KINDS = (CHORDS_NONE, CHORDS_SYMBOLS, CHORDS_INFERRED)


class DataError(ValueError):
    """No usable data: the message names the folder or source and why."""


@dataclass(frozen=True)
class Piece:
    name: str  # "<source>/<id>": stable, the held-out split hashes it
    events: np.ndarray  # EVENT_DTYPE[N], sorted by (beat, role, pitch); beats = quarter notes
    voice: np.ndarray  # uint8[N], parallel to events: 0 = melody / top part
    numerator: int = 4
    denominator: int = 4
    key_root: int = -1  # tonic pitch class, -1 = unknown
    key_minor: bool = False
    chords: str = CHORDS_NONE
    # Chords to realize per example (training.textures): rows of (start beat, end beat,
    # root pitch class, pitch-class bitmask); empty when the voices already hold the harmony.
    chord_spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    @property
    def bar_beats(self) -> float:
        return 4.0 * self.numerator / self.denominator

    @property
    def scale_intervals(self) -> tuple[int, ...]:
        if self.key_root < 0:
            return ()
        return MINOR if self.key_minor else MAJOR

    @property
    def voices(self) -> int:
        return int(self.voice.max()) + 1 if len(self.voice) else 0


def default_roles(voice: np.ndarray) -> np.ndarray:
    return np.where(voice == 0, ROLE_HUMAN, ROLE_AI).astype(np.uint8)


def make_piece(
    name: str,
    beat: np.ndarray,
    dur: np.ndarray,
    pitch: np.ndarray,
    vel: np.ndarray,
    voice: np.ndarray,
    roles: np.ndarray | None = None,
    **meta: object,
) -> Piece:
    """Build a sorted piece; duplicate onsets (same beat, role and pitch) keep the longest."""
    roles = default_roles(voice) if roles is None else roles
    ev = np.zeros(len(beat), dtype=EVENT_DTYPE)
    ev["beat"], ev["dur"], ev["pitch"], ev["vel"], ev["role"] = beat, dur, pitch, vel, roles
    # Longest first, then a stable sort by the stream order of docs/event-stream.md
    # (beat, role, pitch), so the first of each duplicate group is the one to keep.
    order = np.argsort(-ev["dur"], kind="stable")
    order = order[np.lexsort((ev["pitch"][order], ev["role"][order], ev["beat"][order]))]
    ev, vo = ev[order], np.asarray(voice, dtype=np.uint8)[order]
    key = np.stack([ev["beat"], ev["role"].astype(np.float64), ev["pitch"].astype(np.float64)])
    keep = np.ones(len(ev), dtype=bool)
    keep[1:] = np.any(key[:, 1:] != key[:, :-1], axis=0)
    return Piece(name=name, events=ev[keep], voice=vo[keep], **meta)  # type: ignore[arg-type]


def synth_velocity(beat: np.ndarray, voice: np.ndarray, bar_beats: float) -> np.ndarray:
    """Velocities for scores that have none: melody a little louder, metrical accents."""
    vel = np.where(voice == 0, 84, 72).astype(np.int32)
    on_beat = np.isclose(beat % 1.0, 0.0, atol=1e-3)
    downbeat = np.isclose(beat % bar_beats, 0.0, atol=1e-3)
    vel += np.where(downbeat, 10, np.where(on_beat, 4, -4))
    return np.clip(vel, 1, 127).astype(np.uint8)
