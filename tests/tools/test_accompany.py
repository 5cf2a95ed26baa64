"""`lkjam accompany` and the MIDI files under it: real files written with mido into
tmp_path, a real compiled step (random weights in a real model file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
from lkjam.engine.events import make_events
from lkjam.engine.keys import parse_key
from lkjam.engine.midi_file import MidiFileError, read_midi, write_midi
from lkjam.engine.model_file import ModelMeta, save_model
from weights import random_weights

from lkjam.accompany import main, tempo_markers
from lkjam.pianoroll import PianoRollError, draw

TPB = 480


def track(name: str, notes: list[tuple[float, float, int]], channel: int = 0) -> mido.MidiTrack:
    """A track from (beat, dur, pitch) notes; note-offs as note_on velocity 0."""
    timed = []
    for beat, dur, pitch in notes:
        timed.append(
            (
                round(beat * TPB),
                1,
                mido.Message("note_on", channel=channel, note=pitch, velocity=90),
            )
        )
        timed.append(
            (
                round((beat + dur) * TPB),
                0,
                mido.Message("note_on", channel=channel, note=pitch, velocity=0),
            )
        )
    timed.sort(key=lambda t: (t[0], t[1]))
    out = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    now = 0
    for tick, _, msg in timed:
        out.append(msg.copy(time=tick - now))
        now = tick
    return out


def song_file(path: Path, *, bars: int = 8) -> Path:
    """Conductor (3/4, 100 BPM, key Em), a melody, a lower pad, and a drum track."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mid.tracks.append(
        mido.MidiTrack(
            [
                mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100)),
                mido.MetaMessage("time_signature", numerator=3, denominator=4),
                mido.MetaMessage("key_signature", key="Em"),
            ]
        )
    )
    beats = 3 * bars
    mid.tracks.append(
        track("pad", [(b, 3.0, p) for b in range(0, beats, 3) for p in (52, 55, 59)], 1)
    )
    mid.tracks.append(track("tune", [(b * 0.5, 0.5, 64 + (b * 5) % 12) for b in range(2 * beats)]))
    mid.tracks.append(track("drums", [(b, 0.25, 36) for b in range(beats)], channel=9))
    mid.save(path)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_model(path, random_weights("tiny"), ModelMeta(topology="tiny", style="random"))
    return path


def test_read_picks_the_top_voice_as_human_and_skips_drums(tmp_path: Path) -> None:
    song = read_midi(song_file(tmp_path / "in.mid"))
    assert song.human_track == 2
    assert [t.name for t in song.tracks] == ["pad", "tune"]
    assert (song.numerator, song.denominator, song.key) == (3, 4, "Em")
    assert song.tempo_bpm == pytest.approx(100)
    human = song.events[song.events["role"] == 0]
    clip = song.events[song.events["role"] == 1]
    assert len(human) == 48 and len(clip) == 24
    np.testing.assert_allclose(human["beat"][:3], [0, 0.5, 1])
    np.testing.assert_allclose(human["dur"], 0.5)
    assert 36 not in song.events["pitch"]


def test_read_takes_the_human_track_asked_for(tmp_path: Path) -> None:
    song = read_midi(song_file(tmp_path / "in.mid"), human_track=1)
    assert set(song.events["pitch"][song.events["role"] == 0].tolist()) == {52, 55, 59}


@pytest.mark.parametrize(
    ("number", "problem"), [(7, "no such track"), (3, "no notes"), (0, "no notes")]
)
def test_a_missing_track_is_named(tmp_path: Path, number: int, problem: str) -> None:
    path = song_file(tmp_path / "in.mid")
    with pytest.raises(MidiFileError, match=rf"in\.mid: track {number}: {problem}.*1 \(pad"):
        read_midi(path, human_track=number)


def test_unreadable_files_get_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MidiFileError, match=r"nothere\.mid: no such file"):
        read_midi(tmp_path / "nothere.mid")
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff")
    with pytest.raises(MidiFileError, match=r"corrupt\.mid: not a readable MIDI file"):
        read_midi(corrupt)
    text = tmp_path / "text.mid"
    text.write_text("not midi at all")
    with pytest.raises(MidiFileError, match=r"text\.mid: not a readable MIDI file"):
        read_midi(text)
    empty = tmp_path / "empty.mid"
    mid = mido.MidiFile(type=1)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)]))
    mid.tracks.append(track("drums only", [(0, 1, 36)], channel=9))
    mid.save(empty)
    with pytest.raises(MidiFileError, match=r"empty\.mid: no pitched notes"):
        read_midi(empty)


def test_write_then_read_keeps_notes_roles_and_conductor(tmp_path: Path) -> None:
    events = make_events(
        [0, 0, 0.5, 1, 1.25, 1.25],
        [1, 2, 0.5, 1, 0.25, 0.75],
        [72, 48, 74, 76, 55, 59],
        [90, 60, 91, 92, 70, 71],
        ["human", "clip", "human", "human", "ai", "ai"],
    )
    path = tmp_path / "out.mid"
    write_midi(path, events, tempo_bpm=90, numerator=6, denominator=8)
    mid = mido.MidiFile(path)
    assert [t.name for t in mid.tracks[1:]] == ["human", "clip", "ai"]
    song = read_midi(path)
    assert (song.numerator, song.denominator) == (6, 8)
    assert song.tempo_bpm == pytest.approx(90)
    back = song.events
    # Read back, the "human" track is human again; every other note track becomes clip.
    assert back["role"].tolist() == [0, 1, 0, 0, 1, 1]
    for field in ("beat", "dur", "pitch", "vel"):
        np.testing.assert_allclose(back[field], events[field], err_msg=field)


def test_write_leaves_no_hanging_same_pitch_overlaps(tmp_path: Path) -> None:
    events = make_events([0, 0, 1], [2, 2, 2], [60, 60, 60], [80, 80, 80], ["ai"] * 3)
    path = tmp_path / "o.mid"
    write_midi(path, events)
    ai = mido.MidiFile(path).tracks[-1]
    kinds = [
        (m.type, m.velocity > 0 if m.type == "note_on" else False) for m in ai if not m.is_meta
    ]
    assert kinds == [("note_on", True), ("note_off", False), ("note_on", True), ("note_off", False)]
    np.testing.assert_allclose(read_midi(path).events["dur"], [1, 2])


def test_cli_writes_human_clip_and_ai_tracks_reproducibly(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = song_file(tmp_path / "in.mid")
    out = tmp_path / "out.mid"
    assert main([str(src), "-o", str(out), "--model", str(model_file), "--seed", "4"]) == 0
    mid = mido.MidiFile(out)
    assert [t.name for t in mid.tracks[1:]] == ["human", "clip", "ai"]
    ai_notes = [m for m in mid.tracks[3] if m.type == "note_on" and m.velocity > 0]
    assert len(ai_notes) > 0
    # Tempo, meter and key come through from the input.
    assert {m.type for m in mid.tracks[0]} >= {"set_tempo", "time_signature", "key_signature"}
    first = out.read_bytes()
    assert main([str(src), "-o", str(out), "--model", str(model_file), "--seed", "4"]) == 0
    assert out.read_bytes() == first
    assert main([str(src), "-o", str(out), "--model", str(model_file), "--seed", "5"]) == 0
    assert out.read_bytes() != first
    printed = capsys.readouterr().out
    assert "human 48, clip 24, ai" in printed and "key Em" in printed and "nicr=" in printed


def test_cli_png_draws_a_piano_roll(tmp_path: Path, model_file: Path) -> None:
    src = song_file(tmp_path / "in.mid")
    assert (
        main([str(src), "-o", str(tmp_path / "out.mid"), "--model", str(model_file), "--png"]) == 0
    )
    png = (tmp_path / "out.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_draw_marks_and_handles_an_empty_stream(tmp_path: Path) -> None:
    events = make_events([0, 1], [1, 1], [60, 64], [80, 80], ["human", "ai"])
    draw(events, tmp_path / "a.png", markers=[(1.0, "tempo 90")])
    draw(events[:0], tmp_path / "b.png")
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--human-track", "9"], "in.mid: track 9: no such track"),
        (["--model", "{tmp}/none.safetensors"], "none.safetensors"),
        (["--style", "nosuchstyle"], "no style named 'nosuchstyle'"),
        (["--key", "H#"], "key 'H#' is not a key"),
        (["--top-p", "0"], "top_p"),
    ],
)
def test_cli_errors_exit_2_with_a_message(
    tmp_path: Path,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    src = song_file(tmp_path / "in.mid")
    argv = [str(src), "-o", str(tmp_path / "o.mid")] + [a.format(tmp=tmp_path) for a in args]
    if "--model" not in args and "--style" not in args:
        argv += ["--model", str(model_file)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.mid").exists()


def test_cli_rejects_corrupt_and_note_less_files(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"RIFF0000garbage")
    assert main([str(bad), "-o", str(tmp_path / "o.mid"), "--model", str(model_file)]) == 2
    assert "bad.mid: not a readable MIDI file" in capsys.readouterr().err


def test_parse_key() -> None:
    assert parse_key("C") == (0, (0, 2, 4, 5, 7, 9, 11))
    assert parse_key("F#m") == (6, (0, 2, 3, 5, 7, 8, 10))
    assert parse_key("Bb")[0] == 10
    assert parse_key("Ebm")[0] == 3


def test_engine_modules_start_without_matplotlib_and_say_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = (
        "import sys, lkjam.accompany, lkjam.pianoroll, lkjam.engine.offline;"
        "assert 'matplotlib' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    events = make_events([0], [1], [60], [80], ["human"])
    with pytest.raises(PianoRollError, match=r"needs matplotlib: pip install 'lkjam\[train\]'"):
        draw(events, tmp_path / "x.png")


def test_a_one_track_file_splits_into_channels(tmp_path: Path) -> None:
    melody = track("all", [(b, 1.0, 72 + b % 5) for b in range(8)], channel=0)
    bass = track("x", [(b, 2.0, 40) for b in range(0, 8, 2)], channel=3)
    merged = mido.MidiTrack(mido.merge_tracks([melody, bass]))
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    mid.tracks.append(merged)
    path = tmp_path / "type0.mid"
    mid.save(path)
    song = read_midi(path)
    assert (song.part_unit, song.human_track) == ("channel", 0)
    assert [t.index for t in song.tracks] == [0, 3]
    assert song.events["pitch"][song.events["role"] == 1].tolist() == [40] * 4
    bass_human = read_midi(path, human_track=3).events
    assert bass_human["pitch"][bass_human["role"] == 0].tolist() == [40] * 4
    with pytest.raises(MidiFileError, match=r"type0\.mid: channel 5: no notes; channels with"):
        read_midi(path, human_track=5)


def test_tempo_changes_become_markers() -> None:
    conductor = [
        (0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))),
        (0.0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (16.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
        (20.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
    ]
    assert tempo_markers(conductor) == [(16.0, "♩=90")]
