"""Event arrays: the numpy form of the event stream (docs/event-stream.md).

One row per note onset. The layout is the C++ `lkjam::Event` (16 bytes, packed,
little-endian), so arrays pass to `lkjam._step` without conversion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lkjam import _step

EVENT_DTYPE = np.dtype(
    [
        ("beat", "<f8"),  # onset, song beats
        ("dur", "<f4"),  # beats; <= 0 means unknown
        ("pitch", "u1"),  # MIDI 0..127
        ("vel", "u1"),  # MIDI 1..127
        ("role", "u1"),  # index into ROLES
        ("flags", "u1"),  # reserved, 0
    ]
)
assert EVENT_DTYPE.itemsize == 16

# Role names by the numbers the C++ encoding defines (lkjam._step.ROLE_*).
ROLE_INDEX = {"human": _step.ROLE_HUMAN, "clip": _step.ROLE_CLIP, "ai": _step.ROLE_AI}
ROLES = tuple(sorted(ROLE_INDEX, key=ROLE_INDEX.__getitem__))

# A note of unknown duration (live human input) lasts until its role's next later onset,
# at most this many beats.
UNKNOWN_DURATION_CAP = 4.0


def sort_events(events: np.ndarray) -> np.ndarray:
    """A copy of `events` in stream order: by (beat, role, pitch), stable."""
    order = np.lexsort((events["pitch"], events["role"], events["beat"]))
    return events[order]


def _roles(roles: Sequence[str | int] | npt.ArrayLike, n: int) -> np.ndarray:
    values = np.asarray(roles, dtype=object).reshape(-1).tolist()
    if len(values) != n:
        raise ValueError(f"roles has {len(values)} entries, beats has {n}")
    out = np.empty(n, dtype=np.uint8)
    for i, role in enumerate(values):
        if isinstance(role, str):
            if role not in ROLE_INDEX:
                raise ValueError(f"roles[{i}] must be one of {ROLES} (got {role!r})")
            out[i] = ROLE_INDEX[role]
        else:
            if not 0 <= int(role) < len(ROLES):
                raise ValueError(f"roles[{i}] must be in 0..{len(ROLES) - 1} (got {role})")
            out[i] = int(role)
    return out


def _column(name: str, values: npt.ArrayLike, n: int, lo: float, hi: float) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, beats has {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] must be in {lo:g}..{hi:g} (got {arr[bad[0]]:g})")
    return arr


def make_events(
    beats: npt.ArrayLike,
    durs: npt.ArrayLike,
    pitches: npt.ArrayLike,
    vels: npt.ArrayLike,
    roles: Sequence[str | int] | npt.ArrayLike,
) -> np.ndarray:
    """An EVENT_DTYPE array in stream order from parallel columns.

    Roles are names ("human", "clip", "ai") or their indices. Durations in beats, <= 0 for
    unknown. Raises ValueError naming the column and index of a bad value.
    """
    beat = _column("beats", beats, np.asarray(beats).size, -np.inf, np.inf)
    n = beat.shape[0]
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["beat"] = beat
    events["dur"] = _column("durs", durs, n, -np.inf, np.inf)
    events["pitch"] = _column("pitches", pitches, n, 0, 127)
    events["vel"] = _column("vels", vels, n, 1, 127)
    events["role"] = _roles(roles, n)
    return sort_events(events)


def note_ends(events: np.ndarray) -> np.ndarray:
    """(N,) float64 end beat of every note; an unknown duration (`dur <= 0`) ends at the next
    later onset of its role, at most `UNKNOWN_DURATION_CAP` beats after its onset."""
    beats = events["beat"].astype(np.float64)
    durs = events["dur"].astype(np.float64)
    ends = beats + durs
    unknown = durs <= 0
    for role in np.unique(events["role"][unknown]):
        of_role = events["role"] == role
        onsets = np.unique(beats[of_role])
        pick = unknown & of_role
        nxt = np.searchsorted(onsets, beats[pick], side="right")
        following = np.where(nxt < len(onsets), onsets[np.minimum(nxt, len(onsets) - 1)], np.inf)
        ends[pick] = np.minimum(following, beats[pick] + UNKNOWN_DURATION_CAP)
    return ends
