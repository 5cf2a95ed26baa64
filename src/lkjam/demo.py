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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lkjam.demo_live import (
    BASS_ENTRY,
    BEATS_PER_BAR,
    HUMAN_ENTRY,
    TICK_S,
    LiveSet,
    Message,
    Piece,
    Player,
    Recorder,
    Timeline,
    clock_part,
    human_part,
    load_piece,
)
from lkjam.demo_report import analyse, drawn_after_human, planned_notes, write_files
from lkjam.engine.model_file import (
    DEFAULT_MODEL_PATH,
    ModelFileError,
    list_styles,
    load_model,
)
from lkjam.engine.ports import BACKENDS, VIRTUAL, PortError, choose_backend
from lkjam.engine.trace import read_trace
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
    """`lkjam engine` as a child process, logging to one file and tracing to another."""

    def __init__(self, args: Sequence[str], log_path: Path, trace_path: Path) -> None:
        self.log_path, self.trace_path = log_path, trace_path
        self._log = log_path.open("w", encoding="utf-8")
        command = [sys.executable, "-m", "lkjam", "engine", "--trace", str(trace_path), *args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def trace(self) -> list[dict[str, Any]]:
        """The engine's trace; complete once it has stopped."""
        return read_trace(self.trace_path)

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


@dataclass(frozen=True)
class Setup:
    """What is settled before anything starts: the model, the MIDI backend, the piece and
    the output folder."""

    model_path: Path
    style: str
    backend: str
    piece: Piece
    out: Path

    @property
    def port_names(self) -> tuple[str, str]:
        """The engine's input and output ports."""
        # Own port names where we create them, so a running `lkjam engine` is never confused.
        if self.backend in VIRTUAL:
            return "lkjam demo in", "lkjam demo out"
        return "lkjam in", "lkjam out"


@dataclass(frozen=True)
class Played:
    """What the jam left for the report."""

    timeline: Timeline
    stop_beat: float
    human_sent: list[Message]  # notes only, no MIDI clock
    ai_received: list[Message]
    sounding_after_stop: int
    trace: list[dict[str, Any]]  # the engine's
    jack: str  # the private JACK server's name; "" when not on JACK
    notes: list[str]  # for the report's definitions


def prepare(args: argparse.Namespace) -> Setup:
    """Everything that can be found wrong before playing: matplotlib (for jam.png), the
    model, the MIDI backend; then the output folder."""
    if importlib.util.find_spec("matplotlib") is None:
        raise DemoError("drawing jam.png needs matplotlib: pip install 'lkjam[train]'")
    model_path = resolve_model(args.model)
    try:
        model = load_model(model_path)
    except ModelFileError as exc:
        raise DemoError(str(exc)) from None
    backend = resolve_backend(args.backend)
    piece = load_piece()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    return Setup(model_path, model.meta.style, backend, piece, out)


def start_jack(stack: contextlib.ExitStack, backend: str) -> tuple[str, list[str]]:
    """On JACK, a private server (stopped by `stack`): its name and the report's note on
    its period. Elsewhere ("", [])."""
    if backend != "jack":
        return "", []
    jack = f"lkjam-demo-{os.getpid()}"
    try:
        # Real-time priority where the system grants it, as jackd runs by default.
        server = stack.enter_context(JackServer(jack, realtime=True))  # sets JACK_DEFAULT_SERVER
    except JackUnavailable as exc:
        raise DemoError(f"{exc}. To run the demo, {INSTALL_HINT['linux']}.") from None
    period_ms = 1000 * server.period / server.rate
    note = (
        f"JACK moves MIDI once per period ({server.period} frames at {server.rate} Hz "
        f"= {period_ms:.2f} ms here). The player, the recorder and the engine place and "
        "read each message at its frame, so timing error is the engine's own; latency "
        "includes the period in which the engine hears a note and the next, in which its "
        "answer can go out at the soonest."
    )
    return jack, [note]


def styles_folder(stack: contextlib.ExitStack, setup: Setup, own_model: bool) -> tuple[Path, float]:
    """A styles folder (removed by `stack`) and the controls rack's style macro for it."""
    # The style macro must point at the model the demo plays: the folder holds just that one.
    styles_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    if own_model:
        shutil.copyfile(setup.model_path, styles_dir / f"{setup.style}.safetensors")
    styles = list_styles([styles_dir])
    macro = styles.index(setup.style) / (len(styles) - 1) if len(styles) > 1 else 0.0
    return styles_dir, macro


def start_engine(
    stack: contextlib.ExitStack, setup: Setup, styles_dir: Path, seed: int
) -> tuple[EngineProcess, int]:
    """The engine (stopped by `stack`) and its socket's port."""
    port = free_port()
    in_name, out_name = setup.port_names
    engine = EngineProcess(
        [
            "--model", str(setup.model_path),
            "--endpoint", f"tcp://127.0.0.1:{port}",
            "--backend", setup.backend,
            "--in", in_name,
            "--out", out_name,
            "--styles-dir", str(styles_dir),
            "--seed", str(seed),
        ],
        setup.out / "engine.log",
        setup.out / "trace.jsonl",
    )  # fmt: skip
    stack.callback(engine.stop)
    return engine, port


def wind_down(live: LiveSet, player: Player, recorder: Recorder, engine: EngineProcess) -> int:
    """The end: the transport stops (the engine must release its notes), the human lets
    go, the script says bye, the engine gets SIGTERM. Returns how many AI notes were still
    sounding once the transport had stopped."""
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
        raise DemoError(f"the engine exited with code {code}; see {engine.log_path}")
    return sounding_after_stop


def play(args: argparse.Namespace, setup: Setup, started: float) -> Played:
    """Start JACK if needed, the engine, the player, the recorder and the fake Live; jam
    until the requested time is nearly up; wind down."""
    with contextlib.ExitStack() as stack:
        jack, notes = start_jack(stack, setup.backend)
        styles_dir, style_macro = styles_folder(stack, setup, args.model is not None)
        engine, port = start_engine(stack, setup, styles_dir, args.seed)
        print(
            f"lkjam demo: {setup.piece.name}, {args.mode}, {args.tempo:g} BPM, model "
            f"{setup.style} ({setup.model_path.name}), MIDI {setup.backend}"
            + (f" (private server {jack})" if jack else "")
        )
        engine.wait_ready()
        in_name, out_name = setup.port_names
        player = Player(setup.backend, in_name)
        stack.callback(player.close)
        recorder = Recorder(setup.backend, out_name)
        stack.callback(recorder.close)  # runs first: see Recorder.close
        live = LiveSet(setup.piece, args.tempo, args.mode, port, style_macro)
        stack.callback(live.disconnect)
        live.connect(engine.alive)

        timeline, stop_time, stop_beat = schedule(
            args.seconds - (time.perf_counter() - started), args.tempo
        )
        call_response = args.mode == "call_response"
        part = human_part(setup.piece, timeline, stop_beat, call_response, args.seed)
        clock = clock_part(timeline, stop_beat) if args.sync == "clock" else []
        player.start(part + clock)
        jam(live, timeline, stop_time, recorder, Progress(args.seconds), started, engine)
        sounding_after_stop = wind_down(live, player, recorder, engine)
        trace = engine.trace()
    return Played(
        timeline,
        stop_beat,
        [m for m in player.sent if m[1][0] < 0xF0],
        recorder.received,
        sounding_after_stop,
        trace,
        jack,
        notes,
    )


def header(args: argparse.Namespace, setup: Setup, played: Played) -> list[str]:
    """The report's first lines: the piece, the parts, the run's settings."""
    sync = {
        "clock": "MIDI clock from the fake Live on the input port (Start, 24 ticks per beat)",
        "transport": "the script's transport snapshots (10 per second)",
    }[args.sync]
    timeline, jack = played.timeline, played.jack
    bar = int(timeline.change_beat // BEATS_PER_BAR) + 1
    return [
        f"lkjam demo: {setup.piece.name}; the human plays the soprano (from bar "
        f"{HUMAN_ENTRY // BEATS_PER_BAR + 1:.0f}), a Live clip the bass (from bar "
        f"{BASS_ENTRY // BEATS_PER_BAR + 1:.0f}), the AI the rest",
        f"mode {args.mode} · {args.seconds:g} s · {timeline.tempo:g} BPM, "
        f"{timeline.new_tempo:g} from bar {bar} · model {setup.style} ({setup.model_path})",
        f"MIDI {setup.backend}"
        + (f" (private JACK server {jack})" if jack else "")
        + f" · sync: {sync}",
    ]


def report(args: argparse.Namespace, setup: Setup, played: Played) -> int:
    """Analyse, write the files, print the summary; 1 if a note got stuck."""
    events, figures = analyse(
        setup.piece,
        played.timeline,
        played.stop_beat,
        played.human_sent,
        played.ai_received,
        planned_notes(played.trace),
        drawn_after_human(played.trace),
        played.sounding_after_stop,
        args.mode,
    )
    out = setup.out
    title = f"lkjam demo: {setup.piece.name} · {args.mode.replace('_', ' ')}"
    text = write_files(
        out,
        events,
        figures,
        played.timeline,
        played.stop_beat,
        setup.piece,
        header(args, setup, played),
        title,
        args.mode,
        played.notes,
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


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    setup = prepare(args)
    played = play(args, setup, started)
    return report(args, setup, played)


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
