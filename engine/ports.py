"""MIDI ports; the backend is chosen here and nowhere else.

- macOS: CoreMIDI virtual ports. Linux: ALSA sequencer virtual ports when /dev/snd/seq is
  usable, else JACK (a JACK server must run). Windows has no virtual ports: existing
  ports (loopMIDI) are opened by name.
- Override with `--backend` or the LKJAM_MIDI_BACKEND environment variable.
- CoreMIDI, ALSA and WinMM go through python-rtmidi: its backend thread calls back,
  timestamps and enqueues, and every message is sent the moment it is due.
- JACK goes through lkjam's own client (`JackClient`, the `lkjam._jack` extension): one
  JACK client for both ports, input stamped with its frame's time and read by the
  thread that consumes it, asleep until the process thread wakes it, and output handed
  over a little early with the time it is due, which the process thread writes at that
  exact frame.
  python-rtmidi's JACK backend would write each message at the start of the next period
  (0..1 period late) and read input with Python inside JACK's real-time thread.
- Input lands in a bounded queue as (perf_counter s, bytes) and wakes the consumer;
  overflow is dropped and counted.
"""

from __future__ import annotations

import argparse
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
from lkjam.engine.scheduler import Wake

try:
    from lkjam import _jack
except ImportError:  # Windows builds no JACK client
    _jack = None  # type: ignore[assignment]

# The backends python-rtmidi drives, by its API numbers; JACK is lkjam's own (JackClient).
RTMIDI_APIS: dict[str, int] = {
    "coremidi": rtmidi.API_MACOSX_CORE,
    "alsa": rtmidi.API_LINUX_ALSA,
    "winmm": rtmidi.API_WINDOWS_MM,
}
BACKENDS = ("coremidi", "alsa", "jack", "winmm")
VIRTUAL = {"coremidi", "alsa", "jack"}  # backends that can create their own ports
ENV_BACKEND = "LKJAM_MIDI_BACKEND"
LOOPMIDI_HINT = (
    "Windows has no virtual MIDI ports: create a port named {name!r} in loopMIDI "
    "(tobias-erichsen.de; lkjam's are 'lkjam in' and 'lkjam out'), then start lkjam again"
)
CLIENT_NAME = "lkjam"
INPUT_QUEUE_SIZE = 4096  # ~40 ms of a 100k msg/s flood; a player produces < 1000/s
READ_WAIT_S = 0.05  # the JACK reader's longest sleep: how soon it sees a request to stop
# A message goes to JACK's process thread this long before it is due: two periods (the one
# running while it is handed over, and the one that writes it) plus room for a late wake-up
# of the generator thread (up to 3 ms in 1 of 100 on a loaded 2-core machine). Once
# handed over it sounds: it can no longer be cancelled.
HANDOVER_PERIODS = 2
HANDOVER_MARGIN_S = 0.004
PORT_WAIT_S = 10.0  # how long `JackClient.connect_to` waits for the other port to appear
CLOSE_DRAIN_S = 0.25  # how long closing waits for handed-over messages (note-offs) to leave


class PortError(RuntimeError):
    """A MIDI backend or port could not be used; the text says which and why."""


def jack_error() -> str:
    """Why lkjam's JACK client cannot be used here, or '' when it can."""
    if _jack is None:
        return "this build of lkjam has no JACK client (Windows)"
    return str(_jack.library_error())


def compiled_backends() -> list[str]:
    """The backends usable here: python-rtmidi's compiled APIs, and JACK when libjack loads."""
    apis = set(rtmidi.get_compiled_api())
    usable = {name for name, api in RTMIDI_APIS.items() if api in apis}
    if not jack_error():
        usable.add("jack")
    return [name for name in BACKENDS if name in usable]


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
            why = jack_error() if name == "jack" else "it is not compiled into python-rtmidi"
            raise PortError(f"MIDI backend {name!r} cannot be used here: {why}")
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
    if backend not in RTMIDI_APIS:
        raise ValueError(f"{backend} ports are not python-rtmidi's: use open_ports()")
    try:
        return cls(RTMIDI_APIS[backend], name=client, **options)
    except rtmidi.SystemError as exc:
        raise PortError(f"cannot start the {backend} MIDI client: {exc}") from None


class _Receiver:
    """A bounded queue of (perf_counter s, bytes) that wakes its consumer."""

    def __init__(self, capacity: int, wake: Wake | None) -> None:
        self.queue: deque[tuple[float, bytes]] = deque()
        self.capacity = capacity
        self.dropped = 0
        self.wake: Wake = wake or threading.Event()

    def _append(self, t: float, message: Sequence[int] | bytes) -> bool:
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            return False
        self.queue.append((t, bytes(message)))
        return True

    def _put(self, t: float, message: Sequence[int] | bytes) -> bool:
        if not self._append(t, message):
            return False
        self.wake.set()
        return True


class MidiInput(_Port, _Receiver):
    """An rtmidi input: its backend thread calls back, and the callback only timestamps,
    enqueues and wakes."""

    kind = "input"
    timed = False

    def __init__(
        self,
        name: str = "lkjam in",
        backend: str | None = None,
        *,
        wake: Wake | None = None,
        capacity: int = INPUT_QUEUE_SIZE,
        client: str = CLIENT_NAME,
    ) -> None:
        _Port.__init__(self, name, backend)
        _Receiver.__init__(self, capacity, wake)
        midi = _new(rtmidi.MidiIn, self.backend, client, queue_size_limit=capacity)
        midi.ignore_types(sysex=True, timing=False, active_sense=True)  # keep MIDI clock
        self._open(midi)
        midi.set_callback(self._on_message)

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        self._put(time.perf_counter(), event[0])

    def close(self) -> None:
        if self._midi is not None:
            self._midi.cancel_callback()
            # The backend's thread may be waiting for the GIL to call us right now; closing
            # the port waits for that thread, so let it finish first.
            time.sleep(0.01)
        super().close()


class MidiOutput(_Port):
    """An rtmidi output: each message leaves when `send` is called (`at` is not used)."""

    kind = "output"
    timed = False  # the scheduler sends each message at its time
    lead_s = 0.0

    def __init__(
        self, name: str = "lkjam out", backend: str | None = None, *, client: str = CLIENT_NAME
    ) -> None:
        super().__init__(name, backend)
        self._open(_new(rtmidi.MidiOut, self.backend, client))

    def send(self, message: Sequence[int], at: float | None = None) -> None:
        midi = self._midi
        if midi is not None:
            midi.send_message(message)


class _InputWake:
    """The wake event of a consumer that reads a JackClient's input itself, with no reader
    thread between them: waiting reads the input, asleep in the extension until the
    process thread (or `set`, from another thread) writes to its pipe. One thread wakes
    per input instead of two. Quacks like the threading.Event it stands for."""

    def __init__(self, client: JackClient) -> None:
        self._client = client
        self._set = False

    def set(self) -> None:
        self._set = True
        self._client.poke()

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set and self._client.receive(READ_WAIT_S if timeout is None else timeout):
            self._set = True
        return self._set


class JackClient(_Receiver):
    """lkjam's own JACK client (`lkjam._jack`) with an input port, an output port or both.

    Input reaches `queue` through a reader thread, or, with `reader=False`, whenever the
    consumer waits on `wake` (the engine's generator: see _InputWake).

    Times cross between JACK's clock and perf_counter by an offset measured when the client
    opens (both clocks are monotonic; on Linux they are the same clock)."""

    backend = "jack"
    timed = True  # messages are handed over early, with the time they are due

    def __init__(
        self,
        input: str = "",
        output: str = "",
        *,
        client: str = CLIENT_NAME,
        wake: Wake | None = None,
        capacity: int = INPUT_QUEUE_SIZE,
        reader: bool = True,
    ) -> None:
        super().__init__(capacity, wake)
        self.name = input or output
        self.errors: deque[str] = deque(maxlen=16)  # read by the engine, as rtmidi's are
        why = jack_error()
        if why:
            raise PortError(f"cannot use JACK: {why}")
        try:
            self._native: Any = _jack.JackMidi(client, input, output)
        except RuntimeError as exc:
            raise PortError(f"cannot start the JACK MIDI client {client!r}: {exc}") from None
        self.input_name: str = self._native.input_name
        self.output_name: str = self._native.output_name
        self.period_s: float = self._native.period_s
        self.lead_s = HANDOVER_PERIODS * self.period_s + HANDOVER_MARGIN_S if output else 0.0
        self.offset_s = self._clock_offset()
        self.dropped_out = 0  # output queue full
        self._stop = threading.Event()
        self._gone_reported = False
        self._reader: threading.Thread | None = None
        if input and reader:
            self._reader = threading.Thread(target=self._read, name="lkjam-jack-in", daemon=True)
            self._reader.start()
        elif input:
            self.wake = _InputWake(self)

    def _clock_offset(self) -> float:
        """perf_counter minus JACK's clock, from the tightest of a few paired readings."""
        best = (math.inf, 0.0)
        for _ in range(16):
            before = time.perf_counter()
            jack = self._native.now()
            after = time.perf_counter()
            best = min(best, (after - before, (before + after) / 2 - jack))
        return best[1]

    def receive(self, timeout_s: float) -> int:
        """Move what the process thread read into `queue`, waiting up to `timeout_s` for
        it (asleep in the extension, without the GIL); how many messages came."""
        native = self._native
        if native is None:
            time.sleep(timeout_s)
            return 0
        got = native.read(timeout_s)
        for t, data in got:
            self._append(t + self.offset_s, data)
        if native.server_gone and not self._gone_reported:
            self._gone_reported = True
            self.errors.append("the JACK server went away")
        return len(got)

    def poke(self) -> None:
        """Wake a `receive` waiting in another thread."""
        if self._native is not None:
            self._native.poke()

    def _read(self) -> None:
        """The reader thread: sleeps in the extension until the process thread has input."""
        while not self._stop.is_set():
            if self.receive(READ_WAIT_S):
                self.wake.set()

    def now(self) -> float:
        """JACK's clock now, in perf_counter seconds."""
        return float(self._native.now()) + self.offset_s

    def send(self, message: Sequence[int], at: float | None = None) -> None:
        """Queue `message` to be written at `at` (perf_counter s), or at once."""
        if not self.is_open:
            return
        due = 0.0 if at is None else at - self.offset_s
        if not self._native.send(bytes(message), due):
            self.dropped_out += 1
            self.errors.append(f"output {self.output_name!r}: queue full, a message was lost")

    def ports(self, sources: bool) -> list[str]:
        """The server's MIDI ports that are sources (JACK outputs) or destinations."""
        return list(self._native.ports(sources))

    def connect(self, source: str, destination: str) -> None:
        try:
            self._native.connect(source, destination)
        except RuntimeError as exc:
            raise PortError(str(exc)) from None

    def connect_to(self, suffix: str, timeout_s: float = PORT_WAIT_S) -> str:
        """Connect this client's output to the port whose name ends in `:suffix` (or, for a
        client with only an input, that port to its input), once the port appears, as
        another program's port appears when that program starts. Returns the port's name;
        PortError if it has not appeared within `timeout_s`."""
        sending = bool(self.output_name)
        deadline = time.monotonic() + timeout_s
        while True:
            found = [n for n in self.ports(sources=not sending) if n.endswith(":" + suffix)]
            if found:
                if sending:
                    self.connect(self.output_name, found[0])
                else:
                    self.connect(found[0], self.input_name)
                return found[0]
            if time.monotonic() > deadline:
                raise PortError(f"JACK port {suffix!r} did not appear within {timeout_s:g} s")
            time.sleep(0.05)

    @property
    def xruns(self) -> int:
        """The server's xruns since this client opened."""
        return int(self._native.xruns) if self.is_open else 0

    @property
    def stale_in(self) -> int:
        """Input events left out as a stale copy of the period before (JACK under load)."""
        return int(self._native.stale_in) if self.is_open else 0

    @property
    def late_out(self) -> int:
        """Messages handed over after the period they were due in (written late)."""
        return int(self._native.late_out) if self.is_open else 0

    @property
    def is_open(self) -> bool:
        return self._native is not None

    def close(self) -> None:
        """Stop reading, let handed-over messages (note-offs) leave, close; idempotent."""
        if self._native is None:
            return
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        deadline = time.perf_counter() + CLOSE_DRAIN_S
        while self._native.pending and time.perf_counter() < deadline:
            time.sleep(self.period_s or 0.001)
        # The period that wrote the last message must reach its readers before the port
        # goes: leaving the graph mid-cycle would take that period's MIDI with it.
        time.sleep(2 * (self.period_s or 0.001))
        self._native.close()
        self._native = None

    def __enter__(self) -> JackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_ports(
    input: str, output: str, backend: str | None = None
) -> tuple[MidiInput | JackClient, MidiOutput | JackClient]:
    """The engine's two ports: on JACK one client holds both, and the consumer that waits
    on the input's `wake` reads it (no reader thread)."""
    if choose_backend(backend) == "jack":
        client = JackClient(input, output, reader=False)
        return client, client
    midi_out = MidiOutput(output, backend)
    try:
        return MidiInput(input, backend), midi_out
    except BaseException:
        midi_out.close()
        raise


def list_ports(backend: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) seen by `backend`: ports lkjam could read from, and write to."""
    if backend == "jack":
        with JackClient(client=f"{CLIENT_NAME}-ports") as client:
            return client.ports(True), client.ports(False)
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
