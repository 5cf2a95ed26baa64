"""The event encoding of docs/event-stream.md, checked against hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lkjam.engine.events import EVENT_DTYPE, make_events, sort_events
from weights import random_weights

from lkjam import _step

LAYOUT = _step.FEATURE_LAYOUT


def block(x: np.ndarray, name: str) -> np.ndarray:
    offset, size = LAYOUT[name]
    return x[..., offset : offset + size]


def hot(x: np.ndarray, name: str) -> int:
    """Index of the single 1 in a one-hot block (asserts it is one-hot)."""
    b = block(x, name)
    assert sorted(b.tolist()).count(1.0) == 1 and b.sum() == 1.0
    return int(np.argmax(b))


# --- bins -------------------------------------------------------------------------------


def test_shift_table_matches_the_doc() -> None:
    expected = (
        [k / 96 for k in range(96)]
        + [1 + k / 24 for k in range(24)]
        + [2 + k / 12 for k in range(24)]
        + [4 + k / 4 for k in range(16)]
        + [8 + k / 2 for k in range(16)]
    )
    assert _step.SHIFT_VALUES.dtype == np.float32
    np.testing.assert_allclose(_step.SHIFT_VALUES, expected, rtol=0, atol=1e-7)
    for i, v in enumerate(expected):
        assert _step.shift_bin(v) == i


def test_shift_bin_nearest_with_ties_up() -> None:
    assert _step.shift_bin(1 / 192) == 1  # exactly between 0 and 1/96
    assert _step.shift_bin(1 / 192 - 1e-9) == 0
    assert _step.shift_bin(0.3) == 29  # 0.3 * 96 = 28.8
    mid = (95 / 96 + 1.0) / 2
    assert _step.shift_bin(mid) == 96 and _step.shift_bin(mid - 1e-9) == 95
    assert _step.shift_bin(5.125) == 149  # between 5.0 (bin 148) and 5.25 (bin 149)
    assert _step.shift_bin(5.1) == 148
    assert _step.shift_bin(15.3) == 175 and _step.shift_bin(15.2) == 174
    assert _step.shift_bin(15.75) == 175 and _step.shift_bin(1000.0) == 175
    assert _step.shift_bin(-0.5) == 0


def test_duration_bins_log_nearest() -> None:
    values = [1 / 48, 1 / 24, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 3 / 8, 1 / 2, 2 / 3, 3 / 4]
    values += [1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16]
    np.testing.assert_allclose(_step.DURATION_VALUES, values, rtol=1e-7)
    for i, v in enumerate(values):
        assert _step.duration_bin(v) == i
    edge = math.sqrt(1.0 * 1.25)  # log-space midpoint of 1 and 1.25
    assert _step.duration_bin(edge - 1e-6) == 11 and _step.duration_bin(edge + 1e-6) == 12
    assert _step.duration_bin(1.12) == 12  # a linear midpoint (1.125) would say 11
    assert _step.duration_bin(100.0) == 27 and _step.duration_bin(0.001) == 0
    assert _step.duration_bin(0.0) == _step.DURATION_UNKNOWN == 28
    assert _step.duration_bin(-1.0) == _step.DURATION_UNKNOWN


def test_velocity_bins() -> None:
    assert [_step.velocity_bin(v) for v in (0, 7, 8, 64, 127, 200)] == [0, 0, 1, 8, 15, 15]
    with pytest.raises(ValueError, match="vel"):
        _step.velocity_bin(-1)


# --- features ---------------------------------------------------------------------------


def test_features_of_a_hand_made_stream() -> None:
    # human C4 at 0 (file says dur 1), clip E4 at 0 (dur 2), ai G4 at 0.5 (dur 1), human D4 at 3.
    ev = make_events(
        [0.0, 0.0, 0.5, 3.0], [1.0, 2.0, 1.0, 0.0], [60, 64, 67, 62], [127, 64, 100, 80],
        ["human", "clip", "ai", "human"],
    )  # fmt: skip
    x = _step.encode(ev, numerator=3, denominator=4, scale_root=2, scale_intervals=[0, 2, 4])
    assert x.shape == (4, 409) and x.dtype == np.float32

    assert [hot(r, "role") for r in x] == [0, 1, 2, 0]
    assert [hot(r, "shift") for r in x] == [0, 0, 48, 126]  # dt 0, 0, 0.5, 2.5
    assert _step.SHIFT_VALUES[126] == 2.5
    assert [hot(r, "pitch") for r in x] == [60, 64, 67, 62]
    assert [hot(r, "velocity") for r in x] == [15, 8, 12, 10]
    # Human durations are always "unknown" (slot 28), even when the file knows them.
    assert [hot(r, "duration") for r in x] == [28, 15, 11, 28]

    def pcs(row: np.ndarray, name: str) -> set[int]:
        return {int(i) for i in np.flatnonzero(block(row, name))}

    assert pcs(x[0], "sounding_input") == {0} and pcs(x[0], "sounding_ai") == set()
    assert pcs(x[1], "sounding_input") == {0, 4}
    assert pcs(x[2], "sounding_input") == {0, 4} and pcs(x[2], "sounding_ai") == {7}
    # At beat 3: C4 ended at 1, E4 at 2, G4 at 1.5; only the new D4 (unknown end) sounds.
    assert pcs(x[3], "sounding_input") == {2} and pcs(x[3], "sounding_ai") == set()

    energy = np.zeros(12)
    energy[0] += 1.0
    energy[4] += 64 / 127
    e2 = energy * math.exp(-0.5 / 2)
    e2[7] += 100 / 127
    e3 = e2 * math.exp(-2.5 / 2)
    e3[2] += 80 / 127
    np.testing.assert_allclose(block(x[1], "energy"), np.tanh(energy), atol=1e-6)
    np.testing.assert_allclose(block(x[2], "energy"), np.tanh(e2), atol=1e-6)
    np.testing.assert_allclose(block(x[3], "energy"), np.tanh(e3), atol=1e-6)

    assert pcs(x[0], "scale") == {2, 4, 6} and block(x, "scale_known").ravel().tolist() == [1] * 4
    # Phases in 3/4 (bar = 3 beats): beat 0.5 -> beat phase 0.5, bar phase 1/6; beat 3 -> 0, 0.
    np.testing.assert_allclose(
        block(x[2], "phase"),
        [0.0, -1.0, math.sin(2 * math.pi / 6), math.cos(2 * math.pi / 6)],
        atol=1e-6,
    )
    np.testing.assert_allclose(block(x[3], "phase"), [0.0, 1.0, 0.0, 1.0], atol=1e-6)
    # No conditioning given: accompany, density and voices 0.
    assert [hot(r, "mode") for r in x] == [_step.MODE_ACCOMPANY] * 4
    assert block(x, "density").ravel().tolist() == [0.0] * 4


def test_conditioning_is_set_per_event_and_clamped() -> None:
    ev = make_events([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [60, 64, 67], [90] * 3, ["human"] * 3)
    cond = np.array([[0, 0.0, 0.0], [1, 7.0, 4.0], [0, 1000.0, 99.0]])
    x = _step.encode(ev, conditioning=cond)
    assert [hot(r, "mode") for r in x] == [0, 1, 0]
    # log2(1 + density) / 3, clamped at MAX_DENSITY; voices / 4, clamped at MAX_VOICES.
    np.testing.assert_allclose(
        block(x, "density").ravel(), [0.0, 1.0, math.log2(1 + _step.MAX_DENSITY) / 3], rtol=1e-6
    )
    np.testing.assert_allclose(block(x, "voices").ravel(), [0.0, 1.0, _step.MAX_VOICES / 4])
    # The live step reads the same rows: set_conditioning before each feed = feed_batch.
    step = _step.Step("tiny", random_weights("tiny"))
    batch = step.feed_batch(ev, cond)["time"]
    unconditioned = step.feed_batch(ev)["time"]
    step.reset()
    for row, e in zip(cond, ev, strict=True):
        step.set_conditioning(int(row[0]), float(row[1]), float(row[2]))
        step.feed(float(e["beat"]), int(e["role"]), int(e["pitch"]), int(e["vel"]), float(e["dur"]))
    np.testing.assert_allclose(step.logits()["time"], batch[-1], atol=1e-6)
    assert not np.allclose(batch[-1], unconditioned[-1], atol=1e-4)  # the rows matter
    for bad, match in (
        (np.array([[2, 0.0, 0.0]] * 3), "mode"),
        (np.array([[0, -1.0, 0.0]] * 3), "density"),
        (np.array([[0, 0.0, np.nan]] * 3), "voices"),
        (np.zeros((2, 3)), "shape"),
    ):
        with pytest.raises(ValueError, match=match):
            _step.encode(ev, conditioning=bad)
    with pytest.raises(ValueError, match="mode"):
        step.set_conditioning(2, 1.0, 1.0)


def test_no_scale_means_zero_scale_features() -> None:
    ev = make_events([0.0], [0.0], [60], [90], ["human"])
    x = _step.encode(ev)
    assert not block(x, "scale").any() and not block(x, "scale_known").any()


def test_unknown_duration_sounds_until_note_off() -> None:
    # Without a note-off a note of unknown duration keeps sounding; its energy decays.
    ev = make_events([0.0, 100.0], [0.0, 0.0], [61, 70], [90, 90], ["human", "ai"])
    x = _step.encode(ev)
    assert block(x[1], "sounding_input")[1] == 1.0
    assert block(x[1], "energy")[1] == pytest.approx(math.tanh(90 / 127 * math.exp(-50)))


# --- targets ----------------------------------------------------------------------------


def test_targets_next_ai_event_rule() -> None:
    ev = make_events(
        beats=[0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 30.0, 40.0],
        durs=[1.0, 1.0, 0.0, 1.0, 2.0, 0.5, 1.0, 1.0],
        pitches=[60, 48, 55, 62, 64, 67, 60, 72],
        vels=[100, 90, 80, 70, 60, 50, 40, 30],
        roles=["human", "ai", "ai", "human", "ai", "ai", "human", "ai"],
    )
    # Stream order: h60@0, ai48@0, ai55@0 (unknown dur), h62@.5, ai64@1, ai67@1, h60@30, ai72@40
    t = _step.targets(ev)
    assert t["time"].dtype == np.int64
    W = _step.WAIT
    assert t["time"].tolist() == [0, 0, 96, 48, 0, W, 164, W]
    assert _step.SHIFT_VALUES[164] == 10.0
    assert t["pitch"].tolist() == [48, 55, 64, 64, 67, -1, 72, -1]
    assert t["velocity"].tolist() == [11, 10, 7, 7, 6, -1, 3, -1]
    assert t["duration"].tolist() == [11, -1, 15, 15, 8, -1, 11, -1]


def test_targets_wait_at_16_beats() -> None:
    ev = make_events([0.0, 15.9, 16.0, 32.0], [1.0] * 4, [60] * 4, [64] * 4,
                     ["human", "ai", "human", "ai"])  # fmt: skip
    t = _step.targets(ev)
    assert t["time"].tolist() == [175, _step.WAIT, _step.WAIT, _step.WAIT]


# --- note-off equivalence -----------------------------------------------------------------


def _random_weights(topology: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = _step.TOPOLOGIES[topology]
    f, h, layers = sizes["features"], sizes["hidden"], sizes["layers"]
    w: dict[str, np.ndarray] = {}
    for k in range(layers):
        w[f"gru.weight_ih_l{k}"] = rng.normal(0, 0.3, (3 * h, f if k == 0 else h))
        w[f"gru.weight_hh_l{k}"] = rng.normal(0, 0.3, (3 * h, h))
        w[f"gru.bias_ih_l{k}"] = rng.normal(0, 0.3, 3 * h)
        w[f"gru.bias_hh_l{k}"] = rng.normal(0, 0.3, 3 * h)
    for name in ("time", "pitch", "velocity", "duration"):
        w[f"heads.{name}.weight"] = rng.normal(0, 0.3, (sizes[name], h))
        w[f"heads.{name}.bias"] = rng.normal(0, 0.3, sizes[name])
    return {k: v.astype(np.float32) for k, v in w.items()}


def _human_notes_without_same_pitch_overlap(rng: np.random.Generator, n: int) -> np.ndarray:
    beats = np.round(np.cumsum(rng.exponential(0.4, n)) * 48) / 48
    durs = rng.choice([0.25, 0.5, 1.0, 1.5, 3.0], n)
    pitches = rng.integers(55, 67, n)
    roles = rng.choice(["human", "clip", "ai"], n, p=[0.5, 0.2, 0.3])
    # MIDI cannot overlap a pitch with itself; drop human notes that would.
    keep = np.ones(n, bool)
    last_end: dict[int, float] = {}
    for i in range(n):
        if roles[i] == "human":
            if last_end.get(int(pitches[i]), -1.0) > beats[i]:
                keep[i] = False
            else:
                last_end[int(pitches[i])] = beats[i] + durs[i]
    return make_events(beats[keep], durs[keep], pitches[keep], rng.integers(1, 128, n)[keep],
                       roles[keep])  # fmt: skip


def test_note_off_equals_known_duration() -> None:
    rng = np.random.default_rng(7)
    ev = _human_notes_without_same_pitch_overlap(rng, 400)
    weights = _random_weights("tiny", 1)
    batch = _step.Step("tiny", weights).feed_batch(ev)

    live = _step.Step("tiny", weights)
    pending: list[tuple[float, int]] = []  # (off beat, pitch) of sounding human notes
    rows = []
    for e in ev:
        beat = float(e["beat"])
        for off, pitch in sorted(pending):
            if off <= beat:
                live.note_off(_step.ROLE_HUMAN, pitch, off)
        pending = [(off, p) for off, p in pending if off > beat]
        is_human = int(e["role"]) == _step.ROLE_HUMAN
        live.feed(beat, int(e["role"]), int(e["pitch"]), int(e["vel"]),
                  0.0 if is_human else float(e["dur"]))  # fmt: skip
        if is_human:
            pending.append((beat + float(e["dur"]), int(e["pitch"])))
        rows.append(live.logits())
    for head, logits in batch.items():
        np.testing.assert_array_equal(np.stack([r[head] for r in rows]), logits)
    assert sum(int(r == _step.ROLE_HUMAN) for r in ev["role"]) > 100


def test_without_note_off_the_live_stream_differs() -> None:
    # The equivalence above is not vacuous: a human note whose note-off never came keeps sounding.
    known = make_events([0.0, 2.0], [1.0, 0.0], [60, 64], [90, 90], ["human", "ai"])
    unknown = known.copy()
    unknown["dur"][0] = 0.0
    assert block(_step.encode(known)[1], "sounding_input")[0] == 0.0
    assert block(_step.encode(unknown)[1], "sounding_input")[0] == 1.0


# --- bad input --------------------------------------------------------------------------


def test_encode_rejects_bad_arrays_naming_the_field() -> None:
    good = make_events([0.0, 1.0], [1.0, 1.0], [60, 62], [90, 90], ["human", "ai"])
    with pytest.raises(ValueError, match="dtype"):
        _step.encode(np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match="numpy array"):
        _step.encode([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-dimensional"):
        _step.encode(good.reshape(1, 2))
    bad = good.copy()
    bad["vel"][1] = 0
    with pytest.raises(ValueError, match=r"events\[1\]\.vel"):
        _step.encode(bad)
    bad = good.copy()
    bad["pitch"][0] = 200
    with pytest.raises(ValueError, match=r"events\[0\]\.pitch"):
        _step.targets(bad)
    bad = good.copy()
    bad["beat"][0] = np.nan
    with pytest.raises(ValueError, match=r"events\[0\]\.beat"):
        _step.encode(bad)
    with pytest.raises(ValueError, match="sorted"):
        _step.encode(good[::-1].copy())
    with pytest.raises(ValueError, match="denominator"):
        _step.encode(good, numerator=4, denominator=3)
    with pytest.raises(ValueError, match="scale root"):
        _step.encode(good, scale_root=12, scale_intervals=[0])


def test_strided_event_views_are_read_correctly() -> None:
    ev = make_events(np.arange(10.0), np.ones(10), np.arange(60, 70), [90] * 10, ["human"] * 10)
    np.testing.assert_array_equal(_step.encode(ev[::2]), _step.encode(ev[::2].copy()))


def test_make_and_sort_events() -> None:
    ev = make_events([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], [60, 70, 50, 40], [1, 2, 3, 4],
                     ["ai", "ai", "clip", "human"])  # fmt: skip
    assert ev.dtype == EVENT_DTYPE and EVENT_DTYPE.itemsize == 16
    assert ev["pitch"].tolist() == [40, 50, 70, 60] and ev["role"].tolist() == [0, 1, 2, 2]
    np.testing.assert_array_equal(sort_events(ev[::-1]), ev)
    with pytest.raises(ValueError, match=r"roles\[0\]"):
        make_events([0.0], [0.0], [60], [90], ["drums"])
    with pytest.raises(ValueError, match=r"vels\[0\]"):
        make_events([0.0], [0.0], [60], [0], ["human"])
