"""Offline accompaniment: the real-time decoding rule, run as fast as the step allows.

Used by `lkjam accompany` (MIDI files), the engine's `accompany` request (clip notes ->
AI clip notes) and `lkjam eval`. The rule is the one in docs/event-stream.md, "Real-time
decoding", with song time standing in for the wall clock:

1. Input events (human, clip) are fed in stream order; after each fed event the step
   predicts a plan: "AI note at `beat + shift`", or WAIT.
2. While the plan's beat comes before the next input event (an AI note at the same beat as
   an input comes after it, as in stream order), the note is committed: appended to the
   output, fed as role ai, and the next plan is drawn. A chord is several shift-0 notes.
3. Otherwise the next input is fed and the plan is redrawn.

After the last input, notes keep coming until a WAIT or `end_beat`. So that a model
stuck on shift 0 cannot loop forever, at most `max_notes_per_beat` AI notes start in any
one-beat window: a plan that would exceed it counts as WAIT until the next input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from lkjam.engine.events import EVENT_DTYPE
from lkjam.engine.metrics import note_ends

from lkjam._step import ROLE_AI, ROLE_CLIP, ROLE_HUMAN

EPS = 1e-6  # beats: onsets closer than this are "the same beat"
MAX_NOTES_PER_BEAT = 8  # AI onsets in any one-beat window; more would be a runaway loop


class Plan(Protocol):
    wait: bool
    shift: float  # beats after the last fed event
    pitch: int
    velocity: int
    duration: float  # beats


class Planner(Protocol):
    """What `accompany` needs of a step: `lkjam._step.Step` and the Markov baseline."""

    def reset(self) -> None: ...
    def seed(self, seed: int) -> None: ...
    def set_meter(self, numerator: int, denominator: int) -> None: ...
    def set_scale(self, root: int, intervals: list[int]) -> None: ...
    def clear_scale(self) -> None: ...
    def set_pitch_mask(self, mask: np.ndarray | None) -> None: ...
    def feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> None: ...
    def predict(
        self, temperature: float = 1.0, top_p: float = 0.95, wait_bias: float = 0.0
    ) -> Plan: ...


def scale_mask(root: int, intervals: Sequence[int]) -> np.ndarray:
    """(128,) bool pitch mask allowing only the pitch classes of a scale."""
    pcs = {(root + i) % 12 for i in intervals}
    return np.array([p % 12 in pcs for p in range(128)], dtype=bool)


def accompany(
    step: Planner,
    events: np.ndarray,
    *,
    human_roles: Sequence[int] = (ROLE_HUMAN, ROLE_CLIP),
    temperature: float = 1.0,
    top_p: float = 0.95,
    wait_bias: float = 0.0,
    seed: int = 0,
    numerator: int = 4,
    denominator: int = 4,
    scale: tuple[int, Sequence[int]] | None = None,
    pitch_mask: np.ndarray | None = None,
    max_notes_per_beat: int = MAX_NOTES_PER_BEAT,
    end_beat: float | None = None,
) -> np.ndarray:
    """The AI part for `events`, as a sorted EVENT_DTYPE array of role-ai notes.

    step: a Step (or any Planner); it is reset, seeded and re-configured here, so don't
        pass one that is playing live.
    events: EVENT_DTYPE input; events whose role is in `human_roles` are fed (with their
        roles and durations), any others (e.g. old AI notes) are ignored.
    temperature, top_p, wait_bias: sampling, as `Step.predict`.
    seed: the step's RNG seed: the same inputs and seed give the same output.
    numerator, denominator: meter (bar phase features).
    scale: (root pitch class, intervals) to condition on a known key, as Live's scale.
    pitch_mask: (128,) bool, the pitches the AI may play (e.g. `scale_mask(...)`).
    max_notes_per_beat: the density bound described in the module doc.
    end_beat: no AI note starts at or after it; default one bar after the input ends.
    """
    inputs = events[np.isin(events["role"], np.asarray(human_roles, dtype=np.uint8))]
    inputs = inputs[np.lexsort((inputs["pitch"], inputs["role"], inputs["beat"]))]
    if end_beat is None:
        last_end = float(note_ends(inputs).max()) if len(inputs) else 0.0
        end_beat = last_end + 4.0 * numerator / denominator

    step.reset()
    step.seed(seed)
    step.set_meter(numerator, denominator)
    if scale is None:
        step.clear_scale()
    else:
        step.set_scale(int(scale[0]), [int(i) for i in scale[1]])
    step.set_pitch_mask(pitch_mask)

    beats = inputs["beat"].astype(np.float64).tolist()
    durs = inputs["dur"].astype(np.float64).tolist()
    pitches = inputs["pitch"].tolist()
    vels = inputs["vel"].tolist()
    roles = inputs["role"].tolist()

    out: list[tuple[float, float, int, int]] = []  # (beat, dur, pitch, velocity)
    recent: deque[float] = deque()  # onsets of AI notes in the last beat
    plan: Plan | None = None
    now = 0.0  # beat of the last fed event
    for k in range(len(beats) + 1):
        limit = min(beats[k], end_beat) - EPS if k < len(beats) else end_beat - EPS
        while plan is not None and not plan.wait:
            due = now + plan.shift
            if due >= limit:
                break
            while recent and recent[0] <= due - 1.0:
                recent.popleft()
            if len(recent) >= max_notes_per_beat:
                break
            step.feed(due, ROLE_AI, plan.pitch, plan.velocity, plan.duration)
            out.append((due, plan.duration, plan.pitch, plan.velocity))
            recent.append(due)
            now = due
            plan = step.predict(temperature, top_p, wait_bias)
        if k == len(beats):
            break
        step.feed(beats[k], roles[k], pitches[k], vels[k], durs[k])
        now = beats[k]
        plan = step.predict(temperature, top_p, wait_bias)

    result = np.zeros(len(out), dtype=EVENT_DTYPE)
    if out:
        table = np.array(out, dtype=np.float64)
        result["beat"] = table[:, 0]
        result["dur"] = table[:, 1]
        result["pitch"] = table[:, 2]
        result["vel"] = table[:, 3]
        result["role"] = ROLE_AI
    return result[np.lexsort((result["pitch"], result["beat"]))]
