"""The LKJam control surface: the object Live creates and ticks.

Live calls `update_display` about every 100 ms on its main thread. Each tick drains the
engine socket (non-blocking, bounded), applies structure changes flagged by listeners,
and sends what changed. Listener callbacks only set flags: Live forbids changing the
set from inside a notification, and flags keep every callback O(1).
"""

import os
import platform
import subprocess
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

import Live

from . import messages
from .autostart import (
    EngineProcess,
    autostart_disabled,
    default_engine_file,
    default_log_path,
    is_local,
    read_engine_file,
    with_endpoint,
)
from .clip import CLIP_ROLES, ClipHandler, alive, clip_location, read_notes, write_clip
from .controls import ControlsHandler, find_rack
from .listeners import ListenerRegistry
from .song import SongHandler
from .track import AI_PORT, AI_TRACK_NAME, REQUEST_NAME, TrackHandler
from .zmtp import IDLE, DealerClient

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5678
MAX_INCOMING_PER_TICK = 16  # engine messages handled per tick; the rest wait...
INBOX_LIMIT = 256  # ...in a bounded inbox (oldest dropped beyond it)
MAX_CLIPS_PER_TICK = 4  # clip messages built per tick (each reads a clip's notes)
MAX_LOGGED_ERRORS = 50
MAX_ENGINE_STARTS = 3  # engines started per session (after one that ran, then died)


# What the status bar says when writing an accompaniment fails, and what to do about it.
WRITE_ADVICE = "unfreeze the AI track or free a clip slot on it, then turn macro 8 again"
VERSION_ADVICE = "run lkjam install and restart Live so script and engine match"
INSTALL_ADVICE = "run lkjam install once so Live can start it, or start lkjam engine"
# What a request track is renamed to once handled (so it asks only once).
REQUEST_DONE = "lkjam: AI track added"
REQUEST_REFUSED = "lkjam: AI track exists"
MONITOR_IN = 0  # Track.monitoring_states.IN, where Live has no monitoring_states


def engine_endpoint() -> Tuple[str, int]:
    """Where the engine listens: $LKJAM_ENGINE ("host:port", "tcp://host:port", "[::1]:port")."""
    text = os.environ.get("LKJAM_ENGINE", "").strip()
    if text.startswith("tcp://"):
        text = text[len("tcp://") :]
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host and port.isdigit():
        return host, int(port)
    return DEFAULT_HOST, DEFAULT_PORT


def live_version() -> str:
    app = Live.Application.get_application()
    return "%d.%d.%d" % (
        app.get_major_version(),
        app.get_minor_version(),
        app.get_bugfix_version(),
    )


class LKJam(object):
    """A control surface without controls: Live's state to the engine, and back."""

    def __init__(
        self,
        c_instance: Any,
        clock: Callable[[], float] = time.perf_counter,
        engine_file: Optional[str] = None,
    ) -> None:
        self._c_instance = c_instance
        self._logged: Set[str] = set()
        self._registry = ListenerRegistry(self._log)
        host, port = engine_endpoint()
        self._client = DealerClient(host, port, self._log, on_ready=self._on_ready, clock=clock)
        # Starting the engine ourselves: only for a local endpoint, never a remote host.
        self._engine_file = engine_file or default_engine_file()
        self._autostart = is_local(host) and not autostart_disabled()
        self._engine: Optional[EngineProcess] = None
        self._engine_answered = False  # the engine we started got as far as a handshake
        self._engine_starts = 0
        self._song = SongHandler(
            c_instance.song(), self._registry, self._structure_changed, self._clips_changed, clock
        )
        self._tracks: List[TrackHandler] = []
        self._ai: Optional[TrackHandler] = None
        self._request: Optional[TrackHandler] = None  # a track asking for the AI track
        self._controls: Optional[ControlsHandler] = None
        self._controls_dirty = True
        self._clips: Dict[Tuple[int, int], ClipHandler] = {}
        self._inbox: Deque[List[bytes]] = deque(maxlen=INBOX_LIMIT)
        self._structure_dirty = True
        self._clips_dirty = True
        self._styles: List[str] = []
        self._pending: Dict[str, Dict[str, Any]] = {}  # accompany id -> request
        self._serial = 0
        self._log(
            "lkjam %s loaded in Live %s; engine at %s"
            % (messages.SCRIPT_VERSION, live_version(), self._client.endpoint)
        )
        self._rebuild()

    # -- the interface Live calls ------------------------------------------------

    def update_display(self) -> None:
        try:
            self._tick()
        except Exception as exc:  # never let one bad tick kill the surface
            self._log_once("tick failed: %s: %s" % (type(exc).__name__, exc))

    def disconnect(self) -> None:
        """Live is unloading the script: say bye, close the socket, drop every listener."""
        if self._client.connected:
            self._send("bye", {})
            self._client.flush_blocking(0.1)
        self._client.close()
        engine = self._engine
        if engine is not None and engine.exit_code() is None:
            self._log("stopping the engine this script started (pid %d)" % engine.pid)
            engine.stop()
        for handler in list(self._clips.values()):
            handler.close()
        self._clips.clear()
        self._close_tracks()
        self._registry.clear()
        self._log("disconnected")

    def refresh_state(self) -> None:
        """Live asks for everything to be sent again (e.g. after a MIDI port change)."""
        self._structure_dirty = True
        self._song.force_transport()
        self._song.scale_dirty = True
        self._controls_dirty = True

    def connect_script_instances(self, instantiated_scripts: Any) -> None:
        pass  # lkjam does not cooperate with other control surfaces

    def build_midi_map(self, midi_map_handle: Any) -> None:
        pass  # no hardware: nothing to map (notes reach the engine through its own port)

    def receive_midi(self, midi_bytes: Any) -> None:
        pass

    def can_lock_to_devices(self) -> bool:
        return False

    def lock_to_device(self, device: Any) -> None:
        pass

    def unlock_from_device(self, device: Any) -> None:
        pass

    def toggle_lock(self) -> None:
        pass

    def restore_bank(self, bank: Any) -> None:
        pass

    def suggest_input_port(self) -> str:
        return ""

    def suggest_output_port(self) -> str:
        return ""

    def suggest_map_mode(self, cc_no: int, channel: int = 0) -> int:
        return -1

    def supports_pad_translation(self) -> bool:
        return False

    def port_settings_changed(self) -> None:
        self.refresh_state()

    def song(self) -> Any:
        return self._c_instance.song()

    def application(self) -> Any:
        return Live.Application.get_application()

    # -- for tests and the demo --------------------------------------------------

    @property
    def client(self) -> DealerClient:
        return self._client

    @property
    def listener_count(self) -> int:
        return len(self._registry)

    @property
    def engine_process(self) -> Optional[EngineProcess]:
        """The engine this script started, if it started one."""
        return self._engine

    # -- the tick ----------------------------------------------------------------

    def _tick(self) -> None:
        was_connected = self._client.connected
        received = self._client.poll()
        if was_connected and not self._client.connected:
            self._show("lkjam: engine connection lost, reconnecting")
        if not self._client.connected:
            self._check_engine()
        if len(self._inbox) + len(received) > INBOX_LIMIT:
            self._log_once("engine messages arrive faster than ticks; oldest dropped")
        self._inbox.extend(received)
        # Structure first, so engine messages meet the tracks as they are now.
        if self._structure_dirty:
            self._rebuild()
        if self._clips_dirty:
            self._rescan_clips()
        if self._request is not None:  # in the tick: Live forbids it in a notification
            self._create_ai_track()
            if self._structure_dirty:  # the new track serves this tick's messages
                self._rebuild()
        for _ in range(min(MAX_INCOMING_PER_TICK, len(self._inbox))):
            frames = self._inbox.popleft()
            try:  # one bad message must not cost the others, or the tick
                self._receive(frames)
            except Exception as exc:
                self._log_once("an engine message failed: %s: %s" % (type(exc).__name__, exc))
                self._show("lkjam: an engine message could not be handled; " + VERSION_ADVICE)
        beat = self._song.beat
        for key, handler in self._clips.items():
            try:
                handler.update_playing(beat)
            except Exception as exc:  # deleted under us: the rescan drops it
                self._clip_unreadable(key, exc)
        if self._client.connected:
            self._send_changes()
            self._client.flush()

    def _send_changes(self) -> None:
        transport = self._song.transport()
        if transport is not None:
            self._send("transport", transport, key="transport")
        scale = self._song.scale()
        if scale is not None:
            self._send("scale", scale, key="scale")
        controls = self._controls
        if controls is not None and (self._controls_dirty or controls.dirty):
            self._send("controls", controls.values(self._styles), key="controls")
            controls.dirty = False
        self._controls_dirty = False
        budget = MAX_CLIPS_PER_TICK
        for key, handler in self._clips.items():
            if budget == 0:
                break
            if handler.dirty:
                handler.dirty = False
                try:
                    fields = handler.message_fields()
                except Exception as exc:
                    self._clip_unreadable(key, exc)
                    continue
                self._send("clip", fields, key=("clip", *key))
                budget -= 1
        if self._controls is not None and self._controls.take_trigger():
            self._request_accompaniment()

    def _clip_unreadable(self, key: Tuple[int, int], exc: Exception) -> None:
        self._log_once("clip at track %d slot %d unreadable: %s" % (key[0], key[1], exc))
        self._clips_dirty = True

    # -- the engine this script starts ---------------------------------------------

    def _check_engine(self) -> None:
        """Not connected: did our engine exit? Should we start one? (No blocking call.)"""
        engine = self._engine
        if engine is not None:
            code = engine.exit_code()
            if code is None:
                return  # still starting up; the client keeps retrying
            self._engine = None
            self._log(
                "the engine this script started exited with code %d; its log: %s"
                % (code, engine.log_path)
            )
            self._show("lkjam: the engine stopped (exit code %d); see %s" % (code, engine.log_path))
            if not self._engine_answered:
                self._autostart = False  # it fails on its own: starting it again would loop
            return
        # Start only once a connection attempt has failed: a running engine is used.
        if self._autostart and self._client.state == IDLE and self._client.attempts > 0:
            self._start_engine()

    def _start_engine(self) -> None:
        self._autostart = False  # until this start is known to work
        path = self._engine_file
        if not os.path.isfile(path):
            self._log("no engine at %s and no %s: not starting one" % (self._client.endpoint, path))
            self._show("lkjam: no engine running; " + INSTALL_ADVICE)
            return
        try:
            settings = read_engine_file(path)
        except (OSError, ValueError) as exc:
            self._log("cannot read %s: %s" % (path, exc))
            self._show("lkjam: cannot read the engine command; " + INSTALL_ADVICE)
            return
        command = with_endpoint(
            settings["command"], self._client.host, self._client.port, DEFAULT_PORT
        )
        log_path = settings["log"] or default_log_path()
        try:
            engine = EngineProcess(command, log_path)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._log("could not start the engine (%s): %s" % (" ".join(command), exc))
            self._show("lkjam: could not start the engine (%s); %s" % (exc, INSTALL_ADVICE))
            return
        self._engine = engine
        self._engine_answered = False
        self._engine_starts += 1
        self._autostart = self._engine_starts < MAX_ENGINE_STARTS
        self._client.retry_soon()
        self._log(
            "started the engine (pid %d): %s; its log: %s"
            % (engine.pid, " ".join(command), log_path)
        )
        self._show("lkjam: starting the engine...")

    def _on_ready(self) -> None:
        """Connected (again): introduce ourselves, then everything is news."""
        if self._engine is not None:
            self._engine_answered = True
        self._send(
            "hello",
            {
                "live_version": live_version(),
                "python": platform.python_version(),
                "script_version": messages.SCRIPT_VERSION,
            },
        )
        self._show("lkjam: connected to the engine")
        self._song.force_transport()
        self._song.scale_dirty = True
        self._controls_dirty = True
        for handler in self._clips.values():
            handler.dirty = True

    # -- structure: tracks, the AI track, its rack, watched clips ------------------

    def _structure_changed(self) -> None:
        self._structure_dirty = True

    def _clips_changed(self) -> None:
        self._clips_dirty = True

    def _close_tracks(self) -> None:
        if self._controls is not None:
            self._controls.close()
            self._controls = None
        for handler in self._tracks:
            handler.close()
        self._tracks = []
        self._ai = None
        self._request = None

    def _rebuild(self) -> None:
        self._structure_dirty = False
        self._close_tracks()
        for index, track in enumerate(self._song.song.tracks):
            if not track.has_midi_input:
                continue  # audio tracks have no notes for the engine
            handler = TrackHandler(
                track, index, self._registry, self._structure_changed, self._clips_changed
            )
            self._tracks.append(handler)
            if handler.role == "ai" and self._ai is None:
                self._ai = handler
            if handler.request and self._request is None:
                self._request = handler
        if self._ai is not None:
            rack = find_rack(self._ai.track.devices)
            if rack is not None:
                self._controls = ControlsHandler(rack, self._registry)
        self._controls_dirty = True
        # Track indexes and roles may have moved: the rescan re-keys the watched clips.
        self._clips_dirty = True

    def _rescan_clips(self) -> None:
        self._clips_dirty = False
        wanted: Dict[Tuple[int, int], Tuple[Any, str]] = {}
        for handler in self._tracks:
            clip = handler.playing_clip()
            if clip is not None and clip.is_midi_clip:
                wanted[(handler.index, handler.track.playing_slot_index)] = (clip, handler.role)
        selected = self._locate(self._song.selected_clip())
        if selected is not None:
            track_handler, slot, clip = selected
            wanted[(track_handler.index, slot)] = (clip, track_handler.role)
        for key in list(self._clips):
            handler = self._clips[key]
            clip, role = wanted.get(key, (None, ""))
            if clip is None or clip != handler.clip or CLIP_ROLES[role] != handler.role:
                # Gone, replaced, moved to another index or role: the engine forgets the
                # old entry; the new one (if any) is announced under its new key.
                del self._clips[key]
                handler.close()
                self._send_gone(handler)
        for key, (clip, role) in wanted.items():
            if key not in self._clips:
                self._clips[key] = ClipHandler(clip, key[0], key[1], role, self._registry)

    def _send_gone(self, handler: ClipHandler) -> None:
        """A watched clip stopped mattering: the engine forgets it."""
        if self._client.connected and handler.playing:
            key = ("clip", handler.track, handler.slot)  # replaces a clip still queued
            self._send("clip_gone", {"track": handler.track, "slot": handler.slot}, key=key)

    def _locate(self, clip: Any) -> Optional[Tuple[TrackHandler, int, Any]]:
        """(track handler, slot, clip) for a session MIDI clip we know the track of."""
        if not alive(clip) or not clip.is_midi_clip:
            return None
        location = clip_location(clip)
        if location is None:
            return None
        track, slot = location
        for handler in self._tracks:
            if handler.track == track:
                return handler, slot, clip
        return None

    # -- creating the AI track when asked ------------------------------------------

    def _create_ai_track(self) -> None:
        """A track is named `lkjam: add AI track`: create `lkjam [ai]` after it.

        Called from the tick. The request track is renamed first, so it asks only once
        (even if creating fails). An existing AI track means nothing is created.
        """
        request, self._request = self._request, None
        assert request is not None
        song = self._song.song
        existing = self._ai
        try:
            request.track.name = REQUEST_DONE if existing is None else REQUEST_REFUSED
        except Exception as exc:  # a deleted track; next rebuild finds any other request
            self._log_once("could not answer the AI track request: %s" % exc)
            return
        self._structure_dirty = True
        if existing is not None:
            self._log("AI track requested, but '%s' is one already" % existing.track.name)
            self._show(
                "lkjam: there is already an AI track, '%s'; nothing created" % existing.track.name
            )
            return
        index = request.index + 1
        try:
            song.create_midi_track(index)
            track = song.tracks[index]  # the return value is not relied on
            track.name = AI_TRACK_NAME
        except Exception as exc:  # too many tracks, ...
            self._log("could not create the AI track: %s: %s" % (type(exc).__name__, exc))
            self._show(
                "lkjam: could not create the AI track (%s); create a MIDI track named "
                "'%s' by hand" % (exc, AI_TRACK_NAME)
            )
            return
        routed = self._route_from_lkjam_out(track)
        try:
            states = getattr(Live.Track.Track, "monitoring_states", None)
            track.current_monitoring_state = getattr(states, "IN", MONITOR_IN)
            monitored = True
        except Exception as exc:
            self._log("could not set the AI track's monitoring: %s" % exc)
            monitored = False
        todo = []
        if not routed:
            todo.append(
                "MIDI From = '%s' (turn on Track for Input %s in Live's MIDI settings)"
                % (AI_PORT, AI_PORT)
            )
        if not monitored:
            todo.append("Monitor = In")
        self._log(
            "created the AI track '%s' at track %d (input %s, monitoring %s)"
            % (
                AI_TRACK_NAME,
                index + 1,
                AI_PORT if routed else "unset",
                "In" if monitored else "unset",
            )
        )
        if todo:
            self._show(
                "lkjam: created the AI track '%s'; set %s by hand, then put an instrument on it"
                % (AI_TRACK_NAME, " and ".join(todo))
            )
        else:
            self._show(
                "lkjam: created the AI track '%s' (MIDI From %s, Monitor In); "
                "put an instrument on it" % (AI_TRACK_NAME, AI_PORT)
            )

    def _route_from_lkjam_out(self, track: Any) -> bool:
        """MIDI From = the `lkjam out` port, if Live offers it (its Track switch is on)."""
        try:
            for routing in track.available_input_routing_types:
                if AI_PORT in str(routing.display_name).lower():
                    track.input_routing_type = routing
                    return True
        except Exception as exc:
            self._log("could not set the AI track's input: %s" % exc)
        return False

    # -- accompaniment -----------------------------------------------------------

    def _request_accompaniment(self) -> None:
        selected = self._locate(self._song.selected_clip())
        if selected is None:
            self._show("lkjam: select a MIDI clip in Session view to accompany it")
            return
        handler, slot, clip = selected
        self._serial += 1
        request_id = "acc-%d" % self._serial
        request = {
            "id": request_id,
            "track": handler.index,
            "slot": slot,
            "length": float(clip.length),
            "notes": read_notes(clip),
            "mode": self._controls.part() if self._controls is not None else "accompany",
        }
        self._pending[request_id] = {
            "slot": slot,
            "length": request["length"],
            "name": str(clip.name),
            "part": "answer" if request["mode"] == "call_response" else "lkjam",
        }
        self._send("accompany", request)
        doing = "answering" if request["mode"] == "call_response" else "accompanying"
        self._show("lkjam: %s '%s'..." % (doing, clip.name))

    def _write_accompaniment(self, message: Dict[str, Any]) -> None:
        request = self._pending.pop(str(message.get("id")), None)
        if request is None:
            self._log_once("clip_notes for unknown request id %r" % (message.get("id"),))
            self._show("lkjam: ignored an accompaniment this set did not ask for")
            return
        notes = messages.note_list(message.get("notes"))
        if notes is None:
            self._log_once("clip_notes: field 'notes' is not a list of [pitch,start,dur,vel]")
            self._show("lkjam: the engine's accompaniment was malformed; " + VERSION_ADVICE)
            return
        if self._ai is None:
            self._show(
                "lkjam: no AI track; rename a track to '%s' to create one, or set a "
                "track's input to 'lkjam out'" % REQUEST_NAME
            )
            return
        slot = self._ai.empty_slot(request["slot"])
        if slot < 0:
            self._show("lkjam: the AI track has no empty clip slot; free one, then turn macro 8")
            return
        length = max([request["length"]] + [n[1] + n[2] for n in notes])
        name = "%s (%s)" % (request["name"], request["part"])
        try:
            write_clip(self._ai.track.clip_slots[slot], length, name, notes)
        except Exception as exc:  # frozen track, slot filled meanwhile, track deleted...
            self._log(
                "could not write the accompaniment to slot %d: %s: %s"
                % (slot + 1, type(exc).__name__, exc)
            )
            self._show("lkjam: could not write the accompaniment (%s); %s" % (exc, WRITE_ADVICE))
            return
        self._show(
            "lkjam: wrote %d notes to '%s' slot %d" % (len(notes), self._ai.track.name, slot + 1)
        )

    # -- engine messages ---------------------------------------------------------

    def _receive(self, frames: List[bytes]) -> None:
        try:
            message = messages.decode(frames)
        except ValueError as exc:
            self._log_once("ignored a malformed engine message: %s" % exc)
            self._show("lkjam: ignored a malformed engine message; " + VERSION_ADVICE)
            return
        kind = message["type"]
        if kind == "welcome":
            styles = message.get("styles")
            if isinstance(styles, list):
                self._styles = [str(s) for s in styles]
                self._controls_dirty = True
            self._show(
                "lkjam: engine %s ready, model %s"
                % (message.get("engine_version", "?"), message.get("model", "?"))
            )
        elif kind == "status":
            self._show("lkjam: %s" % message.get("text", ""))
        elif kind == "clip_notes":
            self._write_accompaniment(message)
        elif kind == "error":
            text = str(message.get("text", ""))
            self._pending.pop(str(message.get("id")), None)  # a failed accompany request
            self._log("engine error: %s" % text)
            self._show("lkjam engine: %s" % text)

    # -- output helpers ----------------------------------------------------------

    def _send(self, kind: str, fields: Dict[str, Any], key: Any = None) -> None:
        self._client.send([messages.encode(messages.make(kind, **fields))], key)

    def _log(self, text: str) -> None:
        self._c_instance.log_message("lkjam: " + text)

    def _log_once(self, text: str) -> None:
        """Log a recurring problem once, not on every tick."""
        if text not in self._logged and len(self._logged) < MAX_LOGGED_ERRORS:
            self._logged.add(text)
            self._log(text)

    def _show(self, text: str) -> None:
        self._c_instance.show_message(text)
