"""The remote script in the fake Live against the real `lkjam engine` (JACK ports)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lkjam.remote_script.fake_live.driver import FakeLive

from lkjam.jackd import JackServer
from lkjam.random_model import random_model

pytestmark = pytest.mark.jack
MAX_TICKS = 1000  # 20 ms apart: the engine gets up to ~20 s to answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine_port(jack_server: JackServer, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    model = random_model(tmp_path / "random.safetensors")
    log = (tmp_path / "engine.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lkjam",
            "engine",
            "--model",
            str(model),
            "--endpoint",
            f"tcp://127.0.0.1:{port}",
            "--backend",
            "jack",
            "--in",
            f"rs-in-{port}",
            "--out",
            f"rs-out-{port}",
            "--styles-dir",
            str(tmp_path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        assert process.returncode == 0, (tmp_path / "engine.log").read_text()


def tick_until(live: FakeLive, done: Callable[[], bool]) -> None:
    for _ in range(MAX_TICKS):
        live.tick()  # real time: the engine reads the transport against its clock
        if done():
            return
        time.sleep(0.02)
    raise AssertionError(f"not reached; status bar: {live.c_instance.messages[-5:]}")


def test_script_and_engine_talk(engine_port: int) -> None:
    live = FakeLive(tempo=110.0)
    keys = live.add_midi_track("Keys [human]")
    band = live.add_midi_track("Band", input_routing="lkjam out")
    rack = live.add_rack(band, macros=[64, 60, 64, 0, 20, 0, 120])
    clip = live.add_clip(
        keys, 0, 4.0, [(60, 0.0, 1.0, 100), (64, 1.0, 1.0, 90), (67, 2.0, 2.0, 95)], "riff"
    )
    live.set_scale(0, [0, 2, 4, 5, 7, 9, 11], "Major")
    live.load_surface(port=engine_port)
    tick_until(live, lambda: any("ready, model" in m for m in live.c_instance.messages))

    live.play()
    live.fire(keys, 0)
    live.select_clip(clip)
    live.set_macro(rack, 8, 127)  # auto-accompany the selected clip
    slot = band.clip_slots[0]
    tick_until(live, lambda: slot.has_clip)
    notes = slot.clip.get_all_notes_extended()
    assert all(0 <= n.pitch <= 127 and n.duration > 0 for n in notes)
    assert slot.clip.name == "riff (lkjam)"

    live.song.tempo = 140.0
    live.run(1.0)
    # Every message the script sent passed the engine's validation: no `error` came back.
    errors = [m for m in live.c_instance.messages if m.startswith("lkjam engine:")]
    assert errors == []
    live.disconnect()


def test_the_script_starts_the_engine_and_stops_it_on_disconnect(
    jack_server: JackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No engine runs: the command `lkjam install` records is started by the script,
    started again after it is killed, and stopped when the script is unloaded."""
    monkeypatch.delenv("LKJAM_AUTOSTART", raising=False)
    port = free_port()
    model = random_model(tmp_path / "random.safetensors", "tiny")
    command = [sys.executable, "-m", "lkjam", "engine", "--model", str(model)]
    command += ["--backend", "jack", "--in", f"as-in-{port}", "--out", f"as-out-{port}"]
    command += ["--styles-dir", str(tmp_path)]  # no --endpoint: the script adds its own
    engine_file = tmp_path / "engine_command.json"
    log_path = tmp_path / "engine.log"
    engine_file.write_text(json.dumps({"command": command, "log": str(log_path)}))

    live = FakeLive()
    live.add_midi_track("Band", input_routing="lkjam out")
    surface = live.load_surface(port=port, engine_file=str(engine_file))
    tick_until(live, lambda: any("ready, model" in m for m in live.c_instance.messages))
    shown = live.c_instance.messages
    assert shown.index("lkjam: starting the engine...") < shown.index(
        "lkjam: connected to the engine"
    )
    engine = surface.engine_process
    assert engine is not None and engine.exit_code() is None
    assert f"tcp://127.0.0.1:{port}" in engine.command
    assert surface.client.connects == 1

    # It crashes after it has played: the script says so, starts it again, reconnects.
    os.kill(engine.pid, signal.SIGKILL)
    tick_until(live, lambda: sum("ready, model" in m for m in live.c_instance.messages) == 2)
    assert any("the engine stopped (exit code -9)" in m for m in live.c_instance.messages)
    assert shown.count("lkjam: starting the engine...") == 2
    first, engine = engine, surface.engine_process
    assert engine is not None and engine.pid != first.pid and first.exit_code() == -9
    assert surface.client.connects == 2

    live.disconnect()
    deadline = time.monotonic() + 10
    while engine.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.exit_code() == 0, log_path.read_text()  # SIGTERM: a clean stop
    with pytest.raises(ProcessLookupError):
        os.kill(engine.pid, 0)  # gone, and reaped
    log = log_path.read_text()
    assert "started by the LKJam control surface" in log and "stopping" in log
