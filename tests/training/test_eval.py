"""`lkjam eval` end to end on real held-out music21 pieces (a small corpus cap, a private
cache), with a compiled step from random weights, and the model NLL it reports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from lkjam.engine.events import EVENT_DTYPE
from lkjam.engine.model_file import ModelMeta, save_model
from lkjam.training import evaluate
from lkjam.training.corpus_sources import load_corpus
from weights import random_weights

from lkjam import _step

KEYS = (
    "nll",
    "markov_nll",
    "nicr",
    "nicr_real",
    "chord_fit",
    "chord_fit_real",
    "rule_chord_fit",
    "coverage",
    "seed_cv",
    "above",
    "gap_bars",
    "density_ratio",
    "doubling",
    "doubling_real",
    "pc_entropy",
    "pc_entropy_real",
    "overlap",
    "answer_delay_beats",
    "answer_length",
)
CAP = 24  # corpus items per source: a few held-out pieces, a few seconds of parsing


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture()
def private_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_model(path, random_weights("tiny"), ModelMeta(topology="tiny"))
    return path


def last_line_values(text: str) -> dict[str, float]:
    last = text.strip().splitlines()[-1]
    pairs = [item.split("=") for item in last.split(" ")]
    assert tuple(k for k, _ in pairs) == KEYS, last
    return {k: float(v) for k, v in pairs}


def test_eval_prints_the_table_and_the_key_value_line(
    private_cache: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(model_path), "--corpus-cap", str(CAP), "--pieces", "3", "--quiet"]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    for name in ("chorales", "folk", "call_response", "nll/event", "nicr", "answer_delay_beats"):
        assert name in out
    v = last_line_values(out)
    # A random model is far worse than the fitted chain; real harmony fits its chords.
    assert v["nll"] > v["markov_nll"] > 0
    # Real folk comping includes single-note textures (arpeggios), so NiCR is well below 1.
    assert 0.2 < v["nicr_real"] <= 1.0
    assert v["chord_fit_real"] > 0.7
    assert v["rule_chord_fit"] > 0.7  # the rule harmonizer's triads fit by construction
    assert v["doubling_real"] < 0.1
    assert 2.0 < v["pc_entropy_real"] < math.log2(12)
    for key in ("nicr", "chord_fit", "doubling", "overlap", "coverage", "above"):
        assert 0.0 <= v[key] <= 1.0, key
    assert v["seed_cv"] >= 0.0 and v["density_ratio"] > 0.0 and v["gap_bars"] >= 0.0
    # Same seed, same figures: sampling is the step's seeded RNG.
    assert evaluate.main(argv) == 0
    assert last_line_values(capsys.readouterr().out) == v


def test_model_nll_of_a_uniform_model_is_the_log_of_the_class_counts(private_cache: Path) -> None:
    corpus = load_corpus({"chorales": CAP}, seed=1, fraction=0.1, progress=False)
    examples = evaluate.examples_for(corpus.held_out["chorales"][:2], "harmonize", seed=0)
    zeros = {k: np.zeros_like(v) for k, v in random_weights("tiny").items()}
    total, events = evaluate.model_nll(_step.Step("tiny", zeros), examples)
    planned = sum(int((_step.targets(ex.events)["time"] != _step.WAIT).sum()) for ex in examples)
    expected = events * math.log(_step.TIME_CLASSES) + planned * math.log(
        128 * _step.VELOCITY_BINS * _step.DURATION_BINS
    )
    assert events == sum(len(ex.events) for ex in examples)
    assert total == pytest.approx(expected, rel=1e-5)


def test_pooled_streams_keep_pieces_apart() -> None:
    a = np.zeros(2, dtype=EVENT_DTYPE)
    a["beat"], a["dur"], a["pitch"], a["vel"], a["role"] = [0, 1], [1, 3], [60, 62], 80, 0
    both = evaluate.pooled([a, a])
    np.testing.assert_allclose(both["beat"], [0, 1, 4 + 16, 5 + 16])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/missing.safetensors"], "missing.safetensors"),
        (["{model}", "--sets", "chorales,jazz"], "unknown set(s) ['jazz']"),
        (["{model}", "--pieces", "0"], "--pieces must be at least 1"),
    ],
)
def test_eval_errors_exit_2(
    tmp_path: Path,
    model_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    args = [a.format(tmp=tmp_path, model=model_path) for a in argv]
    assert evaluate.main(args) == 2
    assert message in capsys.readouterr().err
