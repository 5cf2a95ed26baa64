"""Smoke test of the standalone bundle (dist/lkjam/lkjam): its commands, what `lkjam install`
records for Live's autostart, and an engine that starts, opens its MIDI ports and answers
a DEALER's hello. Prints the engine's start time over several runs.

    python scripts/smoke_bundle.py BUNDLE_EXE [--runs N] [--reference LKJAM_EXE]

`--reference` times another `lkjam` the same way (the wheel's, to compare). The engine
runs with an environment that names no Python at all. On Linux it uses a private JACK
server (jackd must be installed), on macOS CoreMIDI; Windows has no virtual MIDI ports,
so there the engine start is skipped. One start goes through the control surface's own
autostart, as Live would make it. Run by scripts/bundle_smoke.sh and the workflow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mido
import rtmidi
import zmq

BUNDLED = {"engine", "install", "ports", "accompany"}
START_TIMEOUT_S = 60.0


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def check_commands(exe: Path) -> None:
    for usage in (run(exe, "--help"), run(exe)):  # no arguments, no terminal: the usage too
        listed = {line.split()[0] for line in usage.stdout.splitlines() if line.startswith("  ")}
        assert usage.returncode == 0 and listed == BUNDLED, usage.stdout + usage.stderr
    engine_help = run(exe, "engine", "--help")
    assert engine_help.returncode == 0 and "--endpoint" in engine_help.stdout, engine_help.stderr
    print(f"ok: {exe.name} --help lists {sorted(listed)}; engine --help")


def check_install(exe: Path, tmp: Path) -> Path:
    """Installed from the bundle, the control surface starts the bundle's own engine."""
    dest = tmp / "Remote Scripts"
    result = run(exe, "install", "--dest", str(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    command = json.loads((dest / "LKJam" / "engine_command.json").read_text("utf-8"))["command"]
    assert Path(command[0]).resolve() == exe and command[1:] == ["engine"], command
    scripts = sorted(p.name for p in (dest / "LKJam").glob("*.py"))
    assert "__init__.py" in scripts and "autostart.py" in scripts, scripts
    print(f"ok: install copies the control surface ({len(scripts)} files), records {command}")
    return dest / "LKJam"


def check_double_click(exe: Path, tmp: Path) -> None:
    """Started in a terminal window with no arguments (a double-click), the bundle installs
    the control surface into the default folder after a Return, then waits for another."""
    import pty  # POSIX only; on Windows the same code path is left to the musician

    home = tmp / "home"
    leader, follower = pty.openpty()
    env = {**os.environ, "HOME": str(home)}
    process = subprocess.Popen(
        [str(exe)], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    os.write(leader, b"\n\n")  # both Returns, typed ahead
    text = _read_terminal(leader, process, START_TIMEOUT_S)
    assert process.returncode == (0 if sys.platform == "darwin" else 2), text
    assert "Press Return to close this window" in text, text
    if sys.platform == "darwin":
        script = home / "Music" / "Ableton" / "User Library" / "Remote Scripts" / "LKJam"
        assert (script / "engine_command.json").is_file(), text
    else:  # Live has no Linux version, so no default folder: install says to pass --dest
        assert "pass --dest" in text, text
    print("ok: double-clicked, the bundle offers lkjam install and waits for Return")


def _read_terminal(leader: int, process: subprocess.Popen[bytes], timeout: float) -> str:
    """All the process writes to its terminal until it exits (killed after `timeout`)."""
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.5)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # Linux reports a terminal closed by its last user as EIO
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    if process.poll() is None:
        process.kill()
    process.wait()
    return output.decode(errors="replace")


def check_accompany(exe: Path, tmp: Path) -> None:
    chorale = next(exe.parent.rglob("chorale.mid"))  # shipped inside the bundle
    out = tmp / "chorale-ai.mid"
    result = run(exe, "accompany", str(chorale), "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    ai = [t for t in mido.MidiFile(out).tracks if t.name == "ai"]
    notes = sum(1 for m in (ai[0] if ai else []) if m.type == "note_on" and m.velocity > 0)
    assert notes > 0, f"no AI notes in {out}"
    print(f"ok: accompany on the bundled chorale ({notes} AI notes)")


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def engine_environment() -> dict[str, str]:
    """What Live would pass, minus any trace of a Python: the bundle must need none."""
    keep = ("HOME", "USERPROFILE", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP", "JACK_DEFAULT_SERVER")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = os.devnull  # no python (nor anything else) to be found on PATH
    return env


def dealer_with_hello(endpoint: str) -> zmq.Socket[bytes]:
    """A DEALER, as the control surface, connected before the engine binds: its hello waits
    in the queue, and the welcome comes as soon as the engine serves."""
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RECONNECT_IVL, 5)  # retry the connect often: it is what we time
    dealer.connect(endpoint)
    hello = {"v": 1, "type": "hello", "live_version": "12", "python": "-", "script_version": "-"}
    dealer.send(json.dumps(hello).encode())
    return dealer


def check_autostart(script: Path, backend: str, tmp: Path) -> None:
    """Live's own way: the installed control surface's autostart module reads the recorded
    command and starts it, and the bundle's engine answers."""
    spec = importlib.util.spec_from_file_location("autostart", script / "autostart.py")
    assert spec is not None and spec.loader is not None
    autostart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(autostart)
    command = autostart.read_engine_file(str(script / autostart.ENGINE_FILE))["command"]
    endpoint = free_endpoint()
    port = int(endpoint.rsplit(":", 1)[1])
    command = autostart.with_endpoint(command, "127.0.0.1", port, 0)  # 0: always say where
    command += ["--backend", backend, "--in", "lkjam in auto", "--out", "lkjam out auto"]
    log = tmp / "autostart.log"
    dealer = dealer_with_hello(endpoint)
    engine = autostart.EngineProcess(command, str(log))
    try:
        _wait_welcome(dealer, time.perf_counter(), engine.process, log)
    finally:
        dealer.close(linger=0)
        engine.stop()
        engine.process.wait(timeout=15)
    print(f"ok: the control surface's autostart started {command[0]}, which said welcome")


def start_engine(exe: Path, backend: str, log: Path) -> float:
    """Start `exe engine`, wait for its welcome and its MIDI ports, stop it; returns the
    seconds from spawn to welcome."""
    endpoint = free_endpoint()
    in_port, out_port = f"lkjam in {os.getpid()}", f"lkjam out {os.getpid()}"
    command = [str(exe), "engine", "--backend", backend, "--endpoint", endpoint]
    command += ["--in", in_port, "--out", out_port]
    dealer = dealer_with_hello(endpoint)
    with open(log, "w") as log_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=log_file, stderr=log_file, env=engine_environment()
        )
        try:
            elapsed = _wait_welcome(dealer, started, process, log)
            _wait_ports(backend, {in_port, out_port}, log)
        finally:
            dealer.close(linger=0)
            process.terminate()
            code = process.wait(timeout=15)
    assert code == 0, f"the engine exited with {code}:\n{log.read_text()}"
    return elapsed


def _wait_welcome(
    dealer: zmq.Socket[bytes], started: float, process: subprocess.Popen[bytes], log: Path
) -> float:
    deadline = started + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the engine exited with {process.returncode}:\n{log.read_text()}")
        if dealer.poll(20):
            message = json.loads(dealer.recv())
            if message["type"] == "welcome":
                return time.perf_counter() - started
    raise AssertionError(f"no welcome within {START_TIMEOUT_S:.0f} s:\n{log.read_text()}")


def _wait_ports(backend: str, wanted: set[str], log: Path) -> None:
    api = {"jack": rtmidi.API_UNIX_JACK, "coremidi": rtmidi.API_MACOSX_CORE}[backend]
    probe_in, probe_out = rtmidi.MidiIn(api), rtmidi.MidiOut(api)
    try:
        names = set(probe_in.get_ports()) | set(probe_out.get_ports())
    finally:
        probe_in.delete()
        probe_out.delete()
    found = {w for w in wanted if any(w in n for n in names)}  # JACK adds "lkjam:"
    assert found == wanted, f"ports {sorted(wanted - found)} missing in {sorted(names)}\n" + (
        log.read_text()
    )


@contextlib.contextmanager
def midi_backend() -> Iterator[str | None]:
    """The backend the engine can open virtual ports on here, with its server if any."""
    if sys.platform == "darwin":
        yield "coremidi"
    elif sys.platform.startswith("linux"):
        from lkjam.jackd import JackServer

        with JackServer(f"lkjam-bundle-{os.getpid()}"):
            yield "jack"
    else:
        yield None


def time_starts(exe: Path, backend: str, runs: int, tmp: Path) -> list[float]:
    times = [start_engine(exe, backend, tmp / f"engine-{i}.log") for i in range(runs)]
    ms = sorted(t * 1000 for t in times)
    print(
        f"ok: {exe} engine: welcome and {backend} ports in {runs} runs; start to welcome "
        f"median {statistics.median(ms):.0f} ms, worst {ms[-1]:.0f} ms "
        f"(all: {', '.join(f'{t:.0f}' for t in ms)})"
    )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the bundle's lkjam executable")
    parser.add_argument("--runs", type=int, default=5, help="engine starts to time")
    parser.add_argument("--reference", type=Path, help="another lkjam to time the same way")
    args = parser.parse_args()
    exe = args.bundle.resolve()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        check_commands(exe)
        script = check_install(exe, tmp)
        if os.name == "posix":
            check_double_click(exe, tmp)
        check_accompany(exe, tmp)
        with midi_backend() as backend:
            if backend is None:
                print("skipped: engine start (no virtual MIDI ports on this OS)")
            else:
                check_autostart(script, backend, tmp)
                time_starts(exe, backend, args.runs, tmp)
                if args.reference is not None:
                    time_starts(args.reference, backend, args.runs, tmp)
    print("bundle smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
