"""Keys and scales, written once: pitch-class names, the named scales, and the two ways a
user writes a key: a key name as MIDI files and music notation spell it ("C", "F#m",
"Bb", "Ebm") and a scale for `lkjam engine --scale` ("D dorian", "2:0,2,3,5,7,9,10").
"""

from __future__ import annotations

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Named scales (semitones above the root).
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
MAJOR, MINOR = SCALES["major"], SCALES["minor"]


def pitch_class(name: str) -> int:
    """ "C", "F#", "Bb", "Ebb" -> 0..11; ValueError for anything else."""
    letter, accidentals = name[:1].upper(), name[1:]
    if letter not in NOTE_NAMES or accidentals.strip("#b") or ("#" in name and "b" in name[1:]):
        raise ValueError(f"{name!r} is not a note name like C, F# or Bb")
    return (NOTE_NAMES[letter] + accidentals.count("#") - accidentals.count("b")) % 12


def key_of(text: str) -> tuple[int, bool]:
    """A key name ("C", "F#m", "Bb", "Ebm") -> (tonic pitch class, minor)."""
    name = text.strip()
    minor = name.endswith("m")
    body = name[:-1] if minor else name
    if not body or len(body) > 2:
        raise ValueError(f"key {text!r} is not a key like C, F#m or Bb")
    try:
        return pitch_class(body), minor
    except ValueError:
        raise ValueError(f"key {text!r} is not a key like C, F#m or Bb") from None


def parse_key(text: str) -> tuple[int, tuple[int, ...]]:
    """A key name -> (root, scale intervals), major or natural minor."""
    root, minor = key_of(text)
    return root, MINOR if minor else MAJOR


def parse_scale(text: str) -> tuple[int, tuple[int, ...]]:
    """ "D dorian", "F# major" or "2:0,2,3,5,7,9,10" -> (root, intervals); ValueError."""
    usage = (
        f"scale {text!r}: use 'ROOT NAME' (e.g. 'D dorian'; names: {', '.join(SCALES)}) "
        "or 'ROOT:I,I,...' with pitch classes 0..11"
    )
    try:
        if ":" in text:
            root_text, rest = text.split(":", 1)
            root, intervals = int(root_text), tuple(int(i) for i in rest.split(","))
        else:
            note, name = text.split()
            root, intervals = pitch_class(note), SCALES[name.lower()]
    except (ValueError, KeyError):
        raise ValueError(usage) from None
    if not 0 <= root <= 11 or not all(0 <= i <= 11 for i in intervals):
        raise ValueError(f"scale {text!r}: pitch classes must be in 0..11")
    return root, intervals
