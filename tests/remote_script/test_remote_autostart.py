"""The control surface starts the engine itself when none answers (fake Live, no JACK).

The real `lkjam engine` started by the surface is in tests/e2e/test_remote_engine.py; here
the command is a small Python program, so each case runs in well under a second.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from lkjam.remote_script.fake_live.driver import VERSIONS, FakeLive
from lkjam.remote_script.LKJam import autostart

MAX_TICKS = 250  # 20 ms apart: 5 s at most


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_file(tmp_path: Path, program: str) -> Path:
    """An engine command file whose command runs `program` (and marks that it ran)."""
    marker = tmp_path / "started"
    code = f"open({str(marker)!r}, 'w').close()\n{program}"
    path = tmp_path / autostart.ENGINE_FILE
    command = [sys.executable, "-c", code]
    path.write_text(json.dumps({"command": command, "log": str(tmp_path / "engine.log")}))
    return path


def tick_until(live: FakeLive, done: Callable[[], bool]) -> None:
    for _ in range(MAX_TICKS):
        live.tick(0.1)
        if done():
            return
        time.sleep(0.02)
    raise AssertionError(f"not reached; status {live.c_instance.messages}")


def shown(live: FakeLive, text: str) -> bool:
    return any(text in m for m in live.c_instance.messages)


@pytest.fixture(autouse=True)
def autostart_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(autostart.ENV_AUTOSTART, raising=False)


@pytest.fixture
def router() -> Iterator[tuple[zmq.Socket, int]]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, port
    ctx.destroy(linger=0)


def test_an_engine_already_running_is_used(tmp_path: Path, router: tuple[zmq.Socket, int]) -> None:
    sock, port = router
    path = engine_file(tmp_path, "import time; time.sleep(30)")
    live = FakeLive()
    surface = live.load_surface(port=port, engine_file=str(path))
    for _ in range(20):
        live.tick(0.1)
        if sock.poll(20):
            break
    assert json.loads(sock.recv_multipart()[1])["type"] == "hello"
    live.run(0.5, realtime=False)
    assert surface.engine_process is None
    assert not (tmp_path / "started").exists()
    assert not shown(live, "starting the engine")
    live.disconnect()


def test_no_command_file_says_to_run_lkjam_install(tmp_path: Path) -> None:
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(tmp_path / "missing.json"))
    tick_until(live, lambda: shown(live, "run lkjam install"))
    assert surface.engine_process is None
    live.run(1.0, realtime=False)  # said once, not on every retry
    assert sum("run lkjam install" in m for m in live.c_instance.messages) == 1
    live.disconnect()


@pytest.mark.parametrize("setting", ["0", "off"])
def test_lkjam_autostart_0_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv(autostart.ENV_AUTOSTART, setting)
    path = engine_file(tmp_path, "")
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    live.run(1.0, realtime=False)
    assert surface.engine_process is None and not (tmp_path / "started").exists()
    assert not shown(live, "lkjam install")
    live.disconnect()


def test_a_remote_engine_is_never_started(tmp_path: Path) -> None:
    clock = [0.0]
    path = engine_file(tmp_path, "")
    live = FakeLive()
    surface = live.load_surface(
        host="192.0.2.1", port=free_port(), engine_file=str(path), clock=lambda: clock[0]
    )
    for _ in range(40):  # 20 s of simulated backoff and connect timeouts
        clock[0] += 0.5
        live.tick(0.5)
    assert surface.client.attempts > 1 and not surface.client.connected
    assert surface.engine_process is None and not (tmp_path / "started").exists()
    live.disconnect()


def test_an_engine_that_exits_early_is_reported_once(tmp_path: Path) -> None:
    path = engine_file(tmp_path, "import sys; print('no MIDI ports here'); sys.exit(3)")
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    tick_until(live, lambda: shown(live, "exit code 3"))
    assert shown(live, "lkjam: starting the engine...")
    log_path = str(tmp_path / "engine.log")
    exits = [line for line in live.c_instance.log if "exited with code" in line]
    assert exits == [
        f"lkjam: the engine this script started exited with code 3; its log: {log_path}"
    ]
    assert "no MIDI ports here" in Path(log_path).read_text()
    live.run(2.0, realtime=False)  # it is not started again and again
    assert sum("starting the engine" in m for m in live.c_instance.messages) == 1
    assert surface.engine_process is None
    live.disconnect()


def test_disconnect_stops_the_engine_it_started(tmp_path: Path) -> None:
    """A stand-in engine that never answers and takes 2 s to stop: disconnect terminates
    it without waiting for that (Live's thread must not)."""
    stops_slowly = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(2), sys.exit(0)))\n"
        "time.sleep(60)"
    )
    path = engine_file(tmp_path, stops_slowly)
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    tick_until(live, lambda: (tmp_path / "started").exists())
    engine = surface.engine_process
    assert engine is not None and engine.exit_code() is None
    started = time.perf_counter()
    live.disconnect()
    # Waiting would take the stand-in's 2 s; 1 s leaves a loaded machine half of that.
    assert time.perf_counter() - started < 1.0
    deadline = time.monotonic() + 5
    while engine.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.exit_code() is not None
    assert any("stopping the engine this script started" in line for line in live.c_instance.log)


def test_a_bad_command_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / autostart.ENGINE_FILE
    path.write_text('{"command": "lkjam engine"}')
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    tick_until(live, lambda: shown(live, "cannot read the engine command"))
    assert surface.engine_process is None
    live.disconnect()


def test_a_missing_executable_says_so(tmp_path: Path) -> None:
    path = tmp_path / autostart.ENGINE_FILE
    command = [str(tmp_path / "no-lkjam"), "engine"]
    path.write_text(json.dumps({"command": command, "log": str(tmp_path / "engine.log")}))
    live = FakeLive()
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    tick_until(live, lambda: shown(live, "could not start the engine"))
    assert surface.engine_process is None
    live.disconnect()


def test_the_endpoint_is_passed_on_unless_default() -> None:
    command = ["lkjam", "engine"]
    assert autostart.with_endpoint(command, "127.0.0.1", 5678, 5678) == command
    assert autostart.with_endpoint(command, "127.0.0.1", 6000, 5678) == [
        *command,
        "--endpoint",
        "tcp://127.0.0.1:6000",
    ]
    assert autostart.with_endpoint(command, "::1", 6000, 5678)[-1] == "tcp://[::1]:6000"
    mine = [*command, "--endpoint", "tcp://127.0.0.1:7000"]
    assert autostart.with_endpoint(mine, "127.0.0.1", 6000, 5678) == mine
    assert autostart.is_local("localhost") and autostart.is_local("[::1]")
    assert not autostart.is_local("192.0.2.1")


def test_the_engine_does_not_inherit_lives_python_settings() -> None:
    live_env = {"PATH": "/usr/bin", "PYTHONHOME": "/Applications/Live.app/Python"}
    live_env |= {"PYTHONPATH": "x", "__PYVENV_LAUNCHER__": "y", "JACK_DEFAULT_SERVER": "j"}
    assert autostart.child_environment(live_env) == {
        "PATH": "/usr/bin",
        "JACK_DEFAULT_SERVER": "j",
    }


def live_folders(home: Path, appdata: Path, version: tuple[int, int, int]) -> dict[str, Path]:
    """Where Live keeps Log.txt for `version` on each system (made with a Log.txt in it)."""
    name = "Live {}.{}.{}".format(*version)
    folders = {
        "darwin": home / "Library" / "Preferences" / "Ableton" / name,
        "win32": appdata / "Ableton" / name / "Preferences",
    }
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "Log.txt").write_text("Live's own log\n")
    return folders


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary user: HOME and APPDATA (Windows' Roaming folder) under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))  # what Windows reads for ~
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData" / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "AppData" / "Local"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


@pytest.mark.parametrize("version", VERSIONS.values(), ids=VERSIONS.keys())
def test_the_engine_logs_beside_lives_log_txt(
    home: Path, monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int]
) -> None:
    """On a Mac (HOME's Library), the engine the script starts writes beside Log.txt."""
    folder = live_folders(home / "home", home / "AppData" / "Roaming", version)["darwin"]
    monkeypatch.setattr(sys, "platform", "darwin")
    path = home / autostart.ENGINE_FILE
    program = "import sys; print('engine output'); sys.exit(3)"
    path.write_text(json.dumps({"command": [sys.executable, "-c", program]}))  # no "log"
    live = FakeLive(version=version)
    surface = live.load_surface(port=free_port(), engine_file=str(path))
    tick_until(live, lambda: shown(live, "exit code 3"))
    log_path = folder / autostart.LOG_NAME
    assert shown(live, f"see {log_path}")
    assert "engine output" in log_path.read_text()
    assert (folder / "Log.txt").read_text() == "Live's own log\n"  # Live's is left alone
    assert surface.engine_process is None
    live.disconnect()


@pytest.mark.parametrize("version", VERSIONS.values(), ids=VERSIONS.keys())
def test_the_log_folder_follows_lives_version_on_each_system(
    home: Path, monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int]
) -> None:
    folders = live_folders(home / "home", home / "AppData" / "Roaming", version)
    FakeLive(version=version)  # the running Live whose version is read
    for platform, folder in folders.items():
        monkeypatch.setattr(sys, "platform", platform)
        assert autostart.default_log_path() == str(folder / autostart.LOG_NAME)
    other = (version[0], version[1], version[2] + 1)  # a Live whose folder is not there
    monkeypatch.setattr(sys, "platform", "darwin")
    expected = home / "home" / "Library" / "Logs" / "lkjam" / autostart.LOG_NAME
    assert autostart.default_log_path(other) == str(expected)
    monkeypatch.setattr(sys, "platform", "win32")
    expected = home / "AppData" / "Local" / "lkjam" / "Logs" / autostart.LOG_NAME
    assert autostart.default_log_path(other) == str(expected)


def test_without_lives_folder_the_log_goes_to_a_user_folder(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux (tests, a Live-less machine) has no Live folder: the user's state folder."""
    FakeLive()
    monkeypatch.setattr(sys, "platform", "linux")
    assert autostart.default_log_path() == str(home / "state" / "lkjam" / autostart.LOG_NAME)
