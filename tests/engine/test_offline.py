"""Offline accompaniment: the real-time decoding rule, checked with a scripted planner whose
plans are known, and with the compiled step (random weights) for speed and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from lkjam.engine.decoder import scale_mask
from lkjam.engine.events import EVENT_DTYPE, make_events
from lkjam.engine.offline import accompany
from planners import Plan, ScriptedPlanner
from weights import random_weights

from lkjam import _step

H, C, A = _step.ROLE_HUMAN, _step.ROLE_CLIP, _step.ROLE_AI


def melody(beats: list[float], role: int = H) -> np.ndarray:
    n = len(beats)
    return make_events(beats, np.full(n, 1.0), 60 + np.arange(n) % 12, np.full(n, 90), [role] * n)


def test_due_notes_are_committed_before_the_next_input_and_fed_as_ai() -> None:
    planner = ScriptedPlanner(after_input=Plan(wait=False, shift=0.25, pitch=48))
    out = accompany(planner, melody([0, 1, 2]))
    np.testing.assert_allclose(out["beat"], [0.25, 1.25, 2.25])
    assert set(out["role"]) == {A}
    assert out["pitch"].tolist() == [48, 48, 48]
    assert planner.fed == [
        (0, H, 60),
        (0.25, A, 48),
        (1, H, 61),
        (1.25, A, 48),
        (2, H, 62),
        (2.25, A, 48),
    ]


def test_a_plan_that_falls_on_the_next_input_is_redrawn_after_that_input() -> None:
    # After each input the plan is "1 beat later": always exactly at the next input, so the
    # input is fed first (stream order) and only the last plan is ever played.
    planner = ScriptedPlanner(after_input=Plan(wait=False, shift=1.0, pitch=50))
    out = accompany(planner, melody([0, 1, 2]))
    np.testing.assert_allclose(out["beat"], [3.0])
    assert [role for _, role, _ in planner.fed] == [H, H, H, A]


def test_a_chord_is_successive_shift_zero_notes_after_same_beat_inputs() -> None:
    planner = ScriptedPlanner(
        after_input=Plan(wait=False, shift=0.0, pitch=48),
        after_ai=Plan(wait=False, shift=0.0, pitch=52),
    )
    inputs = np.sort(
        np.concatenate([melody([0.0]), melody([0.0], role=C)]), order=["beat", "role", "pitch"]
    )
    out = accompany(planner, inputs, max_notes_per_beat=3)
    # Both inputs at beat 0 are fed first, then the AI notes at the same beat.
    assert [role for _, role, _ in planner.fed] == [H, C, A, A, A]
    np.testing.assert_allclose(out["beat"], [0, 0, 0])
    assert sorted(out["pitch"].tolist()) == [48, 52, 52]


def test_a_shift_zero_loop_is_bounded_per_beat() -> None:
    planner = ScriptedPlanner(
        after_input=Plan(wait=False, shift=0.0, pitch=48),
        after_ai=Plan(wait=False, shift=0.0, pitch=55),
    )
    out = accompany(planner, melody([0, 4]), max_notes_per_beat=5)
    assert len(out) == 10
    assert np.sum(out["beat"] == 0) == 5


def test_after_the_last_input_notes_continue_until_end_beat() -> None:
    planner = ScriptedPlanner(
        after_input=Plan(wait=False, shift=0.5, pitch=48),
        after_ai=Plan(wait=False, shift=1.0, pitch=48),
    )
    out = accompany(planner, melody([0]), end_beat=3.0)
    np.testing.assert_allclose(out["beat"], [0.5, 1.5, 2.5])
    # The default end is one bar after the input's last note ends (beat 1 + 3 beats of 3/4).
    out = accompany(planner, melody([0]), numerator=3, denominator=4)
    np.testing.assert_allclose(out["beat"], [0.5, 1.5, 2.5, 3.5])


def test_only_input_roles_are_fed() -> None:
    planner = ScriptedPlanner(after_input=Plan())
    stream = np.sort(
        np.concatenate([melody([0, 1]), melody([0.5], role=A), melody([2], role=C)]),
        order=["beat", "role", "pitch"],
    )
    assert len(accompany(planner, stream)) == 0
    assert [(b, r) for b, r, _ in planner.fed] == [(0, H), (1, H), (2, C)]
    accompany(planner, stream, human_roles=(C,))
    assert [(b, r) for b, r, _ in planner.fed] == [(2, C)]


@pytest.fixture(scope="module")
def step() -> _step.Step:
    return _step.Step("tiny", random_weights("tiny"))


def test_compiled_step_same_seed_same_notes_and_other_seed_other_notes(step: _step.Step) -> None:
    song = melody([i * 0.5 for i in range(64)])
    first = accompany(step, song, seed=7)
    assert len(first) > 0
    assert first.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(first, accompany(step, song, seed=7))
    assert not np.array_equal(first, accompany(step, song, seed=8))
    assert np.all(np.diff(first["beat"]) >= 0)
    assert np.all(first["role"] == A)


def test_compiled_step_respects_pitch_mask_density_bound_and_end(step: _step.Step) -> None:
    song = melody([i * 0.5 for i in range(64)])
    mask = scale_mask(0, [0, 4, 7])  # C major triad tones only
    out = accompany(step, song, seed=1, pitch_mask=mask, max_notes_per_beat=2, end_beat=30.0)
    assert len(out) > 0
    assert set((out["pitch"] % 12).tolist()) <= {0, 4, 7}
    assert out["beat"].max() < 30.0
    onsets = out["beat"]
    per_window = [np.sum((onsets > b - 1.0) & (onsets <= b)) for b in onsets]
    assert max(per_window) <= 2


def test_scale_mask_allows_the_scale_in_every_octave() -> None:
    mask = scale_mask(2, [0, 2, 4, 5, 7, 9, 11])  # D major
    assert mask.shape == (128,) and mask.dtype == bool
    assert mask[62] and mask[66] and mask[1] and not mask[65] and not mask[60]
