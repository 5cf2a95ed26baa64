"""The shipped default model: it loads with no arguments, says how it was made, and has
learned real harmony (a model with random weights fails these)."""

from __future__ import annotations

from importlib import resources

import numpy as np
from lkjam.engine.events import ROLES
from lkjam.engine.midi_file import read_midi
from lkjam.engine.model_file import DEFAULT_MODEL_PATH, load_model

from lkjam import _step

AI = ROLES.index("ai")


def chorale_with_ai_bass() -> np.ndarray:
    """BWV 32.6 as shipped for the demo: soprano human, bass played by the AI."""
    song = read_midi(resources.files("lkjam") / "data" / "chorale.mid")
    events = song.events.copy()
    events["role"][events["role"] != ROLES.index("human")] = AI
    events.sort(order=["beat", "role", "pitch"])
    return events


def test_default_model_loads_with_its_provenance() -> None:
    model = load_model()
    assert model.path == DEFAULT_MODEL_PATH
    assert model.meta.style == "default"
    assert model.meta.topology == "default"
    stages = [s["name"] for s in model.meta.provenance["stages"]]
    assert stages == ["harmonize", "interplay", "call_response"]


def test_default_model_predicts_a_real_chorale_far_better_than_chance() -> None:
    events = chorale_with_ai_bass()
    step = load_model().step
    logits = step.feed_batch(events)
    targets = _step.targets(events)
    nll = 0.0
    for head in ("time", "pitch"):
        z = logits[head].astype(np.float64)
        log_p = z - z.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        t = targets[head]
        keep = t >= 0
        nll += -log_p[np.flatnonzero(keep), t[keep]].mean()
    # Uniform guessing costs log(177) + log(128) = 10.0 nats; random weights about as much.
    assert nll < 5.0, nll
