"""The clip handler: one per watched MIDI clip (playing, or selected in Live).

Its listeners only mark it dirty; the tick turns a dirty clip into one `clip` message.
Reading and writing notes picks the newest API the running Live offers: the Live 11+
extended note API (get_all_notes_extended / add_new_notes with MidiNoteSpecification),
else the older get_notes / set_notes.
"""

from typing import Any, List, Optional

import Live

from .listeners import ListenerRegistry

# The engine's clip roles: the AI track's own clips are known but not fed to the model.
CLIP_ROLES = {"human": "human", "clip": "clip", "ai": "ignore"}
MAX_NAME = 200
# Beats Live's clip position may differ from the anchored one before re-anchoring: far
# above the jitter between reading the song time and the clip position in one tick.
ANCHOR_TOLERANCE = 0.25

# Properties whose change changes the `clip` message (end_marker: a one-shot's loop end).
OBSERVED = (
    "notes",
    "name",
    "looping",
    "loop_start",
    "loop_end",
    "start_marker",
    "end_marker",
    "playing_status",
)


class ClipHandler(object):
    def __init__(
        self,
        clip: Any,
        track: int,
        slot: int,
        role: str,
        registry: ListenerRegistry,
    ) -> None:
        self.clip = clip
        self.track = track
        self.slot = slot
        self.role = CLIP_ROLES[role]
        self.dirty = True
        self.playing = False
        self.start_beat = 0.0  # song beat at which clip time loop[0] played (or would have)
        self._registry = registry
        for prop in OBSERVED:
            registry.add(self, clip, prop, self._changed)

    def _changed(self) -> None:
        self.dirty = True

    def close(self) -> None:
        self._registry.remove_owner(self)

    def update_playing(self, song_beat: float) -> None:
        """Track start/stop and keep the clip anchored on the song's beat line.

        Live reports where in the clip it is (clip beats), so clip time loop[0] played
        `position - loop[0]` beats ago. The anchor is set when the clip starts and reset
        whenever Live's position disagrees with it (a jump, or a clip already playing
        when the script loaded); each new anchor is sent to the engine.
        """
        playing = bool(self.clip.is_playing)
        if playing:
            start, end = loop_range(self.clip)
            position = float(self.clip.playing_position)
            expected = start + (song_beat - self.start_beat)
            drift = position - expected
            if self.clip.looping and end > start:
                span = end - start
                drift = (drift + span / 2.0) % span - span / 2.0  # wrapped: a loop is a circle
            if not self.playing or abs(drift) > ANCHOR_TOLERANCE:
                self.start_beat = song_beat - (position - start)
                self.dirty = True
        elif self.playing:
            self.dirty = True
        self.playing = playing

    def message_fields(self) -> dict:
        clip = self.clip
        return {
            "track": self.track,
            "slot": self.slot,
            "name": str(clip.name)[:MAX_NAME],
            "role": self.role,
            "length": float(clip.length),
            "looping": bool(clip.looping),
            "loop": loop_range(clip),
            "playing": self.playing,
            "start_beat": round(self.start_beat, 6),
            "notes": read_notes(clip),
        }


def alive(obj: Any) -> bool:
    """False for None and for a deleted Live object, which compares equal to None."""
    return obj is not None and obj != None  # noqa: E711 (Live's liveobj_valid idiom)


def loop_range(clip: Any) -> List[float]:
    """[start, end] in clip beats: the loop, or the markers of a clip that plays once."""
    if clip.looping:
        return [float(clip.loop_start), float(clip.loop_end)]
    return [float(clip.start_marker), float(clip.end_marker)]


def read_notes(clip: Any) -> List[list]:
    """All unmuted notes as [[pitch, start, dur, vel], ...], sorted by start then pitch."""
    if hasattr(clip, "get_all_notes_extended"):
        raw = [
            (n.pitch, n.start_time, n.duration, n.velocity, n.mute)
            for n in clip.get_all_notes_extended()
        ]
    else:
        span = max(float(clip.length), float(clip.loop_end), float(clip.end_marker)) + 1.0
        if hasattr(clip, "get_notes_extended"):
            raw = [
                (n.pitch, n.start_time, n.duration, n.velocity, n.mute)
                for n in clip.get_notes_extended(0, 128, 0.0, span)
            ]
        else:  # Live 10: tuples of (pitch, time, duration, velocity, mute)
            raw = list(clip.get_notes(0.0, 0, span, 128))
    # Muted notes do not sound; velocities are clamped to MIDI's 1..127.
    notes = [
        [int(p), round(float(s), 6), round(float(d), 6), min(127, max(1, round(float(v))))]
        for p, s, d, v, mute in raw
        if not mute and float(s) >= 0.0 and float(d) > 0.0
    ]
    notes.sort(key=lambda n: (n[1], n[0]))
    return notes


def write_notes(clip: Any, notes: List[list]) -> None:
    """Add notes ([[pitch, start, dur, vel], ...]) to an empty clip."""
    spec = getattr(Live.Clip, "MidiNoteSpecification", None)
    if spec is not None and hasattr(clip, "add_new_notes"):
        clip.add_new_notes(
            tuple(
                spec(
                    pitch=int(p),
                    start_time=float(s),
                    duration=float(d),
                    velocity=float(v),
                    mute=False,
                )
                for p, s, d, v in notes
            )
        )
    else:
        clip.set_notes(tuple((int(p), float(s), float(d), int(v), False) for p, s, d, v in notes))


def write_clip(slot: Any, length: float, name: str, notes: List[list]) -> None:
    """A new clip in an empty slot, with a name and notes; nothing is left on failure."""
    slot.create_clip(length)  # returns the clip from Live 12.1 on, None before: read it back
    clip = slot.clip
    try:
        clip.name = name
        write_notes(clip, notes)
    except Exception:
        slot.delete_clip()  # no empty or half-written clip behind
        raise


def clip_location(clip: Any) -> Optional[tuple]:
    """(track object, slot index) of a session clip, None for arrangement clips."""
    slot = getattr(clip, "canonical_parent", None)
    track = getattr(slot, "canonical_parent", None)
    if slot is None or track is None or not hasattr(track, "clip_slots"):
        return None
    for index, candidate in enumerate(track.clip_slots):
        if candidate == slot:
            return track, index
    return None
