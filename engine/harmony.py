"""Which pitch-class sets make a chord: the rule behind the decoder's chord lock
(`lkjam.engine.decoder`) and the chord-fit metric (`lkjam.metrics.chord_fit`).

A set of pitch classes is a 12-bit mask (bit p = pitch class p). It "fits a chord" when it
lies inside a triad or seventh chord on some root.
"""

from __future__ import annotations

import numpy as np

# Chord templates as intervals above the root: triads and seventh chords, over all 12 roots.
CHORD_TYPES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "dom7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "half-dim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
}


def _chord_masks() -> np.ndarray:
    masks = {
        sum(1 << ((root + i) % 12) for i in intervals)
        for intervals in CHORD_TYPES.values()
        for root in range(12)
    }
    return np.array(sorted(masks), dtype=np.int64)


def _fits_a_chord_table() -> np.ndarray:
    # (4096,) bool: pitch-class set m lies inside at least one chord template.
    sets = np.arange(4096, dtype=np.int64)[:, None]
    return np.any((sets & ~_chord_masks()[None, :]) == 0, axis=1)


FITS_CHORD = _fits_a_chord_table()
