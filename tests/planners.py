"""A scripted stand-in for the step: its plans are known, so the decoding rule's choices
can be checked exactly (tests of the decoder and of offline accompaniment)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lkjam import _step

H, C, A = _step.ROLE_HUMAN, _step.ROLE_CLIP, _step.ROLE_AI


@dataclass
class Plan:
    wait: bool = True
    shift: float = 0.0
    pitch: int = 0
    velocity: int = 80
    duration: float = 0.5


@dataclass
class ScriptedPlanner:
    """Plans `after_input` after every input event and `after_ai` after every AI note;
    records everything fed, in order, as (beat, role, pitch)."""

    after_input: Plan
    after_ai: Plan = field(default_factory=Plan)
    fed: list[tuple[float, int, int]] = field(default_factory=list)
    last_role: int = H
    conditioning: tuple[int, float, float] | None = None
    sounding_bits: tuple[int, int] = (0, 0)  # what `sounding` reports: nothing sounds
    human_end: float = -1.0  # what `human_until` reports: no human note sounds
    redrawn: list[np.ndarray] = field(default_factory=list)  # `allowed` of each sample_pitch

    def reset(self) -> None:
        self.fed.clear()

    def seed(self, seed: int) -> None:
        pass

    def set_meter(self, numerator: int, denominator: int) -> None:
        pass

    def set_scale(self, root: int, intervals: list[int]) -> None:
        pass

    def clear_scale(self) -> None:
        pass

    def set_pitch_mask(self, mask: np.ndarray | None) -> None:
        pass

    def set_conditioning(self, mode: int, density: float, voices: float) -> None:
        self.conditioning = (mode, density, voices)

    def sounding(self, beat: float) -> tuple[int, int]:
        return self.sounding_bits

    def human_until(self, beat: float) -> float:
        return max(beat, self.human_end)

    def sample_pitch(self, temperature: float, top_p: float, allowed: np.ndarray) -> int:
        self.redrawn.append(allowed.copy())
        return int(np.flatnonzero(allowed)[0])

    def note_off(self, role: int, pitch: int, beat: float) -> None:
        pass

    def feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> None:
        self.fed.append((beat, role, pitch))
        self.last_role = role

    def predict(
        self, temperature: float = 1.0, top_p: float = 0.95, wait_bias: float = 0.0
    ) -> Plan:
        return self.after_ai if self.last_role == A else self.after_input
