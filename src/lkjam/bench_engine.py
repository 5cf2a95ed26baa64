"""Engine benchmark through JACK: `python -m lkjam.bench engine [--minutes M]`.

Starts a private `jackd -d dummy` with a 64-frame period (1.33 ms at 48 kHz) and runs
`lkjam engine` as a subprocess twice, on models of random weights whose output biases
make the timing checkable (a trained model's choices are not the point here; the
default topology keeps the step's cost real):

1. latency: the model always plans "now" (shift 0). A player sends notes into
   `lkjam in` as a keyboard does, at once; latency is note-in (just before the player's
   send) to the first AI note-on's frame on `lkjam out`.
2. timing: the model always plans half a beat after the last event. The bench sends
   MIDI clock (24 ppqn) with a tempo change every 20 s; one clip note starts the AI,
   whose notes must then land on the half-beat grid of the true tempo map. Timing error
   is recorder time minus grid time (absolute p50/p99, and the signed mean: positive is
   late); drift is the mean signed error over the last tenth of the run minus that over
   the first tenth. `--drop-ticks N` leaves N clock ticks a minute out at random, as a
   JACK xrun loses them. `handover_ms_p01` is the engine's own margin: how long before
   its due time each AI note-on was handed to JACK's process thread (1st percentile,
   from the trace); more than one period means it was written at its exact frame.
3. CPU: the engine's own (process time over wall time, % of one core) while playing the
   timing run (`cpu_pct`) and, before it, for 10 s with a client connected and Live
   stopped (`cpu_pct_idle`).

The bench's players and recorder are JACK clients of the engine's own kind
(`lkjam.engine.ports.JackClient`): the clock is sent frame-exact and handed over early, as
Live sends a timestamped MIDI clock, and the recorder reads each note's frame time, so
neither the bench's GIL waits nor JACK's period enter the figures unless the engine's notes
are really off.

RSS is the engine's own memory (anonymous + file pages); JACK's shared memory, which
every JACK client maps from the server, is reported apart (jack_shm_mb).

Latency includes JACK's own period: the engine hears a note once the period holding it is
processed, and its answer can go out in the next period at the soonest. The JACK server
runs with real-time priority where the system allows it (as jackd does by default); the
bench says which. The last line is key=value.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from lkjam import _step
from lkjam.engine.ports import JackClient
from lkjam.engine.scheduler import wait_until
from lkjam.engine.trace import read_trace
from lkjam.jackd import JackServer
from lkjam.random_model import random_model
from lkjam.remote_script.LKJam.song import HEARTBEAT_SECONDS

PERIOD = 64
RATE = 48000
TEMPI = (120.0, 100.0, 140.0, 90.0, 128.0)  # timing phase: a change every CHANGE_S
CHANGE_S = 20.0
STEADY_S = 60 / min(TEMPI)  # a beat at the slowest tempo
IDLE_S = 10.0  # the idle phase: a client connected, Live stopped
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
UNANSWERED_S = 0.1  # a note answered this late was not answered: the next note was
# The clock sender hands each tick over this early, with its time, as Live schedules its
# MIDI clock ahead by its output latency.
CLOCK_AHEAD_S = 0.02


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


class EngineRun:
    """The engine process, a DEALER, two players (clock, notes) and a recorder."""

    def __init__(self, model: Path, workdir: Path, name: str) -> None:
        self.log_path = workdir / f"engine-{name}.log"
        self.trace_path = workdir / f"trace-{name}.jsonl"
        endpoint = f"ipc://{workdir}/engine-{name}.sock"
        self.in_name, self.out_name = f"lkjam in {name}", f"lkjam out {name}"
        command = [sys.executable, "-m", "lkjam", "engine", "--model", str(model)]
        command += ["--backend", "jack", "--endpoint", endpoint]
        command += ["--in", self.in_name, "--out", self.out_name, "--trace", str(self.trace_path)]
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
        # The recorder is a client of its own: one that both fed the engine and heard it
        # would make a loop in JACK's graph, which JACK breaks with a period's delay. The
        # clock and the notes each hand over in time order, so each has its own client.
        self.clock: JackClient = JackClient(output="clock", client="bench-clock")
        self.player: JackClient = JackClient(output="notes", client="bench-player")
        self.recorder: JackClient = JackClient(
            input="recorder", client="bench-recorder", capacity=1_000_000
        )
        self.clock.connect_to(self.in_name)
        self.player.connect_to(self.in_name)
        self.recorder.connect_to(self.out_name)
        self.sender: ClockSender | None = None

    def start_clock(
        self, tempi: Sequence[float], change_s: float, drops_per_minute: float = 0.0
    ) -> TempoMap:
        """Start sending MIDI clock; returns the tempo map it follows."""
        tempo = TempoMap(time.perf_counter() + 0.2, tempi, change_s)
        self.sender = ClockSender(self.clock, tempo, drops_per_minute)
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

    def status(self) -> dict[str, Any]:
        """The engine's counts now: `hello` is answered with `welcome`, then `status`."""
        while self.socket.poll(0):  # older statuses, sent on transport start and stop
            self.socket.recv()
        self.send("hello", live_version="bench", python=sys.version.split()[0], script_version="")
        while self.socket.poll(10_000):
            message: dict[str, Any] = json.loads(self.socket.recv())
            if message["type"] == "status":
                return message
        raise RuntimeError(f"the engine sent no status; see {self.log_path}")

    def note_ons(self) -> list[float]:
        return [t for t, m in list(self.recorder.queue) if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def cpu_s(self) -> float:
        """CPU seconds the engine process has used (user + system, all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime, stime

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
        for port in (self.clock, self.player, self.recorder):
            port.close()
        self.socket.close(linger=0)
        self._log.close()


class ClockSender(threading.Thread):
    """MIDI Start, then 24 ticks per beat at the tempo map's times, each handed over
    CLOCK_AHEAD_S early and written at its frame. With `drops_per_minute`, ticks are left
    out at random, as a JACK xrun loses them."""

    def __init__(self, port: JackClient, tempo: TempoMap, drops_per_minute: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.port, self.tempo = port, tempo
        self.stop = threading.Event()
        self.drop_p = drops_per_minute / (24 * float(np.mean(tempo.tempi)))  # per tick
        self.dropped = 0

    def run(self) -> None:
        never = threading.Event()
        rng = np.random.default_rng(1)
        wait_until(self.tempo.t0 - CLOCK_AHEAD_S, never, spin=False)
        self.port.send([0xFA], at=self.tempo.t0 - 0.002)
        tick = 0
        while not self.stop.is_set():
            due = self.tempo.time(tick / 24)
            wait_until(due - CLOCK_AHEAD_S, never, spin=False)
            # Never the first beat's ticks: the engine needs them to learn the tempo.
            if tick > 24 and rng.random() < self.drop_p:
                self.dropped += 1
            else:
                self.port.send([0xF8], at=due)
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
            # Live keys, sent at once: a player's note cannot be handed over ahead.
            t = time.perf_counter()
            run.player.send([0x90, 48 + k % 24, 100])
            sent.append(t)
            run.player.send([0x80, 48 + k % 24, 0])
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


@dataclass
class TimingRun:
    times: np.ndarray  # s since the first AI note
    errors: np.ndarray  # signed, s; positive = late
    since_change: np.ndarray  # s from the last tempo change to each note
    start_s: float
    rss: tuple[float, float]
    cpu_pct: float  # while playing, % of one core
    cpu_pct_idle: float  # client connected, transport stopped
    ticks_dropped: int  # by the bench's clock sender
    ticks_lost: int  # as the engine inferred them (status.clock_ticks_lost)
    xruns: int  # the JACK server's, while the engine ran
    corrections: int  # MIDI clock count corrected from Live's position (trace)
    handover: np.ndarray  # s each AI note-on was handed to JACK before it was due (trace)


def idle_cpu_pct(run: EngineRun) -> float:
    """The engine's CPU over IDLE_S with a client sending Live's stopped heartbeat (the
    script's keep-alive: one snapshot a second)."""
    cpu0, wall0 = run.cpu_s(), time.perf_counter()
    while time.perf_counter() - wall0 < IDLE_S:
        time.sleep(HEARTBEAT_SECONDS)
        t = time.perf_counter()
        run.send("transport", tempo=120.0, beat=0.0, playing=False, sig=[4, 4], t=t)
    return 100 * (run.cpu_s() - cpu0) / (time.perf_counter() - wall0)


def measure_timing(workdir: Path, seconds: float, drops_per_minute: float) -> TimingRun:
    """AI notes against the half-beat grid, and the engine's CPU idle and playing."""
    half = _step.shift_bin(0.5)
    bias = {"time": {half: 40.0}, "duration": {_step.duration_bin(0.25): 40.0}}
    model = random_model(workdir / "grid.safetensors", "default", head_bias=bias)
    run = EngineRun(model, workdir, "timing")
    try:
        cpu_idle = idle_cpu_pct(run)
        tempo = run.start_clock(TEMPI, CHANGE_S, drops_per_minute)
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
        cpu0, wall0 = run.cpu_s(), time.perf_counter()
        end = wall0 + seconds
        while time.perf_counter() < end:
            time.sleep(0.1)
            run.transport(tempo)
        cpu_playing = 100 * (run.cpu_s() - cpu0) / (time.perf_counter() - wall0)
        dropped = run.sender.dropped if run.sender is not None else 0
        run.stop_clock()
        lost = run.status()["clock_ticks_lost"]
        xruns = run.recorder.xruns
        rss = run.rss_mb()
        ons = np.array(run.note_ons())
        beats = np.array([tempo.beat(t) for t in ons])
        grid = np.round(beats * 2) / 2
        errors = ons - np.array([tempo.time(b) for b in grid])
    finally:
        run.close()
    trace = read_trace(run.trace_path)
    corrections = sum(e["kind"] == "clock_correction" for e in trace)
    # The engine's own margin: how early each note-on reached JACK's process thread.
    handover = np.array([e["due"] - e["t"] for e in trace if e["kind"] == "sent" and e["velocity"]])
    return TimingRun(
        ons - ons[0],
        errors,
        (ons - tempo.t0) % CHANGE_S,
        run.start_s,
        rss,
        cpu_playing,
        cpu_idle,
        dropped,
        lost,
        xruns,
        corrections,
        handover,
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lkjam.bench engine", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="timing run length")
    parser.add_argument("--notes", type=int, default=200, help="latency samples")
    parser.add_argument(
        "--drop-ticks",
        type=float,
        default=0.0,
        metavar="PER_MINUTE",
        help="MIDI clock ticks the sender leaves out per minute, at random (as xruns lose them)",
    )
    args = parser.parse_args(list(argv))
    server = JackServer(f"lkjam-bench-{id(args)}", PERIOD, RATE, realtime=True)
    with tempfile.TemporaryDirectory() as tmp, server:
        workdir = Path(tmp)
        latency, start_a, rss_a = measure_latency(workdir, args.notes)
        unanswered = int(np.sum(latency > UNANSWERED_S))
        print(
            f"latency: {len(latency)} of {args.notes} notes answered, {unanswered} of them only "
            f"after {UNANSWERED_S * 1000:.0f} ms (the note lost on the way, at an xrun)"
        )
        timing = measure_timing(workdir, args.minutes * 60, args.drop_ticks)
    err = timing.errors
    abs_ms = np.abs(err) * 1000
    tenth = max(1, len(err) // 10)
    drift_ms = (err[-tenth:].mean() - err[:tenth].mean()) * 1000
    print(
        f"timing: {len(err)} AI notes over {timing.times[-1] / 60:.1f} min, tempo "
        f"{'/'.join(map(str, TEMPI))} bpm changing every {CHANGE_S:.0f} s; "
        f"{timing.ticks_dropped} clock ticks left out by the sender, {timing.ticks_lost} "
        f"inferred lost by the engine; count corrected from Live's position "
        f"{timing.corrections} time(s)"
    )
    print(
        f"JACK period {PERIOD} frames at {RATE} Hz = {PERIOD / RATE * 1000:.2f} ms, "
        f"{'real-time' if server.realtime else 'no real-time'} priority"
    )
    figures = {
        "latency_ms_p50": np.percentile(latency, 50) * 1000,
        "latency_ms_p99": np.percentile(latency, 99) * 1000,
        "latency_ms_p99_answered": np.percentile(latency[latency <= UNANSWERED_S], 99) * 1000,
        "timing_err_ms_p50": np.percentile(abs_ms, 50),
        "timing_err_ms_p99": np.percentile(abs_ms, 99),
        # Notes a beat or more (at the slowest tempo) after a tempo change: what MIDI clock
        # cannot tell ahead (the ticks must first show the new tempo) is left out.
        "timing_err_ms_p99_steady": np.percentile(abs_ms[timing.since_change >= STEADY_S], 99),
        "timing_err_ms_mean": err.mean() * 1000,
        "drift_ms": drift_ms,
        "handover_ms_p01": np.percentile(timing.handover, 1) * 1000,
        "cpu_pct": timing.cpu_pct,
        "cpu_pct_idle": timing.cpu_pct_idle,
        "clock_ticks_dropped": timing.ticks_dropped,
        "clock_ticks_lost": timing.ticks_lost,
        "xruns_per_min": timing.xruns / (timing.times[-1] / 60 + IDLE_S / 60),
        "start_s": max(start_a, timing.start_s),
        "rss_mb": max(rss_a[0], timing.rss[0]),
        "jack_shm_mb": max(rss_a[1], timing.rss[1]),
        "minutes": timing.times[-1] / 60,
    }
    print(" ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    return 0
