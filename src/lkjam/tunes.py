"""Hand-made test tunes: melodies that no training set contains, entered by hand.

They are what `python -m lkjam.bench music` accompanies: public-domain tunes whose titles
are in none of the music21 collections the model trains on (`training/corpus_sources.py`), and a few
originals. Each is a melody only; what an accompanist should play is for the model to find.

Notation (`parse_melody`), one token per note, bars separated by `|`:

- `F#4:1.5` is F sharp in octave 4 (middle C is C4) for 1.5 beats (quarter notes); `Bb`
  is B flat, `B` B natural. Durations are decimals or fractions (`1/3`).
- A note without an octave goes to the octave nearest the note before it (at a tritone,
  upward); a note without a duration keeps the one before it.
- `r:2` is a rest of 2 beats; `~` after a note ties it to the next note (same pitch).
- Every bar must fill the meter exactly, so a slip of entry is an error, not a shifted tune.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np

from lkjam.engine.events import make_events
from lkjam.engine.keys import NOTE_NAMES
from lkjam.engine.keys import SCALES as KEY_SCALES
from lkjam.engine.midi_file import write_midi

# The tunes' scales: lkjam's named ones, and a blues as a melody uses it (major plus the
# blue third and seventh), not the six-note blues scale.
SCALES: dict[str, tuple[int, ...]] = {
    **{name: KEY_SCALES[name] for name in ("major", "minor", "dorian")},
    "blues": (0, 2, 3, 4, 5, 7, 9, 10, 11),
}
# Key-signature names as mido spells them, by tonic pitch class.
_MAJOR_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_KEYS = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")
_TOKEN = re.compile(
    r"^(?:(?P<rest>r)|(?P<letter>[A-G])(?P<acc>#|b)?(?P<octave>-?\d)?)"
    r"(?::(?P<dur>[0-9./]+))?(?P<tie>~)?$"
)
DOWNBEAT_VELOCITY, VELOCITY = 88, 76  # a player's light accent on the bar's first beat


@dataclass(frozen=True)
class Tune:
    name: str  # short id: file name and `--tunes` value
    title: str
    root: int  # key: tonic pitch class, 0 = C
    minor: bool
    numerator: int
    denominator: int
    notes: str  # the melody, in the notation of the module doc
    bpm: float = 100.0
    mode: str = ""  # the scale when the tune is not plain major/minor ("dorian", "blues")
    source: str = "traditional"

    @property
    def bar_beats(self) -> float:
        return 4.0 * self.numerator / self.denominator

    @property
    def key_name(self) -> str:
        """The key signature as mido and `lkjam accompany --key` write it ("Em", "Bb")."""
        return (_MINOR_KEYS if self.minor else _MAJOR_KEYS)[self.root]

    @property
    def scale(self) -> tuple[int, ...]:
        """Intervals above the root of the scale the melody lives in."""
        return SCALES[self.mode or ("minor" if self.minor else "major")]


def parse_melody(text: str, bar_beats: float) -> list[tuple[float, float, int]]:
    """(onset beat, duration, MIDI pitch) per note of `text` (module doc notation); ValueError
    naming the bar and token for a bad token, a bar that does not fill the meter, or a tie
    to a different pitch."""
    bar_len = Fraction(bar_beats).limit_denominator(64)
    notes: list[tuple[Fraction, Fraction, int]] = []
    now = Fraction(0)
    dur = Fraction(1)
    previous: int | None = None
    tied = False
    bars = [bar.split() for bar in text.split("|")]
    if bars and not bars[-1]:
        bars.pop()  # a closing bar line
    for number, tokens in enumerate(bars, start=1):
        bar_start = now
        for token in tokens:
            match = _TOKEN.match(token)
            if match is None:
                raise ValueError(f"bar {number}: cannot read {token!r}")
            if match["dur"]:
                try:
                    dur = Fraction(match["dur"])
                except (ValueError, ZeroDivisionError):
                    raise ValueError(f"bar {number}: bad duration in {token!r}") from None
                if dur <= 0:
                    raise ValueError(f"bar {number}: duration must be > 0 in {token!r}")
            if match["rest"]:
                if tied:
                    raise ValueError(f"bar {number}: a tie into the rest {token!r}")
                now += dur
                continue
            pc = (NOTE_NAMES[match["letter"]] + {None: 0, "#": 1, "b": -1}[match["acc"]]) % 12
            if match["octave"] is not None:
                pitch = 12 * (int(match["octave"]) + 1) + NOTE_NAMES[match["letter"]]
                pitch += {None: 0, "#": 1, "b": -1}[match["acc"]]
            elif previous is None:
                raise ValueError(f"bar {number}: the first note {token!r} needs an octave")
            else:  # the octave nearest the previous note; a tritone goes up
                pitch = previous + (pc - previous + 5) % 12 - 5
            if not 0 <= pitch <= 127:
                raise ValueError(f"bar {number}: {token!r} is outside MIDI pitches")
            if tied:
                start, held, tied_pitch = notes[-1]
                if tied_pitch != pitch:
                    raise ValueError(f"bar {number}: tie from {tied_pitch} into {token!r}")
                notes[-1] = (start, held + dur, pitch)
            else:
                notes.append((now, dur, pitch))
            previous, tied = pitch, bool(match["tie"])
            now += dur
        if now - bar_start != bar_len:
            raise ValueError(f"bar {number}: {float(now - bar_start):g} beats, not {bar_beats:g}")
    if tied:
        raise ValueError("the last note is tied to nothing")
    return [(float(b), float(d), p) for b, d, p in notes]


def tune_events(tune: Tune) -> np.ndarray:
    """The melody as EVENT_DTYPE, role human."""
    notes = parse_melody(tune.notes, tune.bar_beats)
    beats = np.array([n[0] for n in notes])
    on_bar = np.isclose(np.mod(beats + 1e-9, tune.bar_beats), 1e-9, atol=1e-6)
    return make_events(
        beats,
        [n[1] for n in notes],
        [n[2] for n in notes],
        np.where(on_bar, DOWNBEAT_VELOCITY, VELOCITY),
        ["human"] * len(notes),
    )


def tune_bars(tune: Tune) -> int:
    """Number of bars in the melody (each one whole: `parse_melody` checks)."""
    return sum(1 for bar in tune.notes.split("|") if bar.strip())


def conductor(tune: Tune) -> list[tuple[float, mido.MetaMessage]]:
    """Tempo, meter and key signature, as `write_midi` takes them."""
    return [
        (0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tune.bpm))),
        (
            0.0,
            mido.MetaMessage(
                "time_signature", numerator=tune.numerator, denominator=tune.denominator
            ),
        ),
        (0.0, mido.MetaMessage("key_signature", key=tune.key_name)),
    ]


def write_tunes(folder: str | Path, tunes: tuple[Tune, ...] | None = None) -> list[Path]:
    """Write `<name>.mid` per tune (default: all) into `folder` (made if missing): a human
    track under a conductor track with tempo, meter and key signature."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for tune in TUNES if tunes is None else tunes:
        path = out / f"{tune.name}.mid"
        write_midi(path, tune_events(tune), conductor=conductor(tune))
        paths.append(path)
    return paths


def tune_by_name(name: str) -> Tune:
    for tune in TUNES:
        if tune.name == name:
            return tune
    raise KeyError(f"no tune named {name!r} (tunes: {', '.join(t.name for t in TUNES)})")


TUNES: tuple[Tune, ...] = (
    Tune(
        "ode_to_joy",
        "Ode to Joy (Beethoven)",
        root=2,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=108,
        source="Beethoven, Symphony no. 9 (1824)",
        notes="""
        F#4:1 F# G A | A G F# E | D D E F# | F#:1.5 E:.5 E:2 |
        F#:1 F# G A | A G F# E | D D E F# | E:1.5 D:.5 D:2 |
        E:1 E F# D | E F#:.5 G F#:1 D | E F#:.5 G F#:1 E | D E A3:2 |
        F#4:1 F# G A | A G F# E | D D E F# | E:1.5 D:.5 D:2 |
        """,
    ),
    Tune(
        "frere_jacques",
        "Frère Jacques",
        root=5,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=112,
        notes="""
        F4:1 G A F | F G A F | A Bb C5:2 | A4:1 Bb C5:2 |
        C5:.5 D C Bb A4:1 F | C5:.5 D C Bb A4:1 F | F4 C F:2 | F:1 C F:2 |
        """,
    ),
    Tune(
        "twinkle",
        "Twinkle, Twinkle, Little Star",
        root=0,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=100,
        notes="""
        C4:1 C G4 G | A A G:2 | F:1 F E E | D D C:2 |
        G4:1 G F F | E E D:2 | G:1 G F F | E E D:2 |
        C:1 C G4 G | A A G:2 | F:1 F E E | D D C:2 |
        """,
    ),
    Tune(
        "amazing_grace",
        "Amazing Grace (slow 3/4)",
        root=7,
        minor=False,
        numerator=3,
        denominator=4,
        bpm=72,
        notes="""
        r:2 D4:1 | G4:2 B:.5 G | B:2 A:1 | G:2 E:1 | D:2 D:1 |
        G:2 B:.5 G | B:2 A:1 | D5:3~ | D:2 B4:1 |
        D5:2 B4:.5 G | B:2 A:1 | G:2 E:1 | D:2 D:1 |
        G:2 B:.5 G | B:2 A:1 | G:3 |
        """,
    ),
    Tune(
        "scarborough_fair",
        "Scarborough Fair (E dorian)",
        root=4,
        minor=True,
        mode="dorian",
        numerator=3,
        denominator=4,
        bpm=96,
        notes="""
        E4:2 E:1 | B4:2 B:1 | F#4:1.5 G:.5 F#:1 | E:3 |
        r:1 B4 D5 | E:2 D:1 | B4:1 C#5 A4 | B:3 |
        r:1 E5 E | E:2 D:1 | B4:2 B:1 | A:1 G F# |
        B4:2 A:1 | G:1 F# D | E:2 D:1 | E:3 |
        """,
    ),
    Tune(
        "saints",
        "When the Saints Go Marching In",
        root=5,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=120,
        notes="""
        r:1 F4 A Bb | C5:4 | r:1 F4 A Bb | C5:4 |
        r:1 F4 A Bb | C5:2 A4:2 | F:2 A:2 | G:4 |
        r:1 A A G | F:3 F:1 | A:2 C5:2 | C:2 Bb4:2 |
        r:1 A Bb C5 | A4:2 F:2 | G:2 G:2 | F:4 |
        """,
    ),
    Tune(
        "drunken_sailor",
        "Drunken Sailor (D dorian)",
        root=2,
        minor=True,
        mode="dorian",
        numerator=4,
        denominator=4,
        bpm=116,
        notes="""
        A4:1 A:.5 A A:1 A:.5 A | A:1 D4 F A | G G:.5 G G:1 G:.5 G | G:1 C4 E G |
        A:1 A:.5 A A:1 A:.5 A | A:1 B C5 D | C A4 G E | D:2 D:2 |
        A4:2 A | A:1 D4 F A | G:2 G | G:1 C4 E G |
        A:2 A | A:1 B C5 D | C A4 G E | D:2 D:2 |
        """,
    ),
    Tune(
        "row_your_boat",
        "Row, Row, Row Your Boat (6/8)",
        root=0,
        minor=False,
        numerator=6,
        denominator=8,
        bpm=96,
        notes="""
        C4:1.5 C | C:1 D:.5 E:1.5 | E:1 D:.5 E:1 F:.5 | G:3 |
        C5:.5 C C G4 G G | E E E C C C | G4:1 F:.5 E:1 D:.5 | C:3 |
        """,
    ),
    Tune(
        "blues_in_g",
        "Twelve-bar blues in G (original)",
        root=7,
        minor=False,
        mode="blues",
        numerator=4,
        denominator=4,
        bpm=96,
        source="original",
        notes="""
        G4:.5 Bb B D5:1 B4:.5 G:1 | r:.5 D5 F D B4:2 |
        G4:.5 Bb B D5:1 B4:.5 G:1 | r:1 F4:.5 G G:2 |
        C5:.5 Eb E G:1 E:.5 C:1 | r:.5 G4 Bb G E:2 |
        G4:.5 Bb B D5:1 B4:.5 G:1 | r:1 D5:.5 B4 G:2 |
        A4:.5 C5 D F#:1 D:.5 A4:1 | G4:.5 Bb C5 E:1 C:.5 G4:1 |
        D5:1.5 B4:.5 G:1 Bb:.5 B | A:1 F#:1 G:2 |
        """,
    ),
    Tune(
        "pop_syncopated",
        "Syncopated pop tune in G (original)",
        root=7,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=104,
        source="original",
        notes="""
        D5:.5 D r B4:1 A:.5 G:1 | r:.5 A4 A F#:1 E:.5 D:1 |
        r:.5 E4 G B:1 A:.5 G E | G4:1.5 E:.5~ E:2 |
        D5:.5 D r B4:1 D5:.5 G:1 | F#5:1.5 E:.5~ E:1 D:1 |
        E5:.5 D C E:1 D:.5 C B4~ | B4:.5 A:1 G:2.5 |
        """,
    ),
    Tune(
        "ballad_in_eb",
        "Slow ballad in E flat (original)",
        root=3,
        minor=False,
        numerator=4,
        denominator=4,
        bpm=66,
        source="original",
        notes="""
        G4:2 Bb:1 G:1 | C5:3 Bb4:1 | Ab4:2 C5:1 Eb:1 | D5:4 |
        Eb5:2 D:1 C:1 | Bb4:3 G:1 | C5:1.5 Ab4:.5 F:1 D:1 | Eb4:4 |
        """,
    ),
    Tune(
        "minor_song",
        "Song in D minor (original)",
        root=2,
        minor=True,
        numerator=4,
        denominator=4,
        bpm=92,
        source="original",
        notes="""
        D4:1 F A:1.5 G:.5 | Bb4:1 A G:2 | E4:1 G A:1.5 C#5:.5 | D5:3 r:1 |
        F5:1 E:.5 D A4:2 | Bb4:1 D5 F D | G4:1 Bb A E | D:4 |
        """,
    ),
    Tune(
        "lullaby_68",
        "Lullaby in E minor, 6/8 (original)",
        root=4,
        minor=True,
        numerator=6,
        denominator=8,
        bpm=80,
        source="original",
        notes="""
        E4:1 G:.5 B:1 G:.5 | A4:1 C5:.5 E:1 C:.5 | B4:1 A:.5 F#:1 D#:.5 | E4:1.5 G:1 B:.5 |
        E5:1 D:.5 B4:1 G:.5 | A4:1 F#:.5 D:1.5 | C5:1 B4:.5 A G F# | E4:3 |
        """,
    ),
)
