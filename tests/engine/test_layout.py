"""The layout tells the architecture: `engine/` holds only what the engine runs, and the
runtime never imports training or the tools around it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# all that engine/ may import from lkjam
RUNTIME_IMPORTS = ("lkjam.engine", "lkjam._step", "lkjam._jack")
HEAVY = ("torch", "matplotlib", "music21", "tqdm")


def lkjam_imports(path: Path) -> list[str]:
    """The lkjam modules `path` imports, by absolute name."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.split(".")[0] == "lkjam"]


@pytest.mark.parametrize("path", sorted((ROOT / "engine").glob("*.py")), ids=lambda p: p.name)
def test_engine_modules_import_only_the_runtime(path: Path) -> None:
    outside = [
        name
        for name in lkjam_imports(path)
        if name != "lkjam" and not name.startswith(RUNTIME_IMPORTS) and name != "lkjam.__version__"
    ]
    assert not outside, f"{path.name} imports {outside}, which the engine does not run"


def test_no_engine_module_loads_heavy_packages() -> None:
    modules = [f"lkjam.engine.{p.stem}" for p in sorted((ROOT / "engine").glob("*.py"))]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"
