"""The decoding rule of docs/event-stream.md, "Real-time decoding", written once.

The engine (wall clock, `lkjam.engine.generator`), offline accompaniment and `lkjam eval`
(song time, `lkjam.engine.offline`) all drive a `Decoder`:

- `condition(mode, density, voices)` tells the model what it is asked to do (encoding v2):
  the mode, the Density control mapped onto AI onsets per beat around the model's own rate,
  and the notes per onset (chord size) asked for;
- `feed(...)` feeds a human or clip event; the plan is then stale;
- `plan()` draws the next plan ("AI note at beat b", or None for WAIT) when it is stale.
  With the chord lock on, its pitch is drawn among those that make a chord (a triad or
  seventh chord, `lkjam.metrics.CHORD_TYPES`) with what will sound at its beat, and
  inside the scale when the scale lock is on. In call and response, while `yielding`, an
  answer never starts over a human note: its onset waits for the human to let go;
- `commit()` plays the plan: it is fed as an ai event and returned, unless the runaway
  bound refuses it (more than `max_notes_per_beat` AI onsets in a beat), which counts as WAIT
  until the next input.

The caller decides *when* a plan is due: the engine when the wall clock reaches it,
offline when it comes before the next input event. That is the only difference.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from lkjam.engine.harmony import FITS_CHORD

from lkjam._step import MODE_ACCOMPANY, MODE_CALL_RESPONSE, ROLE_AI

MAX_NOTES_PER_BEAT = 8  # AI onsets in any one-beat window; more would be a runaway loop
DENSITY_RANGE = 3.0  # Density 0 / 1 asks for a third / three times the model's own rate
MODES = {"accompany": MODE_ACCOMPANY, "call_response": MODE_CALL_RESPONSE}
# (4096, 128) bool: pitch p completes the pitch-class set s to one inside a chord.
_CHORD_PITCHES = FITS_CHORD[np.arange(4096)[:, None] | (1 << (np.arange(128) % 12))[None, :]]


class Prediction(Protocol):
    wait: bool
    shift: float  # beats after the last fed event
    pitch: int
    velocity: int
    duration: float  # beats


class Planner(Protocol):
    """What a decoder needs of a step: `lkjam._step.Step` and the Markov baseline."""

    def reset(self) -> None: ...
    def seed(self, seed: int) -> None: ...
    def set_meter(self, numerator: int, denominator: int) -> None: ...
    def set_scale(self, root: int, intervals: list[int]) -> None: ...
    def clear_scale(self) -> None: ...
    def set_conditioning(self, mode: int, density: float, voices: float) -> None: ...
    def set_pitch_mask(self, mask: np.ndarray | None) -> None: ...
    def sample_pitch(self, temperature: float, top_p: float, allowed: np.ndarray) -> int: ...
    def sounding(self, beat: float) -> tuple[int, int]: ...
    def human_until(self, beat: float) -> float: ...
    def feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> None: ...
    def note_off(self, role: int, pitch: int, beat: float) -> None: ...
    def predict(
        self, temperature: float = 1.0, top_p: float = 0.95, wait_bias: float = 0.0
    ) -> Prediction: ...


def density_target(control: float, own: float) -> float:
    """The Density control (0..1) as AI onsets per beat: 0.5 is the model's own rate `own`."""
    return own * DENSITY_RANGE ** (2.0 * min(max(control, 0.0), 1.0) - 1.0)


def scale_mask(root: int, intervals: Sequence[int]) -> np.ndarray:
    """(128,) bool pitch mask allowing only the pitch classes of a scale."""
    pcs = {(root + i) % 12 for i in intervals}
    return np.array([p % 12 in pcs for p in range(128)], dtype=bool)


def chord_mask(input_bits: int, ai_bits: int) -> np.ndarray | None:
    """(128,) bool: the pitches that make a chord with the sounding pitch classes (input and
    AI, as 12-bit sets); with the input alone if the AI's notes already clash with it; None
    if no pitch can make a chord with the input either."""
    for base in (input_bits | ai_bits, input_bits):
        allowed: np.ndarray = _CHORD_PITCHES[base]
        if allowed.any():
            return allowed
    return None


@dataclass(frozen=True)
class Note:
    beat: float
    pitch: int
    velocity: int
    duration: float  # beats


class Decoder:
    """Plans and commits AI notes on one step. Not thread-safe: one owner."""

    def __init__(
        self,
        step: Planner,
        *,
        own_density: float,
        own_voices: float,
        max_notes_per_beat: int = MAX_NOTES_PER_BEAT,
    ) -> None:
        self.step = step
        self.own_density = own_density
        self.own_voices = own_voices
        self.max_notes_per_beat = max_notes_per_beat
        self.temperature = 1.0
        self.top_p = 0.95
        self.chord_lock = True
        self.yielding = True  # call and response: answers wait for the human to let go
        self.scale: np.ndarray | None = None  # (128,) bool: the scale lock's pitches
        self.mode = "accompany"
        self.last_beat = -math.inf  # beat of the last event fed
        self._plan: Note | None = None
        self._stale = False  # something was fed since the plan was drawn
        self._recent: deque[float] = deque()  # AI onsets within the last beat

    def condition(self, mode: str, density: float, voices: float = 0.0) -> None:
        """Ask for `mode` ("accompany" | "call_response") at the Density control `density`
        (0..1) with `voices` AI notes per onset (0: the model's own); takes effect from the
        next fed event, as the model reads it with an event."""
        self.mode = mode
        target = density_target(density, self.own_density)
        self.step.set_conditioning(MODES[mode], target, voices or self.own_voices)

    def restart(self) -> None:
        """The stream starts afresh (transport start or jump): state, plan and bound."""
        self.step.reset()
        self.last_beat = -math.inf
        self._plan, self._stale = None, False
        self._recent.clear()

    @property
    def started(self) -> bool:
        return self.last_beat > -math.inf

    @property
    def plan_is_stale(self) -> bool:
        """The next `plan()` draws a new plan."""
        return self._stale and self.started

    def feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> float:
        """Feed one event; returns the beat it was fed at (never before the last one)."""
        beat = max(beat, self.last_beat)
        self.step.feed(beat, role, pitch, velocity, duration)
        self.last_beat = beat
        self._plan, self._stale = None, True
        return beat

    def note_off(self, role: int, pitch: int, beat: float) -> None:
        if not self.started:
            return
        beat = max(beat, self.last_beat)
        self.step.note_off(role, pitch, beat)
        plan = self._plan
        if plan is not None and plan.beat == math.inf:  # an answer waiting for this release?
            self._plan = self._placed(Note(beat, plan.pitch, plan.velocity, plan.duration))

    def _yield(self, beat: float) -> float:
        """`beat`, or the end of the human notes sounding then (inf while one is held)."""
        if self.mode != "call_response" or not self.yielding:
            return beat
        return max(beat, self.step.human_until(beat))

    def lock_scale(self, mask: np.ndarray | None) -> None:
        """AI pitches only inside `mask` ((128,) bool, e.g. `scale_mask`); None: any."""
        self.scale = mask
        self.step.set_pitch_mask(mask)

    def plan(self, wait_bias: float = 0.0) -> Note | None:
        """The next AI note (drawn if stale), or None: WAIT."""
        if self._stale and self.started:
            self._stale = False
            p = self.step.predict(self.temperature, self.top_p, wait_bias)
            self._plan = (
                None
                if p.wait
                else self._placed(Note(self.last_beat + p.shift, p.pitch, p.velocity, p.duration))
            )
        return self._plan

    def _placed(self, note: Note) -> Note:
        """`note`, later if it must yield, its pitch chord-locked once its beat is known (a
        yielding answer waits at inf for the human's release)."""
        beat = self._yield(note.beat)
        pitch = self._chord_pitch(beat, note.pitch) if beat < math.inf else note.pitch
        return Note(beat, pitch, note.velocity, note.duration)

    def _chord_pitch(self, beat: float, pitch: int) -> int:
        """`pitch`, or one drawn again among those that make a chord at `beat`."""
        if not self.chord_lock:
            return pitch
        allowed = chord_mask(*self.step.sounding(beat))
        if allowed is None or allowed[pitch]:
            return pitch
        if self.scale is not None:  # the scale lock wins: no chord in the scale, no redraw
            allowed = allowed & self.scale
            if not allowed.any():
                return pitch
        return self.step.sample_pitch(self.temperature, self.top_p, allowed)

    def drop_plan(self) -> None:
        """Forget the plan until the next fed event."""
        self._plan, self._stale = None, False

    def replan(self) -> None:
        """Draw again at the next `plan()` (e.g. after the controls changed)."""
        self._plan, self._stale = None, True

    def move_plan(self, beat: float) -> None:
        if self._plan is not None:
            p = self._plan
            self._plan = Note(beat, p.pitch, p.velocity, p.duration)

    def commit(self) -> Note | None:
        """Play the plan: fed as ai and returned; None if the runaway bound refuses it."""
        note = self._plan
        if note is None:
            return None
        while self._recent and self._recent[0] <= note.beat - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.max_notes_per_beat:
            self.drop_plan()
            return None
        self.feed(note.beat, ROLE_AI, note.pitch, note.velocity, note.duration)
        self._recent.append(note.beat)
        return note
