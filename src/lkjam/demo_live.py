"""The simulated session of `lkjam demo`: everything that is not the engine.

- `Timeline`: the fake transport's true beat line (one tempo change), known in advance so
  every part follows the same clock.
- `Piece`: the chorale shipped in src/lkjam/data (soprano for the human, bass as a Live clip).
- `LiveSet`: the fake Live running the real remote script (tracks, bass clip, controls
  rack, key), ticked on the timeline.
- `Player`: a thread that plays the melody (and, optionally, MIDI clock) into `lkjam in`
  with human micro-timing; `Recorder`: timestamps everything arriving from `lkjam out`.

Wall time is `time.perf_counter()` seconds throughout (the engine uses the same clock).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rtmidi

from lkjam.engine.events import ROLE_INDEX
from lkjam.engine.keys import parse_key
from lkjam.engine.midi_file import read_midi
from lkjam.engine.ports import RTMIDI_APIS, JackClient, PortError
from lkjam.engine.sync import MIDI_CLOCK, MIDI_START, MIDI_STOP, TICKS_PER_BEAT
from lkjam.remote_script.fake_live.driver import FakeLive

PIECE_PATH = Path(__file__).resolve().parent / "data" / "chorale.mid"
PIECE_NAME = "J. S. Bach, chorale BWV 32.6"
BEATS_PER_BAR = 4
TICK_S = 0.1  # Live's update_display period
JITTER_S = 0.004  # sd of the human's onset timing
LEGATO = 0.9  # the human releases a key after this share of the written length
BASS_ENTRY = 0.0  # beats: the bass clip starts with the song ...
HUMAN_ENTRY = 4.0  # ... and the human comes in on bar 2

Message = tuple[float, bytes]  # (perf_counter s, MIDI bytes)


@dataclass(frozen=True)
class Timeline:
    """beat(t) of the fake transport: `tempo` from `t0` (beat 0), `new_tempo` from
    `change_beat` on. Beats are quarter notes, tempos BPM, times perf_counter seconds."""

    t0: float
    tempo: float
    change_beat: float
    new_tempo: float

    @property
    def change_time(self) -> float:
        return self.t0 + self.change_beat * 60.0 / self.tempo

    def beat_at(self, t: float) -> float:
        if t < self.change_time:
            return (t - self.t0) * self.tempo / 60.0
        return self.change_beat + (t - self.change_time) * self.new_tempo / 60.0

    def time_at(self, beat: float) -> float:
        if beat < self.change_beat:
            return self.t0 + beat * 60.0 / self.tempo
        return self.change_time + (beat - self.change_beat) * 60.0 / self.new_tempo

    def tempo_at(self, beat: float) -> float:
        return self.tempo if beat < self.change_beat else self.new_tempo


@dataclass(frozen=True)
class Piece:
    name: str
    length: float  # beats; the clip and the melody loop over it
    melody: list[tuple[float, int, float]]  # (beat, pitch, duration beats): the human's part
    bass: list[tuple[int, float, float, int]]  # (pitch, start, dur, vel): the Live clip
    root: int  # key, for Live 12's scale
    intervals: tuple[int, ...]


def load_piece(path: Path = PIECE_PATH) -> Piece:
    song = read_midi(path)  # the top voice (soprano) is the human part, the bass a clip
    ev = song.events
    human = ev[ev["role"] == ROLE_INDEX["human"]]
    clip = ev[ev["role"] == ROLE_INDEX["clip"]]
    ends = ev["beat"] + ev["dur"]
    length = math.ceil(float(ends.max()) / BEATS_PER_BAR) * BEATS_PER_BAR
    root, intervals = parse_key(song.key or "C")
    return Piece(
        name=PIECE_NAME,
        length=float(length),
        melody=[(float(e["beat"]), int(e["pitch"]), float(e["dur"])) for e in human],
        bass=[(int(e["pitch"]), float(e["beat"]), float(e["dur"]), int(e["vel"])) for e in clip],
        root=root,
        intervals=intervals,
    )


def unroll(piece: Piece, until: float) -> list[tuple[float, int, float, int]]:
    """The looping bass clip as it sounds from its entry (clip time = song beat) to
    `until`: (beat, pitch, dur, vel), cut at `until`."""
    notes = []
    for k in range(math.ceil(until / piece.length)):
        for pitch, start, dur, vel in piece.bass:
            beat = k * piece.length + start
            if BASS_ENTRY <= beat < until:
                notes.append((beat, pitch, min(dur, until - beat), vel))
    return notes


def open_port(kind: str, backend: str, client: str, wanted: str, timeout: float = 10.0) -> Any:
    """An rtmidi MidiOut/MidiIn of `client` connected to the engine's port `wanted`.
    Port names differ per backend ("client:port", "client:port 128:0", "port"), so the
    first name containing `wanted` is taken; we wait for it to appear."""
    cls = rtmidi.MidiOut if kind == "out" else rtmidi.MidiIn
    # The demo's player and recorder stand for other apps: on JACK, rtmidi's own client.
    midi = cls(rtmidi.API_UNIX_JACK if backend == "jack" else RTMIDI_APIS[backend], name=client)
    deadline = time.monotonic() + timeout
    while True:
        names = midi.get_ports()
        found = [i for i, name in enumerate(names) if wanted in name]
        if found:
            midi.open_port(found[0], f"{client} port")
            return midi
        if time.monotonic() > deadline:
            midi.delete()
            raise PortError(f"MIDI port {wanted!r} did not appear ({backend}); saw {names}")
        time.sleep(0.05)


def open_jack(client: str, wanted: str, output: bool) -> JackClient:
    """A JACK client of the engine's own kind (frame-exact) connected to the engine's port
    `wanted`: as Live does on macOS, which timestamps what it sends."""
    port = JackClient(
        client=client, capacity=1_000_000, **{"output" if output else "input": "port"}
    )
    try:
        port.connect_to(wanted)
    except PortError:
        port.close()
        raise
    return port


def sounding_pitches(messages: Iterable[Sequence[int]]) -> set[int]:
    """Pitches left sounding after a run of raw MIDI messages (note-on velocity 0 = off)."""
    notes: set[int] = set()
    for m in messages:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            notes.add(m[1])
        elif m[0] & 0xF0 in (0x80, 0x90):
            notes.discard(m[1])
    return notes


class Recorder:
    """Everything arriving from the engine's `lkjam out`, timestamped on arrival (on JACK,
    with its frame's time)."""

    def __init__(self, backend: str, port: str) -> None:
        self._received: list[Message] = []
        self._jack: JackClient | None = None
        self._midi: Any = None
        if backend == "jack":
            self._jack = open_jack("lkjam-demo-recorder", port, output=False)
            return
        self._midi = open_port("in", backend, "lkjam-demo-recorder", port)
        self._midi.ignore_types(sysex=True, timing=True, active_sense=True)
        self._midi.set_callback(self._on_message)

    @property
    def received(self) -> list[Message]:
        return list(self._jack.queue) if self._jack is not None else self._received

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        self._received.append((time.perf_counter(), bytes(event[0])))  # rtmidi's thread

    def note_ons(self) -> int:
        return sum(1 for _, m in self.received if m[0] & 0xF0 == 0x90 and m[2] > 0)

    def sounding(self) -> set[int]:
        return sounding_pitches(m for _, m in self.received)

    def close(self) -> None:
        """Stop listening, then close. Close the recorder before any other JACK client of
        this process: rtmidi calls `_on_message` from JACK's process thread, which may be
        waiting for the GIL, and closing a client waits for that thread."""
        if self._jack is not None:
            self._jack.close()
        if self._midi is not None:
            self._midi.cancel_callback()
            time.sleep(0.01)  # let a callback waiting for the GIL finish
            self._midi.close_port()
            self._midi.delete()
            self._midi = None


def human_part(
    piece: Piece, timeline: Timeline, stop_beat: float, call_response: bool, seed: int
) -> list[Message]:
    """The human's messages with their send times: the melody looped from bar 2 until
    `stop_beat`, onsets jittered (Gaussian, `JITTER_S`), velocities shaped by the metre
    and varied. In call and response the human plays two bars (from bar 2) and leaves the
    next two for the AI's answer."""
    rng = np.random.default_rng(seed)
    out: list[Message] = []
    last_off = timeline.time_at(stop_beat) - 0.05  # every key is up before the stop
    for k in range(math.ceil(stop_beat / piece.length)):
        for beat0, pitch, dur in piece.melody:
            beat = k * piece.length + beat0
            bar = int(beat // BEATS_PER_BAR)
            answer_bars = call_response and (bar - 1) % 4 >= 2
            if beat < HUMAN_ENTRY or beat >= stop_beat or answer_bars:
                continue
            t_on = timeline.time_at(beat) + float(np.clip(rng.normal(0, JITTER_S), -0.012, 0.012))
            t_off = timeline.time_at(beat + dur * LEGATO) + float(rng.normal(0, JITTER_S))
            t_off = min(max(t_off, t_on + 0.05), last_off)
            accent = {0.0: 14, 2.0: 6}.get(beat % BEATS_PER_BAR, 0)
            vel = int(np.clip(round(72 + accent + rng.normal(0, 6)), 30, 120))
            if t_off > t_on:
                out += [(t_on, bytes((0x90, pitch, vel))), (t_off, bytes((0x80, pitch, 0)))]
    return out


def clock_part(timeline: Timeline, stop_beat: float) -> list[Message]:
    """MIDI clock as Live sends it with Sync on: Start, 24 ticks per beat, Stop."""
    ticks = [
        (timeline.time_at(k / TICKS_PER_BEAT), bytes((MIDI_CLOCK,)))
        for k in range(int(stop_beat * TICKS_PER_BEAT) + 1)
    ]
    start = (timeline.t0 - 0.001, bytes((MIDI_START,)))
    stop = (timeline.time_at(stop_beat) + 0.001, bytes((MIDI_STOP,)))
    return [start, *ticks, stop]


class Player:
    """Plays timed messages into `lkjam in` and keeps what it sent with the time it sent it.

    A player's keys are live: each note is sent when it is played (the last stretch spun,
    for sub-ms send times). Live's MIDI clock is scheduled: on JACK it is handed over
    CLOCK_AHEAD_S early with its time and goes out at that frame (from a JACK client of its
    own, so that the keys are never queued behind it); elsewhere it is sent when due too."""

    SPIN_S = 0.001
    CLOCK_AHEAD_S = 0.02

    def __init__(self, backend: str, port: str) -> None:
        self.sent: list[Message] = []
        self._clock: JackClient | None = None
        self._keys: JackClient | None = None
        self._midi: Any = None
        if backend == "jack":
            self._clock = open_jack("lkjam-demo-clock", port, output=True)
            self._keys = open_jack("lkjam-demo-human", port, output=True)
        else:
            self._midi = open_port("out", backend, "lkjam-demo-human", port)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, messages: list[Message]) -> None:
        schedule = sorted(messages, key=lambda m: m[0])
        if self._clock is not None and self._keys is not None:
            clock = [m for m in schedule if m[1][0] >= 0xF0]
            keys = [m for m in schedule if m[1][0] < 0xF0]
            self._threads = [
                threading.Thread(target=self._play_ahead, args=(clock, self._clock)),
                threading.Thread(target=self._play, args=(keys, self._keys.send)),
            ]
        else:
            send = lambda message: self._midi.send_message(list(message))  # noqa: E731
            self._threads = [threading.Thread(target=self._play, args=(schedule, send))]
        for thread in self._threads:
            thread.start()

    def _play(self, schedule: list[Message], send: Callable[[bytes], Any]) -> None:
        for due, message in schedule:
            while (remaining := due - time.perf_counter()) > self.SPIN_S:
                if self._stop.wait(remaining - self.SPIN_S):
                    return
            while time.perf_counter() < due:
                time.sleep(0)
            t = time.perf_counter()
            send(message)
            self.sent.append((t, message))

    def _play_ahead(self, schedule: list[Message], port: JackClient) -> None:
        for due, message in schedule:
            if self._stop.wait(max(0.0, due - self.CLOCK_AHEAD_S - time.perf_counter())):
                return
            port.send(message, at=due)
            self.sent.append((due, message))

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def close(self) -> None:
        self._stop.set()
        self.join()
        for port in (self._clock, self._keys):
            if port is not None:
                port.close()
        if self._midi is not None:
            self._midi.close_port()
            self._midi.delete()
            self._midi = None


# Rack macros (0..127) on the AI track: mode (thirds: off, accompany, call_response),
# temperature 0.1..2, density 0..1, style (index), turn_bars 1..16, cycle_bars 0..32, top_p.
MODE_MACRO = {"accompany": 64.0, "call_response": 120.0}
TEMPERATURE_MACRO = (0.9 - 0.1) / 1.9 * 127
DENSITY_MACRO = 63.5
TURN_BARS_MACRO = (2 - 1) / 15 * 127  # answers of up to two bars
TOP_P_MACRO = (0.95 - 0.5) / 0.5 * 127


class LiveSet:
    """The fake Live set: a human track, the bass clip, the AI track with its `lkjam`
    rack, Live 12's key; the real remote script loaded as Live loads it."""

    def __init__(
        self, piece: Piece, tempo: float, mode: str, port: int, style_index: float
    ) -> None:
        self.live = FakeLive(tempo=tempo, clock=time.perf_counter)
        self.live.add_midi_track("Keys [human]")  # played live, through `lkjam in`
        self.bass = self.live.add_midi_track("Bass")
        ai = self.live.add_midi_track("AI", input_routing="lkjam out")
        macros = [MODE_MACRO[mode], TEMPERATURE_MACRO, DENSITY_MACRO, style_index * 127]
        macros += [TURN_BARS_MACRO, 0.0, TOP_P_MACRO]
        self.live.add_rack(ai, macros=macros)
        clip = self.live.add_clip(self.bass, 0, piece.length, piece.bass, name="bass")
        clip.start_marker = BASS_ENTRY  # launched on that beat, it plays in step with the song
        self.live.set_scale(piece.root, piece.intervals)
        self.surface = self.live.load_surface(port=port, clock=time.perf_counter)
        self.timeline: Timeline | None = None
        self._cues: list[tuple[float, Callable[[], None]]] = []  # (beat, what happens)

    @property
    def messages(self) -> list[str]:
        """The status bar, in order."""
        return list(self.live.c_instance.messages)

    def connect(self, alive: Callable[[], bool], timeout: float = 15.0) -> None:
        """Tick until the engine has welcomed the script."""
        deadline = time.monotonic() + timeout
        while not any("ready, model" in m for m in self.messages):
            if time.monotonic() > deadline or not alive():
                raise RuntimeError(f"the remote script got no welcome; status: {self.messages}")
            self.surface.update_display()
            time.sleep(0.02)

    def play(self, timeline: Timeline) -> None:
        """Start the transport at beat 0 (call at timeline.t0); the bass clip and the tempo
        change are cued on their beats."""
        song = self.live.song
        self.timeline = timeline
        self._cues = sorted(
            [
                (BASS_ENTRY, lambda: self.live.fire(self.bass, 0)),
                (timeline.change_beat, lambda: setattr(song, "tempo", timeline.new_tempo)),
            ],
            key=lambda cue: cue[0],
        )
        # The script reads the position some time into its tick (after its other work);
        # Live's has moved on by then, so the fake's must run too.
        self.live.run_position(lambda: timeline.beat_at(time.perf_counter()))
        self.live.play()
        self.tick(timeline.t0)  # cues on beat 0 happen now

    def tick(self, now: float) -> None:
        """Move the transport to the timeline's beat at `now`, stopping on the way at each
        cue's exact beat, then tick the script as Live does."""
        if self.live.song.is_playing and self.timeline is not None:
            target = self.timeline.beat_at(now)
            while self._cues and self._cues[0][0] <= target:
                beat, cue = self._cues.pop(0)
                self.live.advance_to(beat)
                cue()
            self.live.advance_to(target)
        self.surface.update_display()

    def stop(self) -> None:
        self.live.stop()
        self.surface.update_display()

    def disconnect(self) -> None:
        """Unload the script (it says `bye`)."""
        self.live.disconnect()
