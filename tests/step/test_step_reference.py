"""The C++ step against stored PyTorch logits, without torch (tests/data/step_reference.npz).

The fixture holds the weights of a tiny-topology JamGRU (seeded, scaled by 3 so the logits
are lively), an event stream with per-event conditioning rows, a meter and a scale, and the
logits PyTorch computed for it on every head. The step must reproduce them to 1e-4, through
`feed_batch` and through single `feed` calls. Only numpy and `lkjam._step` are needed, so
this parity check also runs where torch is absent (and under the sanitizer build, CI's
cpp_step/tests/sanitize.sh); tests/step/test_step_parity.py keeps the live torch comparison on
the default topology.

Regenerate the fixture after a change of the encoding or of JamGRU (it needs torch):

    python tests/step/test_step_reference.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from lkjam import _step

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "step_reference.npz"
TOLERANCE = 1e-4
HEADS = ("time", "pitch", "velocity", "duration")
N_EVENTS = 48
WEIGHT_PREFIX = "weights/"


def load_fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as data:
        fixture = {key: data[key] for key in data.files}
    version = int(fixture["encoding_version"])
    assert version == _step.ENCODING_VERSION, (
        f"{FIXTURE.name} is for encoding version {version}, the step has "
        f"{_step.ENCODING_VERSION}: regenerate it with `python tests/step/test_step_reference.py`"
    )
    return fixture


def weights_of(fixture: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        key.removeprefix(WEIGHT_PREFIX): value
        for key, value in fixture.items()
        if key.startswith(WEIGHT_PREFIX)
    }


def configured_step(fixture: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> _step.Step:
    step = _step.Step(str(fixture["topology"]), weights)
    numerator, denominator = (int(v) for v in fixture["meter"])
    step.set_meter(numerator, denominator)
    step.set_scale(int(fixture["scale_root"]), [int(v) for v in fixture["scale_intervals"]])
    return step


def max_errors(got: dict[str, np.ndarray], fixture: dict[str, np.ndarray]) -> dict[str, float]:
    errors = {}
    for head in HEADS:
        want = fixture[f"logits/{head}"]
        assert got[head].shape == want.shape, head
        errors[head] = float(np.abs(got[head] - want).max())
    return errors


def check_batch_against_fixture() -> dict[str, float]:
    """Max |cpp - torch| per head over the fixture's stream, fed as one batch."""
    fixture = load_fixture()
    step = configured_step(fixture, weights_of(fixture))
    return max_errors(step.feed_batch(fixture["events"], fixture["conditioning"]), fixture)


def test_fixture_is_a_real_reference() -> None:
    fixture = load_fixture()
    events, conditioning = fixture["events"], fixture["conditioning"]
    assert len(events) == N_EVENTS and conditioning.shape == (N_EVENTS, 3)
    assert set(events["role"].tolist()) == {0, 1, 2}
    assert set(conditioning[:, 0].tolist()) == {0.0, 1.0}  # both modes
    assert len(np.unique(conditioning[:, 1:], axis=0)) > 3  # density and voices vary
    sizes = _step.TOPOLOGIES[str(fixture["topology"])]
    for head in HEADS:
        logits = fixture[f"logits/{head}"]
        assert logits.shape == (N_EVENTS, sizes[head])
        assert logits.std() > 0.1  # non-trivial logits, so agreement means something


def test_batch_matches_the_stored_pytorch_logits() -> None:
    for head, err in check_batch_against_fixture().items():
        assert err < TOLERANCE, f"{head}: max |cpp - torch| = {err:.2e}"


def test_single_feeds_match_the_stored_pytorch_logits() -> None:
    fixture = load_fixture()
    step = configured_step(fixture, weights_of(fixture))
    rows: dict[str, list[np.ndarray]] = {head: [] for head in HEADS}
    for e, (mode, density, voices) in zip(fixture["events"], fixture["conditioning"], strict=True):
        step.set_conditioning(int(mode), float(density), float(voices))
        step.feed(float(e["beat"]), int(e["role"]), int(e["pitch"]), int(e["vel"]),
                  float(e["dur"]))  # fmt: skip
        for head, logits in step.logits().items():
            rows[head].append(logits)
    got = {head: np.stack(rows[head]) for head in HEADS}
    for head, err in max_errors(got, fixture).items():
        assert err < TOLERANCE, f"{head}: max |cpp - torch| = {err:.2e}"


def test_a_perturbed_weight_or_lost_conditioning_is_detected() -> None:
    fixture = load_fixture()
    weights = weights_of(fixture)
    weights["gru.weight_hh_l0"] = weights["gru.weight_hh_l0"].copy()
    weights["gru.weight_hh_l0"][5, 7] += 0.05
    got = configured_step(fixture, weights).feed_batch(fixture["events"], fixture["conditioning"])
    assert max(max_errors(got, fixture).values()) > TOLERANCE
    got = configured_step(fixture, weights_of(fixture)).feed_batch(fixture["events"])
    assert max(max_errors(got, fixture).values()) > TOLERANCE


def test_the_check_runs_without_torch() -> None:
    """In a fresh interpreter where `import torch` fails, the fixture check still runs."""
    code = (
        "import sys; sys.modules['torch'] = None; "
        f"sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import test_step_reference as t; "
        "errors = t.check_batch_against_fixture(); "
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None; "
        "print(max(errors.values()))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) < TOLERANCE


def reference_inputs() -> tuple[np.ndarray, np.ndarray]:
    """The fixture's stream: all three roles, chords, unknown and known durations, shifts from
    0 to past the 16-beat horizon, and conditioning rows that change along the way."""
    from lkjam.engine.events import make_events

    rng = np.random.default_rng(2026)
    shifts = rng.choice([0.0, 1 / 96, 0.25, 1 / 3, 0.5, 1.0, 2.5, 17.0], N_EVENTS)
    events = make_events(
        np.cumsum(shifts), rng.choice([0.0, 0.25, 0.5, 1.0, 3.0], N_EVENTS),
        rng.integers(30, 100, N_EVENTS), rng.integers(1, 128, N_EVENTS),
        rng.integers(0, 3, N_EVENTS),
    )  # fmt: skip
    conditioning = np.zeros((N_EVENTS, 3))
    for start in range(0, N_EVENTS, 8):  # a new (mode, density, voices) every 8 events
        conditioning[start : start + 8] = (
            start // 8 % 2, rng.choice([0.0, 0.5, 2.0, 7.0, 20.0]), rng.choice([0, 1, 3, 9]),
        )  # fmt: skip
    return events, conditioning


def regenerate() -> None:
    """Writes tests/data/step_reference.npz from PyTorch (seeded, so reruns are identical)."""
    import torch
    from lkjam.training.model import JamGRU, export_tensors

    topology, meter, scale_root, scale_intervals = "tiny", (3, 4), 2, [0, 2, 4, 5, 7, 9, 11]
    torch.manual_seed(2026)
    model = JamGRU(_step.TOPOLOGIES[topology]).eval()
    with torch.no_grad():  # livelier than torch's default init, closer to a trained model
        for p in model.parameters():
            p.mul_(3.0)
    events, conditioning = reference_inputs()
    features = _step.encode(events, *meter, scale_root, scale_intervals, conditioning)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(features)[None])
    arrays: dict[str, np.ndarray] = {
        "encoding_version": np.array(_step.ENCODING_VERSION),
        "topology": np.array(topology),
        "meter": np.array(meter),
        "scale_root": np.array(scale_root),
        "scale_intervals": np.array(scale_intervals),
        "events": events,
        "conditioning": conditioning,
    }
    arrays.update({WEIGHT_PREFIX + k: v for k, v in export_tensors(model).items()})
    arrays.update({f"logits/{head}": logits[head][0].numpy() for head in HEADS})
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)  # type: ignore[arg-type]
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    regenerate()
    errors = check_batch_against_fixture()
    print("max |cpp - torch| per head:", {k: f"{v:.1e}" for k, v in errors.items()})
