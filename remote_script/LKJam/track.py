"""The track handler: one per MIDI track; decides the track's role.

Roles, by a convention visible in Live (docs/remote-script.md):
- "ai": the track whose input comes from the `lkjam out` port, or whose name has "[ai]";
- "human": a track whose name has "[human]" (its clips are the musician's parts);
- "clip": every other MIDI track.

A MIDI track named `lkjam: add AI track` (any case) asks the script to create the AI
track (surface.py does it on the next tick, never inside a notification).
"""

from typing import Any, Callable

from .listeners import ListenerRegistry

AI_PORT = "lkjam out"
AI_TAG = "[ai]"
HUMAN_TAG = "[human]"
AI_TRACK_NAME = "lkjam [ai]"  # the track the script creates when asked
REQUEST_NAME = "lkjam: add AI track"  # a track with this name asks for it


def is_request(track: Any) -> bool:
    """Does this track's name ask the script to create the AI track?"""
    return str(track.name).strip().lower() == REQUEST_NAME.lower()


def track_role(track: Any) -> str:
    name = str(track.name).lower()
    routing = getattr(track, "input_routing_type", None)
    source = str(getattr(routing, "display_name", "")).lower()
    if AI_TAG in name or AI_PORT in source:
        return "ai"
    if HUMAN_TAG in name:
        return "human"
    return "clip"


class TrackHandler(object):
    def __init__(
        self,
        track: Any,
        index: int,
        registry: ListenerRegistry,
        on_structure: Callable[[], None],
        on_clips: Callable[[], None],
    ) -> None:
        self.track = track
        self.index = index
        self.role = track_role(track)
        self.request = is_request(track)
        self._registry = registry
        self._on_structure = on_structure
        # A new name or input can change the role: rebuild. A new playing slot: rescan clips.
        registry.add(self, track, "name", self._role_may_change)
        registry.add(self, track, "input_routing_type", self._role_may_change)
        registry.add(self, track, "playing_slot_index", on_clips)
        if self.role == "ai":
            # The controls rack lives here: watch the device list and device names.
            registry.add(self, track, "devices", on_structure)
            for device in track.devices:
                registry.add(self, device, "name", on_structure)

    def _role_may_change(self) -> None:
        if track_role(self.track) != self.role or is_request(self.track) != self.request:
            self._on_structure()

    def close(self) -> None:
        self._registry.remove_owner(self)

    def playing_clip(self) -> Any:
        index = self.track.playing_slot_index
        if index is None or index < 0:
            return None
        slots = self.track.clip_slots
        if index >= len(slots):
            return None
        return slots[index].clip

    def empty_slot(self, preferred: int) -> int:
        """`preferred` if that slot is empty, else the first empty slot, else -1."""
        slots = list(self.track.clip_slots)
        if 0 <= preferred < len(slots) and not slots[preferred].has_clip:
            return preferred
        for index, slot in enumerate(slots):
            if not slot.has_clip:
                return index
        return -1
