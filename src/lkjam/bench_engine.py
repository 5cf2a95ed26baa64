"""Engine benchmark through JACK: `python -m lkjam.bench engine [--minutes M]`.

Starts a private `jackd -d dummy` with a 64-frame period (1.33 ms at 48 kHz) and runs
`lkjam engine` as a subprocess twice, on models of random weights whose output biases
make the timing checkable (a trained model's choices are not the point here; the
default topology keeps the step's cost real):

1. latency: the model always plans "now" (shift 0). A player sends notes into
   `lkjam in`; latency is note-in (just before the player's send) to the first AI
   note-on seen by a recorder on `lkjam out`.
2. timing: the model always plans half a beat after the last event. The bench sends
   MIDI clock (24 ppqn) with a tempo change every 20 s; one clip note starts the AI,
   whose notes must then land on the half-beat grid of the true tempo map. Timing error
   is recorder time minus grid time (absolute; p50/p99); drift is the mean signed error
   over the last tenth of the run minus that over the first tenth.

RSS is the engine's own memory (anonymous + file pages); JACK's shared memory, which
every JACK client maps from the server, is reported apart (jack_shm_mb).

Both figures include JACK's own quantization: python-rtmidi's JACK output writes each
message at the start of the next period, and input is seen once per period, so each
hop adds 0..1 period. The last line is key=value.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rtmidi
import zmq

from lkjam import _step
from lkjam.engine.scheduler import wait_until
from lkjam.jackd import JackServer
from lkjam.random_model import random_model

PERIOD = 64
RATE = 48000
TEMPI = (120.0, 100.0, 140.0, 90.0, 128.0)  # timing phase: a change every CHANGE_S
CHANGE_S = 20.0


# ---- the rig -------------------------------------------------------------------------


class TempoMap:
    """Step tempo changes: (start s, bpm) from t0; beat(t) and t(beat) both ways."""

    def __init__(self, t0: float, tempi: Sequence[float], change_s: float) -> None:
        self.t0, self.tempi, self.change_s = t0, list(tempi), change_s

    def _segment(self, k: int) -> tuple[float, float, float]:
        """(start time, start beat, beats per second) of segment k."""
        beat = sum(self.tempi[i % len(self.tempi)] / 60 * self.change_s for i in range(k))
        return self.t0 + k * self.change_s, beat, self.tempi[k % len(self.tempi)] / 60

    def beat(self, t: float) -> float:
        t_k, b_k, bps = self._segment(max(0, int((t - self.t0) // self.change_s)))
        return b_k + (t - t_k) * bps

    def tempo(self, t: float) -> float:
        return self._segment(max(0, int((t - self.t0) // self.change_s)))[2] * 60

    def time(self, beat: float) -> float:
        k = 0
        while self._segment(k + 1)[1] <= beat:
            k += 1
        t_k, b_k, bps = self._segment(k)
        return t_k + (beat - b_k) / bps


def _port(midi: Any, suffix: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = midi.get_ports()
        for i, name in enumerate(names):
            if name.endswith(":" + suffix):
                return i
        time.sleep(0.05)
    raise RuntimeError(f"JACK port {suffix!r} did not appear")


class EngineRun:
    """The engine process, a DEALER, two players (clock, notes) and a recorder."""

    def __init__(self, model: Path, workdir: Path, name: str) -> None:
        self.log_path = workdir / f"engine-{name}.log"
        endpoint = f"ipc://{workdir}/engine-{name}.sock"
        self.in_name, self.out_name = f"lkjam in {name}", f"lkjam out {name}"
        command = [sys.executable, "-m", "lkjam", "engine", "--model", str(model)]
        command += ["--backend", "jack", "--endpoint", endpoint]
        command += ["--in", self.in_name, "--out", self.out_name]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=self._log, stderr=self._log)
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.send("hello", live_version="bench", python=sys.version.split()[0], script_version="")
        if not self.socket.poll(20_000):
            raise RuntimeError(f"the engine did not answer; see {self.log_path}")
        self.socket.recv()
        self.start_s: float = time.perf_counter() - started
        self.clock: Any = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench-clock")
        self.clock.open_port(_port(self.clock, self.in_name))
        self.notes: Any = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bench-notes")
        self.notes.open_port(_port(self.notes, self.in_name))
        self.recorder: Any = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="bench-recorder")
        self.recorder.open_port(_port(self.recorder, self.out_name))
        self.received: list[tuple[float, list[int]]] = []
        self.recorder.set_callback(self._record)
        self.sender: ClockSender | None = None

    def _record(self, event: tuple[list[int], float], data: object = None) -> None:
        self.received.append((time.perf_counter(), event[0]))

    def start_clock(self, tempi: Sequence[float], change_s: float) -> TempoMap:
        """Start sending MIDI clock; returns the tempo map it follows."""
        tempo = TempoMap(time.perf_counter() + 0.2, tempi, change_s)
        self.sender = ClockSender(self.clock, tempo)
        self.sender.start()
        time.sleep(0.6)  # Start, and enough ticks for a tempo estimate
        return tempo

    def stop_clock(self) -> None:
        sender, self.sender = self.sender, None
        if sender is not None:
            sender.stop.set()
            sender.join()

    def send(self, kind: str, **fields: Any) -> None:
        self.socket.send(json.dumps({"v": 1, "type": kind, **fields}).encode())

    def transport(self, tempo: TempoMap) -> None:
        """A transport snapshot, as Live's script sends alongside the clock (its heartbeat)."""
        t = time.perf_counter()
        self.send(
            "transport", tempo=tempo.tempo(t), beat=tempo.beat(t), playing=True, sig=[4, 4], t=t
        )

    def note_ons(self) -> list[float]:
        return [t for t, m in list(self.received) if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def rss_mb(self) -> tuple[float, float]:
        """(private RSS, JACK's shared memory mapped) in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        kb = {line.split(":")[0]: int(line.split()[1]) for line in status if "kB" in line}
        return (kb["RssAnon"] + kb["RssFile"]) / 1024, kb["RssShmem"] / 1024

    def close(self) -> None:
        self.stop_clock()
        # The engine goes first, so that nothing reaches the recorder while it closes.
        self.process.terminate()
        self.process.wait(timeout=10)
        self.recorder.cancel_callback()
        time.sleep(0.01)
        for port in (self.clock, self.notes, self.recorder):
            port.close_port()
            port.delete()
        self.socket.close(linger=0)
        self._log.close()


class ClockSender(threading.Thread):
    """MIDI Start, then 24 ticks per beat at the tempo map's times (precise sleep + spin)."""

    def __init__(self, port: Any, tempo: TempoMap) -> None:
        super().__init__(daemon=True)
        self.port, self.tempo = port, tempo
        self.stop = threading.Event()

    def run(self) -> None:
        never = threading.Event()
        wait_until(self.tempo.t0 - 0.002, never)
        self.port.send_message([0xFA])
        tick = 0
        while not self.stop.is_set():
            wait_until(self.tempo.time(tick / 24), never)
            self.port.send_message([0xF8])
            tick += 1


# ---- the two phases --------------------------------------------------------------------


def measure_latency(workdir: Path, notes: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """(latencies s, start s, rss MB) with a model that always answers at once."""
    model = random_model(workdir / "now.safetensors", "default", head_bias={"time": {0: 40.0}})
    run = EngineRun(model, workdir, "latency")
    try:
        # 300 bpm: a beat is 0.2 s, so notes 0.25..0.35 s apart each get a fresh beat of
        # the engine's density bound (8 AI notes per beat).
        tempo = run.start_clock([300.0], 1e9)
        rng = np.random.default_rng(0)
        sent: list[float] = []
        for k in range(notes):
            time.sleep(rng.uniform(0.25, 0.35))
            run.transport(tempo)
            t = time.perf_counter()
            run.notes.send_message([0x90, 48 + k % 24, 100])
            sent.append(t)
            run.notes.send_message([0x80, 48 + k % 24, 0])
        time.sleep(0.2)
        run.stop_clock()
        ons = np.array(run.note_ons())
        latencies = []
        for t in sent:
            later = ons[ons > t]
            if len(later):
                latencies.append(later[0] - t)
        return np.array(latencies), run.start_s, run.rss_mb()
    finally:
        run.close()


def measure_timing(
    workdir: Path, seconds: float
) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """(times s, signed errors s, start s, rss MB) of AI notes against the half-beat grid."""
    half = _step.shift_bin(0.5)
    bias = {"time": {half: 40.0}, "duration": {_step.duration_bin(0.25): 40.0}}
    model = random_model(workdir / "grid.safetensors", "default", head_bias=bias)
    run = EngineRun(model, workdir, "timing")
    try:
        tempo = run.start_clock(TEMPI, CHANGE_S)
        start_beat = math.ceil(tempo.beat(time.perf_counter()) + 1.0)
        run.send(
            "clip",
            track=0,
            slot=0,
            name="start",
            role="clip",
            length=1.0,
            looping=False,
            loop=[0.0, 1.0],
            playing=True,
            start_beat=float(start_beat),
            notes=[[60, 0.0, 0.5, 100]],
        )
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            time.sleep(0.1)
            run.transport(tempo)
        run.stop_clock()
        ons = np.array(run.note_ons())
        beats = np.array([tempo.beat(t) for t in ons])
        grid = np.round(beats * 2) / 2
        errors = ons - np.array([tempo.time(b) for b in grid])
        return ons - ons[0], errors, run.start_s, run.rss_mb()
    finally:
        run.close()
        corrections = run.log_path.read_text().count("tick(s) off Live's position")
        print(f"timing: MIDI clock count corrected from Live's position {corrections} time(s)")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkjam.bench engine", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="timing run length")
    parser.add_argument("--notes", type=int, default=200, help="latency samples")
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory() as tmp, JackServer(f"lkjam-bench-{id(args)}", PERIOD, RATE):
        workdir = Path(tmp)
        latency, start_a, rss_a = measure_latency(workdir, args.notes)
        print(f"latency: {len(latency)} of {args.notes} notes answered")
        t, err, start_b, rss_b = measure_timing(workdir, args.minutes * 60)
    abs_ms = np.abs(err) * 1000
    tenth = max(1, len(err) // 10)
    drift_ms = (err[-tenth:].mean() - err[:tenth].mean()) * 1000
    print(
        f"timing: {len(err)} AI notes over {t[-1] / 60:.1f} min, tempo {'/'.join(map(str, TEMPI))}"
        f" bpm changing every {CHANGE_S:.0f} s; mean signed error {err.mean() * 1000:.2f} ms"
    )
    print(f"JACK period {PERIOD} frames at {RATE} Hz = {PERIOD / RATE * 1000:.2f} ms")
    figures = {
        "latency_ms_p50": np.percentile(latency, 50) * 1000,
        "latency_ms_p99": np.percentile(latency, 99) * 1000,
        "timing_err_ms_p50": np.percentile(abs_ms, 50),
        "timing_err_ms_p99": np.percentile(abs_ms, 99),
        "drift_ms": drift_ms,
        "start_s": max(start_a, start_b),
        "rss_mb": max(rss_a[0], rss_b[0]),
        "jack_shm_mb": max(rss_a[1], rss_b[1]),
        "minutes": t[-1] / 60,
    }
    print(" ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    return 0
