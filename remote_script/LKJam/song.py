"""The song handler: transport, time signature, key/scale (Live 12) and selection.

Listeners set flags; the tick reads the values. Live 11 has no root_note /
scale_intervals: the registry reports them missing and the scale is never sent.
"""

import time
from typing import Any, Callable, Dict, List, Optional

from .listeners import ListenerRegistry

TRANSPORT_PROPS = ("tempo", "is_playing", "signature_numerator", "signature_denominator")
SCALE_PROPS = ("root_note", "scale_intervals", "scale_mode")
HEARTBEAT_SECONDS = 1.0  # stopped and unchanged: still one snapshot a second (keep-alive)


class SongHandler(object):
    def __init__(
        self,
        song: Any,
        registry: ListenerRegistry,
        on_tracks: Callable[[], None],
        on_selection: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.song = song
        self._clock = clock
        self.transport_dirty = True
        self.scale_dirty = True
        self._last_transport: Optional[tuple] = None
        self._last_sent = 0.0
        for prop in TRANSPORT_PROPS:
            registry.add(self, song, prop, self._transport_changed)
        # Live 12 only; hasattr keeps Live 11 (and its missing names) out of the way.
        self.has_scale = hasattr(song, "root_note") and hasattr(song, "scale_intervals")
        if self.has_scale:
            for prop in SCALE_PROPS:
                registry.add(self, song, prop, self._scale_changed)
        registry.add(self, song, "tracks", on_tracks)
        registry.add(self, song.view, "detail_clip", on_selection)

    def _transport_changed(self) -> None:
        self.transport_dirty = True

    def _scale_changed(self) -> None:
        self.scale_dirty = True

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
        """The scale fields when they changed (Live 12), else None.

        With Live's Scale mode off the set declares no scale: empty intervals.
        """
        if not (self.has_scale and self.scale_dirty):
            return None
        self.scale_dirty = False
        song = self.song
        root = int(song.root_note) % 12
        if hasattr(song, "scale_mode") and not song.scale_mode:
            return {"root": root, "intervals": []}
        intervals: List[int] = [int(i) % 12 for i in song.scale_intervals]
        return {"root": root, "intervals": intervals}

    def selected_clip(self) -> Any:
        return self.song.view.detail_clip
