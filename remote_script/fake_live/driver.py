"""Drive the real LKJam control surface inside a fake Live, the way Live does.

Live calls a control surface's `update_display` about every 100 ms on its main thread;
`FakeLive.tick` does the same after advancing the transport and the playing clips, in
simulated or in real time. `CInstance` stands in for the `c_instance` Live hands to
`create_instance`.

    live = FakeLive(tempo=100)
    keys = live.add_midi_track("Keys [human]")
    live.add_midi_track("AI", input_routing="lkjam out")
    clip = live.add_clip(keys, 0, 4.0, [(60, 0.0, 1.0, 100)])
    surface = live.load_surface(port=5678)
    live.play(); live.fire(keys, 0)
    live.run(10.0)            # ten seconds of Live, ticking every 100 ms
    live.disconnect()
"""

import importlib
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

FAKE_LIVE_DIR = os.path.dirname(os.path.abspath(__file__))
TICK_SECONDS = 0.1  # Live's update_display period
# The Live versions the fake behaves like (tests run the script in each).
VERSIONS = {"11.3": (11, 3, 25), "12.0": (12, 0, 25), "12.1": (12, 1, 11)}

Note = Tuple[int, float, float, int]  # (pitch, start beat, duration beats, velocity)


def import_fake_live() -> Any:
    """Make `import Live` find the fake (it is a top-level module inside Live)."""
    if FAKE_LIVE_DIR not in sys.path:
        sys.path.insert(0, FAKE_LIVE_DIR)
    live = importlib.import_module("Live")
    if not os.path.abspath(str(live.__file__)).startswith(FAKE_LIVE_DIR):
        raise RuntimeError("a different `Live` module is already imported: %s" % live.__file__)
    return live


class CInstance:
    """What Live passes to create_instance: logging, the status bar, the song."""

    def __init__(self, song: Any, application: Any) -> None:
        self._song = song
        self._application = application
        self.log: List[str] = []  # Live writes these to Log.txt
        self.messages: List[str] = []  # status bar texts, in order
        self.midi_map_rebuilds = 0

    def log_message(self, message: str) -> None:
        self.log.append(message)

    def show_message(self, message: str) -> None:
        self.messages.append(message)

    def song(self) -> Any:
        return self._song

    def application(self) -> Any:
        return self._application

    def request_rebuild_midi_map(self) -> None:
        self.midi_map_rebuilds += 1

    def send_midi(self, midi_bytes: Sequence[int]) -> None:
        pass


class FakeLive:
    """A small Live set with a transport, tracks, clips and one loaded control surface."""

    def __init__(
        self,
        version: Tuple[int, int, int] = (12, 1, 11),
        tempo: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        midi_inputs: Sequence[str] = ("lkjam out",),
    ) -> None:
        """`midi_inputs`: the MIDI input ports with Track on, offered to new tracks."""
        self.Live = import_fake_live()
        self.Live._lom.set_version(*version)
        self.song = self.Live.Song.Song(tempo)
        self.song._midi_inputs = tuple(midi_inputs)
        self.application = self.Live.Application.get_application()
        self.c_instance = CInstance(self.song, self.application)
        self.surface: Any = None
        self._clock = clock
        self._last_tick: Optional[float] = None

    # -- building the set --------------------------------------------------------

    def add_midi_track(self, name: str, input_routing: str = "All Ins", slots: int = 8) -> Any:
        track = self.Live.Track.Track(self.song, name, input_routing, slots)
        self.song._set("tracks", (*tuple(self.song.tracks), track))
        return track

    def add_clip(
        self,
        track: Any,
        slot: int,
        length: float,
        notes: Sequence[Note] = (),
        name: str = "",
        looping: bool = True,
    ) -> Any:
        clip_slot = track.clip_slots[slot]
        clip_slot.create_clip(length)  # returns the clip only from Live 12.1 on
        clip = clip_slot.clip
        clip.name = name
        clip.looping = looping
        for pitch, start, duration, velocity in notes:
            clip._add(pitch, start, duration, velocity)
        return clip

    def add_rack(self, track: Any, name: str = "lkjam", macros: Sequence[float] = ()) -> Any:
        rack = self.Live.RackDevice.RackDevice(name, macros)
        rack._values["canonical_parent"] = track
        track._set("devices", (*tuple(track.devices), rack))
        return rack

    def set_macro(self, rack: Any, number: int, value: float) -> None:
        """Turn macro `number` (1..8) to `value` (0..127), as a user would."""
        rack.parameters[number].value = float(value)

    def select_clip(self, clip: Any) -> None:
        self.song.view.detail_clip = clip

    def delete_track(self, track: Any) -> None:
        self.song.delete_track(list(self.song.tracks).index(track))

    def set_scale(self, root: int, intervals: Sequence[int], name: str = "") -> None:
        """Live 12: the set's scale, Scale mode on. Live 11: Push's scale, as a Push sets it."""
        self.song.root_note = root
        self.song._set("scale_intervals", tuple(intervals))
        self.song.scale_name = name
        if hasattr(self.song, "scale_mode"):
            self.song.scale_mode = True

    # -- the surface -------------------------------------------------------------

    def load_surface(
        self,
        host: str = "127.0.0.1",
        port: int = 5678,
        clock: Optional[Callable[[], float]] = None,
        package: str = "lkjam.remote_script.LKJam",
        engine_file: Optional[str] = None,
    ) -> Any:
        """Import the real script and create it as Live does (create_instance).

        With `clock`, the surface reads that monotonic clock instead of the real one
        (tests use it to step through heartbeats and backoff without waiting).
        `package` is "LKJam" where the script is imported the way Live does, from a
        Remote Scripts folder on sys.path (without lkjam installed, e.g. on Python 3.7).
        `engine_file` replaces the engine command file `lkjam install` writes beside the
        script (the surface starts that engine when none answers).
        """
        os.environ["LKJAM_ENGINE"] = "%s:%d" % (host, port)
        try:
            script = importlib.import_module(package)
            if clock is None and engine_file is None:
                self.surface = script.create_instance(self.c_instance)
            else:
                surface = importlib.import_module(package + ".surface")
                options: Dict[str, Any] = {"engine_file": engine_file}
                if clock is not None:
                    options["clock"] = clock
                self.surface = surface.LKJam(self.c_instance, **options)
        finally:
            del os.environ["LKJAM_ENGINE"]
        return self.surface

    def disconnect(self) -> None:
        """What Live does when the surface is deselected or Live quits."""
        if self.surface is not None:
            self.surface.disconnect()
            self.surface = None

    # -- time --------------------------------------------------------------------

    def play(self) -> None:
        self.song.start_playing()

    def stop(self) -> None:
        self.song.stop_playing()

    def fire(self, track: Any, slot: int) -> None:
        track.clip_slots[slot].fire()

    def run_position(self, position: Optional[Callable[[], float]]) -> None:
        """Let the song position run between ticks, as Live's does: while playing, reading
        current_song_time returns `position()`, the beat at that moment (the demo's tempo
        map). None, the default: the position moves only with `advance`."""
        self.song._position = position

    def advance(self, seconds: float) -> None:
        """Move the transport and the playing clips `seconds` forward (no tick)."""
        if not self.song.is_playing:
            return
        # From the position of the last advance: a running position (run_position) has
        # already moved on by itself.
        beat = self.song._values["current_song_time"] + seconds * self.song.tempo / 60.0
        self.song._set("current_song_time", beat)
        for track in self.song.tracks:
            if track.playing_slot_index >= 0:
                clip = track.clip_slots[track.playing_slot_index].clip
                clip._values["playing_position"] = clip._position_at(beat)

    def advance_to(self, beat: float) -> None:
        """Move the transport to song beat `beat` (no tick)."""
        self.advance((beat - self.song._values["current_song_time"]) * 60.0 / self.song.tempo)

    def tick(self, seconds: Optional[float] = None) -> None:
        """Advance by `seconds` (default: the real time since the last tick), then tick."""
        now = self._clock()
        if seconds is None:
            seconds = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        self.advance(seconds)
        if self.surface is not None:
            self.surface.update_display()

    def run(self, seconds: float, realtime: bool = True, period: float = TICK_SECONDS) -> None:
        """Tick for `seconds`: in real time (sleeping between ticks) or simulated."""
        if not realtime:
            for _ in range(max(1, round(seconds / period))):
                self.tick(period)
            return
        start = self._clock()
        end = start + seconds
        ticks = 0
        while True:
            self.tick()
            ticks += 1
            next_tick = start + ticks * period
            if next_tick >= end - 1e-9:
                break
            time.sleep(max(0.0, next_tick - self._clock()))
        time.sleep(max(0.0, end - self._clock()))
