"""Keys and scales are parsed by one module, lkjam.engine.keys."""

from __future__ import annotations

import pytest
from lkjam.engine.keys import MAJOR, MINOR, SCALES, key_of, parse_key, parse_scale, pitch_class


def test_note_names() -> None:
    assert [pitch_class(n) for n in ("C", "c#", "Db", "B#", "Cb", "Ebb")] == [0, 1, 1, 0, 11, 2]
    for bad in ("H", "", "C#b", "Cx", "3"):
        with pytest.raises(ValueError, match="note name"):
            pitch_class(bad)


def test_key_names_as_midi_files_write_them() -> None:
    assert parse_key("C") == (0, MAJOR)
    assert parse_key("F#m") == (6, MINOR)
    assert parse_key("Bb")[0] == 10 and parse_key("Ebm") == (3, MINOR)
    assert key_of("Abm") == (8, True)
    for bad in ("", "m", "Hm", "C##m#", "dorian"):
        with pytest.raises(ValueError, match="not a key"):
            parse_key(bad)


def test_scales_by_name_or_by_pitch_classes() -> None:
    assert parse_scale("D dorian") == (2, SCALES["dorian"])
    assert parse_scale("F# major") == (6, MAJOR)
    assert parse_scale("2:0,2,3,5,7,9,10") == (2, (0, 2, 3, 5, 7, 9, 10))
    with pytest.raises(ValueError, match="ROOT NAME"):
        parse_scale("D sharp-minor")
    with pytest.raises(ValueError, match=r"0\.\.11"):
        parse_scale("12:0,4,7")
