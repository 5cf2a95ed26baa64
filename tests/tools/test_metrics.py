"""Metrics on hand-made streams whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lkjam.engine.events import EVENT_DTYPE, UNKNOWN_DURATION_CAP, note_ends

from lkjam import metrics

H, C, A = 0, 1, 2  # roles: human, clip, ai


def stream(*notes: tuple[float, float, int, int]) -> np.ndarray:
    """Notes as (beat, dur, pitch, role), velocity 80, sorted like a real stream."""
    arr = np.zeros(len(notes), dtype=EVENT_DTYPE)
    for i, (beat, dur, pitch, role) in enumerate(notes):
        arr[i] = (beat, dur, pitch, 80, role, 0)
    return arr[np.lexsort((arr["pitch"], arr["role"], arr["beat"]))]


def chord(beat: float, dur: float, pitches: tuple[int, ...], role: int = A) -> list:
    return [(beat, dur, p, role) for p in pitches]


def test_nicr_counts_only_frames_where_both_sound_weighted_by_length() -> None:
    ev = stream(
        (0, 3, 60, H),  # C: inside the C major chord for 3 beats
        (3, 1, 62, H),  # D: outside it for 1 beat
        (4, 2, 67, H),  # G alone: AI silent, not counted
        *chord(0, 4, (48, 52, 55)),
    )
    assert metrics.nicr(ev) == pytest.approx(0.75)


def test_nicr_counts_clip_notes_as_input_by_default_and_can_leave_them_out() -> None:
    ev = stream((0, 2, 60, H), (0, 2, 66, C), *chord(0, 2, (48, 52, 55)))
    assert metrics.nicr(ev) == pytest.approx(0.5)  # C in, F# out
    assert metrics.nicr(ev, input_roles=(H,)) == pytest.approx(1.0)


def test_nicr_is_nan_without_ai_notes() -> None:
    assert math.isnan(metrics.nicr(stream((0, 1, 60, H))))


@pytest.mark.parametrize(
    ("ai_pitches", "fits"),
    [
        ((52, 55), True),  # C E G: major triad
        ((52, 55, 59), True),  # C E G B: maj7
        ((51, 54, 57), True),  # C Eb Gb A: dim7
        ((52, 56), True),  # C E G#: augmented
        ((62, 64), False),  # C D E: a cluster
        ((62, 64, 66), False),  # C D E F#: whole-tone
    ],
)
def test_chord_fit_of_one_frame(ai_pitches: tuple[int, ...], fits: bool) -> None:
    ev = stream((0, 1, 60, H), *chord(0, 1, ai_pitches))
    assert metrics.chord_fit(ev) == (1.0 if fits else 0.0)


def test_chord_fit_ignores_single_pitch_class_frames_and_frames_without_ai() -> None:
    ev = stream(
        (0, 2, 60, H),
        (0, 1, 48, A),  # only C sounds in [0, 1): one pitch class, not counted
        *chord(1, 1, (64, 67)),  # C E G in [1, 2): fits
        *chord(2, 2, (61, 62, 63)),  # human silent, AI cluster in [2, 4): does not fit
        *chord(4, 4, (60, 64, 67), role=C),  # clip chord, AI silent: not counted
    )
    assert metrics.chord_fit(ev) == pytest.approx(1 / 3)


def test_doubling_is_the_ai_sounding_only_the_melody_pitch_class() -> None:
    ev = stream(
        (0, 4, 60, H),
        (0, 1, 48, A),  # only C, an octave down: doubling
        *chord(1, 1, (48, 52)),  # C and E: harmony
        (2, 2, 55, A),  # only G: a single other pitch class, not doubling
    )
    assert metrics.doubling(ev) == pytest.approx(0.25)


def test_pc_entropy_of_ai_onsets_in_bits() -> None:
    ev = stream((0, 1, 60, A), (1, 1, 72, A), (2, 1, 64, A), (3, 1, 67, A), (0, 4, 50, H))
    assert metrics.pc_entropy(ev) == pytest.approx(1.5)  # C 1/2, E 1/4, G 1/4
    uniform = stream(*[(float(i), 1.0, 60 + i, A) for i in range(12)])
    assert metrics.pc_entropy(uniform) == pytest.approx(math.log2(12))
    assert math.isnan(metrics.pc_entropy(stream((0, 1, 60, H))))


def test_overlap_counts_ai_notes_sounding_with_the_human_beyond_the_tolerance() -> None:
    ev = stream(
        (0, 2, 60, H),
        (2, 2, 62, H),  # the human phrase ends at 4
        (4, 1, 64, A),  # after: no overlap
        (3.5, 1, 67, A),  # 0.5 beats over the human: overlap
        (3.99, 1, 65, A),  # 0.01 beats: within the tolerance
        (6, 1, 60, A),
    )
    assert metrics.overlap(ev) == pytest.approx(1 / 4)
    assert metrics.overlap(ev, tolerance=0.0) == pytest.approx(2 / 4)


def test_phrases_split_at_silences_of_at_least_the_gap() -> None:
    ev = stream((0, 1, 60, H), (1.5, 2.5, 62, H), (8, 1, 64, H), (9, 3, 65, H), (13, 1, 67, H))
    spans = metrics.phrases(ev, phrase_gap=2.0)
    np.testing.assert_allclose(spans, [[0, 1.5, 4], [8, 13, 14]])


def test_answer_delay_measures_from_phrase_end_to_first_ai_onset_after_it() -> None:
    ev = stream(
        (0, 2, 60, H),
        (2, 2, 62, H),  # phrase 1: last onset 2, ends 4
        (1, 1, 48, A),  # during the phrase: not an answer
        (4.5, 2, 64, A),  # answer 1: 0.5 beats late
        (5, 1, 65, A),
        (8, 4, 60, H),  # phrase 2 ends at 12
        (11.75, 1, 67, A),  # answer 2 comes in over the last note: -0.25
        (16, 2, 60, H),  # phrase 3 is never answered
    )
    np.testing.assert_allclose(metrics.answer_delays(ev), [0.5, -0.25, np.nan])
    assert metrics.answer_delay(ev) == pytest.approx(0.125)


def test_unknown_human_durations_last_until_the_next_onset_capped() -> None:
    ev = stream((0, 0, 60, H), (1, 0, 62, H), (2, -1, 64, H), (0, 1, 48, A))
    np.testing.assert_allclose(note_ends(ev), [1, 1, 2, 2 + UNKNOWN_DURATION_CAP])


def test_coverage_is_the_share_of_melody_time_the_ai_sounds_in() -> None:
    ev = stream((0, 4, 72, H), (4, 4, 74, H), (10, 2, 76, H), *chord(2, 4, (48, 52, 55)))
    assert metrics.coverage(ev) == pytest.approx(4 / 10)


def test_above_compares_the_top_notes_where_both_sound() -> None:
    # Beats 0-2: AI top 67 under the melody's 72; beat 2-3: AI 79 over 72; beat 3-4: AI alone.
    ev = stream((0, 3, 72, H), *chord(0, 2, (60, 64, 67)), (2, 2, 79, A))
    assert metrics.above(ev) == pytest.approx(1 / 3)
    assert math.isnan(metrics.above(stream((0, 1, 72, H))))


def test_longest_gap_is_the_ais_longest_silence_under_the_melody() -> None:
    ev = stream(
        (0, 8, 72, H),
        (8, 1, 76, H),
        (9, 1, 48, A),  # ends a 9-beat silence
        (20, 6, 74, H),  # after a 10-beat rest: a new stretch of 6
        (27, 1, 74, H),  # a 1-beat rest does not end it: 7
    )
    assert metrics.longest_gap(ev) == pytest.approx(9.0)
    assert metrics.longest_gap(ev[ev["beat"] != 9]) == pytest.approx(9.0)  # 0-9, then 7 after
    assert metrics.longest_gap(stream((0, 4, 72, H), (0, 4, 60, A))) == 0.0


def test_answer_length_is_the_answer_over_the_phrase() -> None:
    ev = stream((0, 1, 72, H), (1, 1, 74, H), (2.5, 1, 60, A), (3.5, 0.5, 62, A), (8, 1, 72, H))
    np.testing.assert_allclose(metrics.answer_lengths(ev), [1.5 / 2, np.nan])


def test_onsets_per_beat_of_a_role_over_the_stream() -> None:
    ev = stream((0, 4, 72, H), *chord(0, 1, (48, 52, 55)), (2, 2, 50, A))
    assert metrics.onsets_per_beat(ev) == pytest.approx(4 / 4)
    assert metrics.onsets_per_beat(ev, role=H) == pytest.approx(1 / 4)


def test_summary_names_every_metric() -> None:
    ev = stream((0, 1, 60, H), *chord(0, 1, (48, 52, 55)))
    got = metrics.summary(ev)
    assert set(got) == {
        "nicr",
        "chord_fit",
        "doubling",
        "pc_entropy",
        "coverage",
        "above",
        "overlap",
        "answer_delay_beats",
    }
    assert got["nicr"] == 1.0
    assert got["chord_fit"] == 1.0
    assert got["doubling"] == 0.0
    assert got["overlap"] == 1.0
