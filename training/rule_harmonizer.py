"""The rule harmonizer: the baseline an AI accompanist has to beat (`lkjam eval`).

Per beat it picks the diatonic triad of the key that covers most of the melody there (the
rule that labels the folk tunes, `chords.infer_chords`, at one chord per beat) and plays it as
a block chord in close position under the melody (`textures.close_voicing`), held for the
beat. It needs the key; with none it plays nothing.
"""

from __future__ import annotations

import numpy as np
from lkjam.engine.events import EVENT_DTYPE, note_ends
from lkjam.training.chords import infer_chords
from lkjam.training.pieces import ROLE_AI
from lkjam.training.textures import close_voicing

VELOCITY = 72


def harmonize(melody: np.ndarray, key_root: int, minor: bool, bar_beats: float = 4.0) -> np.ndarray:
    """Role-ai block chords (EVENT_DTYPE, sorted) for `melody` (EVENT_DTYPE, any roles)."""
    if key_root < 0 or len(melody) == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    beat = melody["beat"].astype(np.float64)
    dur = note_ends(melody) - beat
    pitch = melody["pitch"].astype(np.int64)
    rows: list[tuple[float, float, int]] = []
    for t0, t1, pcs in infer_chords(beat, dur, pitch, key_root, minor, bar_beats, seg=1.0):
        inside = (beat < t1) & (beat + dur > t0)
        low = int(pitch[inside].min()) if inside.any() else 72
        rows += [(t0, t1 - t0, p) for p in close_voicing(list(pcs), low)]
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    if rows:
        table = np.array(rows, dtype=np.float64)
        out["beat"], out["dur"], out["pitch"] = table[:, 0], table[:, 1], table[:, 2]
        out["vel"], out["role"] = VELOCITY, ROLE_AI
    return out[np.lexsort((out["pitch"], out["beat"]))]
