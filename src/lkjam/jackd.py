"""Start and stop a private JACK server with the dummy driver (no sound card needed).

Used by the test fixtures and by `lkjam demo` on Linux machines without ALSA sequencer
access. The server is named, so it never disturbs a musician's own JACK server, and it
is stopped by its pid.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO


class JackUnavailable(RuntimeError):
    """jackd is not installed or the server did not come up."""


def realtime_allowed() -> bool:
    """Whether this process may ask for real-time scheduling (root, or an rtprio limit)."""
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


class JackServer:
    """A `jackd -n NAME -d dummy` process. Use as a context manager.

    While it runs, `JACK_DEFAULT_SERVER` is set to its name in this process's environment
    so that python-rtmidi's JACK API (and child processes) connect to it.
    """

    def __init__(
        self, name: str, period: int = 64, rate: int = 48000, *, realtime: bool = False
    ) -> None:
        self.name = name
        self.period = period
        self.rate = rate
        # Real-time priority (jackd's default, and the clients' process threads get it too)
        # where the system grants it, else none.
        self.realtime = realtime and realtime_allowed()
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] = io.BytesIO()
        self._previous_default: str | None = None

    def start(self, timeout_s: float = 10.0) -> JackServer:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackUnavailable(
                "jackd is not installed. On Debian/Ubuntu: sudo apt-get install jackd2"
            )
        command = [
            jackd,
            "-n",
            self.name,
            "-R" if self.realtime else "--no-realtime",
            "-d",
            "dummy",
        ]
        command += ["-r", str(self.rate), "-p", str(self.period)]
        # stderr goes to a file, not a pipe: under CPU load jackd prints xrun lines, and a
        # pipe nobody drains fills up and blocks jackd (and every JACK client with it).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True
        )
        self._previous_default = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        self._wait_until_up(timeout_s)
        return self

    def _wait_until_up(self, timeout_s: float) -> None:
        assert self.process is not None
        jack_wait = shutil.which("jack_wait")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace")
                self.stop()
                raise JackUnavailable(f"jackd -n {self.name} exited at start: {err.strip()}")
            if jack_wait is None:
                time.sleep(1.0)  # no way to ask; jackd's dummy driver is up well within this
                return
            probe = subprocess.run(
                [jack_wait, "-s", self.name, "-c"], capture_output=True, text=True, check=False
            )
            if "running" in probe.stdout and "not" not in probe.stdout:
                return
            time.sleep(0.05)
        self.stop()
        raise JackUnavailable(f"jackd -n {self.name} did not start within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Stop the server by its pid; safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process is not None:
            self._stderr.close()
        if os.environ.get("JACK_DEFAULT_SERVER") == self.name:
            if self._previous_default is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._previous_default

    def __enter__(self) -> JackServer:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
