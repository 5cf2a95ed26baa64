"""Small MIDI files written by hand for the training-data tests."""

from __future__ import annotations

from pathlib import Path

import mido


def write_song(path: Path, melody_base: int = 72, bars: int = 8) -> None:
    """A two-track type-1 file: a melody track above a bass track, 480 ticks per beat."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack([mido.MetaMessage("time_signature", numerator=3, denominator=4)])
    mid.tracks.append(conductor)
    for base, step in ((melody_base, 480), (40, 1440)):
        track = mido.MidiTrack()
        for i in range(bars * 1440 // step):
            pitch = base + (0, 2, 4, 5, 7)[i % 5]
            track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=step))
        mid.tracks.append(track)
    mid.save(path)
