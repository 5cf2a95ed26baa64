"""lkjam._step.Step: state handling, sampling controls and validation at the boundary."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from lkjam.engine.events import make_events
from lkjam.training.model import JamGRU, export_tensors

from lkjam import _step


def tiny_weights(seed: int = 0, scale: float = 3.0) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    model = JamGRU(_step.TOPOLOGIES["tiny"])
    return {k: v * scale for k, v in export_tensors(model).items()}


def stream(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        np.cumsum(rng.exponential(0.3, n)), rng.choice([0.0, 0.5, 1.0], n),
        rng.integers(40, 90, n), rng.integers(1, 128, n), rng.integers(0, 3, n),
    )  # fmt: skip


def feed_all(step: _step.Step, events: np.ndarray) -> None:
    for e in events:
        step.feed(float(e["beat"]), int(e["role"]), int(e["pitch"]), int(e["vel"]),
                  float(e["dur"]))  # fmt: skip


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return tiny_weights()


def test_feed_batch_equals_single_feeds(weights: dict[str, np.ndarray]) -> None:
    ev = stream(200)
    batch = _step.Step("tiny", weights).feed_batch(ev)
    step = _step.Step("tiny", weights)
    rows = []
    for i in range(len(ev)):
        feed_all(step, ev[i : i + 1])
        rows.append(step.logits())
    for head, sizes in (("time", 177), ("pitch", 128), ("velocity", 16), ("duration", 28)):
        assert batch[head].shape == (200, sizes) and batch[head].dtype == np.float32
        np.testing.assert_array_equal(np.stack([r[head] for r in rows]), batch[head])


def test_settings_reach_the_features(weights: dict[str, np.ndarray]) -> None:
    torch.manual_seed(1)
    model = JamGRU(_step.TOPOLOGIES["tiny"]).eval()
    step = _step.Step("tiny", export_tensors(model))
    step.set_meter(3, 4)
    step.set_scale(2, [0, 4, 7])
    ev = stream(100)
    got = step.feed_batch(ev)
    x = torch.from_numpy(_step.encode(ev, 3, 4, 2, [0, 4, 7]))[None]
    with torch.no_grad():
        want, _ = model(x)
    np.testing.assert_allclose(got["time"], want["time"][0].numpy(), atol=1e-5)
    step.reset()  # keeps meter and scale
    np.testing.assert_array_equal(step.feed_batch(ev)["pitch"], got["pitch"])
    step.reset()
    step.clear_scale()
    step.set_meter(4, 4)
    assert not np.allclose(step.feed_batch(ev)["pitch"], got["pitch"])


def test_reset_returns_to_the_fresh_state(weights: dict[str, np.ndarray]) -> None:
    fresh = _step.Step("tiny", weights)
    used = _step.Step("tiny", weights)
    used.feed_batch(stream(50))
    assert not np.array_equal(used.logits()["time"], fresh.logits()["time"])
    used.reset()
    np.testing.assert_array_equal(used.logits()["time"], fresh.logits()["time"])
    np.testing.assert_array_equal(used.feed_batch(stream(20))["time"],
                                  fresh.feed_batch(stream(20))["time"])  # fmt: skip


Draw = tuple[bool, float, int, int, float]


def predictions(step: _step.Step, n: int, **kw: float) -> list[Draw]:
    out: list[Draw] = []
    for _ in range(n):
        p = step.predict(**kw)
        out.append((p.wait, p.shift, p.pitch, p.velocity, p.duration))
    return out


def test_predict_is_seeded_and_leaves_the_state_alone(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(30))
    before = step.logits()
    step.seed(42)
    a = predictions(step, 50)
    for head, logits in step.logits().items():
        np.testing.assert_array_equal(logits, before[head])
    step.seed(42)
    assert predictions(step, 50) == a
    step.seed(43)
    assert predictions(step, 50) != a
    assert any(not p[0] for p in a)  # some plans are notes, not WAIT


def test_state_copy_and_restore(weights: dict[str, np.ndarray]) -> None:
    ev = stream(80)
    step = _step.Step("tiny", weights)
    step.feed_batch(ev[:50])
    step.seed(5)
    state = step.get_state()
    assert state.topology == "tiny"
    first = step.feed_batch(ev[50:])
    draws = predictions(step, 20)
    step.set_state(state)
    np.testing.assert_array_equal(step.feed_batch(ev[50:])["time"], first["time"])
    assert predictions(step, 20) == draws  # the RNG is part of the state
    other = _step.Step("default", export_tensors(JamGRU(_step.TOPOLOGIES["default"])))
    with pytest.raises(ValueError, match="topology 'tiny'"):
        other.set_state(state)


def test_greedy_and_tiny_top_p_pick_the_argmax(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(40))
    lg = step.logits()
    time_no_wait = int(np.argmax(lg["time"][: _step.WAIT]))
    want = (
        False,
        float(_step.SHIFT_VALUES[time_no_wait]),
        int(np.argmax(lg["pitch"])),
        int(np.argmax(lg["velocity"])) * 8 + 4,
        float(_step.DURATION_VALUES[int(np.argmax(lg["duration"]))]),
    )
    for kw in ({"temperature": 0.0}, {"temperature": 1.0, "top_p": 1e-6}):
        got = predictions(step, 5, wait_bias=-1e4, **kw)
        for g in got:
            assert g[0] == want[0] and g[2:4] == want[2:4]
            assert g[1] == pytest.approx(want[1]) and g[4] == pytest.approx(want[4])


def test_wait_bias_controls_density(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(10))
    assert all(p[0] for p in predictions(step, 100, wait_bias=1e4))
    assert not any(p[0] for p in predictions(step, 100, wait_bias=-1e4))
    assert all(p[2] >= 0 and p[1] >= 0 for p in predictions(step, 200, wait_bias=-1e4))


def test_sampling_follows_the_softmax(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(10))
    step.seed(3)
    n = 20000
    vel = np.array([p[3] for p in predictions(step, n, top_p=1.0, wait_bias=-1e4)])
    freq = np.bincount((vel - 4) // 8, minlength=16) / n
    logits = step.logits()["velocity"].astype(np.float64)
    prob = np.exp(logits - logits.max())
    prob /= prob.sum()
    uniform = np.full(16, 1 / 16)
    # Not vacuous: the softmax is far from uniform (total variation > 0.3) and from one-hot,
    # so a uniform, greedy or top-p-truncated sampler cannot pass what follows.
    assert 0.5 * np.abs(prob - uniform).sum() > 0.3 and prob.max() < 0.5
    # Each bin's frequency is binomial: standard error sqrt(p(1 - p) / n), at most 0.0035 here.
    # 5 of them per bin: a correct sampler fails with probability < 16 * 6e-7 = 1e-5 whatever
    # the seed, and the uniform is 40+ standard errors off in its worst bin.
    margin = 5 * np.sqrt(prob * (1 - prob) / n)
    assert np.all(np.abs(freq - prob) < margin), (freq, prob)
    assert not np.all(np.abs(freq - uniform) < margin)


def test_pitch_mask(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(10))
    mask = np.zeros(128, dtype=bool)
    mask[[60, 64, 67]] = True
    step.set_pitch_mask(mask)
    pitches = {p[2] for p in predictions(step, 300, top_p=1.0, wait_bias=-1e4)}
    assert pitches == {60, 64, 67}
    step.set_pitch_mask(np.zeros(128, dtype=bool))  # allows nothing: constrains nothing
    assert len({p[2] for p in predictions(step, 300, top_p=1.0, wait_bias=-1e4)}) > 3
    step.set_pitch_mask(None)
    assert len({p[2] for p in predictions(step, 300, top_p=1.0, wait_bias=-1e4)}) > 3
    with pytest.raises(ValueError, match="pitch mask"):
        step.set_pitch_mask(np.ones(127, dtype=bool))
    with pytest.raises(ValueError, match="pitch mask"):
        step.set_pitch_mask(np.ones(128, dtype=np.float32))


def test_note_off_stops_a_sounding_note(weights: dict[str, np.ndarray]) -> None:
    """The sounding-input feature of the pitch's class (docs/event-stream.md) is set while a
    human note is held and cleared from its note-off on; the next event is fed with it."""
    pc0 = 1 << (60 % 12)  # bit of pitch class 0 in Step.sounding's 12-bit sets
    held, released = _step.Step("tiny", weights), _step.Step("tiny", weights)
    for step in (held, released):
        step.feed(0.0, _step.ROLE_HUMAN, 60, 100, 0.0)  # live: duration unknown until note-off
        assert step.sounding(0.25) == (pc0, 0) and step.human_until(0.25) == np.inf
    released.note_off(_step.ROLE_HUMAN, 60, 0.5)
    assert released.sounding(0.25) == (pc0, 0)  # it sounded until the note-off...
    assert released.sounding(0.5) == (0, 0) and released.human_until(0.5) == 0.5  # ...not after
    assert held.sounding(0.5) == (pc0, 0)
    for step in (held, released):
        step.feed(1.0, _step.ROLE_AI, 67, 100, 1.0)
    ai = 1 << (67 % 12)
    assert held.sounding(1.0) == (pc0, ai) and released.sounding(1.0) == (0, ai)
    # The AI event was fed with those features: each Step's logits are the batch encoding's
    # of the same stream, with the human note held (duration 0) or lasting until 0.5.
    for step, dur, feature in ((held, 0.0, 1.0), (released, 0.5, 0.0)):
        ev = make_events([0.0, 1.0], [dur, 1.0], [60, 67], [100, 100], ["human", "ai"])
        offset, _ = _step.FEATURE_LAYOUT["sounding_input"]
        assert _step.encode(ev)[1, offset + 60 % 12] == feature
        batch = _step.Step("tiny", weights).feed_batch(ev)
        for head, logits in step.logits().items():
            np.testing.assert_array_equal(logits, batch[head][-1])
    assert not np.array_equal(held.logits()["time"], released.logits()["time"])


def test_constructor_rejects_bad_weights(weights: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown topology 'huge'"):
        _step.Step("huge", weights)
    missing = dict(weights)
    del missing["heads.pitch.bias"]
    with pytest.raises(ValueError, match=re.escape("missing tensor 'heads.pitch.bias'")):
        _step.Step("tiny", missing)
    wrong = dict(weights, **{"gru.weight_hh_l0": np.zeros((48, 17), np.float32)})
    with pytest.raises(ValueError, match=r"'gru.weight_hh_l0' has shape \(48, 17\).*\(48, 16\)"):
        _step.Step("tiny", wrong)
    nan = dict(weights)
    nan["heads.time.weight"] = weights["heads.time.weight"].copy()
    nan["heads.time.weight"][3, 4] = np.nan
    with pytest.raises(ValueError, match=re.escape("'heads.time.weight' contains NaN")):
        _step.Step("tiny", nan)
    extra = dict(weights, **{"gru.weight_ih_l1": np.zeros((48, 16), np.float32)})
    with pytest.raises(ValueError, match=re.escape("unexpected tensor 'gru.weight_ih_l1'")):
        _step.Step("tiny", extra)
    with pytest.raises(ValueError, match=re.escape("'heads.time.bias' is not a numeric array")):
        _step.Step("tiny", dict(weights, **{"heads.time.bias": "zeros"}))
    # float64 input is accepted and converted
    as64 = {k: v.astype(np.float64) for k, v in weights.items()}
    np.testing.assert_array_equal(
        _step.Step("tiny", as64).logits()["time"], _step.Step("tiny", weights).logits()["time"]
    )


def test_calls_reject_bad_arguments_naming_the_field(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    cases = [
        (lambda: step.feed(0.0, 3, 60, 100, 0.0), "role"),
        (lambda: step.feed(0.0, 0, 128, 100, 0.0), "pitch"),
        (lambda: step.feed(0.0, 0, 60, 0, 0.0), "velocity"),
        (lambda: step.feed(float("nan"), 0, 60, 100, 0.0), "beat"),
        (lambda: step.feed(0.0, 0, 60, 100, float("inf")), "duration"),
        (lambda: step.note_off(0, -1, 0.0), "pitch"),
        (lambda: step.predict(temperature=-1.0), "temperature"),
        (lambda: step.predict(top_p=0.0), "top_p"),
        (lambda: step.predict(top_p=1.5), "top_p"),
        (lambda: step.predict(wait_bias=float("nan")), "wait_bias"),
        (lambda: step.set_meter(0, 4), "numerator"),
        (lambda: step.set_meter(4, 6), "denominator"),
        (lambda: step.set_scale(0, [0, 12]), "scale interval"),
        (lambda: step.feed_batch(np.zeros(4, np.int32)), "dtype"),
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=field):
            call()
    step.feed(0.0, 0, 60, 100, 0.0)  # still usable afterwards


def test_values_beyond_the_beat_range_are_refused_naming_the_field(
    weights: dict[str, np.ndarray],
) -> None:
    """A finite double too large for a float (or for song time) is an error, never a cast."""
    step = _step.Step("tiny", weights)
    cases = [
        (lambda: step.feed(0.0, 0, 60, 100, 1e300), "duration"),
        (lambda: step.feed(0.0, 0, 60, 100, -1e300), "duration"),
        (lambda: step.feed(0.0, 0, 60, 100, 2 * _step.MAX_BEATS), "duration"),
        (lambda: step.feed(1e300, 0, 60, 100, 0.0), "beat"),
        (lambda: step.feed(-2 * _step.MAX_BEATS, 0, 60, 100, 0.0), "beat"),
        (lambda: step.note_off(0, 60, 1e300), "beat"),
    ]
    for call, field in cases:
        with pytest.raises(ValueError, match=rf"^{field} must be a finite number of beats within"):
            call()
    ev = stream(3)
    huge_beat, huge_dur = ev.copy(), ev.copy()
    huge_beat["beat"][2] = 1e300
    huge_dur["dur"][1] = np.float32(3e38)
    with pytest.raises(ValueError, match=r"events\[2\]\.beat"):
        _step.encode(huge_beat)
    with pytest.raises(ValueError, match=r"events\[1\]\.dur"):
        step.feed_batch(huge_dur)
    step.feed(_step.MAX_BEATS, 0, 60, 100, _step.MAX_BEATS)  # the bound itself is accepted
    step.note_off(0, 60, -_step.MAX_BEATS)
    assert all(np.isfinite(v).all() for v in step.logits().values())


def test_tiny_and_denormal_temperatures_are_greedy(weights: dict[str, np.ndarray]) -> None:
    """Below MIN_TEMPERATURE the draw is the argmax: 1/T never becomes infinite."""
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(40))
    step.seed(1)
    greedy = predictions(step, 20, temperature=0.0, wait_bias=-2.0)
    assert any(not g[0] for g in greedy)
    # 1e-40 is a float32 denormal; 5e-324 a float64 one (0 as a float).
    for t in (5e-324, 1e-300, 1e-40, 1e-38, 1e-20, _step.MIN_TEMPERATURE / 2):
        step.seed(1)
        assert predictions(step, 20, temperature=t, wait_bias=-2.0) == greedy, t
    step.seed(1)
    assert predictions(step, 20, temperature=1.0, wait_bias=-2.0) != greedy  # it can differ


def test_huge_temperature_and_wait_bias_are_clamped(weights: dict[str, np.ndarray]) -> None:
    step = _step.Step("tiny", weights)
    step.feed_batch(stream(10))
    step.seed(2)
    flat = predictions(step, 400, temperature=1e300, top_p=1.0, wait_bias=-1e4)
    assert len({p[2] for p in flat}) > 90  # near uniform over 128 pitches
    assert all(p[0] for p in predictions(step, 100, wait_bias=1e300))
    assert all(p[0] for p in predictions(step, 100, temperature=1e-3, wait_bias=3.4e38))
    assert not any(p[0] for p in predictions(step, 100, wait_bias=-1e300))


def test_overflowing_weights_still_give_valid_draws(weights: dict[str, np.ndarray]) -> None:
    """Finite weights whose sums overflow make inf/NaN gate inputs and logits; sampling must
    still return a valid event (and, under the sanitizer build, do nothing undefined)."""
    big = {k: v.copy() for k, v in weights.items()}
    big["gru.weight_ih_l0"][::2] = 3e38
    big["gru.weight_ih_l0"][1::2] = -3e38
    for head in ("time", "pitch", "velocity", "duration"):
        big[f"heads.{head}.weight"][::3] = 3e38
        big[f"heads.{head}.weight"][1::3] = -3e38
    step = _step.Step("tiny", big)
    step.feed_batch(stream(20))
    assert not all(np.isfinite(v).all() for v in step.logits().values())
    draws = [
        p
        for t in (0.0, 0.5, 1.0)
        for top_p in (0.5, 1.0)
        for bias in (0.0, -1e4)
        for p in predictions(step, 30, temperature=t, top_p=top_p, wait_bias=bias)
    ]
    for wait, shift, pitch, velocity, duration in draws:
        assert wait or (
            0 <= shift <= 16 and 0 <= pitch < 128 and 4 <= velocity <= 124 and duration > 0
        )
    assert any(not d[0] for d in draws)
