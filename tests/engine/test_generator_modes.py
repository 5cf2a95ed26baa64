"""The Mode control on the simulated-clock rig: the same rig plays in accompany mode and goes
silent, releasing what sounds, in mode off."""

from __future__ import annotations

from pathlib import Path

from generator_rig import LONG, NOW, Rig


def _rig_that_has_played(tmp_path: Path) -> Rig:
    """Accompany mode, a human note, a second of song: 16-beat AI notes still sounding."""
    rig = Rig(tmp_path, {**NOW, **LONG})
    rig.message("controls", mode="accompany")
    rig.run(0.05)
    rig.midi(0x90, 60, 100)
    rig.run(1.0)
    return rig


def test_mode_off_plays_nothing_and_releases_what_sounds(tmp_path: Path) -> None:
    control = _rig_that_has_played(tmp_path / "control")
    off = _rig_that_has_played(tmp_path / "off")
    # Positive control: the rig plays, and its long notes outlast the second.
    assert off.ai_on() == control.ai_on() != []
    assert off.sounding() == control.sounding() != set()
    played = len(off.ai_on())
    off.message("controls", mode="off")
    off.run(0.001)
    assert off.sounding() == set()  # every sounding AI note got its note-off at once
    for rig in (control, off):  # the same new human note, a beat later
        rig.run(0.5)
        rig.midi(0x90, 64, 100)
        rig.run(1.0)
    assert len(control.ai_on()) > played  # accompany answers it...
    assert len(off.ai_on()) == played and off.sounding() == set()  # ...mode off does not
