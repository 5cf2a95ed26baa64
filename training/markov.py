"""A Markov-chain baseline over the same event vocabulary as the GRU.

Each head of the next-AI-event prediction (docs/event-stream.md, "Outputs") is an order-1
chain on the event just fed:

| head     | context                                   | backs off to                  |
|----------|-------------------------------------------|-------------------------------|
| time     | role, position in the beat (16ths or off) | role, then all                |
| pitch    | role, pitch                               | role + interval, then all     |
| velocity | role, velocity bin                        | all                           |
| duration | role, duration bin (29, with "unknown")   | all                           |

Smoothing is Witten-Bell interpolation down the chain, ending in add-one counts, so every
class keeps some probability and NLL is always finite. The targets are exactly the GRU's
(`lkjam._step.targets`), so `nll` is comparable with the model's NLL per event. As a
generator, `MarkovStep` offers the Step methods `lkjam.engine.offline.accompany` uses, so
the baseline is decoded by the same rule as the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lkjam import _step

PHASES = 5  # onset position in the beat: 4 sixteenths, or off that grid
DUR_CONTEXTS = _step.DURATION_BINS + 1  # input duration bins plus "unknown"
HEADS = ("time", "pitch", "velocity", "duration")


def _phase(beats: np.ndarray) -> np.ndarray:
    pos = (beats % 1.0) * 4
    grid = np.rint(pos)
    return np.where(np.abs(pos - grid) < 0.05, grid % 4, 4).astype(np.int64)


def _duration_bins(durs: np.ndarray) -> np.ndarray:
    return np.array([_step.duration_bin(float(d)) for d in durs], dtype=np.int64)


def _witten_bell(counts: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Interpolate counts (..., K) with a lower-order distribution (broadcastable):
    P = (c + u * P_lower) / (n + u), u = number of distinct classes seen in this context."""
    n = counts.sum(axis=-1, keepdims=True)
    u = (counts > 0).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (counts + u * lower) / (n + u)
    return np.where(n > 0, p, lower * np.ones_like(counts))


def _add_one(counts: np.ndarray) -> np.ndarray:
    return (counts + 1.0) / (counts.sum() + counts.shape[-1])


@dataclass
class _Context:
    """The context of every event of a stream, one array per field, (N,) int64."""

    role: np.ndarray
    phase: np.ndarray
    pitch: np.ndarray
    vel_bin: np.ndarray
    dur_bin: np.ndarray

    @classmethod
    def of(cls, events: np.ndarray) -> _Context:
        # Human durations are unknown to the model (docs: duration features); same here.
        durs = np.where(events["role"] == _step.ROLE_HUMAN, 0.0, events["dur"])
        return cls(
            role=events["role"].astype(np.int64),
            phase=_phase(events["beat"].astype(np.float64)),
            pitch=events["pitch"].astype(np.int64),
            vel_bin=events["vel"].astype(np.int64) // 8,
            dur_bin=_duration_bins(durs),
        )


class MarkovModel:
    """Fit with `fit(streams)`; then `log_probs`, `nll` and `step()` for generation."""

    def __init__(self) -> None:
        self.time_counts = np.zeros((3, PHASES, _step.TIME_CLASSES))
        self.pitch_counts = np.zeros((3, 128, 128))  # role, pitch fed, next AI pitch
        self.velocity_counts = np.zeros((3, _step.VELOCITY_BINS, _step.VELOCITY_BINS))
        self.duration_counts = np.zeros((3, DUR_CONTEXTS, _step.DURATION_BINS))
        self.tables: dict[str, np.ndarray] = {}

    def fit(self, streams: Iterable[np.ndarray]) -> MarkovModel:
        """Count (context, target) pairs over sorted EVENT_DTYPE streams, then smooth."""
        for events in streams:
            ctx = _Context.of(events)
            tg = _step.targets(events)
            np.add.at(self.time_counts, (ctx.role, ctx.phase, tg["time"]), 1)
            on = tg["time"] != _step.WAIT
            np.add.at(self.pitch_counts, (ctx.role[on], ctx.pitch[on], tg["pitch"][on]), 1)
            np.add.at(self.velocity_counts, (ctx.role[on], ctx.vel_bin[on], tg["velocity"][on]), 1)
            known = on & (tg["duration"] >= 0)
            np.add.at(
                self.duration_counts,
                (ctx.role[known], ctx.dur_bin[known], tg["duration"][known]),
                1,
            )
        self._smooth()
        return self

    def _smooth(self) -> None:
        t0 = _add_one(self.time_counts.sum(axis=(0, 1)))
        t1 = _witten_bell(self.time_counts.sum(axis=1), t0)  # (3, 177)
        time = _witten_bell(self.time_counts, t1[:, None, :])

        p0 = _add_one(self.pitch_counts.sum(axis=(0, 1)))
        # Interval counts per role: (3, 255), interval + 127 = next pitch - pitch fed.
        intervals = np.zeros((3, 255))
        src, dst = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
        for role in range(3):
            np.add.at(intervals[role], (dst - src + 127).ravel(), self.pitch_counts[role].ravel())
        by_interval = intervals[:, dst - src + 127]  # (3, 128 fed, 128 next)
        p1 = _witten_bell(by_interval, p0)
        p1 /= p1.sum(axis=-1, keepdims=True)  # intervals past 0..127 carried mass away
        pitch = _witten_bell(self.pitch_counts, p1)

        v0 = _add_one(self.velocity_counts.sum(axis=(0, 1)))
        velocity = _witten_bell(self.velocity_counts, v0)
        d0 = _add_one(self.duration_counts.sum(axis=(0, 1)))
        duration = _witten_bell(self.duration_counts, d0)
        self.tables = {
            name: np.log(table)
            for name, table in zip(HEADS, (time, pitch, velocity, duration), strict=True)
        }

    def log_probs(self, events: np.ndarray) -> dict[str, np.ndarray]:
        """Per-event log-probability tables like `Step.feed_batch` logits: (N, classes)."""
        c = _Context.of(events)
        return {
            "time": self.tables["time"][c.role, c.phase],
            "pitch": self.tables["pitch"][c.role, c.pitch],
            "velocity": self.tables["velocity"][c.role, c.vel_bin],
            "duration": self.tables["duration"][c.role, c.dur_bin],
        }

    def nll(self, events: np.ndarray) -> tuple[float, int]:
        """(total NLL in nats, number of events) of a stream; see `event_nll`."""
        return event_nll(self.log_probs(events), _step.targets(events))

    def step(self) -> MarkovStep:
        if not self.tables:
            raise ValueError("MarkovModel: fit() it before generating")
        return MarkovStep(self)


def event_nll(logits: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> tuple[float, int]:
    """(total NLL in nats, events) of next-AI-event predictions: per event the time head's
    cross-entropy plus, where the time target is not WAIT, those of pitch, velocity and
    duration (each skipped where its target is -1). `logits` are (N, classes) arrays of
    logits or log-probabilities (normalised here), as from `Step.feed_batch`."""
    total = 0.0
    for head in HEADS:
        z = logits[head].astype(np.float64)
        logp = z - z.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        target = targets[head]
        rows = np.flatnonzero(target >= 0)
        total -= float(logp[rows, target[rows]].sum())
    return total, len(targets["time"])


class MarkovStep:
    """The Markov chain behind the Step methods `offline.accompany` calls."""

    def __init__(self, model: MarkovModel) -> None:
        self.model = model
        self.rng = np.random.default_rng(0)
        self.mask: np.ndarray | None = None
        self.last: tuple[int, int, int, int, int] | None = None  # role, phase, pitch, vel, dur
        self.ends: dict[tuple[int, int], float] = {}  # (role, pitch) -> beat it stops sounding

    def reset(self) -> None:
        self.last = None
        self.ends.clear()

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def set_meter(self, numerator: int, denominator: int) -> None:
        """The chain has no bar context; kept for the Step interface."""

    def set_scale(self, root: int, intervals: list[int]) -> None:
        """The chain has no key context; kept for the Step interface."""

    def clear_scale(self) -> None:
        """The chain has no key context; kept for the Step interface."""

    def set_conditioning(self, mode: int, density: float, voices: float) -> None:
        pass  # the chain is not conditioned: it plays at the rate it was fitted on

    def note_off(self, role: int, pitch: int, beat: float) -> None:
        if (role, pitch) in self.ends:
            self.ends[role, pitch] = min(self.ends[role, pitch], beat)

    def sounding(self, beat: float) -> tuple[int, int]:
        """As Step.sounding: (human and clip, ai) pitch classes sounding at `beat`."""
        bits = [0, 0]
        for (role, pitch), end in self.ends.items():
            if end > beat:
                bits[role == _step.ROLE_AI] |= 1 << (pitch % 12)
        return bits[0], bits[1]

    def human_until(self, beat: float) -> float:
        """As Step.human_until: when the human's notes sounding at `beat` end."""
        ends = [e for (role, _), e in self.ends.items() if role == _step.ROLE_HUMAN]
        return max([beat, *ends])

    def sample_pitch(self, temperature: float, top_p: float, allowed: np.ndarray) -> int:
        assert self.last is not None, "sample_pitch before any feed"
        role, _, pitch, _, _ = self.last
        logp = self.model.tables["pitch"][role, pitch]
        return self._sample(logp, temperature, top_p, allowed=np.asarray(allowed, dtype=bool))

    def set_pitch_mask(self, mask: np.ndarray | None) -> None:
        self.mask = None if mask is None or not np.any(mask) else np.asarray(mask, dtype=bool)

    def feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> None:
        dur = 0.0 if role == _step.ROLE_HUMAN else duration
        self.ends[role, pitch] = beat + duration if duration > 0 else math.inf
        phase = int(_phase(np.array([beat]))[0])
        self.last = (role, phase, pitch, min(velocity, 127) // 8, _step.duration_bin(dur))

    def predict(
        self, temperature: float = 1.0, top_p: float = 0.95, wait_bias: float = 0.0
    ) -> Prediction:
        if self.last is None:
            return Prediction()
        role, phase, pitch, vel_bin, dur_bin = self.last
        t = self.model.tables
        time = self._sample(t["time"][role, phase], temperature, top_p, bias=wait_bias)
        if time == _step.WAIT:
            return Prediction()
        duration = self._sample(t["duration"][role, dur_bin], temperature, top_p)
        return Prediction(
            wait=False,
            shift=float(_step.SHIFT_VALUES[time]),
            pitch=self._sample(t["pitch"][role, pitch], temperature, top_p, allowed=self.mask),
            velocity=self._sample(t["velocity"][role, vel_bin], temperature, top_p) * 8 + 4,
            duration=float(_step.DURATION_VALUES[duration]),
        )

    def _sample(
        self,
        logp: np.ndarray,
        temperature: float,
        top_p: float,
        *,
        allowed: np.ndarray | None = None,
        bias: float = 0.0,
    ) -> int:
        # The same rule as cpp_step's sampler: bias on WAIT, mask, temperature, nucleus.
        z = logp.copy()
        if bias and len(z) == _step.TIME_CLASSES:
            z[_step.WAIT] += bias
        if allowed is not None:
            z[~allowed] = -np.inf
        if temperature <= 0:
            return int(np.argmax(z))
        p = np.exp((z - z.max()) / temperature)
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
        q = p[keep] / p[keep].sum()
        return int(keep[self.rng.choice(len(keep), p=q)])


@dataclass
class Prediction:
    """A plan, with the attributes of `lkjam._step.Prediction`."""

    wait: bool = True
    shift: float = 0.0
    pitch: int = -1
    velocity: int = 0
    duration: float = 0.0
