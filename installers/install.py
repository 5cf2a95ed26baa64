"""`lkjam install`: copy the LKJam control surface into Ableton's User Library.

    lkjam install                      # the default Remote Scripts folder (macOS, Windows)
    lkjam install --dest PATH          # any Remote Scripts folder (required on Linux)
    lkjam install --uninstall [--dest PATH]

The copy is staged next to the target, verified file by file (SHA-256) and only then
swapped in, so Live never sees a half-written script. Installing twice is harmless:
an identical copy is left alone, a stale or damaged one is replaced.

It also records how to start the engine on this machine in LKJam/engine_command.json
(the absolute path of this environment's `lkjam`, or this Python with `-m lkjam`, or the
standalone bundle's own program when it runs from one, then `engine`): the control
surface starts that command itself when no engine answers, so opening Live is enough.
`--uninstall` removes it with the script.

This file also runs on its own (`python3 install.py`, which is what the double-click
installers in this folder do) on any Python 3.7+, from a source checkout or an
installed lkjam: the script sits at ../remote_script/LKJam in both layouts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

SCRIPT_NAME = "LKJam"  # the folder name is the name Live lists under Control Surface
SOURCE = Path(__file__).resolve().parents[1] / "remote_script" / SCRIPT_NAME
MARKER = "lkjam"  # text found in our __init__.py; we never delete a folder without it
ENGINE_FILE = "engine_command.json"  # read by remote_script/LKJam/autostart.py

NEXT_STEPS = """\
Next steps:
  1. Restart Ableton Live (it reads Remote Scripts at startup).
  2. Settings (Live 11: Preferences) > Link, Tempo & MIDI > Control Surface: "{name}"
     (leave its Input and Output at "None").
  3. Nothing to start: the control surface starts the engine when none answers
     ("lkjam: starting the engine...", then "lkjam: engine ... ready").
     (Or start it yourself in a terminal first: lkjam engine.)
  4. Route the MIDI tracks as docs/ableton-setup.md describes
     (a track out to "lkjam in", the AI track in from "lkjam out", with an instrument).
"""


class InstallError(Exception):
    """Something stops the install; the text says what and where."""


def default_destination(platform: str, home: Path) -> Path | None:
    """Live's User Library Remote Scripts folder on this platform, None on Linux."""
    if platform == "darwin":
        return home / "Music" / "Ableton" / "User Library" / "Remote Scripts"
    if platform.startswith("win"):
        # Documents may live under OneDrive; prefer whichever already has a User Library.
        candidates = [home / "Documents", home / "OneDrive" / "Documents"]
        for documents in candidates:
            if (documents / "Ableton" / "User Library").is_dir():
                return documents / "Ableton" / "User Library" / "Remote Scripts"
        return candidates[0] / "Ableton" / "User Library" / "Remote Scripts"
    return None


def source_files(source: Path = SOURCE) -> dict[str, str]:
    """{relative path: sha256} of the script's files (sources only, no caches)."""
    if not (source / "__init__.py").is_file():
        raise InstallError(f"the remote script is missing: {source / '__init__.py'} not found")
    return {
        path.relative_to(source).as_posix(): _sha256(path)
        for path in sorted(source.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def verify(target: Path, expected: dict[str, str]) -> list[str]:
    """Problems with the copy at `target` (empty when every file matches)."""
    problems = []
    for name, digest in expected.items():
        path = target / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif _sha256(path) != digest:
            problems.append(f"{path}: content differs from the source")
    return problems


def engine_command() -> list[str] | None:
    """How to start the engine from this environment, with absolute paths (Live does not
    see a terminal's PATH); None when lkjam is not installed in this Python."""
    if getattr(sys, "frozen", False):
        # The standalone bundle (installers/lkjam_engine.spec): its program is `lkjam`.
        return [os.path.abspath(sys.executable), "engine"]
    python = os.path.abspath(sys.executable)  # not resolved: a venv's python stays its own
    folder = os.path.dirname(python)
    if sys.platform.startswith("win"):
        candidates = [
            os.path.join(folder, "lkjam.exe"),
            os.path.join(folder, "Scripts", "lkjam.exe"),
        ]
    else:
        candidates = [os.path.join(folder, "lkjam")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate, "engine"]
    if importlib.util.find_spec("lkjam") is not None:
        return [python, "-m", "lkjam", "engine"]
    return None


def write_engine_file(target: Path, command: list[str]) -> Path:
    """Write LKJam/engine_command.json (atomically); returns its path."""
    path = target / ENGINE_FILE
    data = {"command": command, "written_by": "lkjam install"}
    staging = path.with_name(ENGINE_FILE + ".tmp")
    staging.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
    return path


def install(dest: Path, source: Path = SOURCE) -> str:
    """Install into dest/LKJam; returns what happened, in a sentence."""
    expected = source_files(source)
    target = dest / SCRIPT_NAME
    if target.exists():
        _check_ours(target)
        if not verify(target, expected) and _extra_files(target, expected) == []:
            return f"{target} is already installed and up to date ({len(expected)} files)"
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SCRIPT_NAME}-", dir=dest))
    try:
        for name in expected:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, staging / name)
        problems = verify(staging, expected)
        if problems:
            raise InstallError("the copy did not verify:\n  " + "\n  ".join(problems))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    problems = verify(target, expected)
    if problems:
        raise InstallError("the installed copy did not verify:\n  " + "\n  ".join(problems))
    return f"installed {target} ({len(expected)} files, SHA-256 verified)"


def record_engine(dest: Path) -> str:
    """Write the engine command beside the installed script; says what it did."""
    target = dest / SCRIPT_NAME
    command = engine_command()
    if command is None:
        return (
            "lkjam is not installed in this Python, so Live cannot start the engine itself: "
            "run `lkjam install` from the environment that has lkjam, or start "
            "`lkjam engine` before Live"
        )
    path = write_engine_file(target, command)
    return f"Live starts the engine with: {' '.join(command)}  (recorded in {path})"


def uninstall(dest: Path) -> str:
    target = dest / SCRIPT_NAME
    if not target.exists():
        return f"nothing to remove: {target} does not exist"
    _check_ours(target)
    engine_file = target / ENGINE_FILE
    if engine_file.exists():
        engine_file.unlink()  # the engine command goes first, so Live never starts a stale one
    shutil.rmtree(target)
    return f"removed {target}"


def _check_ours(target: Path) -> None:
    init = target / "__init__.py"
    try:
        ours = MARKER in init.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        ours = False
    if not ours:
        raise InstallError(
            f"{target} exists but is not an lkjam remote script; move it away and retry"
        )


def _extra_files(target: Path, expected: dict[str, str]) -> list[str]:
    """Source files in the copy that the current version no longer has."""
    return [
        path.relative_to(target).as_posix()
        for path in target.rglob("*.py")
        if "__pycache__" not in path.parts and path.relative_to(target).as_posix() not in expected
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lkjam install",
        description="Install the LKJam control surface into Ableton Live's User Library.",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        help="the Remote Scripts folder (default: the User Library's, on macOS and Windows)",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the control surface")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    dest = args.dest or default_destination(sys.platform, Path.home())
    if dest is None:
        print(
            "lkjam install: Ableton Live has no Linux version, so there is no default "
            "Remote Scripts folder; pass --dest PATH",
            file=sys.stderr,
        )
        return 2
    dest = dest.expanduser()
    try:
        if args.uninstall:
            print(uninstall(dest))
            print("Restart Live; choose another Control Surface if LKJam was selected.")
        else:
            print(install(dest))
            print(record_engine(dest))
            print(NEXT_STEPS.format(name=SCRIPT_NAME))
    except (InstallError, OSError) as exc:
        print(f"lkjam install: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
