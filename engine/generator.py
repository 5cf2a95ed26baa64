"""Real-time generation: the decoding rule of docs/event-stream.md, "Real-time decoding".

One thread owns the step, the sync and the scheduler (no locks on that path). Work
arrives through two bounded queues: MIDI input (timestamped by the port callback) and
messages from the socket thread (`submit`). A wake event interrupts the wait.

Each pass:
1. messages and MIDI input are applied in arrival order (MIDI clock moves the sync;
   human notes are fed at the beat of their arrival time and the plan is redrawn);
2. clip notes up to the commit horizon (now + `commit_s`) are fed in stream order, each
   before an AI note at the same beat;
3. a plan inside the commit horizon is committed: fed as `ai`, handed to the scheduler
   for its exact wall time, and the next plan is drawn;
4. due notes are sent; the thread sleeps until the next send, commit or input.

Beats fed to the step never go backwards: an input that arrives after something later
was fed (at most `commit_s` ahead) is fed at that later beat.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lkjam.engine import protocol
from lkjam.engine.decoder import MAX_NOTES_PER_BEAT, Decoder, Note, scale_mask
from lkjam.engine.events import ROLES
from lkjam.engine.model_file import LoadedModel
from lkjam.engine.scheduler import Output, Scheduler, Wake, wait_until
from lkjam.engine.sync import BeatLine, Sync, SyncEvent
from lkjam.engine.trace import Trace

from lkjam._step import ROLE_AI, ROLE_CLIP, ROLE_HUMAN

log = logging.getLogger("lkjam.engine")

COMMIT_S = 0.004  # plans and clip notes this close to their time are committed
INBOX_SIZE = 256  # socket -> generator messages
HISTORY = 64  # recent events, replayed into a hot-swapped model
FORCE_ANSWER_BIAS = -30.0  # wait bias for the first note of an answer: it must come
LATE_S = 0.1  # an AI note this late is fed but not sent
IDLE_S = 0.05  # longest sleep without anything due, while the song plays
# Stopped, nothing changes but by a message, and every message wakes the thread at once.
STOPPED_IDLE_S = 1.0
MIDI_PER_TICK = 256  # input messages handled per pass, so a flood cannot starve sending


class Clock(Protocol):
    def __call__(self) -> float: ...


# The settings the engine keeps: every field of the `controls` message but `seed`, which
# reseeds once.
SETTINGS = tuple(name for name in protocol.MESSAGES["controls"].fields if name != "seed")


@dataclass
class Controls:
    """The settings in force, one per name in SETTINGS (docs/protocol.md, `controls`).

    The fields are written out for the type checker; their starting values are the
    protocol table's defaults (`start`), and a test checks names and types against it.
    """

    mode: str  # off | accompany | call_response
    temperature: float
    top_p: float
    density: float  # 0.5 = the model's own rate (lkjam.engine.decoder.density_target)
    voices: float  # AI notes per onset; 0 = the model's own
    style: str
    turn_bars: int  # call_response: bars of a handed-over turn
    cycle_bars: int  # call_response: 0 = the model takes its turns, N = fixed cycles
    trigger_note: int  # call_response: pitch that hands over the turn; -1 = none
    scale_lock: bool  # mask AI pitches to the known scale
    chord_lock: bool  # AI pitches make a chord with what sounds (decoder.Decoder.plan)
    output_offset_ms: float  # AI notes go out this much earlier (scheduler.Scheduler.lead_s)

    @classmethod
    def start(cls, style: str) -> Controls:
        """Before any `controls` message: the table's defaults, and the style loaded."""
        fields = protocol.MESSAGES["controls"].fields
        return cls(style=style, **{n: fields[n].default for n in SETTINGS if n != "style"})


class ClipTrack:
    """The notes of one playing clip, unrolled lazily into song beats.

    Clip time 0 is at song beat `start_beat`. The first pass plays every note up to the
    loop end (or the clip's length); a looping clip then repeats its loop region.
    """

    def __init__(self, message: dict[str, Any]) -> None:
        self.name = message["name"]
        self.role = ROLE_HUMAN if message["role"] == "human" else ROLE_CLIP
        loop0, loop1 = message["loop"]
        self.looping = bool(message["looping"]) and loop1 > loop0
        end = loop1 if self.looping else message["length"]
        start = float(message["start_beat"])
        notes = sorted(message["notes"], key=lambda n: n[1])
        # (offset beats, pitch, velocity, duration beats)
        self.first = [(start + n[1], int(n[0]), int(n[3]), n[2]) for n in notes if n[1] < end]
        self.repeat = [
            (n[1] - loop0, int(n[0]), int(n[3]), n[2])
            for n in notes
            if self.looping and loop0 <= n[1] < loop1
        ]
        self.first_beats = [n[0] for n in self.first]
        self.repeat_offsets = [n[0] for n in self.repeat]
        self.period = loop1 - loop0
        self.repeat_from = start + loop1  # song beat where the first repeat begins
        self.cursor = 0  # occurrence index: first pass, then repeat pass * len(repeat) + note

    def _at(self, j: int) -> tuple[float, int, int, float]:
        if j < len(self.first):
            return self.first[j]
        k, i = divmod(j - len(self.first), len(self.repeat))
        offset, pitch, vel, dur = self.repeat[i]
        return self.repeat_from + k * self.period + offset, pitch, vel, dur

    def seek(self, beat: float) -> None:
        """Continue from the first occurrence at or after `beat`."""
        if beat < self.repeat_from or not self.repeat:
            self.cursor = bisect.bisect_left(self.first_beats, beat)
            return
        k = math.floor((beat - self.repeat_from) / self.period)
        i = bisect.bisect_left(self.repeat_offsets, beat - self.repeat_from - k * self.period)
        self.cursor = len(self.first) + k * len(self.repeat) + i

    def peek(self) -> float:
        if self.cursor >= len(self.first) and not self.repeat:
            return math.inf
        return self._at(self.cursor)[0]

    def pop(self) -> tuple[float, int, int, float]:
        """(song beat, pitch, velocity, duration) of the next note."""
        note = self._at(self.cursor)
        self.cursor += 1
        return note


class Generator:
    """Owns the step; run `run(stop)` on its own thread, or `tick` from a test."""

    def __init__(
        self,
        model: LoadedModel,
        output: Output,
        *,
        channel: int = 1,
        midi_queue: deque[tuple[float, bytes]] | None = None,
        wake: Wake | None = None,
        post: Callable[..., None] | None = None,
        scale: tuple[int, Sequence[int]] | None = None,
        seed: int = 0,
        commit_s: float = COMMIT_S,
        clock: Clock = time.perf_counter,
        output_offset_ms: float = 0.0,
        trace: Trace | None = None,
    ) -> None:
        self.model = model
        self.trace = trace or Trace()  # off unless given
        self.scheduler = Scheduler(output, channel, self.trace)
        self.midi_queue: deque[tuple[float, bytes]] = (
            midi_queue if midi_queue is not None else deque()
        )
        self.wake: Wake = wake or threading.Event()
        self.post = post or (lambda kind, **fields: None)
        self.explicit_scale = scale
        self.commit_s = commit_s
        self.clock = clock
        self.controls = Controls.start(model.meta.style)
        self.controls.output_offset_ms = output_offset_ms
        self.sync = Sync()
        self.inbox: deque[tuple[str, Any, float]] = deque()
        self.inbox_dropped = 0  # these counts go out with every status
        self.clips: dict[tuple[int, int], ClipTrack] = {}
        self.live_scale: tuple[int, list[int]] | None = None
        self.history: deque[tuple[float, int, int, int, float]] = deque(maxlen=HISTORY)
        self.playing = False
        self.meter = (4, 4)
        self.decoder = self._decoder(model)
        self.held: set[int] = set()  # human keys down
        self.pedal = False
        # call_response turn state
        self.answering = False
        self.turn_start = self.turn_end = 0.0
        self.first_of_turn = False
        self.late_notes = 0
        self.seed = seed
        self._configure_step(seed)

    # ---- input from other threads --------------------------------------------------

    def submit(self, kind: str, payload: Any) -> bool:
        """Queue work from the socket thread: ("message", dict) / ("model", LoadedModel) /
        ("release", reason) / ("status", None). False if the inbox is full (dropped and
        counted)."""
        if len(self.inbox) >= INBOX_SIZE:
            self.inbox_dropped += 1
            return False
        self.inbox.append((kind, payload, self.clock()))
        self.wake.set()
        return True

    # ---- the loop ------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The generator thread. Releases every note when it ends."""
        try:
            while not stop.is_set():
                self.wake.clear()
                try:
                    deadline, spin = self.tick(self.clock())
                except Exception:  # a bug must cost a phrase, never hang a note
                    log.exception("generator error; releasing notes and carrying on")
                    self.scheduler.all_notes_off()
                    self.decoder.drop_plan()
                    deadline, spin = self.clock() + IDLE_S, False
                if stop.is_set():
                    break
                idle = IDLE_S if self.playing else STOPPED_IDLE_S
                wait_until(min(deadline, self.clock() + idle), self.wake, spin=spin)
        finally:
            ended = self.scheduler.all_notes_off()
            log.info("generator stopped; released %d sounding note(s)", ended)

    def tick(self, now: float) -> tuple[float, bool]:
        """One pass; returns (next deadline in perf_counter s, whether to spin for it)."""
        while self.inbox:
            kind, payload, t_recv = self.inbox.popleft()
            self._on_inbox(kind, payload, t_recv)
        for _ in range(MIDI_PER_TICK):
            if not self.midi_queue:
                break
            t, data = self.midi_queue.popleft()
            self._on_midi(t, data)
        self._check_playing(now)
        commit_at = math.inf
        if self.playing:
            line = self.sync.line(now)
            if line is not None:
                commit_at = self._advance(now, line)
        self.scheduler.run_due(self.clock())
        send_at = self.scheduler.next_due
        if self.midi_queue:
            commit_at = now  # input left over: come straight back
        if send_at <= commit_at:
            return send_at, not self.scheduler.timed  # a timed port needs no precise wake
        return commit_at, False

    # ---- messages ------------------------------------------------------------------

    def _on_inbox(self, kind: str, payload: Any, t_recv: float) -> None:
        if kind == "model":
            self._swap_model(payload)
        elif kind == "status":
            self._post_status()
        elif kind == "release":
            ended = self.scheduler.all_notes_off()
            self.sync.transport.reset()  # the next sender may have another clock
            self.decoder.drop_plan()
            log.info("%s: released %d note(s)", payload, ended)
        elif kind == "message":
            handler = getattr(self, f"_msg_{payload['type']}", None)
            if handler is not None:
                handler(payload, t_recv)

    def _msg_transport(self, m: dict[str, Any], t_recv: float) -> None:
        events = self.sync.transport.update(
            m["tempo"], m["beat"], m["playing"], tuple(m["sig"]), m["t"], t_recv
        )
        if not self.sync.using_clock(t_recv):
            self._on_sync_events(events)
        self.sync.follow_tempo(t_recv)
        ticks = self.sync.reconcile(t_recv, jumped=SyncEvent.JUMP in events)
        if abs(ticks) >= Sync.JUMP_TICKS:  # Live jumped without telling the MIDI clock
            self._on_sync_events([SyncEvent.JUMP])
        elif ticks:
            log.warning("MIDI clock count was %+d tick(s) off Live's position; corrected", ticks)
            self.trace.emit("clock_correction", ticks=ticks, beat=self._now_beat(t_recv))

    def _msg_scale(self, m: dict[str, Any], t_recv: float) -> None:
        known = m["root"] >= 0 and m["intervals"]
        self.live_scale = (m["root"], list(m["intervals"])) if known else None
        self._apply_scale()

    def _msg_clip(self, m: dict[str, Any], t_recv: float) -> None:
        key = (m["track"], m["slot"])
        if not m["playing"] or m["role"] == "ignore":
            self._msg_clip_gone(m, t_recv)
            return
        clip = ClipTrack(m)
        clip.seek(max(self.decoder.last_beat, self._now_beat(t_recv)))
        self.clips[key] = clip
        log.info("clip %r (track %d slot %d): %d notes", clip.name, *key, len(clip.first))

    def _msg_clip_gone(self, m: dict[str, Any], t_recv: float) -> None:
        clip = self.clips.pop((m["track"], m["slot"]), None)
        if clip is not None:
            log.info("clip %r (track %d slot %d) gone", clip.name, m["track"], m["slot"])

    def _msg_controls(self, m: dict[str, Any], t_recv: float) -> None:
        c = self.controls
        if "seed" in m:
            self.seed = m["seed"]
            self.model.step.seed(self.seed)
        scale_lock = c.scale_lock
        for name in SETTINGS:
            if name in m and name != "mode":  # a new mode takes effect below
                setattr(c, name, m[name])
        self._apply_controls()
        if c.scale_lock != scale_lock:
            self._apply_scale()
        if "mode" in m and m["mode"] != c.mode:
            ended = self.scheduler.all_notes_off()
            c.mode = m["mode"]
            self._apply_controls()
            self.decoder.replan()
            self._end_turn()
            log.info("mode %s (released %d note(s))", c.mode, ended)
            self._post_status()

    # ---- MIDI input ----------------------------------------------------------------

    def _on_midi(self, t: float, data: bytes) -> None:
        status = data[0]
        if status >= 0xF0:
            events = self.sync.clock.on_message(status, data[1:], t)
            self._on_sync_events(events)
            return
        kind = status & 0xF0
        if len(data) < 3:
            return
        if kind == 0x90 and data[2] > 0:
            self._human_on(t, data[1], data[2])
        elif kind == 0x80 or kind == 0x90:
            self.held.discard(data[1])
            if self.playing:
                self.decoder.note_off(ROLE_HUMAN, data[1], self._now_beat(t))
        elif kind == 0xB0 and data[1] == 64:
            down = data[2] >= 64
            if down and not self.pedal and self.controls.mode == "call_response":
                self._trigger(t)
            self.pedal = down

    def _human_on(self, t: float, pitch: int, velocity: int) -> None:
        if not self.playing:
            return  # no beat clock: nothing to place the note on
        call = self.controls.mode == "call_response"
        if call and pitch == self.controls.trigger_note:
            self._trigger(t)
            return
        beat = self._now_beat(t)
        if call and self.answering and self.controls.cycle_bars == 0:
            self._end_turn()  # the human barges in: the AI yields
        self.held.add(pitch)
        self.trace.emit("input", t=t, pitch=pitch, velocity=velocity, beat=beat)
        self._feed(beat, ROLE_HUMAN, pitch, velocity, 0.0)

    def _trigger(self, t: float) -> None:
        if self.playing and not self.answering and self.controls.cycle_bars == 0:
            self._start_turn(self._now_beat(t))

    # ---- sync ----------------------------------------------------------------------

    def _now_beat(self, t: float) -> float:
        line = self.sync.line(t)
        return line.beat_at(t) if line is not None else self.decoder.last_beat

    def _on_sync_events(self, events: list[SyncEvent]) -> None:
        # Start and stop edges are seen by _check_playing; here only a restart or a jump
        # while already playing matters.
        for event in events:
            if event in (SyncEvent.START, SyncEvent.JUMP) and self.playing:
                self._restart(event.value)

    def _check_playing(self, now: float) -> None:
        playing = self.sync.playing(now)
        if playing and not self.playing:
            self.playing = True
            self._restart("start")
            self._post_status()
        elif self.playing and not playing:
            self._stop()
            self._post_status()
        if self.sync.meter != self.meter:
            self.meter = self.sync.meter
            self.model.step.set_meter(*self.meter)

    def _restart(self, why: str) -> None:
        """Song time starts or jumps: the stream starts afresh."""
        self.scheduler.release_all()
        self.decoder.restart()
        self._configure_step(None)
        self._end_turn()
        # Clips go on from the new beat (skipped notes are skipped, in O(log n)); from a
        # commit window back, so that a note on the very beat jumped to still plays.
        beat = self._now_beat(self.clock() - self.commit_s)
        for clip in self.clips.values():
            clip.seek(beat)
        self.trace.emit("transport", why=why, beat=beat)
        log.info("transport %s", why)

    def _stop(self) -> None:
        self.playing = False
        ended = self.scheduler.all_notes_off()
        self.decoder.drop_plan()
        self._end_turn()
        self.trace.emit("transport", why="stop")
        log.info("transport stopped; released %d note(s)", ended)

    # ---- the model -----------------------------------------------------------------

    def _decoder(self, model: LoadedModel) -> Decoder:
        return Decoder(model.step, own_density=model.meta.density, own_voices=model.meta.voices)

    def _configure_step(self, seed: int | None) -> None:
        if seed is not None:
            self.model.step.seed(seed)
        self.model.step.set_meter(*self.meter)
        self._apply_scale()
        self._apply_controls()

    def _apply_controls(self) -> None:
        c = self.controls
        self.scheduler.offset_s = c.output_offset_ms / 1000
        self.decoder.temperature, self.decoder.top_p = c.temperature, c.top_p
        self.decoder.chord_lock = c.chord_lock
        if c.mode != "off":  # "off" plays nothing; the model keeps its last request
            self.decoder.condition(c.mode, c.density, c.voices)

    def _apply_scale(self) -> None:
        step = self.model.step
        scale = self.explicit_scale or self.live_scale
        if scale is None:
            step.clear_scale()
            self.decoder.lock_scale(None)
            return
        root, intervals = scale
        step.set_scale(root, list(intervals))
        lock = self.controls.scale_lock
        self.decoder.lock_scale(scale_mask(root, intervals) if lock else None)

    def _swap_model(self, model: LoadedModel) -> None:
        ended = self.scheduler.all_notes_off()
        self.model, self.decoder = model, self._decoder(model)
        self.seed += 1  # a fresh but reproducible sampler for the new model
        self.decoder.restart()
        self._configure_step(self.seed)
        for beat, role, pitch, vel, dur in self.history:  # warm the new model up
            self.decoder.feed(beat, role, pitch, vel, dur)
        for pitch in range(128):
            if pitch not in self.held:
                self.decoder.note_off(ROLE_HUMAN, pitch, self.decoder.last_beat)
        if not self.decoder.started:
            self.decoder.drop_plan()
        log.info("model %s (%s) loaded; released %d note(s)", model.meta.style, model.path, ended)
        self._post_status()

    def _feed(self, beat: float, role: int, pitch: int, velocity: int, duration: float) -> None:
        beat = self.decoder.feed(beat, role, pitch, velocity, duration)
        self.history.append((beat, role, pitch, velocity, duration))

    # ---- planning and committing ---------------------------------------------------

    def _may_play(self) -> bool:
        c = self.controls
        if c.mode == "call_response" and (c.cycle_bars > 0 or c.trigger_note >= 0):
            return self.answering  # the musician gives the turns
        return c.mode in ("accompany", "call_response")  # the model takes its turns

    def _plan(self) -> Note | None:
        """The decoder's plan, drawn now if stale, under the turn gate; None: nothing to play."""
        if not self._may_play():
            return None
        stale = self.decoder.plan_is_stale
        plan = self.decoder.plan(
            FORCE_ANSWER_BIAS if self.answering and self.first_of_turn else 0.0
        )
        if not stale:
            return plan
        self.trace.emit("drawn", after=self._last_role(), beat=None if plan is None else plan.beat)
        if plan is None:
            if self.answering and not self.first_of_turn:
                self._end_turn()  # the model has said its piece
        elif self.answering and plan.beat < self.turn_start:
            self.decoder.move_plan(math.ceil(self.turn_start * 4) / 4)  # the next sixteenth
            plan = self.decoder.plan()
        return plan

    def _advance(self, now: float, line: BeatLine) -> float:
        """Feed clip notes and commit plans up to the horizon; returns the next commit time."""
        # Plans are committed a commit window before they are sent, which is the
        # scheduler's lead before their time.
        ahead = self.commit_s + self.scheduler.lead_s
        horizon = line.beat_at(now + ahead)
        self._update_turn(line.beat_at(now))
        for _ in range(4 * MAX_NOTES_PER_BEAT + 64):  # bounded: never stall the thread
            clip_beat, clip = self._next_clip()
            plan = self._plan()
            plan_beat = plan.beat if plan is not None else math.inf
            if clip is not None and clip_beat <= horizon and clip_beat <= plan_beat:
                beat, pitch, vel, dur = clip.pop()
                self._feed(beat, clip.role, pitch, vel, dur)
            elif plan is not None and plan_beat <= horizon:
                self._commit(now, line, plan)
            else:
                next_beat = min(clip_beat, plan_beat)
                return line.time_at(next_beat) - ahead if next_beat < math.inf else math.inf
        return now  # more to do: come straight back

    def _last_role(self) -> str | None:
        """The role of the last event fed (what a plan answers); None before any."""
        return ROLES[self.history[-1][1]] if self.history else None

    def _next_clip(self) -> tuple[float, ClipTrack | None]:
        best, best_clip = math.inf, None
        for clip in self.clips.values():
            beat = clip.peek()
            if beat < best:
                best, best_clip = beat, clip
        return best, best_clip

    def _commit(self, now: float, line: BeatLine, plan: Note) -> None:
        if self.answering and plan.beat >= self.turn_end:
            self.decoder.drop_plan()
            self._end_turn()
            return
        after = self._last_role()  # the event planned from
        if self.decoder.commit() is None:
            return  # the runaway bound: WAIT until the next input
        self.history.append((plan.beat, ROLE_AI, plan.pitch, plan.velocity, plan.duration))
        self.first_of_turn = False
        t_on = line.time_at(plan.beat)
        if t_on < now - LATE_S:
            self.late_notes += 1
            self.trace.emit("late", t=now, pitch=plan.pitch, beat=plan.beat, t_on=t_on)
            return
        self.trace.emit(
            "plan",
            t=now,
            pitch=plan.pitch,
            velocity=plan.velocity,
            beat=plan.beat,
            duration=plan.duration,
            t_on=t_on,
            after=after,
        )
        self.scheduler.note(
            plan.pitch, plan.velocity, t_on, line.time_at(plan.beat + plan.duration)
        )
        # An answer due now leaves before the next plan is drawn (latency).
        self.scheduler.run_due(self.clock())

    # ---- call and response ---------------------------------------------------------

    def _update_turn(self, now_beat: float) -> None:
        c = self.controls
        if c.mode != "call_response":
            return
        bar = 4.0 * self.meter[0] / self.meter[1]
        if c.cycle_bars > 0:
            cycle = c.cycle_bars * bar
            pos = (now_beat % cycle + cycle) % cycle
            ai_from = max(0, c.cycle_bars - c.turn_bars) * bar
            if pos >= ai_from and not self.answering:
                self._start_turn(now_beat, end=now_beat - pos + cycle)
            elif pos < ai_from and self.answering:
                self._end_turn()
            return
        if self.answering and now_beat >= self.turn_end:
            self._end_turn()

    def _start_turn(self, beat: float, end: float | None = None) -> None:
        bar = 4.0 * self.meter[0] / self.meter[1]
        self.answering = True
        self.first_of_turn = True
        self.turn_start = beat
        self.turn_end = end if end is not None else beat + self.controls.turn_bars * bar
        self.decoder.yielding = False  # a turn handed over: the AI plays even over held keys
        if self.decoder.started:
            self.decoder.replan()

    def _end_turn(self) -> None:
        if self.answering:
            self.answering = False
            self.decoder.yielding = True
            self.decoder.drop_plan()

    # ---- status --------------------------------------------------------------------

    def _post_status(self) -> None:
        line = self.sync.line(self.clock())
        tempo = f"{line.tempo:.1f} bpm" if line is not None and self.playing else "stopped"
        text = f"{self.controls.mode} · {self.model.meta.style} · {tempo}"
        self.post(
            "status",
            text=text,
            late_notes=self.late_notes,
            dropped_notes=self.scheduler.dropped,
            dropped_in=self.inbox_dropped,
            clock_ticks_lost=self.sync.clock.lost_ticks,
        )
