"""The real LKJam control surface, driven by the fake Live, against a pyzmq ROUTER."""

from __future__ import annotations

import ast
import itertools
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from lkjam.engine import protocol
from lkjam.remote_script.fake_live.driver import VERSIONS, FakeLive

SCRIPT_DIR = Path(__file__).resolve().parents[2] / "remote_script" / "LKJam"
MAX_TICKS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Engine:
    """A pyzmq ROUTER standing in for the engine; remembers every message it got.

    Every message is checked against the engine's protocol table on arrival.
    """

    def __init__(self, ctx: zmq.Context, port: int) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(f"tcp://127.0.0.1:{port}")
        self.identity: bytes | None = None
        self.received: list[dict[str, Any]] = []

    def drain(self) -> None:
        while self.sock.poll(0):
            identity, payload = self.sock.recv_multipart()
            self.identity = identity
            self.received.append(protocol.decode(payload, protocol.TO_ENGINE))

    def send(self, **message: Any) -> None:
        assert self.identity is not None
        self.sock.send_multipart([self.identity, json.dumps({"v": 1, **message}).encode()])

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind]


def run_until(live: FakeLive, engine: Engine, done: Callable[[], bool], step: float = 0.1) -> None:
    """Tick Live (simulated `step` seconds each) until `done()`."""
    for _ in range(MAX_TICKS):
        live.tick(step)
        engine.sock.poll(2)
        engine.drain()
        if done():
            return
    raise AssertionError(
        "condition not reached; got {}; log {}".format(
            [m["type"] for m in engine.received], live.c_instance.log[-3:]
        )
    )


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def engine(ctx: zmq.Context, port: int) -> Engine:
    return Engine(ctx, port)


Version = tuple[int, int, int]


@pytest.fixture(params=sorted(VERSIONS))
def version(request: pytest.FixtureRequest) -> Version:
    """Every test that builds a set runs in the fake Live 11.3, 12.0 and 12.1."""
    return VERSIONS[request.param]


def build_set(version: Version) -> dict[str, Any]:
    live = FakeLive(version=version, tempo=100.0)
    keys = live.add_midi_track("Keys [human]")
    ai = live.add_midi_track("Band", input_routing="lkjam out")
    bass = live.add_midi_track("Bass")
    bassline = live.add_clip(
        bass, 0, 4.0, [(43, 2.0, 1.0, 90), (40, 0.0, 1.0, 100)], name="bassline"
    )
    riff = live.add_clip(keys, 1, 2.0, [(72, 0.5, 0.25, 110)], name="riff", looping=False)
    return {"live": live, "keys": keys, "ai": ai, "bass": bass, "bassline": bassline, "riff": riff}


def all_listeners(live: FakeLive, extra: list[Any]) -> int:
    song = live.song
    objects: list[Any] = [song, song.view, *extra]
    for track in song.tracks:
        objects += [track, *track.devices, *track.clip_slots]
        for device in track.devices:
            objects += list(device.parameters)
        objects += [slot.clip for slot in track.clip_slots if slot.clip is not None]
    return sum(obj._listener_count() for obj in objects)


def test_hello_transport_clip_scale_controls(version: Version, engine: Engine, port: int) -> None:
    s = build_set(version)
    live = s["live"]
    live.set_scale(2, [0, 2, 3, 5, 7, 9, 10], "Dorian")
    live.load_surface(port=port)
    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: len(engine.of_type("transport")) >= 5)

    assert engine.received[0]["type"] == "hello"
    hello = engine.received[0]
    assert hello["v"] == 1 and hello["live_version"] == ".".join(map(str, version))
    assert hello["python"] == ".".join(map(str, sys.version_info[:3]))
    assert hello["script_version"]

    transports = engine.of_type("transport")
    assert all(t["tempo"] == 100.0 and t["playing"] and t["sig"] == [4, 4] for t in transports)
    beats = [t["beat"] for t in transports]
    assert beats == sorted(beats) and beats[-1] > beats[0]
    steps = [b - a for a, b in itertools.pairwise(beats)]
    assert steps == pytest.approx([100.0 / 60.0 * 0.1] * len(steps), abs=1e-5)
    times = [t["t"] for t in transports]
    assert times == sorted(times)

    assert engine.of_type("scale")[-1] == {
        "v": 1,
        "type": "scale",
        "root": 2,
        "intervals": [0, 2, 3, 5, 7, 9, 10],
    }
    assert engine.of_type("controls") == []  # no lkjam rack: the engine keeps its settings

    (clip,) = engine.of_type("clip")
    assert clip["track"] == 2 and clip["slot"] == 0 and clip["name"] == "bassline"
    assert clip["role"] == "clip" and clip["playing"] is True
    assert clip["length"] == 4.0 and clip["looping"] is True and clip["loop"] == [0.0, 4.0]
    assert clip["notes"] == [[40, 0.0, 1.0, 100], [43, 2.0, 1.0, 90]]
    # It started at song beat 0, before the first tick moved the transport.
    assert clip["start_beat"] == pytest.approx(0.0, abs=1e-6)
    live.disconnect()


def test_transport_follows_tempo_changes_and_stops(
    version: Version, engine: Engine, port: int
) -> None:
    live = build_set(version)["live"]
    clock = [100.0]
    live.load_surface(port=port, clock=lambda: clock[0])
    live.play()
    run_until(live, engine, lambda: len(engine.of_type("transport")) >= 3)
    live.song.tempo = 140.0
    run_until(live, engine, lambda: engine.of_type("transport")[-1]["tempo"] == 140.0)
    live.song.signature_numerator = 7
    live.song.signature_denominator = 8
    run_until(live, engine, lambda: engine.of_type("transport")[-1]["sig"] == [7, 8])
    live.stop()
    run_until(live, engine, lambda: engine.of_type("transport")[-1]["playing"] is False)
    # Stopped and unchanged: one keep-alive snapshot a second, no more.
    count = len(engine.of_type("transport"))
    for _ in range(30):
        clock[0] += 0.1
        live.tick(0.1)
    # The script's socket thread sends them when it gets the CPU: wait for two, then
    # for any third, before counting.
    deadline = time.monotonic() + 5
    while len(engine.of_type("transport")) - count < 2 and time.monotonic() < deadline:
        engine.sock.poll(50)
        engine.drain()
    engine.sock.poll(100)
    engine.drain()
    assert len(engine.of_type("transport")) - count in (2, 3)
    assert engine.of_type("transport")[-1]["t"] >= clock[0] - 1.0
    live.disconnect()


def test_roles_selected_clip_and_stop(version: Version, engine: Engine, port: int) -> None:
    s = build_set(version)
    live = s["live"]
    live.load_surface(port=port)
    live.select_clip(s["riff"])  # selected, not playing
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    riff = engine.of_type("clip")[-1]
    assert riff["name"] == "riff" and riff["role"] == "human" and riff["playing"] is False
    assert riff["looping"] is False and riff["slot"] == 1 and riff["track"] == 0
    assert riff["loop"] == [0.0, 2.0]  # plays once: start and end markers

    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: engine.of_type("clip")[-1]["name"] == "bassline")
    s["bass"].stop_all_clips()
    run_until(live, engine, lambda: bool(engine.of_type("clip_gone")))
    assert engine.of_type("clip_gone") == [{"v": 1, "type": "clip_gone", "track": 2, "slot": 0}]

    # The AI track's own clips are known to the engine but not fed to the model.
    take = live.add_clip(s["ai"], 3, 4.0, [(64, 0.0, 1.0, 70)], name="old take")
    live.fire(s["ai"], 3)
    run_until(live, engine, lambda: engine.of_type("clip")[-1]["name"] == "old take")
    assert engine.of_type("clip")[-1]["role"] == "ignore"
    assert take.is_playing

    # Editing the selected clip's notes resends it.
    s["riff"]._add(74, 1.0, 0.5, 100)
    s["riff"]._notify("notes")
    run_until(live, engine, lambda: len(engine.of_type("clip")[-1]["notes"]) == 2)
    live.disconnect()


def test_controls_from_the_lkjam_rack(version: Version, engine: Engine, port: int) -> None:
    s = build_set(version)
    live = s["live"]
    rack = live.add_rack(s["ai"], "LKJam ", macros=[127, 0, 127, 127, 0, 127, 127])
    live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.of_type("controls")))
    assert "style" not in engine.of_type("controls")[0]  # no style list from the engine yet
    engine.send(
        type="welcome", engine_version="0.1.0", model="default", styles=["bach", "folk", "jazz"]
    )
    run_until(live, engine, lambda: engine.of_type("controls")[-1].get("style") == "jazz")
    controls = engine.of_type("controls")[-1]
    assert controls["mode"] == "call_response"
    assert controls["temperature"] == pytest.approx(0.1)
    assert controls["density"] == pytest.approx(1.0)
    assert controls["turn_bars"] == 1 and controls["cycle_bars"] == 32
    assert controls["top_p"] == pytest.approx(1.0)
    assert live.c_instance.messages[-1].startswith("lkjam: engine 0.1.0 ready")

    live.set_macro(rack, 1, 64)  # the middle third: accompany
    live.set_macro(rack, 2, 127)
    run_until(live, engine, lambda: engine.of_type("controls")[-1]["mode"] == "accompany")
    assert engine.of_type("controls")[-1]["temperature"] == pytest.approx(2.0)

    # Renaming the rack away from "lkjam" stops listening to it.
    assert rack.parameters[2]._listener_count() == 1
    rack.name = "something else"
    run_until(live, engine, lambda: rack.parameters[2]._listener_count() == 0)
    count = len(engine.of_type("controls"))
    live.set_macro(rack, 2, 0)
    live.tick(0.1)
    assert len(engine.of_type("controls")) == count
    live.disconnect()


@pytest.mark.parametrize("legacy", [False, True], ids=["add_new_notes", "set_notes"])
def test_clip_notes_become_a_new_clip(
    version: Version, engine: Engine, port: int, legacy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = build_set(version)
    live = s["live"]
    if legacy:  # Live 10: no MidiNoteSpecification / extended note API
        monkeypatch.delattr(live.Live.Clip, "MidiNoteSpecification")
        for name in ("get_all_notes_extended", "get_notes_extended", "add_new_notes"):
            monkeypatch.delattr(live.Live.Clip.Clip, name)
    rack = live.add_rack(s["ai"])
    live.load_surface(port=port)
    live.select_clip(s["bassline"])
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    live.set_macro(rack, 8, 127)  # the accompany macro
    run_until(live, engine, lambda: bool(engine.of_type("accompany")))
    (request,) = engine.of_type("accompany")
    assert request["track"] == 2 and request["slot"] == 0 and request["length"] == 4.0
    assert request["notes"] == [[40, 0.0, 1.0, 100], [43, 2.0, 1.0, 90]]
    assert request["mode"] == "accompany"  # the mode dial is off: an accompaniment

    notes = [[52, 0.0, 1.5, 80], [55, 0.0, 1.5, 81], [59, 2.0, 0.5, 99]]
    engine.send(type="clip_notes", id=request["id"], notes=notes)
    slot = s["ai"].clip_slots[0]
    run_until(live, engine, lambda: slot.has_clip)
    written = sorted(
        [n[0], n[1], n[2], n[3]]
        for n in slot.clip.get_notes(0.0, 0, 100.0, 128)  # the API every Live has
    )
    assert written == notes
    assert slot.clip.length == 4.0 and slot.clip.name == "bassline (lkjam)"
    assert "wrote 3 notes" in live.c_instance.messages[-1]

    # A second request fills the next empty slot; the first clip stays as it was.
    live.set_macro(rack, 8, 0)
    live.set_macro(rack, 8, 127)
    run_until(live, engine, lambda: len(engine.of_type("accompany")) == 2)
    engine.send(type="clip_notes", id=engine.of_type("accompany")[1]["id"], notes=notes[:1])
    run_until(live, engine, lambda: s["ai"].clip_slots[1].has_clip)
    assert len(slot.clip.get_notes(0.0, 0, 100.0, 128)) == 3

    # In call and response the same macro asks for an answer, written as one.
    live.set_macro(rack, 1, 127)  # the top third: call_response
    live.set_macro(rack, 8, 0)
    live.set_macro(rack, 8, 127)
    run_until(live, engine, lambda: len(engine.of_type("accompany")) == 3)
    answer = engine.of_type("accompany")[2]
    assert answer["mode"] == "call_response"
    engine.send(type="clip_notes", id=answer["id"], notes=notes[:1])
    run_until(live, engine, lambda: s["ai"].clip_slots[2].has_clip)
    assert s["ai"].clip_slots[2].clip.name == "bassline (answer)"
    live.disconnect()


def test_bad_engine_messages_are_not_fatal(version: Version, engine: Engine, port: int) -> None:
    live = build_set(version)["live"]
    live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.received))
    assert engine.identity is not None
    for _ in range(3):
        engine.sock.send_multipart([engine.identity, b"not json"])
    engine.send(type="clip_notes", id="nobody asked", notes=[])
    engine.send(type="error", text="model file is corrupt")
    engine.send(type="status", text="listening")
    run_until(live, engine, lambda: live.c_instance.messages[-1] == "lkjam: listening")
    log = live.c_instance.log
    assert sum("malformed" in line for line in log) == 1  # once, not per message
    assert any("model file is corrupt" in m for m in live.c_instance.messages)
    live.play()
    run_until(live, engine, lambda: engine.of_type("transport")[-1]["playing"] is True)
    live.disconnect()


@pytest.mark.parametrize("name", ["11.3", "12.0"])
def test_push_default_scale_claims_no_key_on_live_11(name: str, engine: Engine, port: int) -> None:
    """Live 11 has root_note/scale_intervals too, but they are Push's C Major: no key."""
    s = build_set(VERSIONS[name])
    live = s["live"]
    assert live.song.root_note == 0 and live.song.scale_name == "Major"
    live.load_surface(port=port)
    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    live.run(0.5, realtime=False)
    engine.drain()
    if name == "11.3":
        assert engine.of_type("scale") == []  # the engine keeps its own --scale
    else:  # Live 12, Scale mode off: the set says "no scale" outright
        assert [m["intervals"] for m in engine.of_type("scale")] == [[]]

    live.set_scale(0, [0, 2, 4, 5, 7, 9, 11], "Major")  # now Push (or Scale mode) says C Major
    if name == "11.3":
        live.song.root_note = 9  # a Push user picks A...
        live.song.root_note = 0  # ...and back to C: deliberately C Major
    run_until(
        live,
        engine,
        lambda: (
            engine.of_type("scale")[-1:] != [] and bool(engine.of_type("scale")[-1]["intervals"])
        ),
    )
    assert engine.of_type("scale")[-1]["root"] == 0
    assert not any("tick failed" in line for line in live.c_instance.log)
    live.disconnect()


def test_a_push_scale_set_before_loading_is_the_key_on_live_11(engine: Engine, port: int) -> None:
    s = build_set(VERSIONS["11.3"])
    live = s["live"]
    assert not hasattr(live.song, "scale_mode")
    live.set_scale(7, [0, 2, 4, 5, 7, 9, 10], "Mixolydian")  # saved in the set by a Push
    live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.of_type("scale")))
    assert engine.of_type("scale")[0]["root"] == 7
    assert engine.of_type("scale")[0]["intervals"] == [0, 2, 4, 5, 7, 9, 10]
    live.disconnect()


def test_disconnect_removes_every_listener_and_says_bye(
    version: Version, engine: Engine, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    rack = live.add_rack(s["ai"])
    surface = live.load_surface(port=port)
    live.select_clip(s["riff"])
    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: len(engine.of_type("clip")) >= 2)
    attached = all_listeners(live, [])
    assert attached == surface.listener_count > 0
    assert any(p._listener_count() for p in rack.parameters)

    live.disconnect()
    assert surface.listener_count == 0
    assert all_listeners(live, []) == 0
    engine.sock.poll(1000)
    engine.drain()
    assert engine.received[-1]["type"] == "bye"


def test_rebuilds_when_tracks_change_without_leaking(
    version: Version, engine: Engine, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    surface = live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.of_type("transport")))
    before = surface.listener_count
    for i in range(5):
        live.add_midi_track(f"extra {i}")
        live.tick(0.1)
        s["keys"].name = f"Keys {i} [human]"
        live.tick(0.1)
    assert surface.listener_count == before + 5 * 3  # name, routing, playing slot per track
    assert all_listeners(live, []) == surface.listener_count
    live.disconnect()
    assert all_listeners(live, []) == 0


def test_no_engine_ticks_are_fast_and_it_connects_when_the_engine_appears(
    version: Version, ctx: zmq.Context, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    live.load_surface(port=port)
    live.play()
    live.fire(s["bass"], 0)
    durations = []
    for _ in range(200):
        start = time.perf_counter()
        live.tick(0.1)
        durations.append(time.perf_counter() - start)
    # A connect or lookup that blocked Live's thread would cost each tick its wait (tens of
    # ms or more); the fake's own tick is ~0.1 ms, so 5 ms is far from both, and the
    # median of 200 ticks does not move with a busy moment of the machine.
    assert statistics.median(durations) < 0.005
    assert sum("not reachable" in line for line in live.c_instance.log) == 1

    engine = Engine(ctx, port)  # the engine starts
    run_until(live, engine, lambda: len(engine.of_type("transport")) >= 2, step=0.1)
    assert engine.received[0]["type"] == "hello"
    assert engine.of_type("clip")[0]["name"] == "bassline"
    live.disconnect()


def test_script_parses_as_python_3_7_and_imports_only_stdlib_and_live() -> None:
    files = sorted(SCRIPT_DIR.glob("*.py"))
    assert len(files) >= 7
    allowed = set(sys.stdlib_module_names) | {"Live"}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 7))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
            assert "__future__" not in names, f"{path.name}: no __future__ imports"


def test_every_macro_position_sends_controls_the_engine_accepts() -> None:
    from lkjam.remote_script.LKJam import controls

    for name, mapping in controls._MACROS:
        if mapping is None:
            continue  # mode and style: below, and the engine's own style list
        for x in (0.0, 0.5, 1.0):  # the mappings are monotonic: the ends bound them
            protocol.validate({"v": 1, "type": "controls", name: mapping(x)}, protocol.TO_ENGINE)
    assert set(controls.MODES) == set(protocol.MODES)


def test_the_scripts_roles_are_the_protocols() -> None:
    live = FakeLive(version=VERSIONS["12.1"])  # provides the `Live` module clip.py imports
    tracks = [
        live.add_midi_track("Keys [human]"),
        live.add_midi_track("Band", input_routing="lkjam out"),
        live.add_midi_track("Bass"),
    ]
    from lkjam.remote_script.LKJam import clip, track

    roles = {track.track_role(t) for t in tracks}
    assert set(clip.CLIP_ROLES) == roles == {"human", "ai", "clip"}
    assert set(clip.CLIP_ROLES.values()) <= set(protocol.CLIP_ROLES)


def test_clip_anchor_follows_live_without_spurious_resends(
    version: Version, engine: Engine, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    live.load_surface(port=port)
    live.play()
    live.run(1.2, realtime=False)  # the clip starts 2 beats into the song
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    first = engine.of_type("clip")[0]
    assert first["start_beat"] == pytest.approx(2.0, abs=1e-6)
    live.run(6.0, realtime=False)  # 10 beats: the 4-beat loop wraps twice
    engine.sock.poll(20)
    engine.drain()
    assert len(engine.of_type("clip")) == 1

    s["bassline"]._start_beat -= 1.0  # Live's clip jumps a beat ahead of the song
    run_until(live, engine, lambda: len(engine.of_type("clip")) == 2)
    moved = engine.of_type("clip")[1]
    assert moved["playing"] is True
    # Same phase modulo the loop: 1 beat earlier.
    assert (first["start_beat"] - moved["start_beat"]) % 4.0 == pytest.approx(1.0, abs=1e-6)
    live.disconnect()


def test_a_clip_whose_track_moves_is_re_keyed(version: Version, engine: Engine, port: int) -> None:
    s = build_set(version)
    live = s["live"]
    surface = live.load_surface(port=port)
    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    assert engine.of_type("clip")[-1]["track"] == 2

    # A new track at the top: the bass track is now index 3.
    song = live.song
    new = live.Live.Track.Track(song, "Pad")
    song._set("tracks", (new, *song.tracks))
    run_until(live, engine, lambda: len(engine.of_type("clip")) >= 2)
    moved = engine.of_type("clip")[1]
    assert (moved["track"], moved["playing"], moved["name"]) == (3, True, "bassline")
    assert [(m["track"], m["slot"]) for m in engine.of_type("clip_gone")] == [(2, 0)]

    # The bass track is deleted: its clip stops existing for the engine.
    live.delete_track(s["bass"])
    run_until(live, engine, lambda: len(engine.of_type("clip_gone")) == 2)
    assert engine.of_type("clip_gone")[-1]["track"] == 3
    assert all_listeners(live, []) == surface.listener_count
    live.disconnect()
    assert s["bass"]._listener_count() + s["bassline"]._listener_count() == 0
    assert not any("tick failed" in line for line in live.c_instance.log)


def request_accompaniment(live: FakeLive, engine: Engine, rack: Any, clip: Any) -> dict[str, Any]:
    """Select `clip`, flick macro 8, return the `accompany` request the engine got."""
    count = len(engine.of_type("accompany"))
    live.select_clip(clip)
    live.set_macro(rack, 8, 0)
    live.set_macro(rack, 8, 127)
    run_until(live, engine, lambda: len(engine.of_type("accompany")) > count)
    return engine.of_type("accompany")[-1]


def test_a_failing_clip_write_costs_only_itself(
    version: Version, engine: Engine, port: int
) -> None:
    """Frozen AI track: one log line, advice in the status bar, the next message still
    handled in the same tick, no clip left behind; unfrozen, the next request works."""
    s = build_set(version)
    live = s["live"]
    rack = live.add_rack(s["ai"])
    live.load_surface(port=port)
    request = request_accompaniment(live, engine, rack, s["bassline"])
    s["ai"]._set("is_frozen", True)
    engine.send(type="clip_notes", id=request["id"], notes=[[52, 0.0, 1.0, 80]])
    engine.send(type="status", text="after the write")
    run_until(live, engine, lambda: "lkjam: after the write" in live.c_instance.messages)
    log = live.c_instance.log
    assert sum("could not write the accompaniment" in line for line in log) == 1
    assert any("unfreeze the AI track" in m for m in live.c_instance.messages)
    assert not any(slot.has_clip for slot in s["ai"].clip_slots)
    assert not any("tick failed" in line for line in log)

    s["ai"]._set("is_frozen", False)
    request = request_accompaniment(live, engine, rack, s["bassline"])
    engine.send(type="clip_notes", id=request["id"], notes=[[52, 0.0, 1.0, 80]])
    run_until(live, engine, lambda: s["ai"].clip_slots[0].has_clip)
    live.disconnect()


def test_a_clip_that_fails_after_creation_is_removed(
    version: Version, engine: Engine, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = build_set(version)
    live = s["live"]
    rack = live.add_rack(s["ai"])
    live.load_surface(port=port)
    request = request_accompaniment(live, engine, rack, s["bassline"])

    def refuse(self: Any, specifications: Any) -> None:
        raise RuntimeError("Notes cannot be added")

    monkeypatch.setattr(live.Live.Clip.Clip, "add_new_notes", refuse)
    engine.send(type="clip_notes", id=request["id"], notes=[[52, 0.0, 1.0, 80]])
    run_until(live, engine, lambda: any("could not write" in m for m in live.c_instance.messages))
    assert not any(slot.has_clip for slot in s["ai"].clip_slots)
    live.disconnect()


def test_every_bad_engine_message_is_logged_once_and_shown(
    version: Version, engine: Engine, port: int
) -> None:
    live = build_set(version)["live"]
    live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.received))
    bad = [
        dict(type="clip_notes", id="nobody asked", notes=[]),
        dict(type="welcome", styles=None),  # no versions, no styles: still a welcome
        dict(type="nonsense"),
    ]
    for message in bad * 2:
        engine.send(**message)
    engine.send(type="status", text="still here")
    run_until(live, engine, lambda: live.c_instance.messages[-1:] == ["lkjam: still here"])
    log, shown = live.c_instance.log, live.c_instance.messages
    assert sum("unknown request id" in line for line in log) == 1
    assert sum("malformed" in line for line in log) == 1
    assert any("did not ask for" in m for m in shown)
    assert any("malformed" in m and "lkjam install" in m for m in shown)
    assert not any("tick failed" in line for line in log)
    live.disconnect()


def test_a_deleted_watched_clip_does_not_fail_the_tick(
    version: Version, engine: Engine, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    live.load_surface(port=port)
    live.select_clip(s["riff"])
    live.play()
    live.fire(s["bass"], 0)
    run_until(live, engine, lambda: len(engine.of_type("clip")) >= 2)
    s["keys"].clip_slots[1].delete_clip()  # the selected clip: Live keeps pointing at it
    s["bass"].clip_slots[0].delete_clip()  # the playing one
    run_until(live, engine, lambda: bool(engine.of_type("clip_gone")))
    assert [(m["track"], m["slot"]) for m in engine.of_type("clip_gone")] == [(2, 0)]
    live.run(0.5, realtime=False)
    assert not any("tick failed" in line for line in live.c_instance.log)
    live.disconnect()


def test_a_one_shot_clip_is_resent_when_its_end_marker_moves(
    version: Version, engine: Engine, port: int
) -> None:
    s = build_set(version)
    live = s["live"]
    live.load_surface(port=port)
    live.select_clip(s["riff"])  # looping off: loop = [start_marker, end_marker]
    run_until(live, engine, lambda: bool(engine.of_type("clip")))
    assert engine.of_type("clip")[-1]["loop"] == [0.0, 2.0]
    s["riff"].end_marker = 1.5
    run_until(live, engine, lambda: engine.of_type("clip")[-1]["loop"] == [0.0, 1.5])
    live.disconnect()


def test_transport_time_is_perf_counter_not_monotonic(engine: Engine, port: int) -> None:
    """time.monotonic has 15.6 ms steps on Windows before Python 3.13."""
    for path in SCRIPT_DIR.glob("*.py"):
        assert "monotonic" not in path.read_text(encoding="utf-8"), path.name
    live = build_set(VERSIONS["12.1"])["live"]
    live.load_surface(port=port)
    live.play()
    before = time.perf_counter()
    run_until(live, engine, lambda: bool(engine.of_type("transport")))
    assert before <= engine.of_type("transport")[0]["t"] <= time.perf_counter()
    live.disconnect()


REQUEST = "lkjam: add AI track"


def request_set(version: Version, midi_inputs: tuple[str, ...] = ("lkjam out",)) -> dict[str, Any]:
    """A set with no AI track: keys, a bass clip, and an empty MIDI track to ask with."""
    live = FakeLive(version=version, tempo=100.0, midi_inputs=midi_inputs)
    keys = live.add_midi_track("Keys [human]")
    bass = live.add_midi_track("Bass")
    bassline = live.add_clip(bass, 0, 4.0, [(40, 0.0, 1.0, 100)], name="bassline")
    spare = live.add_midi_track("3-MIDI")
    return {"live": live, "keys": keys, "bass": bass, "bassline": bassline, "spare": spare}


def ai_tracks(live: FakeLive) -> list[Any]:
    return [t for t in live.song.tracks if t.name == "lkjam [ai]"]


def test_asking_creates_the_ai_track_once_and_it_is_used(
    version: Version, engine: Engine, port: int
) -> None:
    s = request_set(version)
    live = s["live"]
    live.load_surface(port=port)
    run_until(live, engine, lambda: bool(engine.of_type("hello")))
    live.run(1.0, realtime=False)
    assert len(live.song.tracks) == 3 and not ai_tracks(live)  # nobody asked

    s["spare"].name = REQUEST  # the user renames the empty track: the request
    live.tick(0.1)
    (ai,) = ai_tracks(live)
    assert list(live.song.tracks).index(ai) == 3  # right after the request track
    assert len(live.song.tracks) == 4
    assert ai.input_routing_type.display_name == "lkjam out"
    assert ai.current_monitoring_state == live.Live.Track.Track.monitoring_states.IN == 0
    assert s["spare"].name == "lkjam: AI track added"  # handled: it asks no more
    assert "created the AI track 'lkjam [ai]'" in live.c_instance.messages[-1]
    assert "Monitor In" in live.c_instance.messages[-1]
    live.run(1.0, realtime=False)
    assert len(live.song.tracks) == 4

    # The script uses it: auto-accompany writes there.
    rack = live.add_rack(ai)
    live.select_clip(s["bassline"])
    run_until(live, engine, lambda: bool(engine.of_type("controls")))
    live.set_macro(rack, 8, 127)
    run_until(live, engine, lambda: bool(engine.of_type("accompany")))
    (request,) = engine.of_type("accompany")
    assert request["track"] == 1
    engine.send(type="clip_notes", id=request["id"], notes=[[52, 0.0, 1.0, 80]])
    run_until(live, engine, lambda: ai.clip_slots[0].has_clip)
    assert ai.clip_slots[0].clip.name == "bassline (lkjam)"
    assert "to 'lkjam [ai]' slot 1" in live.c_instance.messages[-1]

    # Asking again (any case, spaces around) creates nothing: there is one already.
    s["keys"].name = "  LKJam: Add AI Track "
    live.run(1.0, realtime=False)
    assert len(live.song.tracks) == 4 and len(ai_tracks(live)) == 1
    assert s["keys"].name == "lkjam: AI track exists"
    assert any("already an AI track, 'lkjam [ai]'" in m for m in live.c_instance.messages)
    live.disconnect()
    assert all_listeners(live, []) == 0


def test_without_the_lkjam_out_port_the_track_is_created_and_the_user_told(
    version: Version, engine: Engine, port: int
) -> None:
    s = request_set(version, midi_inputs=())  # Input lkjam out missing or Track off
    live = s["live"]
    live.load_surface(port=port)
    s["spare"].name = REQUEST
    live.run(0.5, realtime=False)
    (ai,) = ai_tracks(live)
    assert ai.input_routing_type.display_name == "All Ins"  # left as Live made it
    assert ai.current_monitoring_state == 0
    message = next(m for m in live.c_instance.messages if "created the AI track" in m)
    assert "set MIDI From = 'lkjam out'" in message and "by hand" in message
    # Named [ai], it is the AI track all the same: accompaniments go there.
    assert not any("no AI track" in m for m in live.c_instance.messages)
    live.disconnect()


@pytest.mark.parametrize("existing", ["none", "by input", "by name"])
def test_not_asking_creates_nothing(version: Version, existing: str) -> None:
    live = FakeLive(version=version)
    live.add_midi_track("Keys [human]")
    live.add_midi_track("lkjam")  # near misses are not requests
    live.add_midi_track("add AI track")
    if existing == "by input":
        live.add_midi_track("Band", input_routing="lkjam out")
    elif existing == "by name":
        live.add_midi_track("Band [ai]")
    names = [t.name for t in live.song.tracks]
    live.load_surface(port=free_port())
    live.run(2.0, realtime=False)
    live.song.tracks[0].name = "Keys 2 [human]"
    live.run(1.0, realtime=False)
    assert [t.name for t in live.song.tracks][1:] == names[1:]
    assert not any("AI track" in m for m in live.c_instance.messages)
    live.disconnect()
