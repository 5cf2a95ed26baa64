"""MIDI ports through python-rtmidi; the backend is chosen here and nowhere else.

- macOS: CoreMIDI virtual ports. Linux: ALSA sequencer virtual ports when /dev/snd/seq is
  usable, else JACK (a JACK server must run). Windows has no virtual ports: existing
  ports (loopMIDI) are opened by name.
- Override with `--backend` or the LKJAM_MIDI_BACKEND environment variable.
- Input lands in a bounded queue as (time, bytes) and wakes the consumer; overflow is
  dropped and counted. On JACK, rtmidi would call a callback from JACK's real-time
  process thread, which would then wait for Python's GIL (xruns, lost clock ticks, and
  the wait in every timestamp). So JACK input is read by an ordinary thread polling
  rtmidi's queue instead: each message carries the time since the previous one, taken
  in the process thread, and arrival times are rebuilt from their sum. Elsewhere the
  callback runs on a backend thread that is not real-time, and only timestamps.
- JACK moves MIDI once per period: python-rtmidi writes an outgoing message at the start
  of the next period, and an incoming one is seen in the period after it was sent. Each
  hop is therefore 0..1 period late, half a period on average. Both ports say so in
  `latency_s` (read from the server): input timestamps are taken back by it, and the
  scheduler sends that much early, so that notes land on time on average. The other
  backends deliver at once (0).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import rtmidi

BACKENDS: dict[str, int] = {
    "coremidi": rtmidi.API_MACOSX_CORE,
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "winmm": rtmidi.API_WINDOWS_MM,
}
VIRTUAL = {"coremidi", "alsa", "jack"}  # backends that can create their own ports
ENV_BACKEND = "LKJAM_MIDI_BACKEND"
LOOPMIDI_HINT = (
    "Windows has no virtual MIDI ports: create a port named {name!r} in loopMIDI "
    "(tobias-erichsen.de; lkjam's are 'lkjam in' and 'lkjam out'), then start lkjam again"
)
CLIENT_NAME = "lkjam"
INPUT_QUEUE_SIZE = 4096  # ~40 ms of a 100k msg/s flood; a player produces < 1000/s
JACK_NO_START_SERVER = 0x01
POLL_S = 0.0005  # the JACK reader's poll period while messages flow
# After IDLE_AFTER_S without any message (Live stopped, nobody playing) the reader wakes
# less often, so that an idle engine sleeps: the first note after such a silence is seen
# up to IDLE_POLL_S later, though its time stays exact. MIDI clock never lets it idle.
IDLE_POLL_S = 0.01
IDLE_AFTER_S = 1.0
# How fast the reader lets its clock anchor rise (s per s): it follows a drift between
# JACK's clock and ours, or time lost from the chain of deltas (a dropped message).
ANCHOR_RISE = 0.001

log = logging.getLogger("lkjam.engine")


class PortError(RuntimeError):
    """A MIDI backend or port could not be used; the text says which and why."""


def compiled_backends() -> list[str]:
    apis = set(rtmidi.get_compiled_api())
    return [name for name, api in BACKENDS.items() if api in apis]


def _alsa_seq_usable() -> bool:
    return os.access("/dev/snd/seq", os.R_OK | os.W_OK)


def choose_backend(requested: str | None = None) -> str:
    """The one place that picks the backend: flag, else environment, else the platform."""
    name = requested or os.environ.get(ENV_BACKEND) or ""
    available = compiled_backends()
    if name:
        if name not in BACKENDS:
            raise PortError(f"unknown MIDI backend {name!r}; choose from {', '.join(BACKENDS)}")
        if name not in available:
            raise PortError(f"MIDI backend {name!r} is not compiled into python-rtmidi here")
        return name
    if sys.platform == "darwin":
        return "coremidi"
    if sys.platform == "win32":
        return "winmm"
    if "alsa" in available and _alsa_seq_usable():
        return "alsa"
    if "jack" in available:
        return "jack"
    raise PortError("no usable MIDI backend: /dev/snd/seq is not accessible and JACK is missing")


def jack_period_s() -> float:
    """The running JACK server's period (buffer size / sample rate) in seconds, read by a
    short-lived client of libjack (python-rtmidi does not expose its own); 0 if unknown."""
    path = ctypes.util.find_library("jack")
    if path is None:
        return 0.0
    jack = ctypes.CDLL(path)
    jack.jack_client_open.restype = ctypes.c_void_p
    jack.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    jack.jack_get_buffer_size.restype = ctypes.c_uint32
    jack.jack_get_buffer_size.argtypes = [ctypes.c_void_p]
    jack.jack_get_sample_rate.restype = ctypes.c_uint32
    jack.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
    jack.jack_client_close.argtypes = [ctypes.c_void_p]
    client = jack.jack_client_open(f"{CLIENT_NAME}-probe".encode(), JACK_NO_START_SERVER, None)
    if not client:
        return 0.0
    try:
        frames, rate = jack.jack_get_buffer_size(client), jack.jack_get_sample_rate(client)
    finally:
        jack.jack_client_close(client)
    return frames / rate if rate else 0.0


def port_latency_s(backend: str) -> float:
    """The mean delay a backend adds to each MIDI hop: half a JACK period, else 0."""
    return jack_period_s() / 2 if backend == "jack" else 0.0


def _find(names: list[str], wanted: str) -> int:
    """Index of the port named `wanted` (exact, then `client:wanted`, then prefix)."""
    for i, name in enumerate(names):
        if name == wanted or name.split(":", 1)[-1] == wanted:
            return i
    for i, name in enumerate(names):
        # WinMM appends an index ("loopMIDI Port 1"); ALSA adds "client:port" numbers.
        if name.startswith(wanted) or wanted in name:
            return i
    raise PortError(f"MIDI port {wanted!r} not found; ports seen: {names or 'none'}")


class _Port:
    """Shared open/close logic; subclasses hold one rtmidi object."""

    kind = "port"

    def __init__(self, name: str, backend: str | None = None) -> None:
        self.name = name
        self.backend = choose_backend(backend)
        self.errors: deque[str] = deque(maxlen=16)  # rtmidi errors, read by the engine
        self._midi: Any = None

    def _open(self, midi: Any) -> None:
        midi.set_error_callback(self._on_error)
        try:
            if self.backend in VIRTUAL:
                midi.open_virtual_port(self.name)
            else:
                midi.open_port(_find(midi.get_ports(), self.name), self.name)
        except PortError as exc:  # not found by name: only WinMM opens ports that way
            midi.delete()
            raise PortError(f"{exc}. {LOOPMIDI_HINT.format(name=self.name)}") from None
        except (rtmidi.SystemError, rtmidi.InvalidPortError, rtmidi.InvalidUseError) as exc:
            midi.delete()
            raise PortError(
                f"cannot open MIDI {self.kind} {self.name!r} ({self.backend}): {exc}"
            ) from None
        self._midi = midi

    def _on_error(self, kind: int, message: str, data: object = None) -> None:
        self.errors.append(f"{self.kind} {self.name!r}: {message}")

    @property
    def is_open(self) -> bool:
        return self._midi is not None

    def close(self) -> None:
        """Close the port; safe to call twice."""
        midi, self._midi = self._midi, None
        if midi is not None:
            midi.close_port()
            midi.delete()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _new(cls: Any, backend: str, client: str, **options: Any) -> Any:
    try:
        return cls(BACKENDS[backend], name=client, **options)
    except rtmidi.SystemError as exc:
        hint = " (is a JACK server running?)" if backend == "jack" else ""
        raise PortError(f"cannot start the {backend} MIDI client{hint}: {exc}") from None


class ArrivalClock:
    """Arrival times, in our clock (perf_counter s), of messages read from rtmidi's queue.

    Each message comes with the time since the one before, taken in JACK's process thread;
    their running sum is the time since the first. The anchor (our clock when the first
    arrived) is at most the time a message was seen minus that sum: the least such bound
    over all messages, allowed to rise by ANCHOR_RISE so that it follows drift. So the
    time a message waited in the queue never reaches its timestamp."""

    def __init__(self) -> None:
        self.elapsed = 0.0  # JACK's clock: seconds from the first message to the newest
        self.anchor = math.inf
        self.last_seen = self._anchor_at = time.perf_counter()

    def arrival(self, delta: float) -> float:
        """The arrival time of a message just read with its delta time."""
        self.last_seen = time.perf_counter()
        self.elapsed += delta
        risen = self.anchor + ANCHOR_RISE * (self.last_seen - self._anchor_at)
        self.anchor = min(risen, self.last_seen - self.elapsed)
        self._anchor_at = self.last_seen
        return self.anchor + self.elapsed


class MidiInput(_Port):
    """`lkjam in`: messages land in `queue` as (perf_counter seconds, bytes)."""

    kind = "input"

    def __init__(
        self,
        name: str = "lkjam in",
        backend: str | None = None,
        *,
        wake: threading.Event | None = None,
        capacity: int = INPUT_QUEUE_SIZE,
        client: str = CLIENT_NAME,
    ) -> None:
        super().__init__(name, backend)
        self.latency_s = port_latency_s(self.backend)  # how late a message is seen
        self.queue: deque[tuple[float, bytes]] = deque()
        self.capacity = capacity
        self.dropped = 0
        self.wake = wake or threading.Event()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        midi = _new(rtmidi.MidiIn, self.backend, client, queue_size_limit=capacity)
        if self.backend == "jack":
            # Every message through rtmidi's queue, or the deltas would skip the ignored
            # ones' time; sysex and active sensing are dropped here instead.
            midi.ignore_types(sysex=False, timing=False, active_sense=False)
            self._open(midi)
            self._reader = threading.Thread(target=self._read, name="lkjam-midi-in", daemon=True)
            self._reader.start()
        else:
            midi.ignore_types(sysex=True, timing=False, active_sense=True)  # keep MIDI clock
            self._open(midi)
            midi.set_callback(self._on_message)

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        # rtmidi's thread: timestamp, enqueue, wake. Nothing else.
        self._put(time.perf_counter() - self.latency_s, event[0])

    def _put(self, t: float, message: list[int]) -> bool:
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            return False
        self.queue.append((t, bytes(message)))
        self.wake.set()
        return True

    def _read(self) -> None:
        """The JACK reader: polls rtmidi's queue and rebuilds each message's arrival time."""
        midi = self._midi
        clock = ArrivalClock()
        while not self._stop.is_set():
            message = midi.get_message()
            if message is None:
                idle = time.perf_counter() - clock.last_seen > IDLE_AFTER_S
                time.sleep(IDLE_POLL_S if idle else POLL_S)  # cheaper than an Event's wait
                continue
            data, delta = message
            arrived = clock.arrival(delta)
            if data and data[0] not in (0xF0, 0xFE):  # sysex, active sensing: not ours
                self._put(arrived - self.latency_s, data)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            self._stop.set()
            reader.join()
        elif self._midi is not None:
            self._midi.cancel_callback()
            # The backend's thread may be waiting for the GIL to call us right now; closing
            # the port waits for that thread, so let it finish first.
            time.sleep(0.01)
        super().close()


class MidiOutput(_Port):
    """`lkjam out`."""

    kind = "output"

    def __init__(
        self, name: str = "lkjam out", backend: str | None = None, *, client: str = CLIENT_NAME
    ) -> None:
        super().__init__(name, backend)
        self.latency_s = port_latency_s(self.backend)  # the scheduler sends this much early
        self._open(_new(rtmidi.MidiOut, self.backend, client))
        if self.latency_s:
            log.info(
                "MIDI output %r (%s): notes sent %.2f ms early, the port's mean latency",
                name,
                self.backend,
                self.latency_s * 1000,
            )

    def send(self, message: Sequence[int]) -> None:
        midi = self._midi
        if midi is not None:
            midi.send_message(message)


def list_ports(backend: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) seen by `backend`."""
    midi_in = _new(rtmidi.MidiIn, backend, f"{CLIENT_NAME}-ports")
    midi_out = _new(rtmidi.MidiOut, backend, f"{CLIENT_NAME}-ports")
    try:
        return list(midi_in.get_ports()), list(midi_out.get_ports())
    finally:
        midi_in.delete()
        midi_out.delete()


def main(argv: Sequence[str], out: Callable[[str], Any] = print) -> int:
    """`lkjam ports`: the backends compiled in, the one lkjam would use, and their ports."""
    parser = argparse.ArgumentParser(prog="lkjam ports", description=main.__doc__)
    parser.add_argument("--backend", choices=sorted(BACKENDS), help=f"or ${ENV_BACKEND}")
    args = parser.parse_args(list(argv))
    try:
        chosen = choose_backend(args.backend)
    except PortError as exc:
        out(f"error: {exc}")
        return 1
    out(f"backends compiled in: {', '.join(compiled_backends())}")
    out(f"backend used: {chosen}" + (" (virtual ports)" if chosen in VIRTUAL else " (by name)"))
    try:
        inputs, outputs = list_ports(chosen)
    except PortError as exc:
        out(f"error: {exc}")
        return 1
    for title, names in (("inputs", inputs), ("outputs", outputs)):
        out(f"{title}:")
        for name in names or ["(none)"]:
            out(f"  {name}")
    return 0
