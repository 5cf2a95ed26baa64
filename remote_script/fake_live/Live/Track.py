"""Live.Track: a track, its clip slots, devices and input routing."""

from . import _lom
from .ClipSlot import ClipSlot as _ClipSlot


class RoutingType(object):
    """An entry of available_input_routing_types (only its display name matters here)."""

    def __init__(self, display_name):
        self.display_name = display_name
        self.category = 0
        self.attached_object = None


@_lom.observable(
    "name",
    "devices",
    "clip_slots",
    "playing_slot_index",
    "fired_slot_index",
    "input_routing_type",
    "mute",
    "arm",
    "is_frozen",
    "current_monitoring_state",
)
class Track(_lom.LomObject):
    class monitoring_states(object):  # Live's name
        """Values of current_monitoring_state."""

        IN = 0
        AUTO = 1
        OFF = 2

    def __init__(self, song, name, input_routing="All Ins", slots=8, midi=True, inputs=None):
        # `inputs`: the names MIDI From offers (Live lists "All Ins", the ports with Track
        # on, ...); by default only the track's own input.
        available = tuple(RoutingType(n) for n in (inputs or (input_routing,)))
        _lom.LomObject.__init__(
            self,
            name=name,
            devices=(),
            clip_slots=(),
            playing_slot_index=-1,
            fired_slot_index=-1,
            input_routing_type=RoutingType(input_routing),
            available_input_routing_types=available,
            has_midi_input=midi,
            has_midi_output=not midi,
            has_audio_input=not midi,
            has_audio_output=True,
            mute=False,
            arm=False,
            is_frozen=False,
            current_monitoring_state=1,  # Auto
            canonical_parent=song,
        )
        self._values["clip_slots"] = tuple(_ClipSlot(self) for _ in range(slots))

    name = _lom.value("name", writable=True)
    devices = _lom.value("devices")
    clip_slots = _lom.value("clip_slots")
    playing_slot_index = _lom.value("playing_slot_index")
    fired_slot_index = _lom.value("fired_slot_index")

    @property
    def input_routing_type(self):
        return self._values["input_routing_type"]

    @input_routing_type.setter
    def input_routing_type(self, routing):
        """Like Live: ValueError unless it is one of available_input_routing_types."""
        _lom.guard()
        names = [t.display_name for t in self._values["available_input_routing_types"]]
        if getattr(routing, "display_name", None) not in names:
            raise ValueError("Invalid routing type")
        self._set("input_routing_type", routing)

    available_input_routing_types = _lom.value("available_input_routing_types")
    has_midi_input = _lom.value("has_midi_input")
    has_midi_output = _lom.value("has_midi_output")
    has_audio_input = _lom.value("has_audio_input")
    has_audio_output = _lom.value("has_audio_output")
    mute = _lom.value("mute", writable=True)
    arm = _lom.value("arm", writable=True)
    is_frozen = _lom.value("is_frozen")
    current_monitoring_state = _lom.value("current_monitoring_state", writable=True)
    canonical_parent = _lom.value("canonical_parent")

    def delete_device(self, index):
        _lom.guard()
        devices = list(self._values["devices"])
        doomed = devices.pop(index)
        self._set("devices", tuple(devices))
        doomed._delete()

    def stop_all_clips(self):
        _lom.guard()
        index = self.playing_slot_index
        if index >= 0:
            slot = self.clip_slots[index]
            slot._set("is_playing", False)
            if slot.clip is not None:
                slot.clip._set("is_playing", False)
                slot.clip._notify("playing_status")
            self._set("playing_slot_index", -1)

    def _start_slot(self, index):
        self.stop_all_clips()
        slot = self.clip_slots[index]
        clip = slot.clip
        if clip is None:
            return
        song = self.canonical_parent
        clip._start_beat = song._values["current_song_time"]  # the tick's (a cue's) beat
        clip._song = song
        clip._values["playing_position"] = clip.start_marker
        slot._set("is_playing", True)
        clip._set("is_playing", True)
        clip._notify("playing_status")
        self._set("playing_slot_index", index)

    def _delete(self):
        for child in self._values["clip_slots"] + self._values["devices"]:
            child._delete()
        _lom.LomObject._delete(self)
