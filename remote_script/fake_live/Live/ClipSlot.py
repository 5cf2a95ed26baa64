"""Live.ClipSlot: one cell of the session grid."""

from . import _lom
from .Clip import Clip as _Clip


@_lom.observable("has_clip", "playing_status", "is_triggered")
class ClipSlot(_lom.LomObject):
    def __init__(self, track):
        _lom.LomObject.__init__(
            self,
            clip=None,
            has_clip=False,
            canonical_parent=track,
            is_playing=False,
            is_triggered=False,
            playing_status=0,
        )

    clip = _lom.value("clip")
    has_clip = _lom.value("has_clip")
    canonical_parent = _lom.value("canonical_parent")
    is_playing = _lom.value("is_playing")
    is_triggered = _lom.value("is_triggered")
    playing_status = _lom.value("playing_status")

    def create_clip(self, length):
        if self.has_clip:
            raise RuntimeError("Clip slot is not empty")
        if not self.canonical_parent.has_midi_input:
            raise RuntimeError("Can only create MIDI clips in MIDI tracks")
        if length <= 0:
            raise RuntimeError("Clip length must be positive")
        clip = _Clip(length)
        clip._values["canonical_parent"] = self
        self._values["clip"] = clip
        self._set("has_clip", True)
        return clip

    def delete_clip(self):
        if self.has_clip:
            self.stop()
            self._values["clip"] = None
            self._set("has_clip", False)

    def fire(self):
        """Start the clip now (the fake has no launch quantization)."""
        track = self.canonical_parent
        track._start_slot(list(track.clip_slots).index(self))

    def stop(self):
        track = self.canonical_parent
        if track.playing_slot_index == list(track.clip_slots).index(self):
            track.stop_all_clips()
