"""The real-time decoding rule, in process: the real step, a simulated clock, a list as port.

Time is simulated (1 ms ticks), so these tests are exact about *when* notes go out
without ever depending on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from generator_rig import HALF, LONG, NOW, Rig, clip
from lkjam.engine import protocol
from lkjam.engine.generator import MAX_NOTES_PER_BEAT, SETTINGS, Controls
from lkjam.engine.harmony import FITS_CHORD
from lkjam.engine.model_file import load_model
from lkjam.engine.scheduler import Scheduler

from lkjam import _step
from lkjam.random_model import random_model


def test_clip_notes_are_known_ahead_so_the_ai_plays_with_them(tmp_path: Path) -> None:
    rig = Rig(tmp_path, NOW)
    rig.run(0.05)
    rig.message("clip", **clip([[38, 1.0, 1.0, 100], [45, 3.0, 1.0, 100]]))
    rig.run_to_beat(8.5)
    onsets = sorted({round(beat, 3) for beat, _ in rig.ai_on()})
    # Every clip note (beats 1, 3, 5, 7) gets AI notes sent on its beat: no logical latency.
    assert onsets == [1.0, 3.0, 5.0, 7.0]
    events = list(rig.gen.history)
    first_ai = next(i for i, e in enumerate(events) if e[1] == _step.ROLE_AI)
    assert events[first_ai - 1][1] == _step.ROLE_CLIP  # fed in stream order: clip, then ai
    assert events[first_ai - 1][0] == events[first_ai][0]


def test_human_note_gets_a_reaction_in_the_same_pass_and_at_most_a_beat_of_notes(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, NOW)
    rig.run(0.5)
    rig.midi(0x90, 60, 100)
    t_in = rig.now
    rig.run(0.001)
    ons = [t for t, m in rig.out.sent if m[0] == 0x90]
    assert ons and ons[0] == t_in
    rig.run(1.0)
    assert len(rig.ai_on()) == MAX_NOTES_PER_BEAT  # the density bound, then WAIT


def test_ai_notes_land_on_the_beat_grid(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HALF)
    rig.run(0.05)
    rig.message("clip", **clip([[38, 0.0, 1.0, 100]], looping=False, start_beat=1.0))
    rig.run_to_beat(9.0)
    beats = np.array([b for b, _ in rig.ai_on()])
    assert len(beats) >= 14
    # Sent within one simulated tick (1 ms = 0.002 beats) of a half-beat.
    assert np.abs(beats * 2 - np.round(beats * 2)).max() <= 0.004 + 1e-9


def test_scale_lock_keeps_ai_notes_in_the_scale(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.message("controls", chord_lock=False)  # the scale alone: any pitch of it may come
    rig.message("scale", root=2, intervals=[0, 2, 3, 5, 7, 9, 10])
    rig.run(0.05)
    for k in range(48):
        rig.midi(0x90, 60 + k % 12, 100)
        rig.run(0.25)
        rig.midi(0x80, 60 + k % 12, 0)
    pitches = {p for _, p in rig.ai_on()}
    assert len(pitches) >= 8
    assert {p % 12 for p in pitches} <= {2, 4, 5, 7, 9, 11, 0}


@pytest.mark.parametrize("lock", [True, False])
def test_chord_lock_makes_every_ai_note_a_chord_with_the_held_melody(
    tmp_path: Path, lock: bool
) -> None:
    rig = Rig(tmp_path, HALF)
    rig.message("controls", chord_lock=lock)
    rig.run(0.05)
    rig.midi(0x90, 64, 100)  # E4, held throughout
    rig.run(4.0)
    ai = [(b, p, d) for b, r, p, _, d in rig.gen.history if r == _step.ROLE_AI]
    assert len(ai) >= 8
    fits = []
    for beat, _, _ in ai:  # what sounds at each AI onset: E4 and the AI's notes
        bits = 1 << 4
        for b, p, d in ai:
            if b <= beat < b + d:
                bits |= 1 << (p % 12)
        fits.append(bool(FITS_CHORD[bits]))
    assert all(fits) if lock else not all(fits)  # a random model clashes without the lock


@pytest.mark.parametrize("how", ["stop", "mode", "release", "swap"])
def test_every_sounding_note_is_released(tmp_path: Path, how: str) -> None:
    rig = Rig(tmp_path, {**HALF, **LONG})
    rig.run(0.05)
    rig.midi(0x90, 60, 100)
    rig.run(2.0)
    assert len(rig.sounding()) >= 2
    if how == "stop":
        rig.playing = False
        rig.transport()
    elif how == "mode":
        rig.message("controls", mode="off")
    elif how == "release":
        rig.gen.submit("release", "last client gone")
    else:
        other = random_model(tmp_path / "other.safetensors", "tiny", seed=1, style="other")
        rig.gen.submit("model", load_model(other))
    rig.run(0.01)
    assert rig.sounding() == set()
    assert rig.out.sent[-1][1] == (0xB0, 123, 0)  # and All Notes Off
    if how == "swap":
        assert rig.gen.model.meta.style == "other"


def test_call_and_response_answers_wait_for_the_human_to_let_go(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HALF)  # the model would answer half a beat after every note
    rig.message("controls", mode="call_response")
    rig.run(0.05)
    rig.run_to_beat(1.0)
    rig.midi(0x90, 60, 100)
    rig.run_to_beat(3.0)
    assert rig.ai_on() == []  # the plan for 1.5 waits while the key is down
    rig.midi(0x80, 60, 0)
    released = rig.beat()
    rig.run_to_beat(5.0)
    answer = [b for b, _ in rig.ai_on()]
    assert answer and released - 1e-6 <= min(answer) <= released + 0.01  # at once on release
    # The human comes back: no AI note starts while a key is down, and the answer resumes.
    rig.midi(0x90, 62, 100)
    back = rig.beat()
    before = len(rig.ai_on())
    rig.run_to_beat(7.0)
    assert all(b <= back + 1e-6 for b, _ in rig.ai_on()[before:])
    rig.midi(0x80, 62, 0)
    rig.run_to_beat(8.0)
    assert len(rig.ai_on()) > before


def test_trigger_note_hands_over_the_turn_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HALF)
    rig.message("controls", mode="call_response", turn_bars=1, cycle_bars=0, trigger_note=36)
    rig.run(0.05)
    rig.midi(0x90, 60, 100)  # held: no phrase end
    rig.run_to_beat(2.0)
    assert rig.ai_on() == []
    rig.midi(0x90, 36, 100)
    rig.run_to_beat(3.0)
    first = rig.ai_on()
    assert first and first[0][0] <= 2.25 + 0.004


def test_fixed_cycles_give_the_ai_the_last_bars(tmp_path: Path) -> None:
    rig = Rig(tmp_path, HALF)
    rig.message("controls", mode="call_response", turn_bars=1, cycle_bars=2)
    rig.run(0.05)
    for k in range(32):  # the human plays eighths all along
        rig.run_to_beat(0.5 + k / 2)
        rig.midi(0x90, 60, 100)
        rig.midi(0x80, 60, 0)
    rig.run_to_beat(16.0)
    beats = [b for b, _ in rig.ai_on()]
    assert beats
    assert all(4.0 <= b % 8.0 < 8.0 for b in beats)  # only in the second bar of each cycle


def test_scheduler_retriggers_a_pitch_without_cutting_the_new_note() -> None:
    sent: list[tuple[int, ...]] = []

    class Out:
        def send(self, message: Sequence[int], at: float | None = None) -> None:
            sent.append(tuple(message))

    s = Scheduler(Out(), channel=2)
    s.note(60, 100, t_on=1.0, t_off=3.0)
    s.note(60, 90, t_on=2.0, t_off=4.0)  # same pitch while the first still sounds
    s.run_due(2.5)
    assert sent == [(0x91, 60, 100), (0x81, 60, 0), (0x91, 60, 90)]
    s.run_due(3.5)  # the first note's off is stale: the second keeps sounding
    assert len(sent) == 3 and s.sounding == {60: 2}
    s.run_due(4.0)
    assert sent[-1] == (0x81, 60, 0) and not s.sounding


def test_a_clip_gone_is_no_longer_fed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, NOW)
    rig.run(0.05)
    rig.message("clip", **clip([[38, 1.0, 1.0, 100], [45, 3.0, 1.0, 100]]))
    rig.run_to_beat(4.5)
    rig.message("clip_gone", track=1, slot=0)
    rig.message("clip_gone", track=7, slot=3)  # never sent: nothing to forget
    rig.run_to_beat(8.5)
    fed = [round(beat, 3) for beat, role, *_ in rig.gen.history if role == _step.ROLE_CLIP]
    assert fed == [1.0, 3.0] and not rig.gen.clips


def test_controls_are_the_protocol_tables(tmp_path: Path) -> None:
    table = protocol.MESSAGES["controls"].fields
    kinds = {"enum": "str", "str": "str", "num": "float", "int": "int", "bool": "bool"}
    assert [(f.name, f.type) for f in fields(Controls)] == [
        (name, kinds[table[name].kind]) for name in SETTINGS
    ]
    assert set(table) - set(SETTINGS) == {"seed"}
    start = asdict(Controls.start("folk"))
    assert start == {n: "folk" if n == "style" else table[n].default for n in SETTINGS}
    protocol.validate({"v": 1, "type": "controls", **start}, protocol.TO_ENGINE)

    # Every setting a message carries is applied.
    rig = Rig(tmp_path, NOW)
    wanted = {
        "mode": "call_response",
        "temperature": 0.5,
        "top_p": 0.5,
        "density": 0.25,
        "voices": 3.0,
        "style": "other",
        "turn_bars": 4,
        "cycle_bars": 8,
        "trigger_note": 36,
        "scale_lock": False,
        "chord_lock": False,
        "output_offset_ms": 12.5,
    }
    assert set(wanted) == set(SETTINGS)
    rig.message("controls", **wanted)
    rig.run(0.01)
    assert asdict(rig.gen.controls) == wanted
    assert rig.gen.scheduler.offset_s == 0.0125


def test_status_carries_what_was_lost(tmp_path: Path) -> None:
    rig = Rig(tmp_path, NOW)
    posted: list[dict[str, Any]] = []
    rig.gen.post = lambda kind, **fields: posted.append({"type": kind, **fields})
    rig.run(0.5)
    rig.midi(0x90, 60, 100)
    rig.now += 0.5  # the generator thread stalls: its plans are drawn too late to play
    rig.run(0.5)
    while rig.gen.submit("message", {"type": "nothing"}):
        pass  # the inbox fills up; the next message is dropped
    rig.run(0.01)
    assert rig.gen.submit("status", None)
    rig.run(0.01)
    status = posted[-1]
    protocol.validate({"v": 1, **status}, protocol.TO_SCRIPT)
    assert status["late_notes"] > 0 and status["late_notes"] == rig.gen.late_notes
    assert status["dropped_in"] == 1 and status["dropped_notes"] == 0
