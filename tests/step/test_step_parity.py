"""The C++ step against the PyTorch reference, through a real model file.

JamGRU (default topology, random weights) is saved with save_model, read back with
load_model, and both must give the same logits on every head to 1e-4 after each of
2,000 events of a random stream and of a Bach chorale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lkjam.engine.events import make_events
from lkjam.engine.model_file import ModelMeta, load_model, save_model
from lkjam.training.model import HEADS, JamGRU, export_tensors

from lkjam import _step

N_EVENTS = 2000
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference() -> JamGRU:
    torch.manual_seed(2026)
    model = JamGRU(_step.TOPOLOGIES["default"]).eval()
    with torch.no_grad():  # livelier than torch's default init, closer to a trained model
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def loaded(reference: JamGRU, tmp_path_factory: pytest.TempPathFactory) -> _step.Step:
    path = tmp_path_factory.mktemp("model") / "parity.safetensors"
    save_model(path, export_tensors(reference), ModelMeta(topology="default", style="parity"))
    model = load_model(path)
    assert model.meta.style == "parity" and model.path == Path(path)
    return model.step


def random_stream(n: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    return make_events(
        np.cumsum(rng.choice([0.0, 1 / 96, 0.25, 0.5, 1.0, 3.0, 20.0], n)),
        rng.choice([0.0, 0.1, 0.5, 1.0, 4.0], n), rng.integers(0, 128, n),
        rng.integers(1, 128, n), rng.integers(0, 3, n),
    )  # fmt: skip


def chorale_stream(n: int) -> np.ndarray:
    """bwv66.6: soprano as the human, the lower voices as the AI, repeated to n events."""
    music21 = pytest.importorskip("music21")
    score = music21.corpus.parse("bach/bwv66.6")
    rows = []
    for index, part in enumerate(score.parts):
        role = "human" if index == 0 else "ai"
        for note in part.flatten().notes:
            for pitch in note.pitches:
                vel = note.volume.velocity or 80
                rows.append((float(note.offset), float(note.quarterLength), pitch.midi, vel, role))
    beats, durs, pitches, vels, roles = zip(*rows, strict=True)
    length = float(score.highestTime)
    copies = -(-n // len(rows))
    return make_events(
        np.concatenate([np.array(beats) + k * length for k in range(copies)]),
        np.tile(durs, copies), np.tile(pitches, copies), np.tile(vels, copies),
        list(roles) * copies,
    )[:n]  # fmt: skip


@pytest.mark.parametrize("make_stream", [random_stream, chorale_stream])
def test_cpp_step_matches_pytorch(reference: JamGRU, loaded: _step.Step, make_stream) -> None:
    events = make_stream(N_EVENTS)
    assert len(events) == N_EVENTS
    # Conditioning that changes along the stream, as training labels it (encoding v2).
    rng = np.random.default_rng(3)
    cond = np.stack(
        [rng.integers(0, 2, N_EVENTS), rng.uniform(0, 8, N_EVENTS), rng.uniform(0, 4, N_EVENTS)],
        axis=1,
    )
    loaded.reset()
    got = loaded.feed_batch(events, cond)
    with torch.no_grad():
        want, _ = reference(torch.from_numpy(_step.encode(events, conditioning=cond))[None])
    for head in HEADS:
        expected = want[head][0].numpy()
        assert got[head].shape == expected.shape
        assert expected.std() > 0.1  # non-trivial logits, so agreement means something
        err = np.abs(got[head] - expected).max()
        assert err < TOLERANCE, f"{head}: max |cpp - torch| = {err:.2e}"


def test_single_feed_path_matches_too(reference: JamGRU, loaded: _step.Step) -> None:
    events = chorale_stream(300)
    loaded.reset()
    loaded.set_conditioning(0, 0.0, 0.0)  # reset keeps it, and feed_batch above set rows
    for e in events:
        loaded.feed(float(e["beat"]), int(e["role"]), int(e["pitch"]), int(e["vel"]),
                    float(e["dur"]))  # fmt: skip
    with torch.no_grad():
        want, _ = reference(torch.from_numpy(_step.encode(events))[None])
    for head, logits in loaded.logits().items():
        np.testing.assert_allclose(logits, want[head][0, -1].numpy(), atol=TOLERANCE, rtol=0)


def test_a_perturbed_weight_is_detected(reference: JamGRU) -> None:
    tensors = export_tensors(reference)
    tensors["gru.weight_hh_l1"][5, 7] += 0.05
    events = random_stream(200)
    got = _step.Step("default", tensors).feed_batch(events)
    with torch.no_grad():
        want, _ = reference(torch.from_numpy(_step.encode(events))[None])
    assert np.abs(got["time"] - want["time"][0].numpy()).max() > TOLERANCE
