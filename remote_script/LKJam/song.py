"""The song handler: transport, time signature, key/scale and selection.

Listeners set flags; the tick reads the values.

The key: Live 12 has the set's scale (root_note, scale_intervals) and its Scale switch
(scale_mode). Live 11 has root_note, scale_name and scale_intervals too, but there they
are Push's scale: C Major in every set unless a Push (or another surface) changed it,
so they claim no key by themselves. On Live 11 the script sends that scale only once
it differs from Push's default or changes while the script runs; otherwise it sends
none, and the engine keeps its own (`lkjam engine --scale`).
"""

import time
from typing import Any, Callable, Dict, List, Optional

from .listeners import ListenerRegistry

TRANSPORT_PROPS = ("tempo", "is_playing", "signature_numerator", "signature_denominator")
SCALE_PROPS = ("root_note", "scale_name", "scale_intervals", "scale_mode")
PUSH_DEFAULT = (0, [0, 2, 4, 5, 7, 9, 11])  # C Major: Live 11's scale until someone sets one
HEARTBEAT_SECONDS = 1.0  # stopped and unchanged: still one snapshot a second (keep-alive)


class SongHandler(object):
    def __init__(
        self,
        song: Any,
        registry: ListenerRegistry,
        on_tracks: Callable[[], None],
        on_selection: Callable[[], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.song = song
        self._clock = clock
        self.transport_dirty = True
        self.scale_dirty = True
        self._last_transport: Optional[tuple] = None
        self._last_sent = 0.0
        for prop in TRANSPORT_PROPS:
            registry.add(self, song, prop, self._transport_changed)
        # scale_mode is what Live 12 added; Live 11's root_note is only Push's scale.
        self.is_live_12 = hasattr(song, "scale_mode")
        self.has_scale = hasattr(song, "root_note") and hasattr(song, "scale_intervals")
        self._push_scale_changed = False
        if self.has_scale:
            for prop in SCALE_PROPS:
                registry.add(self, song, prop, self._scale_changed)
        registry.add(self, song, "tracks", on_tracks)
        registry.add(self, song.view, "detail_clip", on_selection)

    def _transport_changed(self) -> None:
        self.transport_dirty = True

    def _scale_changed(self) -> None:
        self.scale_dirty = True
        self._push_scale_changed = True  # only consulted on Live 11

    @property
    def beat(self) -> float:
        return float(self.song.current_song_time)

    def transport(self) -> Optional[Dict[str, Any]]:
        """The transport fields when they should be sent this tick, else None.

        Sent on every tick while playing (the engine fits its beat clock to these), on
        any change while stopped (tempo, signature, play state, locate), and once a
        second otherwise: the engine forgets a client that stays silent for 5 s.
        """
        song = self.song
        state = (
            float(song.tempo),
            round(self.beat, 6),
            bool(song.is_playing),
            int(song.signature_numerator),
            int(song.signature_denominator),
        )
        now = self._clock()
        due = now - self._last_sent >= HEARTBEAT_SECONDS
        if not (state[2] or due or self.transport_dirty or state != self._last_transport):
            return None
        self.transport_dirty = False
        self._last_transport = state
        self._last_sent = now
        tempo, beat, playing, num, den = state
        return {
            "tempo": tempo,
            "beat": beat,
            "playing": playing,
            "sig": [num, den],
            "t": round(now, 6),
        }

    def force_transport(self) -> None:
        self.transport_dirty = True

    def scale(self) -> Optional[Dict[str, Any]]:
        """The scale fields when they changed and the set declares a key, else None.

        Live 12 with Scale mode off declares no scale: empty intervals. Live 11 declares
        one only through Push's scale, and only once it is not the untouched default.
        """
        if not (self.has_scale and self.scale_dirty):
            return None
        self.scale_dirty = False
        song = self.song
        root = int(song.root_note) % 12
        if self.is_live_12 and not song.scale_mode:
            return {"root": root, "intervals": []}
        intervals: List[int] = [int(i) % 12 for i in song.scale_intervals]
        if not self.is_live_12 and not self._push_scale_changed:
            if (root, intervals) == PUSH_DEFAULT:
                return None
            self._push_scale_changed = True  # a Push set it before the script loaded
        return {"root": root, "intervals": intervals}

    def selected_clip(self) -> Any:
        return self.song.view.detail_clip
