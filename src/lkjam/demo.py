"""`lkjam demo`: a whole jam on this machine, through the real parts, without Ableton.

The real engine runs as a process with real MIDI ports. The real remote script runs in
the fake Live (lkjam.remote_script.fake_live) with a transport that changes tempo half
way and a playing bass clip from a Bach chorale; it talks to the engine over ZeroMQ on
loopback and sets the mode through its controls rack. A simulated human plays the
chorale's melody into `lkjam in` with human timing; `lkjam out` is recorded. The jam is
written to DIR/jam.mid, DIR/jam.png and DIR/report.txt (see lkjam.demo_report).

Ports are never faked: MIDI goes through the backend lkjam.engine.ports chooses (ALSA,
CoreMIDI, or JACK, for which the demo starts a private dummy JACK server).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lkjam.demo_live import (
    BASS_ENTRY,
    BEATS_PER_BAR,
    HUMAN_ENTRY,
    TICK_S,
    LiveSet,
    Player,
    Recorder,
    Timeline,
    clock_part,
    human_part,
    load_piece,
)
from lkjam.demo_report import analyse, parse_drawn_after_human, parse_plans, write_files
from lkjam.engine.model_file import (
    DEFAULT_MODEL_PATH,
    ModelFileError,
    list_styles,
    load_model,
)
from lkjam.engine.ports import BACKENDS, VIRTUAL, PortError, choose_backend
from lkjam.jackd import JackServer, JackUnavailable

TEMPO_CHANGE = 1.10  # the transport speeds up by 10 % half way
TEARDOWN_S = 1.5  # stop, bye, engine exit and files: kept inside the requested time
MIN_MUSIC_S = 4.0
LEAD_S = 0.3  # from scheduling the first beat to playing it

INSTALL_HINT = {
    "linux": (
        "install JACK (Debian/Ubuntu: sudo apt-get install jackd2; Fedora: sudo dnf install "
        "jack-audio-connection-kit), or give yourself access to the ALSA sequencer "
        "(/dev/snd/seq: add your user to the 'audio' group)"
    ),
    "darwin": "reinstall python-rtmidi, which brings CoreMIDI (pip install -U python-rtmidi)",
    "win32": (
        "Windows has no virtual MIDI ports: install loopMIDI (tobias-erichsen.de) and create "
        "two ports named 'lkjam in' and 'lkjam out'"
    ),
}


class DemoError(RuntimeError):
    """The demo cannot run; the text says why and what to do."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="lkjam demo",
        description="Run a whole simulated jam on this machine (no Ableton needed): "
        "writes jam.mid, jam.png and report.txt.",
    )
    p.add_argument(
        "--out", type=Path, default=Path("lkjam-demo"), help="output folder (default ./lkjam-demo)"
    )
    p.add_argument("--seconds", type=float, default=30.0, help="how long it runs (default 30)")
    p.add_argument("--tempo", type=float, default=100.0, help="starting tempo, BPM (default 100)")
    p.add_argument(
        "--mode",
        choices=("accompany", "call_response"),
        default="accompany",
        help="the AI plays along, or answers each two-bar phrase (default accompany)",
    )
    # Advanced: a model file instead of the shipped one, the MIDI backend, the sync source.
    # Sync is the script's transport snapshots by default: MIDI clock counts ticks, and
    # JACK drops MIDI at xruns on an overloaded machine, which shifts a tick count for good.
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=sorted(BACKENDS), help=argparse.SUPPRESS)
    p.add_argument(
        "--sync", choices=("transport", "clock"), default="transport", help=argparse.SUPPRESS
    )
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(list(argv))
    if not 20.0 <= args.tempo <= 300.0:
        p.error("--tempo must be in 20..300 BPM")
    if args.seconds < MIN_MUSIC_S + TEARDOWN_S + 1.0:
        p.error(f"--seconds must be at least {MIN_MUSIC_S + TEARDOWN_S + 1.0:g}")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineProcess:
    """`lkjam engine` as a child process logging (with planned notes, -v) to a file."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w", encoding="utf-8")
        command = [sys.executable, "-m", "lkjam", "engine", "-v", *args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready:" not in self.log():
            if not self.alive() or time.monotonic() > deadline:
                tail = "\n".join(self.log().splitlines()[-8:])
                raise DemoError(f"the engine did not start (log {self.log_path}):\n{tail}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM (the engine releases its notes and exits); kill after 10 s."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)


class Progress:
    """One status line, redrawn in place on a terminal, else a line every few seconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tty = sys.stdout.isatty()
        self._last = -1e9

    def show(self, elapsed: float, text: str) -> None:
        period = 0.25 if self.tty else 5.0
        if elapsed - self._last < period:
            return
        self._last = elapsed
        done = min(1.0, elapsed / self.seconds)
        bar = "#" * round(20 * done) + "." * (20 - round(20 * done))
        line = f"[{bar}] {elapsed:4.0f}/{self.seconds:.0f} s  {text}"
        print(f"\r{line}   " if self.tty else line, end="" if self.tty else "\n", flush=True)

    def end(self) -> None:
        if self.tty:
            print(flush=True)


def resolve_model(path: Path | None) -> Path:
    if path is not None:
        if not path.is_file():
            raise DemoError(f"--model {path}: no such file")
        return path
    if not DEFAULT_MODEL_PATH.is_file():
        raise DemoError(
            f"the default model is not in this install (expected {DEFAULT_MODEL_PATH}). "
            "Train it with `lkjam train` (see the README) or pass --model FILE."
        )
    return DEFAULT_MODEL_PATH


def resolve_backend(requested: str | None) -> str:
    try:
        backend = choose_backend(requested)
    except PortError as exc:
        hint = INSTALL_HINT.get(sys.platform, INSTALL_HINT["linux"])
        raise DemoError(f"{exc}. To run the demo, {hint}.") from None
    if backend == "jack" and shutil.which("jackd") is None:
        raise DemoError(
            "no MIDI backend: the ALSA sequencer (/dev/snd/seq) is not usable and jackd is "
            f"not installed. To run the demo, {INSTALL_HINT['linux']}."
        )
    return backend


def schedule(seconds_left: float, tempo: float) -> tuple[Timeline, float, float]:
    """The timeline (beat 0 shortly from now; +10 % on the bar line nearest half way),
    the stop time and the stop beat."""
    t0 = time.perf_counter() + LEAD_S
    music_s = max(MIN_MUSIC_S, seconds_left - LEAD_S - TEARDOWN_S)
    half_beats = music_s / 2 * tempo / 60.0
    change_beat = max(1, round(half_beats / BEATS_PER_BAR)) * float(BEATS_PER_BAR)
    timeline = Timeline(t0, tempo, change_beat, round(tempo * TEMPO_CHANGE, 1))
    stop_time = t0 + music_s
    return timeline, stop_time, timeline.beat_at(stop_time)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if importlib.util.find_spec("matplotlib") is None:  # for jam.png; found out before playing
        raise DemoError("drawing jam.png needs matplotlib: pip install 'lkjam[train]'")
    model_path = resolve_model(args.model)
    try:
        model = load_model(model_path)
    except ModelFileError as exc:
        raise DemoError(str(exc)) from None
    style = model.meta.style
    backend = resolve_backend(args.backend)
    piece = load_piece()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    virtual = backend in VIRTUAL
    # Own port names where we create them, so a running `lkjam engine` is never confused.
    in_name = "lkjam demo in" if virtual else "lkjam in"
    out_name = "lkjam demo out" if virtual else "lkjam out"

    with contextlib.ExitStack() as stack:
        jack = ""
        notes = []
        if backend == "jack":
            jack = f"lkjam-demo-{os.getpid()}"
            try:
                server = stack.enter_context(JackServer(jack))  # sets JACK_DEFAULT_SERVER
            except JackUnavailable as exc:
                raise DemoError(f"{exc}. To run the demo, {INSTALL_HINT['linux']}.") from None
            period_ms = 1000 * server.period / server.rate
            notes.append(
                f"JACK moves MIDI once per period ({server.period} frames at {server.rate} Hz "
                f"= {period_ms:.2f} ms here), so latency and timing error include up to two "
                "periods of transport between the ports."
            )
        # The controls rack's style macro must point at the model the demo plays: give the
        # engine a styles folder holding just that model.
        styles_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.model is not None:
            shutil.copyfile(model_path, styles_dir / f"{style}.safetensors")
        styles = list_styles([styles_dir])
        style_macro = styles.index(style) / (len(styles) - 1) if len(styles) > 1 else 0.0

        port = free_port()
        engine = EngineProcess(
            [
                "--model", str(model_path),
                "--endpoint", f"tcp://127.0.0.1:{port}",
                "--backend", backend,
                "--in", in_name,
                "--out", out_name,
                "--styles-dir", str(styles_dir),
                "--seed", str(args.seed),
            ],
            out / "engine.log",
        )  # fmt: skip
        stack.callback(engine.stop)
        print(
            f"lkjam demo: {piece.name}, {args.mode}, {args.tempo:g} BPM, model {style} "
            f"({model_path.name}), MIDI {backend}" + (f" (private server {jack})" if jack else "")
        )
        engine.wait_ready()
        player = Player(backend, in_name)
        stack.callback(player.close)
        recorder = Recorder(backend, out_name)
        stack.callback(recorder.close)  # runs first: see Recorder.close
        live = LiveSet(piece, args.tempo, args.mode, port, style_macro)
        stack.callback(live.disconnect)
        live.connect(engine.alive)

        timeline, stop_time, stop_beat = schedule(
            args.seconds - (time.perf_counter() - started), args.tempo
        )
        part = human_part(piece, timeline, stop_beat, args.mode == "call_response", args.seed)
        clock = clock_part(timeline, stop_beat) if args.sync == "clock" else []
        player.start(part + clock)
        jam(live, timeline, stop_time, recorder, Progress(args.seconds), started, engine)

        # The end: the transport stops (the engine must release its notes), the human
        # lets go, the script says bye, the engine gets SIGTERM.
        live.stop()
        deadline = time.perf_counter() + 1.0
        while recorder.sounding() and time.perf_counter() < deadline:
            live.tick(time.perf_counter())
            time.sleep(TICK_S / 2)
        sounding_after_stop = len(recorder.sounding())
        player.join()
        live.disconnect()
        code = engine.stop()
        time.sleep(0.1)  # the last messages on their way to the recorder
        recorder.close()
        player.close()
        if code != 0:
            raise DemoError(f"the engine exited with code {code}; see {out / 'engine.log'}")

    events, figures = analyse(
        piece,
        timeline,
        stop_beat,
        [m for m in player.sent if m[1][0] < 0xF0],
        recorder.received,
        parse_plans(engine.log()),
        parse_drawn_after_human(engine.log()),
        sounding_after_stop,
        args.mode,
    )
    sync = {
        "clock": "MIDI clock from the fake Live on the input port (Start, 24 ticks per beat)",
        "transport": "the script's transport snapshots (10 per second)",
    }[args.sync]
    bar = int(timeline.change_beat // BEATS_PER_BAR) + 1
    header = [
        f"lkjam demo: {piece.name}; the human plays the soprano (from bar "
        f"{HUMAN_ENTRY // BEATS_PER_BAR + 1:.0f}), a Live clip the bass (from bar "
        f"{BASS_ENTRY // BEATS_PER_BAR + 1:.0f}), the AI the rest",
        f"mode {args.mode} · {args.seconds:g} s · {timeline.tempo:g} BPM, "
        f"{timeline.new_tempo:g} from bar {bar} · model {style} ({model_path})",
        f"MIDI {backend}" + (f" (private JACK server {jack})" if jack else "") + f" · sync: {sync}",
    ]
    title = f"lkjam demo: {piece.name} · {args.mode.replace('_', ' ')}"
    text = write_files(
        out, events, figures, timeline, stop_beat, piece, header, title, args.mode, notes
    )
    print(text)
    print(f"wrote {out / 'jam.mid'}, {out / 'jam.png'}, {out / 'report.txt'}")
    if figures.stuck:
        lost = figures.planned - figures.heard
        why = (
            f"; {lost} AI note(s) never arrived either: MIDI was lost between the ports "
            "(JACK drops MIDI when an overloaded machine makes a client miss its cycle)"
            if lost > 0
            else ""
        )
        print(f"lkjam demo: {figures.stuck} stuck note(s){why}", file=sys.stderr)
        return 1
    return 0


def jam(
    live: LiveSet,
    timeline: Timeline,
    stop_time: float,
    recorder: Recorder,
    progress: Progress,
    started: float,
    engine: EngineProcess,
) -> None:
    """Play: start the transport on beat 0, then tick Live every 100 ms until the stop."""
    while time.perf_counter() < timeline.t0:
        time.sleep(0)
    live.play(timeline)
    next_tick = timeline.t0 + TICK_S
    while next_tick < stop_time:
        time.sleep(max(0.0, next_tick - time.perf_counter()))
        now = time.perf_counter()
        live.tick(now)
        next_tick += TICK_S
        beat = timeline.beat_at(now)
        bar, in_bar = divmod(beat, BEATS_PER_BAR)
        progress.show(
            now - started,
            f"bar {int(bar) + 1:>2} beat {int(in_bar) + 1}  {timeline.tempo_at(beat):g} BPM  "
            f"ai notes {recorder.note_ons()}",
        )
        if not engine.alive():
            progress.end()
            raise DemoError(f"the engine stopped during the jam; see {engine.log_path}")
    time.sleep(max(0.0, stop_time - time.perf_counter()))
    progress.end()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (DemoError, PortError, OSError) as exc:
        print(f"lkjam demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # everything was stopped on the way out
        print("\nlkjam demo: interrupted", file=sys.stderr)
        return 130
