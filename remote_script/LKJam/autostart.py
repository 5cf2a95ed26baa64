"""Start `lkjam engine` from inside Live when none answers, and stop it on the way out.

`lkjam install` writes ENGINE_FILE next to this module: a small JSON object whose
"command" is how to start the engine on this machine (an absolute `lkjam` path, or a
Python with `-m lkjam`, then `engine`). When the script cannot reach a local engine on
connect, it starts that command as a detached process with its output in a log file
beside Live's own Log.txt, and stops only a process it started itself. Nothing here
ever waits on Live's thread: `Popen` returns at once, exits are found with a
non-blocking `poll()`, and the wait for a process we terminated runs on a daemon thread.

LKJAM_AUTOSTART=0 (or no ENGINE_FILE) turns the whole thing off.
"""

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

ENGINE_FILE = "engine_command.json"
ENV_AUTOSTART = "LKJAM_AUTOSTART"
LOG_NAME = "lkjam-engine.log"
LOG_ROTATE_BYTES = 5 * 1024 * 1024  # the log is kept below this, with one old copy
STOP_GRACE = 5.0  # seconds a terminated engine gets before it is killed
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_engine_file() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), ENGINE_FILE)


def autostart_disabled() -> bool:
    value = os.environ.get(ENV_AUTOSTART, "").strip().lower()
    return value in ("0", "no", "off", "false")


def is_local(host: str) -> bool:
    return host.strip("[]").lower() in LOCAL_HOSTS


def read_engine_file(path: str) -> Dict[str, Any]:
    """{"command": [str, ...], "log": optional str}; raises ValueError or OSError."""
    with open(path, "r", encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    command = data.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise ValueError("'command' is not a list of strings")
    log = data.get("log")
    if log is not None and not isinstance(log, str):
        raise ValueError("'log' is not a string")
    return {"command": list(command), "log": log}


def with_endpoint(command: List[str], host: str, port: int, default_port: int) -> List[str]:
    """The command, told to listen where the script connects (if that is not the default)."""
    if port == default_port or any(part.startswith("--endpoint") for part in command):
        return list(command)
    address = "[%s]" % host if ":" in host else host
    return [*command, "--endpoint", "tcp://%s:%d" % (address, port)]


def live_version() -> Optional[Tuple[int, int, int]]:
    """The running Live's (major, minor, bugfix); None outside Live."""
    try:
        import Live  # only inside Live (or its fake): the protocol tests run without it

        app = Live.Application.get_application()
        return (
            int(app.get_major_version()),
            int(app.get_minor_version()),
            int(app.get_bugfix_version()),
        )
    except Exception:  # where the engine logs must never stop it from starting
        return None


def live_log_folder(version: Tuple[int, int, int]) -> Optional[str]:
    """The folder of that Live version's Log.txt (its preferences); None off macOS/Windows."""
    name = "Live %d.%d.%d" % version
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Preferences", "Ableton", name)
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
        return os.path.join(base, "Ableton", name, "Preferences")
    return None


def user_log_folder() -> str:
    """Where the log goes when Live's folder is not found (another layout, or Linux)."""
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Logs", "lkjam")
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "lkjam", "Logs")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(base, "lkjam")


def default_log_path(version: Optional[Tuple[int, int, int]] = None) -> str:
    """The engine's log: beside Live's Log.txt (of `version`, default the running Live's)
    when that folder exists, else in user_log_folder()."""
    if version is None:
        version = live_version()
    folder = live_log_folder(version) if version is not None else None
    if folder is None or not os.path.isdir(folder):
        folder = user_log_folder()
    return os.path.join(folder, LOG_NAME)


def _open_log(path: str) -> Any:
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder)
    try:
        if os.path.getsize(path) > LOG_ROTATE_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass  # no log yet
    return open(path, "ab")


# Set by an embedding or a launcher, they would point the engine's Python at Live's.
FOREIGN_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")


def child_environment(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Live's environment, minus what would make the engine's Python load Live's."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in FOREIGN_PYTHON_VARIABLES}


def _spawn_options() -> Dict[str, Any]:
    """Detached from Live: no console window on Windows, its own session elsewhere."""
    if sys.platform.startswith("win"):
        flags = 0
        if hasattr(subprocess, "CREATE_NO_WINDOW"):
            flags |= subprocess.CREATE_NO_WINDOW
        elif hasattr(subprocess, "DETACHED_PROCESS"):
            flags |= subprocess.DETACHED_PROCESS
        if hasattr(subprocess, "CREATE_NEW_PROCESS_GROUP"):
            flags |= subprocess.CREATE_NEW_PROCESS_GROUP
        return {"creationflags": flags}
    return {"start_new_session": True}


class EngineProcess(object):
    """One engine this script started: its process, its log, how it ended."""

    def __init__(self, command: List[str], log_path: str) -> None:
        self.command = command
        self.log_path = log_path
        self.started = time.time()
        log = _open_log(log_path)
        try:
            log.write(
                (
                    "\n--- %s: started by the LKJam control surface: %s\n"
                    % (time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(command))
                ).encode("utf-8")
            )
            log.flush()
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                env=child_environment(),
                **_spawn_options(),
            )
        finally:
            log.close()  # the child has its own handle

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def exit_code(self) -> Optional[int]:
        """None while it runs (a non-blocking poll)."""
        return self.process.poll()

    def stop(self) -> None:
        """Terminate without waiting here; a daemon thread reaps it (and kills if stuck)."""
        if self.process.poll() is not None:
            return
        try:
            self.process.terminate()
        except OSError:
            return  # already gone
        thread = threading.Thread(target=self._reap, name="lkjam-engine-stop")
        thread.daemon = True
        thread.start()

    def _reap(self) -> None:
        try:
            self.process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            try:
                self.process.kill()
                self.process.wait(STOP_GRACE)
            except (OSError, subprocess.TimeoutExpired):
                pass
        except OSError:
            pass
