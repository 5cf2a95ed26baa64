"""`lkjam engine`: the process that runs next to Ableton Live.

Threads: the main thread serves the ZeroMQ socket; the generator thread owns the step,
the beat clock and the scheduler, and on JACK reads the input itself (elsewhere rtmidi's
thread only enqueues it); a worker thread loads models and answers `accompany`.
SIGINT/SIGTERM end it cleanly, releasing every sounding AI note and sending All Notes Off.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from lkjam.engine import protocol
from lkjam.engine.generator import SETTINGS, Controls, Generator
from lkjam.engine.jobs import OfflineModels, Worker, accompany_clip
from lkjam.engine.keys import parse_scale
from lkjam.engine.model_file import (
    STYLES_DIR,
    LoadedModel,
    ModelFileError,
    list_styles,
    load_model,
    resolve_style,
)
from lkjam.engine.ports import JackClient, MidiInput, MidiOutput, PortError, open_ports
from lkjam.engine.server import POLL_MS, BindError, Server
from lkjam.engine.trace import Trace

from lkjam import __version__

log = logging.getLogger("lkjam.engine")


def scale_argument(text: str) -> tuple[int, tuple[int, ...]]:
    """--scale, parsed by lkjam.engine.keys."""
    try:
        return parse_scale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--{exc}") from None


class Engine:
    """Model + ports + socket + threads. Use as a context manager; `close()` is idempotent."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = threading.Event()
        self.model = self._load_initial_model()
        self.style = self.model.meta.style
        self.trace = Trace(args.trace)  # closed last, after the generator's final events
        self.controls = Controls.start(self.style)  # the socket thread's view, for jobs
        self.scale: tuple[int, Sequence[int]] | None = args.scale
        self.meter = (4, 4)
        self.offline = OfflineModels()
        self.requests = 0
        self.midi_in: MidiInput | JackClient | None = None
        self.midi_out: MidiOutput | JackClient | None = None
        self.server: Server | None = None
        self.worker: Worker | None = None
        self.thread: threading.Thread | None = None
        self.generator: Generator
        self._dropped_logged, self._dropped_at = 0, 0.0
        # Style requests (socket thread) and loads (worker) meet here, under the lock, so
        # that the engine ends on the style asked for last however they interleave.
        self._style_lock = threading.Lock()
        self._style_wanted = self.style  # asked for last; the one in use after a failure
        self._style_seq = 0  # bumped by every new request: a load of an older one is stale
        self._style_rid = b""  # who asked last: told when the load fails
        self._style_job = False  # a swap job is queued and has not started yet
        self._loadable: dict[tuple[Path, int, int], bool] = {}  # (file, size, mtime) -> loads
        try:
            # The socket first: a bad endpoint is refused before any port appears. It is
            # only polled once run() starts, when the generator exists.
            self.server = Server(
                args.endpoint,
                allow_remote=args.allow_remote,
                on_message=self._on_message,
                on_all_gone=lambda reason: self.generator.submit("release", reason),
            )
            self.midi_in, self.midi_out = open_ports(args.in_port, args.out_port, args.backend)
            self.generator = Generator(
                self.model,
                self.midi_out,
                channel=args.channel,
                midi_queue=self.midi_in.queue,
                wake=self.midi_in.wake,
                post=self._post,
                scale=args.scale,
                seed=args.seed,
                output_offset_ms=args.output_offset_ms,
                trace=self.trace,
            )
            self.controls.output_offset_ms = args.output_offset_ms
            self.worker = Worker()
        except BaseException:
            self.close()
            raise

    def _load_initial_model(self) -> LoadedModel:
        if self.args.model is not None:
            return load_model(self.args.model)
        if self.args.style is not None:
            return load_model(resolve_style(self.args.style, self.args.styles_dir))
        return load_model()

    def _post(self, kind: str, **fields: Any) -> None:
        if self.server is not None:
            if kind == "status":  # the generator's counts, and the socket's own
                fields["dropped_out"] = self.server.outbox_dropped
            self.server.send(None, kind, **fields)

    # ---- messages (socket thread) --------------------------------------------------

    def _on_message(self, rid: bytes, m: dict[str, Any]) -> None:
        kind = m["type"]
        assert self.server is not None and self.worker is not None
        if kind == "hello":
            log.info(
                "hello from %s: Live %s, Python %s, script %s",
                rid.hex(),
                m["live_version"],
                m["python"],
                m["script_version"],
            )
            styles = self._loadable_styles()
            self.server.send(
                rid, "welcome", engine_version=__version__, model=self.style, styles=styles
            )
            self.generator.submit("status", None)
            return
        if kind == "accompany":
            if not self.worker.submit(lambda: self._accompany(rid, m)):
                self.server.error(rid, "accompany: engine busy, try again", m["id"])
            return
        if kind == "transport":
            self.meter = (m["sig"][0], m["sig"][1])
        elif kind == "scale" and self.args.scale is None:
            known = m["root"] >= 0 and m["intervals"]
            self.scale = (m["root"], m["intervals"]) if known else None
        elif kind == "controls":
            self._on_controls(rid, m)
        if not self.generator.submit("message", m):
            self.server.error(rid, f"{kind}: engine busy, message dropped")

    def _on_controls(self, rid: bytes, m: dict[str, Any]) -> None:
        for name in SETTINGS:
            if name in m:
                setattr(self.controls, name, m[name])
        if "style" in m:
            self._request_style(rid, m["style"])

    def _request_style(self, rid: bytes, style: str) -> None:
        with self._style_lock:
            if style == self._style_wanted:
                return  # in use or on its way (the script repeats every control each time)
            self._style_wanted, self._style_rid = style, rid
            self._style_seq += 1
            if self._style_job:
                return  # the queued job has not started: it will load this newest request
            self._style_job = True
        assert self.worker is not None and self.server is not None
        if not self.worker.submit(self._swap):
            with self._style_lock:
                self._style_job = False
                self._style_wanted = self.style  # nothing will load it: asking again retries
                self._style_seq += 1
            self.server.error(rid, "controls.style: engine busy, try again")

    def _loadable_styles(self) -> list[str]:
        """The styles whose file loads, for `welcome`; each file version is tried once."""
        names = []
        for name in list_styles(self.args.styles_dir):
            try:
                path = resolve_style(name, self.args.styles_dir)
                stat = path.stat()
            except (ModelFileError, ValueError, OSError):
                continue
            key = (path, stat.st_size, stat.st_mtime_ns)
            if key not in self._loadable:
                try:
                    load_model(path)
                    self._loadable[key] = True
                except ModelFileError as exc:
                    log.warning("style %s not offered: %s", name, exc)
                    self._loadable[key] = False
            if self._loadable[key]:
                names.append(name)
        return names

    # ---- jobs (worker thread) ------------------------------------------------------

    def _swap(self) -> None:
        """Load the style asked for last; drop the load if a newer request came meanwhile
        (that request has its own job)."""
        assert self.server is not None
        with self._style_lock:
            self._style_job = False
            seq, style, rid = self._style_seq, self._style_wanted, self._style_rid
        if style == self.style:
            return
        try:
            model = load_model(resolve_style(style, self.args.styles_dir))
        except (ModelFileError, ValueError) as exc:
            with self._style_lock:
                if self._style_seq == seq:
                    self._style_wanted = self.style  # nothing newer asked: asking again retries
            log.error("style %s not loaded, keeping %s: %s", style, self.style, exc)
            self.server.send(
                rid, "error", text=f"controls.style: {exc}; still playing {self.style}"
            )
            return
        with self._style_lock:
            if self._style_seq != seq:
                log.info("style %s loaded, but %s was asked for since", style, self._style_wanted)
                return
            if not self.generator.submit("model", model):
                self._style_wanted = self.style
                self.server.send(rid, "error", text="controls.style: engine busy, try again")
                return
            self.model, self.style = model, style

    def _accompany(self, rid: bytes, m: dict[str, Any]) -> None:
        assert self.server is not None
        started = time.perf_counter()
        try:
            model = self.offline.get(self.model.path)
        except ModelFileError as exc:
            self.server.error(rid, f"accompany: {exc}", m["id"])
            return
        c = self.controls
        self.requests += 1  # each request its own (reproducible) draw
        mode = m.get("mode", "call_response" if c.mode == "call_response" else "accompany")
        notes = accompany_clip(
            model,
            m["notes"],
            m["length"],
            mode=mode,
            density=c.density,
            voices=c.voices,
            temperature=c.temperature,
            top_p=c.top_p,
            seed=self.args.seed + self.requests,
            meter=self.meter,
            scale=self.scale,
            scale_lock=c.scale_lock,
            chord_lock=c.chord_lock,
        )
        self.server.send(rid, "clip_notes", id=m["id"], notes=notes)
        log.info(
            "accompany %r (%s): %d notes in -> %d notes out in %.1f ms",
            m["id"],
            mode,
            len(m["notes"]),
            len(notes),
            1000 * (time.perf_counter() - started),
        )

    # ---- running -------------------------------------------------------------------

    def run(self) -> None:
        assert self.server is not None and self.midi_in is not None
        frozen = freeze_heap()
        self.thread = threading.Thread(
            target=self.generator.run, args=(self.stop,), name="lkjam-generator"
        )
        self.thread.start()
        log.info(
            "ready: model %s (%s), MIDI %r -> %r (%s), socket %s, output offset %g ms; "
            "%d start-up objects kept out of garbage collection",
            self.style,
            self.model.path,
            self.args.in_port,
            self.args.out_port,
            self.midi_in.backend,
            self.server.endpoint,
            self.args.output_offset_ms,
            frozen,
        )
        while not self.stop.is_set():
            self.server.poll_once(POLL_MS)
            self._check_ports()

    def _check_ports(self) -> None:
        for port in (self.midi_in, self.midi_out):
            if port is not None and port.errors:
                log.error("MIDI %s", port.errors.popleft())
                self.generator.submit("release", "MIDI port error")
        now = time.monotonic()
        dropped = self.midi_in.dropped if self.midi_in is not None else 0
        if dropped != self._dropped_logged and now - self._dropped_at >= 1.0:
            self._dropped_logged, self._dropped_at = dropped, now
            log.warning("MIDI input overflow: %d message(s) dropped so far", dropped)

    def close(self) -> None:
        """Stop the threads (the generator releases every note), then close everything."""
        self.stop.set()
        if self.thread is not None:
            self.generator.wake.set()
            self.thread.join(timeout=5)
            self.thread = None
        for part in (self.worker, self.server, self.midi_in, self.midi_out):
            if part is not None:
                part.close()
        self.trace.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lkjam engine", description="Run the lkjam engine.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    which.add_argument("--style", help="style name, a model file in --styles-dir")
    parser.add_argument(
        "--styles-dir", type=Path, action="append", help=f"where styles live (default {STYLES_DIR})"
    )
    parser.add_argument("--endpoint", default=protocol.DEFAULT_ENDPOINT, help="ZeroMQ endpoint")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    parser.add_argument("--in", dest="in_port", default="lkjam in", help="MIDI input port name")
    parser.add_argument("--out", dest="out_port", default="lkjam out", help="MIDI output port")
    parser.add_argument("--backend", help="MIDI backend: coremidi, alsa, jack or winmm")
    parser.add_argument("--channel", type=int, default=1, choices=range(1, 17), metavar="1..16")
    parser.add_argument(
        "--scale", type=scale_argument, help="fix the scale, e.g. 'D dorian' (overrides Live's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument(
        "--output-offset-ms",
        type=output_offset,
        default=0.0,
        metavar="MS",
        help="send AI notes this much earlier, for the audio interface and instrument "
        f"latency you hear (0..{protocol.MAX_OUTPUT_OFFSET_MS:g}; Live's controls can change it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines")
    parser.add_argument(
        "--trace", type=Path, metavar="FILE", help="write what the engine does to FILE (JSON lines)"
    )
    return parser.parse_args(list(argv))


def output_offset(text: str) -> float:
    """--output-offset-ms: milliseconds in 0..MAX_OUTPUT_OFFSET_MS, as `controls` takes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not 0 <= value <= protocol.MAX_OUTPUT_OFFSET_MS:
        raise argparse.ArgumentTypeError(
            f"must be in 0..{protocol.MAX_OUTPUT_OFFSET_MS:g} ms (got {text})"
        )
    return value


def freeze_heap() -> int:
    """Keep what exists now (modules, the model, the ports) out of every later garbage
    collection; returns how many objects that is. A full collection holds the GIL while
    it scans the whole heap: measured in the engine, 16.6 ms for 28,000 objects, which
    stalled the generator and sent an AI note 14 ms late. Frozen, those objects are
    still freed when no longer referenced; only a cycle among them would stay."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # A thread woken by input (the generator, or rtmidi's callback thread) gets the GIL
    # within half a millisecond when another thread is busy, not five.
    sys.setswitchinterval(0.0005)
    try:
        engine = Engine(args)
    except (ModelFileError, PortError, BindError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        engine.stop.set()
        if engine.server is not None:
            engine.server.wake()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with engine:
        engine.run()
    log.info("bye")
    return 0
