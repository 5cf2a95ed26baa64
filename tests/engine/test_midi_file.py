"""Odd MIDI files (issue 13): the one reader, `read_midi`, refuses each with one clear
MidiFileError naming the file; `write_midi` never leaves a partial or corrupt file; and the
callers, `lkjam accompany` and training's folder loader, turn the error into one line or
a counted skip."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import mido
import numpy as np
import pytest
from lkjam.engine.events import make_events
from lkjam.engine.midi_file import MidiFileError, read_midi, write_midi

from lkjam import accompany


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">I", len(body)) + body


def header(fmt: int, tracks: int, division: int) -> bytes:
    return chunk(b"MThd", struct.pack(">hhH", fmt, tracks, division))


NOTES = bytes([0x00, 0x90, 60, 100, 0x83, 0x60, 0x80, 60, 0])  # C4 for 480 ticks, channel 1
END = bytes([0x00, 0xFF, 0x2F, 0x00])


def track(*events: bytes) -> bytes:
    return chunk(b"MTrk", b"".join(events) + END)


def meta(kind: int, data: bytes) -> bytes:
    return bytes([0x00, 0xFF, kind, len(data)]) + data


GOOD = header(1, 1, 480) + track(NOTES)

# name -> (file bytes, what the error says)
ODD: dict[str, tuple[bytes, str]] = {
    "zero_tpb": (header(1, 1, 0) + track(NOTES), "0 ticks per beat"),
    "smpte": (header(1, 1, 0xE728) + track(NOTES), "SMPTE time division"),  # -25 fps, 40 tpf
    "tempo0": (header(1, 1, 480) + track(meta(0x51, b"\0\0\0"), NOTES), "set_tempo 0"),
    "later_tempo0": (
        header(1, 1, 480) + track(NOTES, meta(0x51, b"\0\0\0")),
        "set_tempo 0 µs per beat at beat 1",
    ),
    "numerator0": (
        header(1, 1, 480) + track(meta(0x58, bytes([0, 2, 24, 8])), NOTES),
        "time signature 0/4",
    ),
    "denominator2_99": (
        header(1, 1, 480) + track(meta(0x58, bytes([4, 99, 24, 8])), NOTES),
        "time signature 4/633825300114114700748351602688",
    ),
    "type2": (header(2, 1, 480) + track(NOTES), "MIDI type 2"),
    "no_tracks": (header(1, 0, 480), "no tracks"),
    "drums_only": (
        header(1, 1, 480) + track(bytes([0, 0x99, 36, 100, 0x60, 0x89, 36, 0])),
        "no pitched notes",
    ),
    "truncated": (GOOD[:-6], "not a readable MIDI file"),
}


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "odd"
    folder.mkdir()
    for name, (data, _) in ODD.items():
        (folder / f"{name}.mid").write_bytes(data)
    (folder / "good.mid").write_bytes(GOOD)
    return folder


def test_the_good_file_reads(odd_folder: Path) -> None:
    song = read_midi(odd_folder / "good.mid")
    assert song.events["pitch"].tolist() == [60] and song.events["dur"].tolist() == [1.0]


@pytest.mark.parametrize("name", sorted(ODD))
def test_each_odd_file_is_one_clear_error(odd_folder: Path, name: str) -> None:
    with pytest.raises(MidiFileError) as info:
        read_midi(odd_folder / f"{name}.mid")
    text = str(info.value)
    assert text.startswith(f"{odd_folder / name}.mid: ") and ODD[name][1] in text, text
    assert "\n" not in text


@pytest.mark.parametrize("name", sorted(ODD))
def test_accompany_says_one_line_and_writes_nothing(
    odd_folder: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "OUT.mid"
    assert accompany.main([str(odd_folder / f"{name}.mid"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lkjam accompany: "), err
    assert ODD[name][1] in err
    assert not out.exists()


def test_training_skips_names_and_counts_each_odd_file(odd_folder: Path, tmp_path: Path) -> None:
    from lkjam.training.midi_folder import load_midi_folder

    pieces, summary = load_midi_folder(odd_folder, cache=tmp_path / "cache", progress=False)
    assert len(pieces) == 1 and summary.found == len(ODD) + 1 and summary.used == 1
    skipped = sorted(n for names in summary.skipped.values() for n in names)
    assert skipped == sorted(f"{name}.mid" for name in ODD)


def some_events() -> np.ndarray:
    return make_events([0.0, 1.0], [1.0, 1.0], [60, 64], [100, 100], ["human", "ai"])


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda p: write_midi(p, some_events(), ticks_per_beat=0), "0 ticks per beat"),
        (lambda p: write_midi(p, some_events(), ticks_per_beat=-6360), "SMPTE"),
        (lambda p: write_midi(p, some_events(), ticks_per_beat=40_000), "40000 ticks per"),
        (lambda p: write_midi(p, some_events(), tempo_bpm=0.0), "tempo 0.0 BPM"),
        (lambda p: write_midi(p, some_events(), tempo_bpm=float("nan")), "tempo nan BPM"),
        (
            lambda p: write_midi(
                p, some_events(), conductor=[(0.0, mido.MetaMessage("set_tempo", tempo=0))]
            ),
            "set_tempo 0",
        ),
        (  # mido fails midway through a track: nothing may reach the disk
            lambda p: write_midi(
                p,
                some_events(),
                conductor=[
                    (1.0, mido.MetaMessage("set_tempo", tempo=400_000)),
                    (0.0, mido.MetaMessage("set_tempo", tempo=500_000)),
                ],
            ),
            "cannot write",
        ),
    ],
)
def test_write_midi_refuses_whole_or_leaves_the_old_file(
    tmp_path: Path, write: Callable[[Path], None], expected: str
) -> None:
    path = tmp_path / "OUT.mid"
    path.write_bytes(GOOD)
    with pytest.raises(MidiFileError) as info:
        write(path)
    assert str(info.value).startswith(f"{path}: cannot write") and expected in str(info.value)
    assert path.read_bytes() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["OUT.mid"]  # no temporary left over


def test_write_midi_round_trips_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "OUT.mid"
    path.write_bytes(GOOD)
    write_midi(path, some_events(), ticks_per_beat=96, tempo_bpm=90)
    song = read_midi(path)
    assert song.ticks_per_beat == 96 and round(song.tempo_bpm) == 90
    assert sorted(song.events["pitch"].tolist()) == [60, 64]
    with pytest.raises(MidiFileError, match="cannot write"):
        write_midi(tmp_path / "no" / "such" / "dir.mid", some_events())
