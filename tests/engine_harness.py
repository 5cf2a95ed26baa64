"""Helpers for the engine's integration tests: the engine as a subprocess, a DEALER
client standing in for the remote script, a transport sender, and JACK MIDI ports that
play into `lkjam in` and record `lkjam out`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import zmq
from lkjam.engine.ports import JackClient
from lkjam.engine.scheduler import wait_until

from lkjam.bench_engine import CLOCK_AHEAD_S
from lkjam.demo_live import sounding_pitches
from lkjam.random_model import random_model


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll until `condition()` is truthy; fail after `timeout` (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or condition}")


class Client:
    """A DEALER speaking the protocol, as the remote script would."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.received: list[dict[str, Any]] = []

    def send(self, kind: str, **fields: Any) -> None:
        self.socket.send(json.dumps({"v": 1, "type": kind, **fields}).encode())

    def send_raw(self, *frames: bytes) -> None:
        self.socket.send_multipart(list(frames))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"no message from the engine within {timeout} s")
        message: dict[str, Any] = json.loads(self.socket.recv())
        self.received.append(message)
        return message

    def wait(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of `kind` (others, e.g. status lines, are kept in `received`)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if message["type"] == kind:
                return message

    def hello(self) -> dict[str, Any]:
        self.send("hello", live_version="12.1.11", python="3.11", script_version="test")
        return self.wait("welcome")

    def close(self) -> None:
        self.socket.close(linger=0)


class Transport:
    """Sends `transport` 10 times a second from its own DEALER: beat = (t - t0) * tempo/60."""

    def __init__(self, endpoint: str, tempo: float = 120.0) -> None:
        self.client = Client(endpoint)
        self.tempo = tempo
        self.t0 = time.perf_counter()
        self.playing = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def beat(self, t: float) -> float:
        return (t - self.t0) * self.tempo / 60.0

    def time(self, beat: float) -> float:
        return self.t0 + beat * 60.0 / self.tempo

    def send_now(self) -> None:
        t = time.perf_counter()
        self.client.send(
            "transport",
            tempo=self.tempo,
            beat=self.beat(t),
            playing=self.playing,
            sig=[4, 4],
            t=t,
        )

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.send_now()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


class Midi:
    """JACK clients that play into the engine's input and record its output, each message
    stamped with its frame's time (lkjam's own client, as in the bench). The player and
    the recorder are separate clients: one client that both fed the engine and heard it
    would make a loop in JACK's graph, which JACK breaks with a period's delay."""

    def __init__(self, in_name: str, out_name: str) -> None:
        self.player = JackClient(output="player", client="lkjam-test-player")
        self.recorder = JackClient(input="recorder", client="lkjam-test-recorder", capacity=10**6)
        self.player.connect_to(in_name)
        self.recorder.connect_to(out_name)

    @property
    def received(self) -> list[tuple[float, tuple[int, ...]]]:
        return [(t, tuple(m)) for t, m in list(self.recorder.queue)]

    def send(self, *message: int) -> None:
        self.player.send(message)

    def note_ons(self) -> list[tuple[float, int]]:
        return [(t, m[1]) for t, m in self.received if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def sounding(self) -> set[int]:
        return sounding_pitches(m for _, m in self.received)

    def close(self) -> None:
        self.player.close()
        self.recorder.close()


class ClockSender:
    """Plays a stream of timed messages, e.g. Live's MIDI clock, into a JACK port from its
    own client and thread: each (perf_counter s, message) handed over CLOCK_AHEAD_S before
    its time and written at its frame, as Live schedules its clock ahead. The stream may be
    endless; `close` stops it."""

    def __init__(self, port: str, stream: Iterable[tuple[float, Sequence[int]]]) -> None:
        self.out = JackClient(output="clock", client="lkjam-test-clock")
        self.out.connect_to(port)
        self._stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for t, message in self._stream:
            if wait_until(t - CLOCK_AHEAD_S, self._stop, spin=False):
                return
            self.out.send(message, at=t)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.out.close()


class Engine:
    """`python -m lkjam engine` on the test's JACK server, with its own ports and endpoint."""

    def __init__(self, tmp_path: Path, model: Path, *args: str, name: str = "t") -> None:
        self.endpoint = free_endpoint()
        self.in_name, self.out_name = f"lkjam in {name}", f"lkjam out {name}"
        self.log_path = tmp_path / f"engine-{name}.log"
        command = [sys.executable, "-m", "lkjam", "engine", "--model", str(model)]
        command += ["--backend", "jack", "--endpoint", self.endpoint]
        command += ["--in", self.in_name, "--out", self.out_name, *args]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, stderr=self._log, stdout=self._log)
        wait_for(lambda: "ready:" in self.log() or self.process.poll() is not None, 20, "ready")
        assert self.process.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return int(self.process.returncode)


def play(midi: Midi, transport: Transport, notes: Sequence[tuple[float, int, float]]) -> None:
    """Play (beat, pitch, duration beats) into the engine at their wall times."""
    events = sorted(
        [(transport.time(b), (0x90, p, 100)) for b, p, _ in notes]
        + [(transport.time(b + d), (0x80, p, 0)) for b, p, d in notes]
    )
    for t, message in events:
        delay = t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        midi.send(*message)


class Session:
    """An engine playing a random model (its output biases make the timing checkable) at
    120 bpm: a client that said hello, a transport sender and the JACK ports."""

    def __init__(self, tmp_path: Path, bias: dict[str, dict[int, float]], *args: str) -> None:
        model = random_model(tmp_path / "model.safetensors", "default", head_bias=bias)
        self.engine = Engine(tmp_path, model, *args)
        self.client = Client(self.engine.endpoint)
        self.welcome = self.client.hello()
        self.midi = Midi(self.engine.in_name, self.engine.out_name)
        self.transport = Transport(self.engine.endpoint)
        wait_for(lambda: "transport start" in self.engine.log(), 10, "the engine playing")

    def wait_for_ai_notes(self, count: int) -> None:
        """Until `count` more AI notes come. With a model that plays every half beat, 4 a
        second, and a stalled generator plays none: the 10 s bound is for a loaded machine,
        it does not measure anything."""
        before = len(self.midi.note_ons())
        try:
            wait_for(lambda: len(self.midi.note_ons()) >= before + count, 10)
        except AssertionError as exc:
            raise AssertionError(f"fewer than {count} AI notes\n{self.engine.log()}") from exc

    def close(self) -> None:
        self.transport.close()
        self.client.close()
        self.engine.stop()  # first, so that nothing reaches the recorder while it closes
        self.midi.close()
