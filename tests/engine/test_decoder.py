"""One decoding rule: the engine (wall clock) and offline accompaniment (song time) drive the
same `lkjam.engine.decoder.Decoder`, so they play the same notes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from generator_rig import Rig, clip
from lkjam.engine.decoder import DENSITY_RANGE, chord_mask, density_target
from lkjam.engine.events import make_events
from lkjam.engine.model_file import load_model
from lkjam.engine.offline import accompany
from planners import Plan, ScriptedPlanner

from lkjam import _step

BASS = [[43, 1.0, 1.0, 90], [47, 2.5, 0.5, 90], [50, 4.0, 2.0, 90], [45, 7.0, 1.0, 90]]


def test_the_engine_and_offline_accompaniment_play_the_same_notes(tmp_path: Path) -> None:
    # A random model that plays often, so the notes depend on every sampling draw.
    rig = Rig(
        tmp_path,
        {"time": {_step.shift_bin(0.25): 6.0, _step.shift_bin(0.5): 6.0, _step.WAIT: -9.0}},
    )
    rig.run(0.05)
    rig.message("clip", **clip(BASS, looping=False, length=12.0))
    rig.run_to_beat(12.0)
    live = [(round(b, 6), p) for b, r, p, _, _ in rig.gen.history if r == _step.ROLE_AI]

    table = np.array(BASS, dtype=np.float64)
    clip_events = make_events(table[:, 1], table[:, 2], table[:, 0], table[:, 3], ["clip"] * 4)
    model = load_model(rig.model_path)
    ai = accompany(model.step, clip_events, temperature=1.0, top_p=0.95, seed=0, end_beat=12.0)
    offline = [(round(float(e["beat"]), 6), int(e["pitch"])) for e in ai]

    cut = 11.0  # the engine commits a few ms ahead: compare what both have surely decided
    live = sorted(n for n in live if n[0] < cut)
    offline = sorted(n for n in offline if n[0] < cut)
    assert len(offline) >= 8, offline
    assert live == offline


def test_density_and_mode_are_conditioning_around_the_models_own_rate() -> None:
    assert density_target(0.5, 2.0) == pytest.approx(2.0)
    assert density_target(1.0, 2.0) == pytest.approx(2.0 * DENSITY_RANGE)
    assert density_target(0.0, 2.0) == pytest.approx(2.0 / DENSITY_RANGE)
    assert density_target(7.0, 2.0) == density_target(1.0, 2.0)  # clamped to the control
    melody = make_events([0.0, 1.0], [1.0, 1.0], [60, 62], [90, 90], ["human"] * 2)
    for mode, density, want_mode in (
        ("accompany", 0.9, _step.MODE_ACCOMPANY),
        ("call_response", 0.1, _step.MODE_CALL_RESPONSE),
    ):
        planner = ScriptedPlanner(after_input=Plan())
        accompany(planner, melody, mode=mode, density=density, own_density=1.5, own_voices=3.0)
        assert planner.conditioning is not None
        got_mode, got_density, got_voices = planner.conditioning
        assert got_mode == want_mode and got_voices == 3.0
        assert math.isclose(got_density, density_target(density, 1.5))
    planner = ScriptedPlanner(after_input=Plan())
    accompany(planner, melody, voices=4.0, own_voices=1.0)  # a chord size asked for
    assert planner.conditioning is not None and planner.conditioning[2] == 4.0


def test_the_chord_lock_redraws_a_pitch_that_would_clash() -> None:
    melody = make_events([0.0], [2.0], [64], [90], ["human"])  # E4
    c, e, g = 1 << 0, 1 << 4, 1 << 7
    # The model plans C#4 with E and C sounding: no chord holds C, C# and E.
    planner = ScriptedPlanner(after_input=Plan(wait=False, shift=0.0, pitch=61))
    planner.sounding_bits = (e, c)
    ai = accompany(planner, melody, end_beat=0.5, max_notes_per_beat=1)
    (allowed,) = planner.redrawn
    pcs = {p % 12 for p in np.flatnonzero(allowed)}
    assert 1 not in pcs and {7, 9} <= pcs  # G makes C major, A makes A minor
    assert int(ai["pitch"][0]) == int(np.flatnonzero(allowed)[0])
    # A pitch that fits is kept; with the lock off nothing is redrawn.
    planner = ScriptedPlanner(after_input=Plan(wait=False, shift=0.0, pitch=67))
    planner.sounding_bits = (e, c | g)
    assert accompany(planner, melody, end_beat=0.5, max_notes_per_beat=1)["pitch"][0] == 67
    assert not planner.redrawn
    planner = ScriptedPlanner(after_input=Plan(wait=False, shift=0.0, pitch=61))
    planner.sounding_bits = (e, c)
    accompany(planner, melody, end_beat=0.5, max_notes_per_beat=1, chord_lock=False)
    assert not planner.redrawn


def test_chord_mask_falls_back_to_the_input_when_the_ai_already_clashes() -> None:
    c, cs, e = 1 << 0, 1 << 1, 1 << 4
    assert chord_mask(0, 0) is not None and chord_mask(0, 0).all()
    with_ai = chord_mask(e, c)
    assert with_ai is not None and not with_ai[61] and with_ai[67]
    clash = chord_mask(e, c | cs)  # C, C# and E already clash: fit the melody alone
    assert clash is not None and clash[61] and clash[67]
    assert chord_mask(c | cs | (1 << 2), 0) is None  # a cluster in the input: no lock at all


def test_an_answer_waits_for_the_human_to_let_go_only_in_call_and_response() -> None:
    melody = make_events([0.0], [2.0], [64], [90], ["human"])  # E4 for two beats
    for mode, first in (("call_response", 2.0), ("accompany", 0.5)):
        planner = ScriptedPlanner(after_input=Plan(wait=False, shift=0.5, pitch=60))
        planner.human_end = 2.0
        ai = accompany(planner, melody, mode=mode, end_beat=2.1, chord_lock=False)
        assert float(ai["beat"][0]) == first, mode
