"""Music metrics on event streams (numpy only): how well the AI part fits the input part.

All functions take an array of `lkjam.engine.events.EVENT_DTYPE` (fields `beat`, `dur`,
`pitch`, `role`) holding both the input part (human and/or clip notes) and the AI part.
Which roles count as input is `input_roles` (default human and clip); role ai is the AI.

Time is cut into **frames** at every note onset and note end, so inside a frame the set of
sounding notes is constant. Frame-based shares are weighted by frame length in beats: this
is the limit of ReaLchords' fixed-grid frames as the grid gets finer, and does not depend on
a grid size. A note sounds in `[beat, beat + dur)`. A note with unknown duration (`dur <= 0`,
live human input) is taken to last until the next later onset of its role, at most
`lkjam.engine.events.UNKNOWN_DURATION_CAP` beats.

A metric with nothing to measure (say, NiCR when the AI never plays) is `nan`, not 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lkjam.engine.events import ROLE_INDEX, note_ends
from lkjam.engine.harmony import FITS_CHORD

ROLE_HUMAN, ROLE_CLIP, ROLE_AI = ROLE_INDEX["human"], ROLE_INDEX["clip"], ROLE_INDEX["ai"]
INPUT_ROLES: tuple[int, ...] = (ROLE_HUMAN, ROLE_CLIP)

_PC_BITS = 1 << np.arange(12, dtype=np.int64)  # pitch class -> bit in a 12-bit set
_POPCOUNT = np.array([bin(m).count("1") for m in range(4096)], dtype=np.int64)


@dataclass(frozen=True)
class Frames:
    """Piecewise-constant sounding state. F frames; frame i is [bounds[i], bounds[i+1])."""

    bounds: np.ndarray  # (F+1,) beats
    widths: np.ndarray  # (F,) beats
    input_pcs: np.ndarray  # (F,) int64 12-bit pitch-class sets sounding from the input roles
    ai_pcs: np.ndarray  # (F,) int64 12-bit pitch-class sets sounding from the AI


def frames(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> Frames:
    """Cut the stream into frames at every onset and end (see module doc)."""
    beats = events["beat"].astype(np.float64)
    ends = note_ends(events)
    keep = ends > beats  # zero-length notes never sound
    bounds = np.unique(np.concatenate([beats[keep], ends[keep]]))
    n_frames = max(len(bounds) - 1, 0)
    pcs = events["pitch"].astype(np.int64) % 12
    is_input = np.isin(events["role"], np.asarray(input_roles))
    is_ai = events["role"] == ROLE_AI

    def sounding(select: np.ndarray) -> np.ndarray:
        # Difference array over frames: +1 where a note starts, -1 where it ends, per pitch class.
        sel = select & keep
        counts = np.zeros((n_frames + 1, 12), dtype=np.int64)
        np.add.at(counts, (np.searchsorted(bounds, beats[sel]), pcs[sel]), 1)
        np.add.at(counts, (np.searchsorted(bounds, ends[sel]), pcs[sel]), -1)
        on = np.cumsum(counts, axis=0)[:n_frames] > 0
        result: np.ndarray = on @ _PC_BITS
        return result

    return Frames(
        bounds=bounds,
        widths=np.diff(bounds),
        input_pcs=sounding(is_input),
        ai_pcs=sounding(is_ai),
    )


def _weighted_share(hit: np.ndarray, over: np.ndarray, widths: np.ndarray) -> float:
    total = float(widths[over].sum())
    if total <= 0:
        return float("nan")
    return float((widths * hit)[over].sum() / total)


def nicr(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> float:
    """Note-in-chord ratio: over frames where input and AI both sound, the share of the input's
    sounding pitch classes that the AI also sounds (for a single melody note: 1 or 0)."""
    f = frames(events, input_roles)
    both = (f.input_pcs != 0) & (f.ai_pcs != 0)
    n_input = np.maximum(_POPCOUNT[f.input_pcs], 1)
    share = _POPCOUNT[f.input_pcs & f.ai_pcs] / n_input
    return _weighted_share(share, both, f.widths)


def chord_fit(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> float:
    """Over frames where the AI sounds and all sounding notes make two or more distinct pitch
    classes, the share whose pitch-class set lies inside one triad or seventh chord."""
    f = frames(events, input_roles)
    union = f.input_pcs | f.ai_pcs
    counted = (f.ai_pcs != 0) & (_POPCOUNT[union] >= 2)
    return _weighted_share(FITS_CHORD[union], counted, f.widths)


def doubling(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> float:
    """Melody doubling: over frames where input and AI both sound, the share in which the AI's
    only pitch class is one the input sounds (an echo of the melody, not harmony)."""
    f = frames(events, input_roles)
    both = (f.input_pcs != 0) & (f.ai_pcs != 0)
    echo = (_POPCOUNT[f.ai_pcs] == 1) & ((f.ai_pcs & f.input_pcs) != 0)
    return _weighted_share(echo, both, f.widths)


def pc_entropy(events: np.ndarray) -> float:
    """Entropy in bits (0 .. log2 12 = 3.585) of the pitch classes of the AI's note onsets."""
    pcs = events["pitch"][events["role"] == ROLE_AI].astype(np.int64) % 12
    if len(pcs) == 0:
        return float("nan")
    p = np.bincount(pcs, minlength=12) / len(pcs)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def overlap(
    events: np.ndarray,
    input_roles: Sequence[int] = INPUT_ROLES,
    tolerance: float = 1 / 16,
) -> float:
    """Call-and-response overlap rate: the share of AI notes that sound together with input
    notes for more than `tolerance` beats (which forgives legato release/attack jitter)."""
    ai = events[events["role"] == ROLE_AI]
    if len(ai) == 0:
        return float("nan")
    f = frames(events, input_roles)
    if len(f.bounds) == 0:  # nothing ever sounds (all zero-length notes)
        return 0.0
    # Cumulative input-sounding time at each frame bound; overlap of [b, e) = cum(e) - cum(b).
    cum = np.concatenate([[0.0], np.cumsum(f.widths * (f.input_pcs != 0))])
    start = ai["beat"].astype(np.float64)
    end = note_ends(events)[events["role"] == ROLE_AI]
    shared = np.interp(end, f.bounds, cum) - np.interp(start, f.bounds, cum)
    return float(np.mean(shared > tolerance))


def phrases(
    events: np.ndarray,
    input_roles: Sequence[int] = INPUT_ROLES,
    phrase_gap: float = 2.0,
) -> np.ndarray:
    """(P, 3) float64 rows (first onset, last onset, end) of the input's phrases: a phrase ends
    where the input falls silent for at least `phrase_gap` beats."""
    select = np.isin(events["role"], np.asarray(input_roles))
    beats = events["beat"][select].astype(np.float64)
    ends = note_ends(events)[select]
    if len(beats) == 0:
        return np.zeros((0, 3))
    order = np.argsort(beats, kind="stable")
    beats, ends = beats[order], ends[order]
    reach = np.maximum.accumulate(ends)  # latest end among notes so far
    starts_phrase = np.concatenate([[True], beats[1:] - reach[:-1] >= phrase_gap])
    first = np.flatnonzero(starts_phrase)
    last = np.concatenate([first[1:], [len(beats)]]) - 1
    return np.stack([beats[first], beats[last], reach[last]], axis=1)


def answer_delays(
    events: np.ndarray,
    input_roles: Sequence[int] = INPUT_ROLES,
    phrase_gap: float = 2.0,
) -> np.ndarray:
    """(P,) beats from the end of each input phrase to the first AI onset after the phrase's
    last onset and before the next phrase (negative: the AI came in over the last note);
    nan where the AI did not answer."""
    spans = phrases(events, input_roles, phrase_gap)
    ai_onsets = np.sort(events["beat"][events["role"] == ROLE_AI].astype(np.float64))
    next_start = np.concatenate([spans[1:, 0], [np.inf]])
    idx = np.searchsorted(ai_onsets, spans[:, 1], side="right")
    found = np.full(len(spans), np.nan)
    ok = idx < len(ai_onsets)
    found[ok] = ai_onsets[idx[ok]]
    answered = ok & (found < next_start)
    return np.where(answered, found - spans[:, 2], np.nan)


def answer_delay(
    events: np.ndarray,
    input_roles: Sequence[int] = INPUT_ROLES,
    phrase_gap: float = 2.0,
) -> float:
    """Mean answer delay in beats over the answered phrases (nan if none was answered)."""
    delays = answer_delays(events, input_roles, phrase_gap)
    delays = delays[~np.isnan(delays)]
    return float(delays.mean()) if len(delays) else float("nan")


def coverage(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> float:
    """The share of the time the input sounds during which the AI sounds too."""
    f = frames(events, input_roles)
    return _weighted_share(f.ai_pcs != 0, f.input_pcs != 0, f.widths)


def longest_gap(
    events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES, rest: float = 4.0
) -> float:
    """The longest stretch, in beats, during which the input sounds and the AI does not. An
    input rest shorter than `rest` beats does not end a stretch (nor count); a longer one
    does, and so does any AI note."""
    f = frames(events, input_roles)
    longest = run = quiet = 0.0
    rows = zip(f.widths.tolist(), f.input_pcs.tolist(), f.ai_pcs.tolist(), strict=True)
    for width, inp, ai in rows:
        if ai:
            run = quiet = 0.0
        elif inp:
            run, quiet = run + width, 0.0
            longest = max(longest, run)
        else:
            quiet += width
            if quiet >= rest:
                run = 0.0
    return longest


def _top_pitch(events: np.ndarray, select: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at),) highest pitch of the selected notes sounding at each beat in `at`; -1: none."""
    beats = events["beat"][select].astype(np.float64)
    ends = note_ends(events)[select]
    pitch = events["pitch"][select].astype(np.int64)
    top = np.full(len(at), -1, dtype=np.int64)
    for start in range(0, len(beats), 512):  # bounded memory: (frames, 512) at a time
        b, e, p = beats[start : start + 512], ends[start : start + 512], pitch[start : start + 512]
        on = (b[None, :] <= at[:, None]) & (at[:, None] < e[None, :])
        top = np.maximum(top, np.where(on, p[None, :], -1).max(axis=1, initial=-1))
    return top


def above(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> float:
    """Over frames where input and AI both sound, the share where the AI's top note is above
    the input's top note (an accompaniment sits under the melody)."""
    f = frames(events, input_roles)
    mid = f.bounds[:-1] + f.widths / 2
    ai_top = _top_pitch(events, events["role"] == ROLE_AI, mid)
    input_top = _top_pitch(events, np.isin(events["role"], np.asarray(input_roles)), mid)
    both = (ai_top >= 0) & (input_top >= 0)
    return _weighted_share(ai_top > input_top, both, f.widths)


def onsets_per_beat(events: np.ndarray, role: int = ROLE_AI) -> float:
    """Onsets of `role` per beat over the span of the whole stream (first onset to last end)."""
    if len(events) == 0:
        return float("nan")
    span = float(note_ends(events).max() - events["beat"].min())
    return float(np.sum(events["role"] == role) / span) if span > 0 else float("nan")


def answer_lengths(
    events: np.ndarray,
    input_roles: Sequence[int] = INPUT_ROLES,
    phrase_gap: float = 2.0,
) -> np.ndarray:
    """(P,) per input phrase: the AI's answer (first AI onset after the phrase's last onset
    to the last AI note end before the next phrase) over the phrase's length; nan where the
    AI did not answer."""
    spans = phrases(events, input_roles, phrase_gap)
    is_ai = events["role"] == ROLE_AI
    ai_beats = events["beat"][is_ai].astype(np.float64)
    ai_ends = note_ends(events)[is_ai]
    next_start = np.concatenate([spans[1:, 0], [np.inf]])
    out = np.full(len(spans), np.nan)
    for i, (first, last, end) in enumerate(spans):
        inside = (ai_beats > last) & (ai_beats < next_start[i])
        if inside.any() and end > first:
            answer = min(ai_ends[inside].max(), next_start[i]) - ai_beats[inside].min()
            out[i] = answer / (end - first)
    return out


def summary(events: np.ndarray, input_roles: Sequence[int] = INPUT_ROLES) -> dict[str, float]:
    """All metrics by name, as printed by `lkjam eval` and the demo report."""
    return {
        "nicr": nicr(events, input_roles),
        "chord_fit": chord_fit(events, input_roles),
        "doubling": doubling(events, input_roles),
        "pc_entropy": pc_entropy(events),
        "coverage": coverage(events, input_roles),
        "above": above(events, input_roles),
        "overlap": overlap(events, input_roles),
        "answer_delay_beats": answer_delay(events, input_roles),
    }
