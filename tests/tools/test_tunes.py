"""The hand-made tunes, the style folder generator and the music bench's per-tune figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lkjam.engine.events import ROLE_INDEX, note_ends
from lkjam.engine.midi_file import read_midi
from lkjam.engine.model_file import load_model

from lkjam.bench_music import FIGURES, call_response_input, measure_tune, style_file_figures
from lkjam.random_model import random_model
from lkjam.stylegen import close_triad, write_style
from lkjam.tunes import SCALES, TUNES, Tune, parse_melody, tune_bars, tune_events, write_tunes

HUMAN, CLIP = ROLE_INDEX["human"], ROLE_INDEX["clip"]


@pytest.mark.parametrize("tune", TUNES, ids=lambda t: t.name)
def test_tune_is_whole_bars_in_its_key(tune: Tune) -> None:
    events = tune_events(tune)
    assert 8 <= tune_bars(tune) <= 16
    # Whole bars: the melody ends inside its last bar, and every bar is full (parse checks).
    end = float(note_ends(events).max())
    assert (tune_bars(tune) - 1) * tune.bar_beats < end <= tune_bars(tune) * tune.bar_beats
    degrees = (events["pitch"].astype(np.int64) - tune.root) % 12
    assert np.isin(degrees, tune.scale).mean() >= 0.9
    diatonic = SCALES["minor" if tune.minor else "major"]
    assert np.isin(degrees, diatonic).mean() >= 0.75  # the declared key, blue notes aside
    assert degrees[np.argmax(events["beat"])] == 0  # ends on the tonic
    assert events["pitch"].min() >= 48 and events["pitch"].max() <= 84


def test_tunes_cover_the_brief() -> None:
    meters = {(t.numerator, t.denominator) for t in TUNES}
    assert {(4, 4), (3, 4), (6, 8)} <= meters
    assert any(t.minor for t in TUNES) and any(not t.minor for t in TUNES)
    assert {"dorian", "blues"} <= {t.mode for t in TUNES}
    assert len({t.name for t in TUNES}) == len(TUNES) >= 10


def test_notation() -> None:
    notes = parse_melody("C4:1 D E:1.5 F#:.5~ | F#:1 r:1 Bb3:2 |", 4)
    assert notes == [(0, 1, 60), (1, 1, 62), (2, 1.5, 64), (3.5, 1.5, 66), (6, 2, 58)]
    assert parse_melody("B4:1 E | C:2", 2) == [(0, 1, 71), (1, 1, 76), (2, 2, 72)]  # nearest
    for bad in ("C4:1 D E", "C4:1 D E F:2", "C:4", "C4:4~ | D:4", "H4:4", "C4:0 D:4"):
        with pytest.raises(ValueError):
            parse_melody(bad, 4)


def test_write_tunes_round_trips(tmp_path: Path) -> None:
    paths = write_tunes(tmp_path)
    assert len(paths) == len(TUNES)
    for tune, path in zip(TUNES, paths, strict=True):
        song = read_midi(path)
        expected = tune_events(tune)
        assert (song.numerator, song.denominator, song.key) == (
            tune.numerator,
            tune.denominator,
            tune.key_name,
        )
        assert np.all(song.events["role"] == HUMAN)
        np.testing.assert_array_equal(song.events["pitch"], expected["pitch"])
        np.testing.assert_allclose(song.events["beat"], expected["beat"])
        np.testing.assert_allclose(song.events["dur"], expected["dur"])


def test_close_triad_is_the_highest_voicing_under() -> None:
    assert close_triad([0, 4, 7], 72) == [60, 64, 67]  # E4 G4 C5 would reach the melody's C5
    assert close_triad([0, 4, 7], 73) == [64, 67, 72]
    assert close_triad([2, 5, 9], 65) == [53, 57, 62]  # D minor under F4: F3 A3 D4


@pytest.mark.parametrize("texture", ["block", "arpeggio"])
def test_write_style_round_trips(tmp_path: Path, texture: str) -> None:
    paths = write_style(tmp_path, texture, count=6, seed=3)
    assert [p.name for p in paths] == [f"style_{i:03d}.mid" for i in range(6)]
    meters = set()
    for path in paths:
        song = read_midi(path)
        assert [t.name for t in song.tracks if t.index == song.human_track] == ["human"]
        melody = song.events[song.events["role"] == HUMAN]
        accomp = song.events[song.events["role"] == CLIP]
        assert len(melody) and len(accomp)
        meters.add(song.numerator)
        bar = 4.0 * song.numerator / song.denominator
        assert float(note_ends(song.events).max()) % bar == pytest.approx(0)
        # Under the melody: at every accompaniment onset, below every melody note sounding.
        m_end = note_ends(melody)
        for beat, pitch in zip(accomp["beat"], accomp["pitch"], strict=True):
            sounding = (melody["beat"] <= beat) & (m_end > beat)
            assert not sounding.any() or pitch < melody["pitch"][sounding].min()
        onsets = np.unique(accomp["beat"])
        step = 1.0 if texture == "block" else 0.5
        np.testing.assert_allclose(np.diff(onsets), step)  # on every beat / every eighth
        per_onset = len(accomp) / len(onsets)
        assert per_onset == (4 if texture == "block" else 1)  # triad + bass / one note
    assert meters == {3, 4}
    own = style_file_figures(paths)
    assert own["onsets_per_beat"] == pytest.approx(4.0 if texture == "block" else 2.0)
    assert own["above"] == 0 and own["chord_fit"] >= 0.9 and own["coverage"] == 1
    assert read_midi(write_style(tmp_path / "again", texture, 1, 3)[0]).events.tobytes() == (
        read_midi(paths[0]).events.tobytes()
    )


def test_call_response_input_rests_between_phrases() -> None:
    tune = TUNES[0]
    calls = call_response_input(tune)
    bar = tune.bar_beats
    phrase = np.floor(calls["beat"] / (2 * bar))
    assert np.all(phrase % 2 == 0)  # phrases on bars 0-1, 4-5, ...: bars 2-3, 6-7 are rest
    assert np.all(note_ends(calls) <= (phrase + 1) * 2 * bar + 1e-9)
    assert len(calls) == len(tune_events(tune))


def test_measure_tune_on_a_random_model(tmp_path: Path) -> None:
    model = load_model(random_model(tmp_path / "rnd.safetensors", "tiny"))
    result = measure_tune(model, TUNES[1], seeds=(0, 1), density_seeds=1)
    assert set(result.figures) == set(FIGURES)
    assert len(result.ai_notes) == 2 and sum(result.ai_notes) > 0
    assert 0 <= result.figures["coverage"] <= 1
    assert result.figures["rule_chord_fit"] >= 0.9  # the baseline harmonizes a plain tune
    assert set(result.played) == {"accompany", "call_response"}
    for events in result.played.values():
        assert np.sum(events["role"] == ROLE_INDEX["ai"]) > 0
