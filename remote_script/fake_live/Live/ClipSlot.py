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
        """The new clip from Live 12.1 on; None before (read `slot.clip` afterwards)."""
        _lom.guard()
        if self.has_clip:
            raise RuntimeError("Clip slot is not empty")
        track = self.canonical_parent
        if not track.has_midi_input:
            raise RuntimeError("Can only create MIDI clips in MIDI tracks")
        if track.is_frozen:
            raise RuntimeError("Cannot create a clip in a frozen track")
        if length <= 0:
            raise RuntimeError("Clip length must be positive")
        clip = _Clip(length)
        clip._values["canonical_parent"] = self._handle()
        self._values["clip"] = clip
        self._set("has_clip", True)
        return clip._handle() if _lom.at_least(12, 1) else None

    def delete_clip(self):
        _lom.guard()
        clip = self._values["clip"]
        if clip is not None:
            self.stop()
            self._values["clip"] = None
            self._set("has_clip", False)
            clip._delete()

    def fire(self):
        """Start the clip now (the fake has no launch quantization)."""
        _lom.guard()
        track = self.canonical_parent
        track._start_slot(list(track.clip_slots).index(self))

    def stop(self):
        _lom.guard()
        track = self.canonical_parent
        if track.playing_slot_index == list(track.clip_slots).index(self):
            track.stop_all_clips()

    def _delete(self):
        clip = self._values["clip"]
        if clip is not None:
            clip._delete()
        _lom.LomObject._delete(self)
