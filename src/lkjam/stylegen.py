"""Style folders made to order: plain accompaniment textures under a simple melody.

`write_style(folder, texture)` writes MIDI files as a user would hand to
`lkjam train --style`: a melody track named "human" and an accompaniment track (written as
role ai) in a known texture, so a bench can check that a trained style plays that texture
on tunes it never saw. Each file is a random diatonic progression (I IV V vi ii ..., ending
on a V-I cadence) in a random major or minor key, in 4/4 or 3/4.

Textures:
- `block`: a close-position triad on every beat, its top note under the melody, plus the
  chord's root in the bass on every beat;
- `arpeggio`: the chord broken in eighth notes (root, third, fifth, third, ...) under the
  melody, no separate bass.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from lkjam.engine.events import make_events
from lkjam.engine.keys import MAJOR, MINOR
from lkjam.engine.midi_file import write_midi

TEXTURES = ("block", "arpeggio")
MAJ, MIN = (0, 4, 7), (0, 3, 7)
# Chords by degree name: (root above the tonic, triad intervals), and where each may go next
# (the usual functional moves: predominant -> dominant -> tonic).
CHORDS = {
    "major": {"I": (0, MAJ), "ii": (2, MIN), "iii": (4, MIN), "IV": (5, MAJ), "V": (7, MAJ),
              "vi": (9, MIN)},
    "minor": {"i": (0, MIN), "III": (3, MAJ), "iv": (5, MIN), "V": (7, MAJ), "VI": (8, MAJ),
              "VII": (10, MAJ)},
}  # fmt: skip
MOVES = {
    "major": {"I": ("IV", "V", "vi", "ii", "iii"), "ii": ("V", "IV"), "iii": ("vi", "IV"),
              "IV": ("V", "I", "ii"), "V": ("I", "vi"), "vi": ("IV", "ii", "V")},
    "minor": {"i": ("iv", "V", "VI", "III", "VII"), "III": ("VI", "iv"), "iv": ("V", "i"),
              "V": ("i", "VI"), "VI": ("iv", "III", "V"), "VII": ("III", "i")},
}  # fmt: skip
# The melody spans MELODY_SPAN semitones from a floor drawn per file, so that "under the
# melody" is taught relative to the melody, not as a fixed register.
MELODY_FLOORS, MELODY_SPAN = (60, 69), 17  # floor C4..A4
BASS_LOW = 36  # the bass root lies in C2..B2
KEY_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"),
}
MELODY_VELOCITY, ACCOMPANIMENT_VELOCITY = 88, 64

Note = tuple[float, float, int, int]  # beat, duration, pitch, velocity


def progression(rng: np.random.Generator, mode: str, bars: int) -> list[str]:
    """One chord (degree name) per bar: a walk along MOVES from the tonic, then a V-I cadence."""
    tonic = "I" if mode == "major" else "i"
    chords = [tonic]
    while len(chords) < bars - 2:
        chords.append(str(rng.choice(MOVES[mode][chords[-1]])))
    return [*chords, "V", tonic]


def _chord_pcs(key_root: int, mode: str, degree: str) -> list[int]:
    offset, intervals = CHORDS[mode][degree]
    return [(key_root + offset + i) % 12 for i in intervals]


def melody(
    rng: np.random.Generator,
    key_root: int,
    mode: str,
    chords: list[str],
    bar_beats: int,
    floor: int = 67,
) -> list[Note]:
    """Chord tones on the beats, scale steps on the off-beats; the last bar holds the tonic."""
    in_range = np.arange(floor, floor + MELODY_SPAN + 1)
    notes: list[Note] = []
    pitch = int(rng.choice(in_range[5:13]))  # start mid-range
    for bar, degree in enumerate(chords):
        pcs = _chord_pcs(key_root, mode, degree)
        tones = in_range[np.isin(in_range % 12, pcs)]
        scale = MAJOR if mode == "major" else MINOR
        if mode == "minor" and degree == "V":  # the raised seventh of the major V
            scale = (*scale[:-1], 11)
        scale_pitches = in_range[np.isin((in_range - key_root) % 12, scale)]
        if bar == len(chords) - 1:
            tonic = tones[tones % 12 == key_root % 12]
            notes.append(
                (bar * bar_beats, bar_beats, int(tonic[np.abs(tonic - pitch).argmin()]), 80)
            )
            break
        beat = 0
        while beat < bar_beats:
            # Nearby chord tones are likelier: a singable line, not leaps.
            weights = np.exp(-np.abs(tones - pitch) / 3.0)
            pitch = int(rng.choice(tones, p=weights / weights.sum()))
            onset = bar * bar_beats + beat
            velocity = MELODY_VELOCITY if beat == 0 else MELODY_VELOCITY - 10
            shape = rng.random()
            if shape < 0.15 and beat + 2 <= bar_beats:
                notes.append((onset, 2.0, pitch, velocity))
                beat += 2
                continue
            if shape < 0.55:
                notes.append((onset, 1.0, pitch, velocity))
            else:  # two eighths: the chord tone, then a neighbour: mostly another chord tone
                line = tones if rng.random() < 0.6 else scale_pitches
                i = int(np.searchsorted(line, pitch))
                step = int(np.clip(i + rng.choice((-1, 1)), 0, len(line) - 1))
                notes.append((onset, 0.5, pitch, velocity))
                notes.append((onset + 0.5, 0.5, int(line[step]), velocity - 8))
            beat += 1
    return notes


def close_triad(pcs: list[int], below: int) -> list[int]:
    """The highest close-position voicing of `pcs` (root position or an inversion) whose top
    note is under `below`."""
    best: list[int] = []
    for bottom in range(below - 12, below):
        if bottom % 12 not in pcs:
            continue
        voicing = [bottom]
        while len(voicing) < len(pcs):  # the next chord tone above, each time
            nxt = voicing[-1] + 1
            while nxt % 12 not in pcs:
                nxt += 1
            voicing.append(nxt)
        if voicing[-1] < below and (not best or voicing[-1] > best[-1]):
            best = voicing
    return best


def _lowest_melody(notes: list[Note], t0: float, t1: float) -> int:
    """Lowest melody pitch sounding in [t0, t1) (the tune's lowest if none)."""
    inside = [p for b, d, p, _ in notes if b < t1 and b + d > t0]
    return min(inside, default=min(p for _, _, p, _ in notes))


def accompaniment(
    texture: str, key_root: int, mode: str, chords: list[str], bar_beats: int, tune: list[Note]
) -> list[Note]:
    """The accompaniment in `texture` for the chords, under the melody `tune`."""
    notes: list[Note] = []
    for bar, degree in enumerate(chords):
        pcs = _chord_pcs(key_root, mode, degree)
        start = bar * bar_beats
        if texture == "block":
            for beat in range(bar_beats):
                t = start + beat
                for pitch in close_triad(pcs, _lowest_melody(tune, t, t + 1)):
                    notes.append((t, 1.0, pitch, ACCOMPANIMENT_VELOCITY))
                bass = BASS_LOW + (pcs[0] - BASS_LOW) % 12
                notes.append((t, 1.0, bass, ACCOMPANIMENT_VELOCITY + 6))
        elif texture == "arpeggio":
            # Root position from the highest root whose fifth stays under the bar's melody.
            top = _lowest_melody(tune, start, start + bar_beats)
            root = top - 12 + (pcs[0] - (top - 12)) % 12
            while root + (pcs[2] - pcs[0]) % 12 >= top:
                root -= 12
            chord = [root, root + (pcs[1] - pcs[0]) % 12, root + (pcs[2] - pcs[0]) % 12]
            pattern = [chord[0], chord[1], chord[2], chord[1]]
            for k in range(2 * bar_beats):
                notes.append((start + k / 2, 0.5, pattern[k % 4], ACCOMPANIMENT_VELOCITY))
        else:
            raise ValueError(f"texture {texture!r} is not one of {', '.join(TEXTURES)}")
    return notes


def write_style(
    folder: str | Path, texture: str = "block", count: int = 100, seed: int = 0
) -> list[Path]:
    """Write `count` files `style_NNN.mid` into `folder` (made if missing); see module doc.
    The same seed writes the same files."""
    if texture not in TEXTURES:
        raise ValueError(f"texture {texture!r} is not one of {', '.join(TEXTURES)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        key_root = int(rng.integers(12))
        mode = "minor" if rng.random() < 0.4 else "major"
        bar_beats = int(rng.choice((4, 3)))
        chords = progression(rng, mode, int(rng.choice((8, 12, 16))))
        floor = int(rng.integers(MELODY_FLOORS[0], MELODY_FLOORS[1] + 1))
        tune = melody(rng, key_root, mode, chords, bar_beats, floor)
        parts = {
            "human": tune,
            "ai": accompaniment(texture, key_root, mode, chords, bar_beats, tune),
        }
        rows = [(*note, role) for role, notes in parts.items() for note in notes]
        events = make_events(
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
        )
        conductor = [
            (0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(int(rng.integers(80, 133))))),
            (0.0, mido.MetaMessage("time_signature", numerator=bar_beats, denominator=4)),
            (0.0, mido.MetaMessage("key_signature", key=KEY_NAMES[mode][key_root])),
        ]
        path = out / f"style_{n:03d}.mid"
        write_midi(path, events, conductor=conductor)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    """`python -m lkjam.bench style`: the style bench (in `lkjam.bench_music`)."""
    from lkjam.bench_music import main_style

    return main_style(argv)
