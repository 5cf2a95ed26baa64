"""Smoke test of an installed lkjam: what a musician's first commands need, in the
environment the wheel was installed into (no compiler, no training extras).

    python scripts/smoke_installed.py

Run by scripts/wheel_smoke.sh here, and by cibuildwheel's test-command on every platform
(pyproject.toml), so it uses the standard library and lkjam's own dependencies only.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

import mido


def lkjam_script() -> Path:
    """The `lkjam` launcher pip wrote beside this Python (PATH may not include it)."""
    name = "lkjam.exe" if sys.platform.startswith("win") else "lkjam"
    return Path(sysconfig.get_path("scripts")) / name


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lkjam_script()), *args], capture_output=True, text=True, timeout=300, check=False
    )


def check_step() -> None:
    from lkjam import _step

    print(f"ok: import lkjam._step ({Path(_step.__file__).name})")


def check_engine_help() -> None:
    result = run("engine", "--help")
    assert result.returncode == 0 and "--endpoint" in result.stdout, result.stderr
    print("ok: lkjam engine --help")


def check_accompany(tmp: Path) -> None:
    import lkjam

    chorale = Path(lkjam.__file__).parent / "data" / "chorale.mid"
    out = tmp / "chorale-ai.mid"
    result = run("accompany", str(chorale), "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    tracks = {track.name: track for track in mido.MidiFile(out).tracks}
    ai_notes = sum(1 for m in tracks.get("ai", []) if m.type == "note_on" and m.velocity > 0)
    assert ai_notes > 0, f"no AI notes in {out}: tracks {sorted(tracks)}"
    print(f"ok: lkjam accompany on the shipped chorale ({ai_notes} AI notes)")


def check_install(tmp: Path) -> None:
    """`lkjam install` records this environment's `lkjam` for Live's autostart."""
    dest = tmp / "Remote Scripts"
    result = run("install", "--dest", str(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((dest / "LKJam" / "engine_command.json").read_text(encoding="utf-8"))
    assert data["command"] == [str(lkjam_script()), "engine"], data
    print(f"ok: lkjam install records {data['command']}")


def check_no_torch() -> None:
    # torch is named only under the train extra, and nothing else pulled it in either.
    torch = [r for r in metadata.requires("lkjam") or [] if r.lower().startswith("torch")]
    assert torch and all('extra == "train"' in r for r in torch), torch
    assert importlib.util.find_spec("torch") is None, "torch is installed: the runtime pulled it"
    result = run("train", "--help")
    assert result.returncode != 0 and "lkjam[train]" in result.stderr, result.stderr
    print("ok: no torch; lkjam train asks for the training extras")


def main() -> int:
    check_step()
    check_engine_help()
    with tempfile.TemporaryDirectory() as name:
        check_accompany(Path(name))
        check_install(Path(name))
    check_no_torch()
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
