"""ListenerRegistry: one place that adds Live listeners, and removes exactly those."""

from __future__ import annotations

from lkjam.remote_script.fake_live.driver import FakeLive
from lkjam.remote_script.LKJam.listeners import ListenerRegistry


class Owner:
    def __init__(self) -> None:
        self.calls = 0

    def changed(self) -> None:
        self.calls += 1


def test_add_replace_remove_owner_and_clear() -> None:
    song = FakeLive().song
    log: list[str] = []
    registry = ListenerRegistry(log.append)
    a, b = Owner(), Owner()
    assert registry.add(a, song, "tempo", a.changed)
    assert registry.add(a, song, "tempo", a.changed)  # same key: replaced, not doubled
    assert registry.add(b, song, "tempo", b.changed)
    assert registry.add(b, song, "is_playing", b.changed)
    assert len(registry) == 3 and song._listener_count() == 3
    song.tempo = 99.0
    assert (a.calls, b.calls) == (1, 1)

    registry.remove_owner(a)
    assert len(registry) == 2 and not song.tempo_has_listener(a.changed)
    song.tempo = 98.0
    assert (a.calls, b.calls) == (1, 2)

    registry.clear()
    assert len(registry) == 0 and song._listener_count() == 0
    assert log == []


def test_missing_properties_are_reported_not_raised() -> None:
    live = FakeLive(version=(11, 3, 25))
    registry = ListenerRegistry(lambda _: None)
    assert registry.add(Owner(), live.song, "scale_mode", lambda: None) is False
    assert len(registry) == 0


def test_a_fresh_wrapper_of_the_same_object_is_the_same_subject() -> None:
    """Live returns a new wrapper on every access: the registry must use ==, not `is`."""
    live = FakeLive()
    live.add_midi_track("t")
    registry = ListenerRegistry(lambda _: None)
    owner = Owner()
    assert live.song.tracks[0] is not live.song.tracks[0]
    registry.add(owner, live.song.tracks[0], "name", owner.changed)
    registry.add(owner, live.song.tracks[0], "name", owner.changed)  # replaced
    assert len(registry) == 1 and live.song.tracks[0]._listener_count() == 1
    registry.remove_owner(owner)
    assert live.song.tracks[0]._listener_count() == 0


def test_a_listener_already_gone_in_live_is_logged_not_raised() -> None:
    live = FakeLive()
    track = live.add_midi_track("t")
    log: list[str] = []
    registry = ListenerRegistry(log.append)
    owner = Owner()
    registry.add(owner, track, "name", owner.changed)
    live.delete_track(track)  # Live drops its listeners with it; any access raises
    registry.clear()
    assert len(registry) == 0
    assert len(log) == 1 and "name" in log[0]
