"""The Markov-chain baseline: proper distributions, NLL on the GRU's targets, generation
through the same decoding rule as the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lkjam.engine.decoder import scale_mask
from lkjam.engine.events import make_events
from lkjam.engine.offline import accompany
from lkjam.training.markov import HEADS, MarkovModel, event_nll

from lkjam import _step


def harmonized(seed: int, n: int = 48) -> np.ndarray:
    """A melody on the beat, each note answered at once by the AI a major third and an
    octave below (in that order, as shift-0 notes)."""
    rng = np.random.default_rng(seed)
    mel = 60 + rng.choice([0, 2, 4, 5, 7, 9, 11], n)
    beats = np.arange(n, dtype=np.float64)
    return make_events(
        np.concatenate([beats, beats, beats]),
        np.ones(3 * n),
        np.concatenate([mel, mel - 4, mel - 12]),
        np.full(3 * n, 80),
        [0] * n + [2] * (2 * n),
    )


@pytest.fixture(scope="module")
def model() -> MarkovModel:
    return MarkovModel().fit(harmonized(seed) for seed in range(30))


def test_every_context_has_a_proper_distribution_with_no_zero(model: MarkovModel) -> None:
    for head in HEADS:
        p = np.exp(model.tables[head])
        np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-9)
        assert p.min() > 0, head


def test_nll_is_low_on_the_learnt_pattern_and_finite_on_anything(model: MarkovModel) -> None:
    total, n = model.nll(harmonized(99))
    assert n == 48 * 3
    # Random AI notes at random times are far less likely under the chain.
    rng = np.random.default_rng(1)
    noise = make_events(
        rng.uniform(0, 48, 144),
        np.ones(144),
        rng.integers(20, 110, 144),
        np.full(144, 80),
        rng.choice([0, 2], 144),
    )
    noise_total, noise_n = model.nll(noise)
    assert math.isfinite(noise_total)
    assert total / n < 0.25 * noise_total / noise_n


def test_event_nll_of_uniform_logits_is_the_log_of_the_class_counts() -> None:
    events = make_events([0.0, 0.0, 1.0], [1, 1, 1], [60, 48, 62], [80, 80, 80], [0, 2, 0])
    targets = _step.targets(events)
    n = len(events)
    logits = {
        "time": np.zeros((n, _step.TIME_CLASSES)),
        "pitch": np.zeros((n, 128)),
        "velocity": np.zeros((n, _step.VELOCITY_BINS)),
        "duration": np.zeros((n, _step.DURATION_BINS)),
    }
    total, count = event_nll(logits, targets)
    # Event 0 (human at 0) has an AI target; events 1 (the AI note) and 2 wait.
    full = math.log(_step.TIME_CLASSES * 128 * _step.VELOCITY_BINS * _step.DURATION_BINS)
    assert count == 3
    assert total == pytest.approx(full + 2 * math.log(_step.TIME_CLASSES))


def test_generation_follows_the_pattern_and_the_decoding_rule(model: MarkovModel) -> None:
    song = harmonized(123)
    melody = song[song["role"] == 0]
    out = accompany(model.step(), melody, temperature=0.5, seed=3)
    assert len(out) > len(melody)  # mostly two notes per melody note
    assert np.array_equal(out, accompany(model.step(), melody, temperature=0.5, seed=3))
    out = out[out["beat"] <= melody["beat"][-1]]  # leave out the tail after the song
    onsets_on_melody = np.isin(out["beat"], melody["beat"])
    assert onsets_on_melody.mean() > 0.9
    below = melody["pitch"][np.searchsorted(melody["beat"], out["beat"])].astype(int) - out[
        "pitch"
    ].astype(int)
    assert np.isin(below, [4, 12]).mean() > 0.5


def test_generation_respects_a_pitch_mask(model: MarkovModel) -> None:
    melody = harmonized(5)
    melody = melody[melody["role"] == 0]
    out = accompany(model.step(), melody, seed=1, pitch_mask=scale_mask(0, [0, 4, 7]))
    assert len(out) > 0
    assert set((out["pitch"] % 12).tolist()) <= {0, 4, 7}


def test_an_unfitted_model_refuses_to_generate() -> None:
    with pytest.raises(ValueError, match="fit"):
        MarkovModel().step()
