"""What Live does to the beat clock (issue 12), on the real generator and a simulated clock.

`Live` plays a song: a tempo, seeks, an optional loop region, transport snapshots ten
times a second and MIDI clock on `lkjam in` (24 ticks a beat at their exact times, unless
a stall holds them back and lets them through at once). A looping clip with a note on
every beat feeds the model, which always plans half a beat after the last event, so every
AI note belongs on the half-beat grid of the song: a beat clock that loses the song shows
as notes off that grid, or as no notes at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from engine_harness import free_endpoint, wait_for
from generator_rig import HALF, ListOutput, Rig, clip
from lkjam.engine import protocol
from lkjam.engine.generator import Generator
from lkjam.engine.protocol import MESSAGES
from lkjam.engine.scheduler import Scheduler
from lkjam.engine.server import Server
from lkjam.engine.sync import MIDI_CLOCK, MIDI_SPP, MIDI_START, TICKS_PER_BEAT

from lkjam import _step

TICK = 1 / TICKS_PER_BEAT


class Live(Rig):
    """A Rig whose song has seeks, tempo changes and a loop region, with MIDI clock."""

    def __init__(self, tmp_path: Path, *, midi_clock: bool = True, spp: bool = True) -> None:
        super().__init__(tmp_path, HALF)
        self.tempo = 120.0
        self.loop: tuple[float, float] | None = None
        self.midi_clock, self.spp = midi_clock, spp
        self.anchor = (self.now, 0.0)  # (time, unwrapped song beat), tick-aligned
        self.ticks = 0  # ticks sent since the anchor
        self.stall: tuple[float, float] | None = None  # ticks due in [a, b) arrive at b
        self.held = 0
        self.clock_offset = 0.0  # the sender's clock minus ours
        self.bad_t = 0.0  # added to the next snapshot's `t` only
        if midi_clock:
            self.gen.midi_queue.append((self.now, bytes([MIDI_START])))
        self.message("clip", **clip([[40, 0.0, 0.5, 100]], length=1.0, loop=[0.0, 1.0]))

    def beat(self, t: float | None = None) -> float:
        """Live's song position at `t` (after the last seek), inside the loop region."""
        t0, b0 = self.anchor
        beat = b0 + ((self.now if t is None else t) - t0) * self.tempo / 60.0
        if self.loop is not None and beat >= self.loop[1] - 1e-9:
            start, end = self.loop
            beat = start + (beat - start) % (end - start)
        return beat

    def seek(self, beat: float, tempo: float | None = None) -> None:
        self.anchor = (self.now, beat)
        self.tempo = tempo or self.tempo
        self.ticks = 0

    def transport(self) -> None:
        self.message(
            "transport",
            tempo=self.tempo,
            beat=self.beat(),
            playing=self.playing,
            sig=[4, 4],
            t=self.now + self.clock_offset + self.bad_t,
        )
        self.bad_t = 0.0
        self.last_transport = self.now

    def _clock(self) -> None:
        t0, b0 = self.anchor
        spt = 60.0 / (self.tempo * TICKS_PER_BEAT)
        while t0 + self.ticks * spt <= self.now:
            t = t0 + self.ticks * spt
            position = round(b0 * TICKS_PER_BEAT) + self.ticks  # unwrapped, in ticks
            if self.loop is not None:
                start, end = (round(b * TICKS_PER_BEAT) for b in self.loop)
                if position >= end:
                    position = start + (position - start) % (end - start)
                    if self.spp and position == start:  # the wrap: Live says where it is
                        sixteenths = position // 6
                        self._send(t, MIDI_SPP, sixteenths & 0x7F, sixteenths >> 7)
            self.ticks += 1
            if self.stall is not None and self.stall[0] <= t < self.stall[1]:
                self.held += 1
            else:
                self._send(t, MIDI_CLOCK)
        if self.stall is not None and self.now >= self.stall[1]:
            for _ in range(self.held):  # the catch-up burst, all stamped on arrival
                self._send(self.stall[1], MIDI_CLOCK)
            self.held, self.stall = 0, None

    def _send(self, t: float, *data: int) -> None:
        self.gen.midi_queue.append((t, bytes(data)))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            if self.midi_clock:
                self._clock()
            if self.now - self.last_transport >= 0.1:
                self.transport()
            self.gen.tick(self.now)
            self.now = round(self.now + 0.001, 6)

    def ai_times(self, since: float) -> list[float]:
        """Send times of the AI note-ons since `since`."""
        return [t for t, m in self.out.sent if t >= since and m[0] == 0x90 and m[2] > 0]

    def assert_plays_on_the_grid(
        self, since: float, until: float, what: str, *, settle: float = 0.0
    ) -> None:
        """Every AI note in [since, until) on the song's half-beat grid within a MIDI clock
        tick; the first within `settle` seconds, then one in every beat."""
        times = np.array([t for t in self.ai_times(since) if t < until])
        assert len(times), f"{what}: no AI note"
        beats = np.array([self.beat(t) for t in times])
        off = np.abs(beats * 2 - np.round(beats * 2)) / 2
        assert off.max() <= TICK, f"{what}: an AI note {off.max():.3f} beats off the grid"
        spb = 60.0 / self.tempo
        assert times[0] - since <= settle + spb + 0.002, f"{what}: first note too late"
        gaps = np.diff(np.concatenate([times, [until]]))
        assert gaps.max() <= spb + 0.002, f"{what}: {gaps.max():.3f} s without an AI note"


def counting_feeds(gen: Generator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The roles of every event fed to the decoder from now on."""
    roles: list[int] = []
    feed: Callable[..., float] = gen.decoder.feed

    def counted(beat: float, role: int, *rest: Any) -> float:
        roles.append(role)
        return feed(beat, role, *rest)

    monkeypatch.setattr(gen.decoder, "feed", counted)
    return roles


@pytest.mark.parametrize("spp", [True, False], ids=["song-position", "no-song-position"])
def test_a_looped_region_under_midi_clock_plays_on_after_every_wrap(
    tmp_path: Path, spp: bool
) -> None:
    live = Live(tmp_path, spp=spp)
    live.loop = (0.0, 8.0)
    live.run(1.0)
    for wrap in range(1, 5):  # each pass: 8 beats, 4 s
        at = live.anchor[0] + wrap * 4.0
        live.run(at - live.now)
        live.run(4.0 - 0.001)
        # Within a bar of the wrap, and to the end of the pass, on Live's beat.
        live.assert_plays_on_the_grid(at, at + 4.0 - 0.3, f"pass {wrap}", settle=2.0)


@pytest.mark.parametrize("stall_s", [0.25, 0.5])
def test_a_clock_stall_and_its_catch_up_burst_are_bridged(tmp_path: Path, stall_s: float) -> None:
    live = Live(tmp_path)
    live.run(3.0)
    live.stall = (live.now, live.now + stall_s)
    live.run(stall_s + 3.0)
    line = live.gen.sync.line(live.now)
    assert line is not None and abs(line.tempo - 120.0) < 1.0
    t_burst = live.now - 3.0
    near = [t for t in live.ai_times(t_burst - 0.1) if t < t_burst + 0.1]
    assert len(near) <= 2, f"{len(near)} AI notes around the burst"
    live.assert_plays_on_the_grid(live.now - 3.0 - stall_s - 1.0, live.now, "stall")


@pytest.mark.parametrize("midi_clock", [False, True], ids=["transport", "midi-clock"])
def test_a_seek_with_a_tempo_change_is_a_jump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, midi_clock: bool
) -> None:
    live = Live(tmp_path, midi_clock=midi_clock, spp=False)
    live.run(2.05)
    roles = counting_feeds(live.gen, monkeypatch)
    t_seek = live.now
    live.seek(800.0, tempo=128.0)
    live.run(4.0)
    # Transport snapshots take 0.3 s to tell a seek from outliers; then within a bar.
    live.assert_plays_on_the_grid(t_seek + 0.5, live.now, "after the seek", settle=1.5)
    # About 8.5 beats played since the seek: a clip note each, none of those skipped.
    assert roles.count(_step.ROLE_CLIP) <= 10


def test_a_looped_region_with_tempo_automation_plays_on(tmp_path: Path) -> None:
    live = Live(tmp_path, midi_clock=False)
    for k in range(6):  # an 8-beat loop whose tempo alternates on every wrap
        live.seek(0.0, tempo=(120.0, 126.0)[k % 2])
        t_wrap = live.now
        live.run(8 * 60.0 / live.tempo - 0.001)
        if k:
            live.assert_plays_on_the_grid(t_wrap, live.now - 0.3, f"pass {k}", settle=2.0)


@pytest.mark.parametrize("how", ["transport", "transport-tempo", "midi-clock"])
def test_a_seek_far_ahead_skips_the_clip_notes_in_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    live = Live(tmp_path, midi_clock=how == "midi-clock", spp=False)
    live.run(2.05)
    roles = counting_feeds(live.gen, monkeypatch)
    t_seek = live.now
    live.seek(5000.0, tempo=128.0 if how == "transport-tempo" else None)
    live.run(3.0)
    assert roles.count(_step.ROLE_CLIP) <= 10  # about 6 beats played since the seek
    live.assert_plays_on_the_grid(t_seek + 0.5, live.now, "after the seek", settle=1.5)


def test_one_snapshot_with_a_bad_t_does_not_move_the_beat(tmp_path: Path) -> None:
    live = Live(tmp_path, midi_clock=False)
    live.run(3.0)
    live.bad_t = 5.2  # one snapshot stamped 5.2 s ahead
    live.run(6.0)
    live.assert_plays_on_the_grid(live.now - 6.0, live.now, "after the bad snapshot")


def test_the_beat_follows_a_new_sender_whose_clock_is_behind(tmp_path: Path) -> None:
    live = Live(tmp_path, midi_clock=False)
    live.run(3.0)
    live.gen.submit("release", "last client gone")  # Live reconnects...
    live.clock_offset = -40.3  # ...with a clock 40.3 s behind the old one
    live.run(4.0)
    live.assert_plays_on_the_grid(live.now - 2.0, live.now, "new sender")


# ---- two clients sending transport ---------------------------------------------------


def test_one_client_owns_the_transport_until_it_leaves_or_falls_silent() -> None:
    endpoint = free_endpoint()
    got: list[tuple[bytes, str]] = []
    context = zmq.Context()
    dealers: dict[bytes, zmq.Socket[bytes]] = {}
    encode = {kind: protocol.encode(kind, **MESSAGES[kind].example) for kind in MESSAGES}

    def on_message(rid: bytes, m: dict[str, Any]) -> None:
        got.append((rid, m["type"]))

    # A long handover, so that a slow machine never hands over by itself: the test makes
    # the owner fall silent by moving its last snapshot back.
    try:
        with Server(endpoint, on_message=on_message, transport_handover_s=60.0) as server:
            for name in (b"live-a", b"live-b"):
                dealers[name] = context.socket(zmq.DEALER)
                dealers[name].setsockopt(zmq.LINGER, 0)
                dealers[name].setsockopt(zmq.ROUTING_ID, name)
                dealers[name].connect(endpoint)

            def exchange(*names: bytes) -> list[bytes]:
                """Each of `names` sends a transport, then a scale as a marker (ZeroMQ keeps
                each peer's order); returns whose transport got through."""
                got.clear()
                # ZeroMQ keeps each peer's order but not the order between peers: each
                # sender's marker must have arrived before the next one sends.
                for count, name in enumerate(names, 1):
                    dealers[name].send(encode["transport"])
                    dealers[name].send(encode["scale"])
                    wait_for(
                        lambda n=count: (
                            server.poll_once(5) or [k for _, k in got].count("scale") == n
                        )
                    )
                return [rid for rid, kind in got if kind == "transport"]

            for _ in range(10):  # two Lives, 10 snapshots a second each
                assert exchange(b"live-a", b"live-b") == [b"live-a"]
            assert server.errors == 1  # live-b was told, once
            answer = json.loads(dealers[b"live-b"].recv())
            assert answer["type"] == "error" and b"live-a".hex() in answer["text"]
            dealers[b"live-a"].send(encode["bye"])  # the owner leaves: the next sender owns it
            wait_for(lambda: server.poll_once(5) or b"live-a" not in server.clients)
            assert exchange(b"live-b", b"live-a") == [b"live-b"]
            server._owner_seen -= 2 * server.transport_handover_s  # live-b falls silent
            assert exchange(b"live-a", b"live-b") == [b"live-a"]
    finally:
        for sock in dealers.values():
            sock.close(linger=0)
        context.term()


# ---- the output's latency, compensated -----------------------------------------------


class TimedOutput(ListOutput):
    """A port that takes each message `lead_s` early with its due time (as JACK's does)."""

    timed = True
    lead_s = 0.002

    def __init__(self, clock: Rig) -> None:
        super().__init__(clock)
        self.due: list[float | None] = []

    def send(self, message: Sequence[int], at: float | None = None) -> None:
        super().send(message, at)
        self.due.append(at)


def test_a_timed_port_gets_each_note_early_by_exactly_its_lead_with_its_time(
    tmp_path: Path,
) -> None:
    sent: list[tuple[tuple[int, ...], float | None]] = []

    class Port:
        timed = True
        lead_s = 0.00267

        def send(self, message: Sequence[int], at: float | None = None) -> None:
            sent.append((tuple(message), at))

    s = Scheduler(Port())
    s.note(60, 100, t_on=1.0, t_off=2.0)
    assert s.next_due == 1.0 - 0.00267
    s.run_due(1.0 - 0.00268)
    assert sent == []
    s.run_due(1.0 - 0.00267)
    assert sent == [((0x90, 60, 100), 1.0)] and s.next_due == 2.0 - 0.00267
    # Stopping: the note ends at once, and All Notes Off goes out twice, the second time a
    # lead later (an xrun can drop a period's MIDI).
    before = time.perf_counter()
    s.all_notes_off()
    (off, t_off), (cc, t_now), (cc_again, t_later) = sent[1:]
    assert off == (0x80, 60, 0) and t_off is None and cc == cc_again == (0xB0, 123, 0)
    assert t_now is None and t_later is not None and t_later >= before + 0.00267
    # Through the generator: the same song, every message handed over 2 ms earlier and
    # due exactly when the untimed port sends it.
    on_time, early = Rig(tmp_path, HALF), Rig(tmp_path, HALF)
    early.out = timed = TimedOutput(early)
    early.gen.scheduler = Scheduler(early.out)
    for rig in (on_time, early):
        rig.run(0.05)
        rig.message("clip", **clip([[38, 0.0, 1.0, 100]]))
        rig.run(6.0)
    a, b = np.array([t for t, _ in on_time.out.sent]), np.array([t for t, _ in early.out.sent])
    assert len(a) > 10 and [m for _, m in on_time.out.sent] == [m for _, m in early.out.sent]
    assert np.abs(a - b - 0.002).max() < 1e-6
    late = a - np.array(timed.due, dtype=float)  # the untimed port sends at the rig's next ms
    assert np.all((late > -1e-9) & (late < 0.001))


def test_the_musicians_output_offset_adds_to_the_ports_and_can_change_live(
    tmp_path: Path,
) -> None:
    """30 ms is far more than the 4 ms commit window: plans must be committed that much
    sooner too, or the offset would only make notes late by the difference."""
    on_time, early = Rig(tmp_path, HALF), Rig(tmp_path, HALF)
    early.out = timed = TimedOutput(early)
    early.gen.scheduler = Scheduler(early.out)
    for rig in (on_time, early):
        rig.run(0.05)
        if rig is early:
            rig.message("controls", output_offset_ms=30.0)
        rig.message("clip", **clip([[38, 0.0, 1.0, 100]]))
        rig.run(6.0)
    a, b = np.array([t for t, _ in on_time.out.sent]), np.array([t for t, _ in early.out.sent])
    assert len(a) > 10 and [m for _, m in on_time.out.sent] == [m for _, m in early.out.sent]
    assert np.abs(a - b - 0.032).max() < 1e-6
    late = a - np.array(timed.due, dtype=float) - 0.030  # due 30 ms early
    assert np.all((late > -1e-9) & (late < 0.001))
    # Back to 0: the port's own latency only, from the next note on.
    early.message("controls", output_offset_ms=0.0)
    on_time.run(3.0)
    early.run(3.0)
    a, b = np.array([t for t, _ in on_time.out.sent]), np.array([t for t, _ in early.out.sent])
    assert np.abs(a[-10:] - b[-10:] - 0.002).max() < 1e-6
