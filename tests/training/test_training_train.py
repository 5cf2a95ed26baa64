"""`lkjam train`: the tiny preset end to end, resuming, custom styles, config checking."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lkjam.engine.model_file import load_model, read_tensors
from lkjam.training import cli
from lkjam.training.config import load_config
from lkjam.training.corpus_sources import load_corpus
from lkjam.training.curriculum import CURRICULUM
from lkjam.training.train import Plan, Stage, train
from safetensors.numpy import load_file
from songs import write_song


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset's corpus, parsed once for the module."""
    path = tmp_path_factory.mktemp("lkjam-cache")
    cfg = load_config("tiny")
    load_corpus(
        {"chorales": cfg.chorales, "folk": cfg.folk, "chamber": cfg.chamber},
        cfg.split_seed,
        cfg.held_out,
        cache=path,
        progress=False,
    )
    return path


def run(cache: Path, workdir: Path, *args: str) -> int:
    common = ["--cache", str(cache), "--workdir", str(workdir), "--no-progress"]
    return cli.train_main([*common, "--set", "threads=1", *args])


@pytest.fixture(scope="module")
def tiny_model(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tiny")
    out = tmp / "tiny.safetensors"
    assert run(cache, tmp / "work", "--preset", "tiny", "--out", str(out)) == 0
    return out


def test_tiny_preset_trains_three_stages_into_a_loadable_model(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = load_model(tiny_model)  # the C++ step accepts the weights
    meta = model.meta
    assert (meta.style, meta.topology) == ("default", "tiny")
    prov = meta.provenance
    assert [s["name"] for s in prov["stages"]] == ["harmonize", "interplay", "call_response"]
    assert [s["steps"] for s in prov["stages"]] == [4, 4, 4] and prov["steps"] == 12
    assert prov["split"] == {"seed": 1, "held_out": 0.25, "by": "piece"}
    assert prov["data"]["chorales"]["held_out_pieces"] >= 1
    assert prov["data"]["chorales"]["train_events"] > 0
    for stage in prov["stages"]:
        assert 2 <= stage["best_step"] <= 4 and stage["valid_nll"] > 0  # validated every 2
        nll = stage["held_out_nll"]
        assert set(nll) == {"harmonize", "interplay", "call_response"}
        assert all(np.isfinite(v) and v > 0 for v in nll.values())
    assert prov["held_out_nll"] == prov["stages"][-1]["held_out_nll"]
    stage_files = sorted(p.name for p in (tiny_model.parent / "work").glob("stage*.safetensors"))
    assert stage_files == [
        "stage1-harmonize.safetensors",
        "stage2-interplay.safetensors",
        "stage3-call_response.safetensors",
    ]


def test_interrupted_run_resumes_to_the_same_weights(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--preset", "tiny", "--set", "steps=[3, 3, 3]", "--set", "checkpoint_every=100")
    straight = tmp_path / "straight.safetensors"
    assert run(cache, tmp_path / "a", *args, "--out", str(straight)) == 0

    resumed = tmp_path / "resumed.safetensors"
    assert run(cache, tmp_path / "b", *args, "--out", str(resumed), "--stop-after", "4") == 0
    assert not resumed.exists()
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert (state["stage"], state["step"]) == (1, 1)  # stage 2, one step in
    capsys.readouterr()
    assert run(cache, tmp_path / "b", *args, "--out", str(resumed)) == 0
    assert f"resuming {tmp_path / 'b'}: stage 2, step 1" in capsys.readouterr().err

    a, b = read_tensors(straight)[0], read_tensors(resumed)[0]
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)
    # The checkpoint itself is safetensors: weights and AdamW moments, no pickle.
    saved = load_file(str(tmp_path / "b" / "checkpoint.safetensors"))
    assert any(k.startswith("adam.") for k in saved) and any(k.startswith("model.") for k in saved)


def test_style_fine_tunes_from_a_base_model(
    tiny_model: Path,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "my songs"
    folder.mkdir()
    for i in range(4):
        write_song(folder / f"s{i}.mid", melody_base=68 + i)
    (folder / "corrupt.mid").write_bytes(b"MThd nonsense")
    styles = tmp_path / "styles"
    monkeypatch.setattr(cli, "STYLES_DIR", styles)
    args = ("--preset", "tiny", "--style", "mine", str(folder), "--base", str(tiny_model))
    code = run(cache, tmp_path / "w", *args)
    assert code == 0
    model = load_model(styles / "mine.safetensors")
    assert model.meta.style == "mine"
    prov = model.meta.provenance
    assert prov["base_model"]["steps"] == 12
    assert prov["data"]["midi"]["used"] == 4
    assert prov["data"]["midi"]["skipped"] == {"unreadable": 1}
    assert [s["name"] for s in prov["stages"]] == ["style"]
    base = read_tensors(tiny_model)[0]
    tuned = read_tensors(styles / "mine.safetensors")[0]
    assert any(not np.array_equal(base[k], tuned[k]) for k in base)
    # New data is a new run, never a "resume" of the old one (nor its finished weights).
    write_song(folder / "s9.mid", melody_base=75)
    capsys.readouterr()
    assert run(cache, tmp_path / "w", *args) == 0
    assert "resuming" not in capsys.readouterr().err
    assert load_model(styles / "mine.safetensors").meta.provenance["data"]["midi"]["used"] == 5


def test_bad_inputs_give_clear_errors(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(cache, tmp_path, "--preset", "tiny", "--set", "window_size=3") == 2
    assert "unknown training config key(s) ['window_size']" in capsys.readouterr().err
    assert run(cache, tmp_path, "--preset", "tiny", "--set", "batch=big") == 2
    assert "'batch' must be int" in capsys.readouterr().err
    assert run(cache, tmp_path, "--preset", "tiny", "--style", "a b", str(tmp_path)) == 2
    assert "style name 'a b' must be" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = run(cache, tmp_path, "--preset", "tiny", "--style", "x", str(empty), "--base", "nope")
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_time_cap_ends_every_stage_early_and_still_writes_a_model(
    cache: Path, tmp_path: Path
) -> None:
    cfg = load_config("tiny", overrides=("steps=[1000, 1000, 1000]",))
    caps = {"chorales": cfg.chorales, "folk": cfg.folk, "chamber": cfg.chamber}
    corpus = load_corpus(caps, cfg.split_seed, cfg.held_out, valid=cfg.valid, cache=cache)
    plan = Plan([Stage(n, s, cfg.lr) for n, s in zip(CURRICULUM, cfg.steps, strict=True)])
    out = tmp_path / "capped.safetensors"
    result = train(cfg, corpus, plan, out, tmp_path / "w", minutes=0.05, progress=False)
    assert result.finished
    steps = [s["steps"] for s in result.provenance["stages"]]
    assert len(steps) == 3 and all(s < 1000 for s in steps)
    assert load_model(out).meta.provenance["steps"] == sum(steps)


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(cache: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    cmd = [
        sys.executable,
        "-m",
        "lkjam",
        "train",
        "--preset",
        "tiny",
        "--set",
        "steps=[1000000, 1, 1]",
        "--set",
        "checkpoint_every=1000000",
        "--cache",
        str(cache),
        "--workdir",
        str(work),
        "--out",
        str(tmp_path / "m.safetensors"),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    seen = b""
    try:
        # The progress bar appears once training (and the signal handler) has started.
        while b"stage 1/3 harmonize:" not in seen:
            ready, _, _ = select.select([proc.stderr], [], [], 60)
            assert ready, seen.decode(errors="replace")[-2000:]
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, seen.decode(errors="replace")[-2000:]
            seen += chunk
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (seen + rest).decode(errors="replace")[-2000:]
    assert b"stopped after" in rest
    state = json.loads((work / "state.json").read_text())
    assert state["stage"] == 0 and state["step"] >= 1
    again = subprocess.run(
        [*cmd, "--stop-after", "1", "--no-progress"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming {work}: stage 1, step {state['step']}" in again.stderr
    assert "stopped after 1 steps" in again.stderr
