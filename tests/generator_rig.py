"""A generator on a simulated clock with a list as its port: exact about when notes go out,
whatever the machine's speed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lkjam.engine.generator import Generator
from lkjam.engine.model_file import load_model

from lkjam import _step
from lkjam.random_model import random_model

TEMPO = 120.0
BPS = TEMPO / 60.0
NOW = {"time": {0: 40.0}}  # every plan is "at once" (shift 0)
HALF = {"time": {_step.shift_bin(0.5): 40.0}}  # every plan is half a beat later
LONG = {"duration": {len(_step.DURATION_VALUES) - 1: 40.0}}  # 16-beat notes


class ListOutput:
    def __init__(self, clock: Rig) -> None:
        self.rig = clock
        self.sent: list[tuple[float, tuple[int, ...]]] = []

    def send(self, message: Sequence[int], at: float | None = None) -> None:
        self.sent.append((self.rig.now, tuple(message)))


class Rig:
    """A generator on a simulated clock; song beat = (now - t0) * BPS while playing."""

    def __init__(self, tmp_path: Path, bias: Mapping[str, Mapping[int, float]] = {}) -> None:
        self.tmp_path = tmp_path
        self.now = 100.0
        self.t0 = self.now
        self.out = ListOutput(self)
        self.model_path = random_model(tmp_path / "m.safetensors", "tiny", head_bias=bias)
        self.gen = Generator(load_model(self.model_path), self.out, clock=lambda: self.now)
        self.playing = True
        self.last_transport = -1.0

    def beat(self, t: float | None = None) -> float:
        return ((self.now if t is None else t) - self.t0) * BPS

    def message(self, kind: str, **fields: Any) -> None:
        assert self.gen.submit("message", {"v": 1, "type": kind, **fields})

    def transport(self) -> None:
        self.message(
            "transport",
            tempo=TEMPO,
            beat=self.beat(),
            playing=self.playing,
            sig=[4, 4],
            t=self.now,
        )
        self.last_transport = self.now

    def midi(self, *data: int) -> None:
        self.gen.midi_queue.append((self.now, bytes(data)))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            if self.now - self.last_transport >= 0.1:
                self.transport()
            self.gen.tick(self.now)
            self.now = round(self.now + 0.001, 6)

    def run_to_beat(self, beat: float) -> None:
        self.run(self.t0 + beat / BPS - self.now)

    def ai_on(self) -> list[tuple[float, int]]:
        """(song beat, pitch) of every AI note-on sent."""
        return [(self.beat(t), m[1]) for t, m in self.out.sent if m[0] == 0x90 and m[2] > 0]

    def sounding(self) -> set[int]:
        notes: set[int] = set()
        for _, m in self.out.sent:
            if m[0] == 0x90 and m[2] > 0:
                notes.add(m[1])
            elif m[0] in (0x80, 0x90):
                notes.discard(m[1])
        return notes


def clip(notes: list[list[float]], **fields: Any) -> dict[str, Any]:
    message = {
        "track": 1,
        "slot": 0,
        "name": "bass",
        "role": "clip",
        "length": 4.0,
        "looping": True,
        "loop": [0.0, 4.0],
        "playing": True,
        "start_beat": 0.0,
        "notes": notes,
    }
    message.update(fields)
    return message
