"""Live.Clip: MIDI clips, their notes and the note specification for add_new_notes."""

from . import _lom


class MidiNote(object):
    """One note as returned by get_notes_extended (a plain value object in Live)."""

    def __init__(self, pitch, start_time, duration, velocity, mute=False, note_id=0):
        self.pitch = pitch
        self.start_time = start_time
        self.duration = duration
        self.velocity = velocity
        self.mute = mute
        self.note_id = note_id
        self.probability = 1.0
        self.velocity_deviation = 0.0
        self.release_velocity = 64.0


class MidiNoteVector(object):
    """The sequence get_notes_extended returns: iterable, indexable, appendable."""

    def __init__(self, notes=()):
        self._notes = list(notes)

    def __iter__(self):
        return iter(self._notes)

    def __len__(self):
        return len(self._notes)

    def __getitem__(self, index):
        return self._notes[index]

    def append(self, note):
        self._notes.append(note)

    def extend(self, notes):
        self._notes.extend(notes)


class MidiNoteSpecification(object):
    """Data for one new note; Live takes keyword arguments and exposes no attributes."""

    def __init__(
        self,
        pitch,
        start_time,
        duration,
        velocity=100.0,
        mute=False,
        probability=1.0,
        velocity_deviation=0.0,
        release_velocity=64.0,
    ):
        if not 0 <= pitch <= 127:
            raise ValueError("pitch must be in range 0..127")
        if duration <= 0:
            raise ValueError("duration must be positive")
        self._spec = (int(pitch), float(start_time), float(duration), float(velocity), bool(mute))


@_lom.observable(
    "name",
    "notes",
    "looping",
    "loop_start",
    "loop_end",
    "start_marker",
    "end_marker",
    "playing_status",
    "playing_position",
)
class Clip(_lom.LomObject):
    def __init__(self, length, name="", looping=True, is_midi=True):
        _lom.LomObject.__init__(
            self,
            name=name,
            length=float(length),
            looping=looping,
            loop_start=0.0,
            loop_end=float(length),
            start_marker=0.0,
            end_marker=float(length),
            is_midi_clip=is_midi,
            is_audio_clip=not is_midi,
            is_arrangement_clip=False,
            is_playing=False,
            is_triggered=False,
            playing_position=0.0,
            playing_status=0,
            canonical_parent=None,
        )
        self._notes = []
        self._next_id = 1
        self._song = None  # set when the clip starts playing
        self._start_beat = 0.0  # song beat at which it started

    name = _lom.value("name", writable=True)
    length = _lom.value("length")
    looping = _lom.value("looping", writable=True)
    loop_start = _lom.value("loop_start", writable=True)
    loop_end = _lom.value("loop_end", writable=True)
    start_marker = _lom.value("start_marker", writable=True)
    end_marker = _lom.value("end_marker", writable=True)
    is_midi_clip = _lom.value("is_midi_clip")
    is_audio_clip = _lom.value("is_audio_clip")
    is_arrangement_clip = _lom.value("is_arrangement_clip")
    is_playing = _lom.value("is_playing")
    is_triggered = _lom.value("is_triggered")

    def _position_at(self, song_beat):
        """Clip time at `song_beat`, for the clip that started at self._start_beat."""
        position = self.start_marker + (song_beat - self._start_beat)
        if self.looping and position >= self.loop_end:
            span = self.loop_end - self.loop_start
            position = self.loop_start + (position - self.loop_start) % span
        return position

    def _playing_position(self):
        # With the song position running (FakeLive.run_position), a playing clip's runs
        # with it, as in Live: both are read at the moment of reading.
        song = self._song
        running = song is not None and song._position is not None and song.is_playing
        if running and self._values["is_playing"]:
            return self._position_at(song.current_song_time)
        return self._values["playing_position"]

    playing_position = property(_playing_position)
    canonical_parent = _lom.value("canonical_parent")

    def _add(self, pitch, start, duration, velocity, mute=False):
        self._notes.append(
            MidiNote(
                int(pitch),
                float(start),
                float(duration),
                float(velocity),
                bool(mute),
                self._next_id,
            )
        )
        self._next_id += 1

    def _select(self, from_pitch, pitch_span, from_time, time_span):
        return [
            n
            for n in self._notes
            if from_pitch <= n.pitch < from_pitch + pitch_span
            and from_time <= n.start_time < from_time + time_span
        ]

    def get_notes_extended(self, from_pitch, pitch_span, from_time, time_span):
        return MidiNoteVector(self._select(from_pitch, pitch_span, from_time, time_span))

    def get_all_notes_extended(self):
        return MidiNoteVector(self._notes)

    def get_notes(self, from_time, from_pitch, time_span, pitch_span):
        return tuple(
            (n.pitch, n.start_time, n.duration, n.velocity, n.mute)
            for n in self._select(from_pitch, pitch_span, from_time, time_span)
        )

    def add_new_notes(self, specifications):
        _lom.guard()
        ids = []
        for spec in specifications:
            if not isinstance(spec, MidiNoteSpecification):
                raise TypeError("add_new_notes expects MidiNoteSpecification objects")
            self._add(*spec._spec)
            ids.append(self._next_id - 1)
        self._notify("notes")
        return tuple(ids)

    def set_notes(self, notes):
        _lom.guard()
        if not isinstance(notes, tuple):
            raise TypeError("set_notes expects a tuple of note tuples")
        for pitch, start, duration, velocity, mute in notes:
            self._add(pitch, start, duration, velocity, mute)
        self._notify("notes")

    def remove_notes_extended(self, from_pitch, pitch_span, from_time, time_span):
        _lom.guard()
        doomed = set(id(n) for n in self._select(from_pitch, pitch_span, from_time, time_span))
        self._notes = [n for n in self._notes if id(n) not in doomed]
        self._notify("notes")

    def fire(self):
        slot = self.canonical_parent
        if slot is not None:
            slot.fire()

    def stop(self):
        slot = self.canonical_parent
        if slot is not None:
            slot.stop()
