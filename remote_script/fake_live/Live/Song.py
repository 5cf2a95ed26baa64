"""Live.Song: the Live set (transport, tracks, scale) and its view (selection).

The scale: Live 11 already has root_note, scale_name and scale_intervals. They are
Push's scale (C Major unless a Push or another control surface changed it), not a key
the user declared. Live 12 adds scale_mode, its Scale switch (off in a new set).
"""

from . import _lom
from .Track import Track as _Track

# Push's default scale, which a set keeps until something changes it.
_PUSH_ROOT = 0
_PUSH_SCALE = "Major"
_PUSH_INTERVALS = (0, 2, 4, 5, 7, 9, 11)


@_lom.since(12, 0, "scale_mode")
@_lom.observable(
    "tempo",
    "is_playing",
    "signature_numerator",
    "signature_denominator",
    "tracks",
    "current_song_time",
    "root_note",
    "scale_intervals",
    "scale_name",
    "scale_mode",
)
class Song(_lom.LomObject):
    @_lom.observable("detail_clip", "selected_track")
    class View(_lom.LomObject):
        def __init__(self, song):
            _lom.LomObject.__init__(
                self, detail_clip=None, selected_track=None, canonical_parent=song
            )

        detail_clip = _lom.value("detail_clip", writable=True)
        selected_track = _lom.value("selected_track", writable=True)
        canonical_parent = _lom.value("canonical_parent")

    def __init__(self, tempo=120.0):
        _lom.LomObject.__init__(
            self,
            tempo=float(tempo),
            is_playing=False,
            current_song_time=0.0,
            signature_numerator=4,
            signature_denominator=4,
            tracks=(),
            root_note=_PUSH_ROOT,
            scale_intervals=_PUSH_INTERVALS,
            scale_name=_PUSH_SCALE,
            scale_mode=False,
        )
        self._values["view"] = Song.View(self)
        self._midi_inputs = ("lkjam out",)  # MIDI input ports with Track on
        self._position = None  # FakeLive.run_position: the beat now, read while playing

    tempo = _lom.value("tempo", writable=True)
    is_playing = _lom.value("is_playing", writable=True)

    def _song_time(self):
        # Live's audio thread moves the position between the script's ticks: with a
        # running position, a read while playing gets the beat at that moment.
        if self._position is not None and self._values["is_playing"]:
            return float(self._position())
        return self._values["current_song_time"]

    current_song_time = property(_song_time, _lom.value("current_song_time", writable=True).fset)
    signature_numerator = _lom.value("signature_numerator", writable=True)
    signature_denominator = _lom.value("signature_denominator", writable=True)
    tracks = _lom.value("tracks")
    view = _lom.value("view")
    root_note = _lom.value("root_note", writable=True)
    scale_intervals = _lom.value("scale_intervals")
    scale_name = _lom.value("scale_name", writable=True)
    scale_mode = _lom.value("scale_mode", writable=True)

    def start_playing(self):
        self.is_playing = True

    def stop_playing(self):
        self.is_playing = False
        for track in self.tracks:
            track.stop_all_clips()

    def continue_playing(self):
        self.is_playing = True

    def create_midi_track(self, index=None):
        """A new MIDI track at `index` (-1 or None: at the end), returned."""
        _lom.guard()
        tracks = list(self._values["tracks"])
        if index is None or index == -1:
            index = len(tracks)
        if not 0 <= index <= len(tracks):
            raise IndexError("Track index out of range")
        slots = max([len(t._values["clip_slots"]) for t in tracks] + [8])
        inputs = ("All Ins", "Computer Keyboard", *self._midi_inputs, "No Input")
        track = _Track(self, "%d-MIDI" % (index + 1), "All Ins", slots, inputs=inputs)
        tracks.insert(index, track)
        self._set("tracks", tuple(tracks))
        return track._handle()

    def delete_track(self, index):
        _lom.guard()
        tracks = list(self._values["tracks"])
        doomed = tracks.pop(index)
        self._set("tracks", tuple(tracks))
        doomed._delete()
