"""The fake `Live` offers only names that exist in Live 12.1.11's API dump."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from types import ModuleType

import pytest
from lkjam.remote_script.fake_live.driver import FakeLive, import_fake_live

# The dump lives next to the repo (not in it); LKJAM_LIVE_API_XML may point elsewhere.
DUMP = Path(
    os.environ.get(
        "LKJAM_LIVE_API_XML",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "Live-12.1.11-API.xml",
    )
)
ENTRY = re.compile(r"<(?:Module|Class|Value|Built-In)>(Live(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


@pytest.fixture(scope="module")
def api_names() -> set[str]:
    if not DUMP.is_file():
        pytest.skip(f"Live API dump not found at {DUMP} (set LKJAM_LIVE_API_XML)")
    names = set(ENTRY.findall(DUMP.read_text(encoding="utf-8", errors="replace")))
    assert "Live.Song.Song.tempo" in names  # the parser understood the dump
    return names


def public_names(live: ModuleType) -> list[str]:
    """Every public dotted name the fake offers: modules, their members, class members."""
    found = []
    for mod_name, module in inspect.getmembers(live, inspect.ismodule):
        if mod_name.startswith("_"):
            continue
        prefix = f"Live.{mod_name}"
        found.append(prefix)
        for name, member in vars(module).items():
            if name.startswith("_") or inspect.ismodule(member):
                continue
            found.append(f"{prefix}.{name}")
            if inspect.isclass(member):
                found += _class_names(f"{prefix}.{name}", member)
    return found


def _class_names(prefix: str, cls: type) -> list[str]:
    found = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        found.append(f"{prefix}.{name}")
        member = getattr(cls, name)
        if inspect.isclass(member) and member is not cls:
            found += _class_names(f"{prefix}.{name}", member)
    return found


def instance_attributes() -> list[str]:
    """Public attributes set on instances (value objects like MidiNote, RoutingType)."""
    live = FakeLive()
    track = live.add_midi_track("t")
    clip = live.add_clip(track, 0, 1.0, [(60, 0.0, 1.0, 100)])
    note = next(iter(clip.get_all_notes_extended()))
    found = []
    for prefix, obj in (
        ("Live.Clip.MidiNote", note),
        ("Live.Track.RoutingType", track.input_routing_type),
        ("Live.Clip.MidiNoteSpecification", live.Live.Clip.MidiNoteSpecification(60, 0.0, 1.0)),
    ):
        found += [f"{prefix}.{name}" for name in vars(obj) if not name.startswith("_")]
    return found


def test_every_public_name_of_the_fake_exists_in_live(api_names: set[str]) -> None:
    live = import_fake_live()
    names = public_names(live) + instance_attributes()
    assert len(names) > 150
    missing = sorted(set(names) - api_names)
    assert missing == [], f"the fake offers names Live 12.1.11 lacks: {missing}"


def test_live_11_hides_the_live_12_names() -> None:
    live = FakeLive(version=(11, 3, 25))
    try:
        assert not hasattr(live.song, "root_note")
        assert not hasattr(live.song, "add_scale_intervals_listener")
        assert live.application.get_major_version() == 11
    finally:
        live.Live._lom.set_version(12, 1, 11)
    assert FakeLive().song.root_note == 0


def test_fake_listeners_behave_like_live() -> None:
    song = FakeLive().song
    calls: list[float] = []

    def on_tempo() -> None:
        calls.append(song.tempo)

    song.add_tempo_listener(on_tempo)
    assert song.tempo_has_listener(on_tempo)
    with pytest.raises(RuntimeError):
        song.add_tempo_listener(on_tempo)
    song.tempo = 90.0
    song.tempo = 90.0  # unchanged: no notification
    song.remove_tempo_listener(on_tempo)
    with pytest.raises(RuntimeError):
        song.remove_tempo_listener(on_tempo)
    song.tempo = 95.0
    assert calls == [90.0]


def test_driver_runs_a_clip_through_its_loop() -> None:
    live = FakeLive(tempo=120.0)
    track = live.add_midi_track("t")
    clip = live.add_clip(track, 0, 2.0, [(60, 0.0, 1.0, 100)])
    live.play()
    live.fire(track, 0)
    live.run(1.5, realtime=False)  # 3 beats at 120 bpm
    assert live.song.current_song_time == pytest.approx(3.0)
    assert clip.playing_position == pytest.approx(1.0)  # looped once
    assert track.playing_slot_index == 0 and clip.is_playing
    live.stop()
    assert track.playing_slot_index == -1 and not clip.is_playing


def test_driver_ticks_every_100_ms_in_real_time() -> None:
    live = FakeLive()

    class Counter:
        ticks = 0

        def update_display(self) -> None:
            self.ticks += 1

    live.surface = counter = Counter()
    live.run(0.35)  # ticks at 0, 0.1, 0.2 and 0.3 s
    assert counter.ticks == 4
