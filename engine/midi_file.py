"""Standard MIDI files <-> event arrays (mido; no torch).

Reading turns the note tracks of a file into one event stream: the chosen "human" track
becomes role human, every other note track role clip. Writing puts each role on its own
named track (human, clip, ai) after a conductor track that keeps the tempo map, meter and
key of the source. Times are beats (quarter notes): `beat = tick / ticks_per_beat`, so the
tempo map never changes where a note lands.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
from lkjam.engine.events import EVENT_DTYPE, ROLES, make_events, note_ends

DRUM_CHANNEL = 9  # General MIDI channel 10: percussion, whose "pitches" are instruments
CONDUCTOR_TYPES = ("set_tempo", "time_signature", "key_signature")
ROLE_CHANNELS = {"human": 0, "clip": 1, "ai": 2}
DEFAULT_TEMPO = 500_000  # µs per beat (120 BPM), MIDI's default when a file sets none
MAX_TICKS_PER_BEAT = 0x7FFF  # the header's division: above it, the top bit means SMPTE
MAX_METER = 64  # the step's limit on a numerator and a (power of two) denominator


class MidiFileError(ValueError):
    """A MIDI file that cannot be used; the message names the file (and track)."""


@dataclass(frozen=True)
class TrackInfo:
    index: int  # track number in the file, 0-based (what --human-track takes)
    name: str
    notes: int  # pitched notes (drums left out)
    mean_pitch: float


@dataclass
class MidiSong:
    events: np.ndarray  # EVENT_DTYPE, roles human and clip, sorted
    ticks_per_beat: int
    numerator: int
    denominator: int
    tempo_bpm: float  # the first tempo
    human_track: int  # index of the human part
    part_unit: str = "track"  # what the parts are: "track", or "channel" in a type-0 file
    tracks: list[TrackInfo] = field(default_factory=list)  # parts with pitched notes
    conductor: list[tuple[float, mido.MetaMessage]] = field(default_factory=list)  # (beat, msg)
    key: str | None = None  # first key signature, e.g. "Am"


Note = tuple[int, int, int, int, int]  # onset tick, end tick, pitch, velocity, channel


def _notes(track: mido.MidiTrack) -> list[Note]:
    """A track's pitched notes."""
    notes: list[Note] = []
    held: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)  # FIFO per key
    tick = 0
    for msg in track:
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            held[key].append((tick, msg.velocity))
        elif held[key]:
            start, vel = held[key].pop(0)
            notes.append((start, tick, msg.note, vel, msg.channel))
    # Notes never released end with the track.
    notes += [(s, tick, k[1], v, k[0]) for k, starts in held.items() for s, v in starts]
    return notes


def _division_problem(tpb: int) -> str | None:
    if tpb < 0:  # mido reads the division as signed: the SMPTE bit makes it negative
        return "SMPTE time division (frames per second, not ticks per beat) is not supported"
    if not 1 <= tpb <= MAX_TICKS_PER_BEAT:
        return f"{tpb} ticks per beat (must be 1..{MAX_TICKS_PER_BEAT})"
    return None


def _conductor_problem(msg: mido.MetaMessage) -> str | None:
    """What makes a tempo or meter unusable (a zero tempo divides by zero in tempo2bpm; the
    step takes meters up to 64/64), or None."""
    if msg.type == "set_tempo" and msg.tempo <= 0:
        return "set_tempo 0 µs per beat"
    if msg.type == "time_signature" and not (
        1 <= msg.numerator <= MAX_METER and 1 <= msg.denominator <= MAX_METER
    ):
        return f"time signature {msg.numerator}/{msg.denominator} (must be 1..64 / 1..64)"
    return None


def read_midi(path: str | Path, human_track: int | None = None) -> MidiSong:
    """Read `path`. The parts are its tracks, or, for a file with a single track that
    uses several channels (type 0), its channels. `human_track` is a part's index (track
    number or channel, 0-based); by default a track named "human" (as `write_midi` writes),
    else the part with the highest mean pitch (the top voice).
    Raises MidiFileError for a missing, corrupt or note-less file, a bad part number, or a
    timing that cannot be read as beats (SMPTE or zero division, zero tempo, zero meter)."""
    path = Path(path)
    try:
        mid = mido.MidiFile(path)
    except FileNotFoundError:
        raise MidiFileError(f"{path}: no such file") from None
    except Exception as exc:  # mido raises many types for damaged files; all mean "unreadable"
        raise MidiFileError(f"{path}: not a readable MIDI file ({exc})") from None
    if mid.type == 2:
        raise MidiFileError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    tpb = mid.ticks_per_beat
    problem = _division_problem(tpb)
    if problem is not None:
        raise MidiFileError(f"{path}: {problem}")
    if not mid.tracks:
        raise MidiFileError(f"{path}: no tracks")

    per_track = [_notes(track) for track in mid.tracks]
    if len(per_track) == 1 and len({n[4] for n in per_track[0]}) > 1:
        unit, count = "channel", 16
        parts = {ch: [n for n in per_track[0] if n[4] == ch] for ch in range(16)}
        names = {ch: f"channel {ch}" for ch in range(16)}
    else:
        unit, count = "track", len(mid.tracks)
        parts = dict(enumerate(per_track))
        names = {i: track.name for i, track in enumerate(mid.tracks)}
    infos = [
        TrackInfo(i, names[i], len(notes), float(np.mean([n[2] for n in notes])))
        for i, notes in parts.items()
        if notes
    ]
    if not infos:
        raise MidiFileError(f"{path}: no pitched notes in any track")
    if human_track is None:
        named = [t for t in infos if t.name.strip().lower() == "human"]
        human_track = (named or sorted(infos, key=lambda t: -t.mean_pitch))[0].index
    elif not any(t.index == human_track for t in infos):
        listing = ", ".join(f"{t.index} ({t.name or 'unnamed'}, {t.notes} notes)" for t in infos)
        what = f"no such {unit}" if not 0 <= human_track < count else "no notes"
        raise MidiFileError(f"{path}: {unit} {human_track}: {what}; {unit}s with notes: {listing}")

    rows = [
        (start, end, pitch, vel, ROLES.index("human" if i == human_track else "clip"))
        for i, notes in parts.items()
        for start, end, pitch, vel, _ in notes
    ]
    table = np.array(rows, dtype=np.int64)  # (N, 5) ticks, ticks, pitch, velocity, role
    events = make_events(
        table[:, 0] / tpb,
        np.maximum(table[:, 1] - table[:, 0], 1) / tpb,  # a zero-length note lasts one tick
        table[:, 2],
        table[:, 3],
        table[:, 4],
    )

    conductor: list[tuple[float, mido.MetaMessage]] = []
    for i, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in CONDUCTOR_TYPES:
                problem = _conductor_problem(msg)
                if problem is not None:
                    raise MidiFileError(f"{path}: track {i}: {problem} at beat {tick / tpb:g}")
                conductor.append((tick / tpb, msg.copy(time=0)))
    conductor.sort(key=lambda item: item[0])
    first = {msg.type: msg for _, msg in reversed(conductor)}
    sig = first.get("time_signature")
    tempo = first.get("set_tempo")
    key = first.get("key_signature")
    return MidiSong(
        events=events,
        ticks_per_beat=tpb,
        numerator=sig.numerator if sig else 4,
        denominator=sig.denominator if sig else 4,
        tempo_bpm=mido.tempo2bpm(tempo.tempo if tempo else DEFAULT_TEMPO),
        human_track=human_track,
        part_unit=unit,
        tracks=infos,
        conductor=conductor,
        key=key.key if key else None,
    )


def _track(name: str, events: np.ndarray, ends: np.ndarray, tpb: int) -> mido.MidiTrack:
    channel = ROLE_CHANNELS[name]
    on = np.rint(events["beat"] * tpb).astype(np.int64)
    off = np.maximum(np.rint(ends * tpb).astype(np.int64), on + 1)
    # Same pitch again before the last one ended: end the last one there, so every
    # note-off belongs to one note-on. An exact repeat (same onset, same pitch) is dropped.
    keep = np.ones(len(events), dtype=bool)
    last: dict[int, int] = {}  # pitch -> index of the last kept note
    for i in np.lexsort((on, events["pitch"])):
        a = last.get(int(events["pitch"][i]))
        if a is not None and on[i] == on[a]:
            keep[i] = False
            continue
        if a is not None:
            off[a] = min(off[a], on[i])
        last[int(events["pitch"][i])] = int(i)
    timed: list[tuple[int, int, mido.Message]] = []
    for i in np.flatnonzero(keep):
        pitch, vel = int(events["pitch"][i]), int(np.clip(events["vel"][i], 1, 127))
        timed.append(
            (int(on[i]), 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel))
        )
        timed.append((int(off[i]), 0, mido.Message("note_off", channel=channel, note=pitch)))
    timed.sort(key=lambda item: (item[0], item[1]))  # at one tick, offs before ons
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    now = 0
    for tick, _, msg in timed:
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def write_midi(
    path: str | Path,
    events: np.ndarray,
    *,
    ticks_per_beat: int = 480,
    tempo_bpm: float = 120.0,
    numerator: int = 4,
    denominator: int = 4,
    conductor: list[tuple[float, mido.MetaMessage]] | None = None,
) -> None:
    """Write `events` (any roles) as a type-1 file: conductor, then tracks human, clip (only
    if there are clip notes) and ai. `conductor` (from `read_midi`) replaces the tempo and
    meter arguments. Notes of unknown duration get the lengths the metrics assume.
    The file appears whole or not at all: a MidiFileError leaves `path` as it was."""
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"write_midi: events must have EVENT_DTYPE, got {events.dtype}")
    path = Path(path)
    problem = _division_problem(ticks_per_beat)
    if problem is None and not 60e6 / 0xFFFFFF <= tempo_bpm <= 60e6:  # 1..2^24-1 µs per beat
        problem = f"tempo {tempo_bpm} BPM (must be 3.58..60000000)"
    if problem is not None:
        raise MidiFileError(f"{path}: cannot write: {problem}")
    if conductor is None:
        conductor = [
            (0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm))),
            (
                0.0,
                mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator),
            ),
        ]
    meta = mido.MidiTrack()
    now = 0
    for beat, msg in conductor:
        problem = _conductor_problem(msg)
        if problem is not None:
            raise MidiFileError(f"{path}: cannot write: {problem} at beat {beat:g}")
        tick = round(beat * ticks_per_beat)
        meta.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(meta)
    ends = note_ends(events)
    for role, name in enumerate(ROLES):
        select = events["role"] == role
        if name == "clip" and not select.any():
            continue
        mid.tracks.append(_track(name, events[select], ends[select], ticks_per_beat))
    buffer = io.BytesIO()
    try:
        mid.save(file=buffer)  # in memory first: mido fails midway on a bad message
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        raise MidiFileError(f"{path}: cannot write ({exc})") from None
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise MidiFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
