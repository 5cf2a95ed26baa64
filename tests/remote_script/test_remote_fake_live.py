"""The fake `Live` offers only names that exist in Live 12.1.11's API dump."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from types import ModuleType

import pytest
from lkjam.remote_script.fake_live.driver import VERSIONS, FakeLive, import_fake_live

# The dump lives next to the repo (not in it); LKJAM_LIVE_API_XML may point elsewhere.
DUMP = Path(
    os.environ.get(
        "LKJAM_LIVE_API_XML",
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "Live-12.1.11-API.xml",
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


# What each version mode hides, per dotted name: the facts the fake must keep.
# Live 11 already has root_note, scale_name and scale_intervals (Push's scale); only
# the Scale switch is new in Live 12.0.
HIDDEN = {
    "11.3": {
        "Live.Song.Song.scale_mode",
        "Live.Song.Song.add_scale_mode_listener",
        "Live.Song.Song.remove_scale_mode_listener",
        "Live.Song.Song.scale_mode_has_listener",
    },
    "12.0": set(),
    "12.1": set(),
}
PUSH_SCALE = ("Live.Song.Song.root_note", "Live.Song.Song.scale_name")
PUSH_SCALE += ("Live.Song.Song.scale_intervals", "Live.Song.Song.add_root_note_listener")
PUSH_SCALE += ("Live.Song.Song.add_scale_name_listener",)


def instance_names(live: FakeLive) -> set[str]:
    """The public names reachable on the instances of a fresh set, in its version."""
    track = live.add_midi_track("t")
    rack = live.add_rack(track)
    clip = live.add_clip(track, 0, 1.0)
    objects = {
        "Live.Song.Song": live.song,
        "Live.Song.Song.View": live.song.view,
        "Live.Track.Track": track,
        "Live.ClipSlot.ClipSlot": track.clip_slots[0],
        "Live.Clip.Clip": clip,
        "Live.RackDevice.RackDevice": rack,
        "Live.DeviceParameter.DeviceParameter": rack.parameters[1],
        "Live.Application.Application": live.application,
    }
    return {
        f"{prefix}.{name}"
        for prefix, obj in objects.items()
        for name in dir(type(obj))
        if not name.startswith("_") and hasattr(obj, name)
    }


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_each_version_hides_exactly_what_that_live_lacks(name: str, api_names: set[str]) -> None:
    everything = instance_names(FakeLive())  # 12.1: nothing hidden
    offered = instance_names(FakeLive(version=VERSIONS[name]))
    assert everything - offered == HIDDEN[name]
    assert HIDDEN[name] <= api_names  # hidden names are real names of the newer Live
    assert set(PUSH_SCALE) <= offered & api_names


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_version_modes_behave_like_that_live(name: str) -> None:
    live = FakeLive(version=VERSIONS[name])
    song = live.song
    assert live.application.get_version_string() == ".".join(map(str, VERSIONS[name]))
    # Push's scale, untouched: C Major, in every version.
    assert (song.root_note, song.scale_name, song.scale_intervals) == (
        0,
        "Major",
        (0, 2, 4, 5, 7, 9, 11),
    )
    assert hasattr(song, "scale_mode") == (name != "11.3")
    slot = live.add_midi_track("t").clip_slots[0]
    created = slot.create_clip(4.0)
    if name == "12.1":
        assert created == slot.clip
    else:  # before 12.1 create_clip returns None; Ableton's own code reads slot.clip
        assert created is None and slot.clip is not None


def test_changing_the_set_from_a_listener_raises_like_live() -> None:
    live = FakeLive()
    track = live.add_midi_track("t")
    errors: list[str] = []

    def on_tempo() -> None:
        for change in (
            lambda: setattr(live.song, "signature_numerator", 3),
            lambda: track.clip_slots[0].create_clip(1.0),
            lambda: live.song.stop_playing(),
            lambda: live.song.create_midi_track(-1),
        ):
            try:
                change()
            except RuntimeError as exc:
                errors.append(str(exc))
        assert live.song.tempo == 90.0  # reading is fine

    live.song.add_tempo_listener(on_tempo)
    live.song.tempo = 90.0
    assert len(errors) == 4 and all("cannot be triggered by notifications" in e for e in errors)
    assert live.song.signature_numerator == 4 and not track.clip_slots[0].has_clip
    live.song.remove_tempo_listener(on_tempo)
    live.song.signature_numerator = 3  # outside a notification it works
    assert live.song.signature_numerator == 3


def test_every_access_gives_a_fresh_wrapper_equal_to_the_last() -> None:
    live = FakeLive()
    track = live.add_midi_track("t")
    clip = live.add_clip(track, 0, 1.0)
    assert live.song.tracks[0] is not live.song.tracks[0]
    assert live.song.tracks[0] == live.song.tracks[0] == track
    assert track.clip_slots[0].clip is not track.clip_slots[0].clip
    assert track.clip_slots[0].clip == clip and clip != track
    assert len({live.song.tracks[0], track}) == 1  # hashable, equal hashes
    assert live.song.tracks[0] != None  # noqa: E711 (Live's liveobj_valid idiom)


def test_deleted_objects_raise_and_equal_none() -> None:
    live = FakeLive()
    track = live.add_midi_track("t")
    rack = live.add_rack(track)
    clip = live.add_clip(track, 0, 1.0)
    clip.add_name_listener(lambda: None)
    track.clip_slots[0].delete_clip()
    assert clip == None and clip._listener_count() == 0  # noqa: E711
    with pytest.raises(RuntimeError):
        _ = clip.name
    macro = rack.parameters[1]
    track.delete_device(0)
    with pytest.raises(RuntimeError):
        _ = macro.value
    slot = track.clip_slots[1]
    live.delete_track(track)
    with pytest.raises(RuntimeError):
        track.add_name_listener(lambda: None)
    with pytest.raises(RuntimeError):
        slot.add_playing_status_listener(lambda: None)
    assert track == None and len(live.song.tracks) == 0  # noqa: E711


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


def test_a_running_position_is_read_as_it_is_then_and_ticks_keep_their_beats() -> None:
    """With run_position the script reads the song's and a playing clip's position at the
    moment it reads them (Live's audio thread moves both between ticks); ticks advance
    from their own beat, and a clip fired on a tick starts on that tick's beat."""
    live = FakeLive(tempo=120.0)
    track = live.add_midi_track("t")
    clip = live.add_clip(track, 0, 4.0, [(60, 0.0, 1.0, 100)])
    now = [0.0]
    live.run_position(lambda: now[0] * 2.0)  # 120 bpm from beat 0
    live.play()
    live.advance_to(0.5)  # a tick at beat 0.5, where the clip is fired
    live.fire(track, 0)
    now[0] = 0.3
    assert live.song.current_song_time == pytest.approx(0.6)  # not where the tick left it
    assert clip.playing_position == pytest.approx(0.1)  # from beat 0.5, the tick's
    live.advance(0.25)  # the next tick: from the last tick's beat, not from the reading
    live.stop()
    assert live.song.current_song_time == pytest.approx(1.0)  # stopped: where it stood


def test_driver_ticks_every_100_ms_in_real_time() -> None:
    live = FakeLive()

    class Counter:
        ticks = 0

        def update_display(self) -> None:
            self.ticks += 1

    live.surface = counter = Counter()
    live.run(0.35)  # ticks at 0, 0.1, 0.2 and 0.3 s
    # The one at 0.3 s may slip past the end on a loaded machine; a driver ticking at
    # another period (50 ms: 7; 200 ms: 2) fails.
    assert counter.ticks in (3, 4)


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_create_midi_track_and_its_input_like_live(name: str) -> None:
    live = FakeLive(version=VERSIONS[name], midi_inputs=("lkjam out",))
    first = live.add_midi_track("a")
    live.song.create_midi_track(1)
    live.song.create_midi_track(-1)
    new = live.song.tracks[1]
    assert [t.name for t in live.song.tracks] == ["a", "2-MIDI", "3-MIDI"] and new != first
    offered = [t.display_name for t in new.available_input_routing_types]
    assert "lkjam out" in offered and new.input_routing_type.display_name == "All Ins"
    new.input_routing_type = new.available_input_routing_types[offered.index("lkjam out")]
    assert new.input_routing_type.display_name == "lkjam out"
    with pytest.raises(ValueError):  # only what available_input_routing_types offers
        new.input_routing_type = live.Live.Track.RoutingType("nowhere")
    new.current_monitoring_state = new.monitoring_states.IN
    assert new.current_monitoring_state == 0
    with pytest.raises(IndexError):
        live.song.create_midi_track(9)
