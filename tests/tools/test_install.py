"""`lkjam install`: copy, verify, idempotence, uninstall, and a copy that really runs."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lkjam.installers import install
from lkjam.remote_script.fake_live.driver import FakeLive
from lkjam.remote_script.LKJam import autostart

from lkjam.cli import main as lkjam_main


def test_install_twice_verify_then_uninstall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "Remote Scripts"
    assert lkjam_main(["install", "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 verified" in out and "Control Surface" in out
    target = dest / "LKJam"
    expected = install.source_files()
    assert {"__init__.py", "surface.py", "zmtp.py"} <= set(expected)
    assert install.verify(target, expected) == []
    assert sorted(p.name for p in target.iterdir()) == sorted([*expected, install.ENGINE_FILE])

    assert install.main(["--dest", str(dest)]) == 0
    assert "already installed and up to date" in capsys.readouterr().out

    assert install.main(["--dest", str(dest), "--uninstall"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not target.exists() and dest.is_dir()
    assert install.main(["--dest", str(dest), "--uninstall"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_install_records_the_engine_command_and_uninstall_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install.main(["--dest", str(tmp_path)]) == 0
    path = tmp_path / "LKJam" / install.ENGINE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    command = data["command"]
    assert command[-1] == "engine" and "Live starts the engine with" in capsys.readouterr().out
    assert os.path.isabs(command[0]) and os.access(command[0], os.X_OK)  # Live has no PATH
    # The very command the control surface will run exists and is lkjam's engine.
    probe = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, env=_no_venv_env()
    )
    assert probe.returncode == 0 and "--endpoint" in probe.stdout, probe.stderr
    # The script reads it with its own (stdlib) reader.
    assert autostart.read_engine_file(str(path))["command"] == command

    path.write_text('{"command": ["stale"]}')  # an older environment's: reinstall replaces it
    assert install.main(["--dest", str(tmp_path)]) == 0
    assert json.loads(path.read_text(encoding="utf-8"))["command"] == command

    assert install.main(["--dest", str(tmp_path), "--uninstall"]) == 0
    assert not path.exists() and not path.parent.exists()


def test_without_lkjam_no_command_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))
    monkeypatch.setattr(install.importlib.util, "find_spec", lambda name: None)
    assert install.engine_command() is None
    assert "start `lkjam engine` before Live" in install.record_engine(tmp_path)
    (tmp_path / "bin").mkdir()
    lkjam = tmp_path / "bin" / ("lkjam.exe" if sys.platform.startswith("win") else "lkjam")
    lkjam.write_text("#!/bin/sh\n")
    lkjam.chmod(0o755)
    assert install.engine_command() == [str(lkjam), "engine"]


def test_from_the_standalone_bundle_its_own_program_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyInstaller sets sys.frozen, and sys.executable is the bundle's program, not a Python.
    program = tmp_path / "lkjam" / ("lkjam.exe" if sys.platform.startswith("win") else "lkjam")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(program))
    assert install.engine_command() == [str(program), "engine"]
    (tmp_path / install.SCRIPT_NAME).mkdir()
    assert f"Live starts the engine with: {program} engine" in install.record_engine(tmp_path)


def _no_venv_env() -> dict[str, str]:
    """Live's environment: no activated venv, a minimal PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    return env


def test_a_damaged_or_stale_copy_is_replaced(tmp_path: Path) -> None:
    assert install.main(["--dest", str(tmp_path)]) == 0
    target = tmp_path / "LKJam"
    (target / "zmtp.py").write_text("broken")
    (target / "old_module.py").write_text("# from an older version")
    (target / "__pycache__").mkdir()
    problems = install.verify(target, install.source_files())
    assert problems == [f"{target / 'zmtp.py'}: content differs from the source"]

    assert install.main(["--dest", str(tmp_path)]) == 0
    assert install.verify(target, install.source_files()) == []
    assert not (target / "old_module.py").exists()
    assert not any(p.name.startswith(".LKJam") for p in tmp_path.iterdir())  # no staging left


def test_a_foreign_folder_is_never_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "LKJam"
    target.mkdir()
    (target / "__init__.py").write_text("# somebody else's script\n")
    assert install.main(["--dest", str(tmp_path)]) == 1
    assert install.main(["--dest", str(tmp_path), "--uninstall"]) == 1
    assert "not an lkjam remote script" in capsys.readouterr().err
    assert (target / "__init__.py").read_text() == "# somebody else's script\n"


def test_linux_needs_dest(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(sys, "platform", "linux")
    assert install.main([]) == 2
    assert "--dest" in capsys.readouterr().err


def test_default_destinations(tmp_path: Path) -> None:
    mac = install.default_destination("darwin", tmp_path)
    assert mac == tmp_path / "Music/Ableton/User Library/Remote Scripts"
    win = install.default_destination("win32", tmp_path)
    assert win == tmp_path / "Documents/Ableton/User Library/Remote Scripts"
    (tmp_path / "OneDrive/Documents/Ableton/User Library").mkdir(parents=True)
    onedrive = install.default_destination("win32", tmp_path)
    assert onedrive == tmp_path / "OneDrive/Documents/Ableton/User Library/Remote Scripts"
    assert install.default_destination("linux", tmp_path) is None


def test_the_installed_copy_runs_in_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Live imports the folder as a top-level package: the copy must be self-contained."""
    assert install.main(["--dest", str(tmp_path)]) == 0
    live = FakeLive()
    live.add_midi_track("AI [ai]")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LKJAM_ENGINE", "127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("LKJAM_AUTOSTART", "0")  # the recorded engine is not started here
    try:
        package = importlib.import_module("LKJam")
        assert Path(str(package.__file__)).parent == tmp_path / "LKJam"
        surface = package.create_instance(live.c_instance)
        for _ in range(3):
            surface.update_display()
        assert surface.listener_count > 0
        assert surface.engine_process is None
        surface.disconnect()
        assert surface.listener_count == 0
        assert not any("tick failed" in line for line in live.c_instance.log)
    finally:
        for name in [m for m in sys.modules if m == "LKJam" or m.startswith("LKJam.")]:
            del sys.modules[name]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_macos_double_click_installer_runs_install_py(tmp_path: Path) -> None:
    """The .command runs installers/install.py on its own (no lkjam package needed)."""
    command = Path(install.__file__).with_name("install-macos.command")
    assert os.access(command, os.X_OK)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if "venv" not in p
    )
    result = subprocess.run(
        ["bash", str(command), "--dest", str(tmp_path)],
        input="\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SHA-256 verified" in result.stdout
    assert install.verify(tmp_path / "LKJam", install.source_files()) == []


def test_the_windows_installer_calls_install_py() -> None:
    bat = Path(install.__file__).with_name("install-windows.bat").read_bytes()
    assert b"\r\n" in bat and b"install.py %*" in bat and b"pause" in bat
