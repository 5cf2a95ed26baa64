"""Beats <-> wall clock.

Two sources, best first:
- MIDI clock on `lkjam in` (24 ticks per beat, start/stop/continue, song position
  pointer): each tick is a point (wall time, beat); a short least-squares line through
  the latest ticks, trimmed of late ticks, gives the beat clock.
- `transport` snapshots from the remote script (about 10 per second, jittery): Live
  states the tempo, so the slope is known and only the line's offset is fitted, as the
  median over a short window. Points far off the line are rejected as outliers; several
  consecutive ones that agree mean a jump (seek, loop), and the line is re-anchored on
  them. A tempo change re-anchors too, keeping continuity with the old line, unless the
  same snapshot also moved the position further than the tempo change explains (a seek
  to a section at another tempo, a loop with tempo automation): that is a jump.

Wall time is `time.perf_counter()` seconds everywhere in the engine.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

TICKS_PER_BEAT = 24
MIDI_CLOCK, MIDI_START, MIDI_CONTINUE, MIDI_STOP, MIDI_SPP = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
MIN_BPS = 20.0 / 60.0  # the protocol's slowest tempo


class SyncEvent(Enum):
    START = "start"  # the transport began running (beats may have jumped)
    STOP = "stop"  # the transport stopped
    JUMP = "jump"  # the beat position moved discontinuously while running


@dataclass(frozen=True)
class BeatLine:
    """beat = beat0 + bps * (t - t0); t in seconds, bps = beats per second."""

    t0: float
    beat0: float
    bps: float

    def beat_at(self, t: float) -> float:
        return self.beat0 + self.bps * (t - self.t0)

    def time_at(self, beat: float) -> float:
        return self.t0 + (beat - self.beat0) / self.bps

    @property
    def tempo(self) -> float:
        return self.bps * 60.0


class TransportFit:
    """Fits jittery transport snapshots to a beat line with the stated tempo."""

    WINDOW = 16  # snapshots in the median (1.6 s at 10/s)
    OUTLIER_S = 0.030  # a point this far off the line (in time) is suspect
    JUMP_POINTS = 3  # consecutive suspects agreeing with each other = a jump
    OFFSET_WINDOW = 64  # snapshots over which the sender->local clock offset is estimated
    # The third-smallest delay, not the smallest: one or two snapshots with a bad `t` (a
    # delay no message can have) never move the clock offset.
    DELAY_RANK = 2
    # This many newest delays all this far from the estimate, and within CLOCK_AGREE_S of
    # each other, mean the sender's clock itself moved (another machine's client took
    # over): start the estimate over. No delivery hiccup is a second long five times alike.
    CLOCK_STEP_POINTS = 5
    CLOCK_STEP_S = 1.0
    CLOCK_AGREE_S = 0.05
    # A sender on this machine (Live's script) reads the same monotonic clock as we do, so
    # its delay is all transit, none of it clock offset: how late the message came says
    # nothing of when the beat was read. An estimated delay (above) in [0, SAME_CLOCK_S)
    # means that clock: another machine's monotonic clock (its time since boot) is that
    # close to ours about once in a million, and a first snapshot may wait tens of ms for
    # a busy engine.
    SAME_CLOCK_S = 0.1

    def __init__(self) -> None:
        self.line: BeatLine | None = None
        self.playing = False
        self.numerator, self.denominator = 4, 4
        self._points: deque[tuple[float, float]] = deque(maxlen=self.WINDOW)  # (t, beat)
        self._suspects: list[tuple[float, float]] = []
        self._delays: deque[float] = deque(maxlen=self.OFFSET_WINDOW)
        self.outliers = 0

    def reset(self) -> None:
        """Forget the sender (it left): its clock offset, the line and whether it plays."""
        self.line, self.playing = None, False
        self._points.clear()
        self._suspects.clear()
        self._delays.clear()

    @property
    def settled(self) -> bool:
        """No suspect points pending: the line is what the latest snapshots say."""
        return not self._suspects

    def _local_time(self, t_sender: float, t_recv: float) -> float:
        # A small (receive - send) is the clock offset plus the least delay: on another
        # clock, the best estimate of when the sender really read the beat, on ours.
        self._delays.append(t_recv - t_sender)
        newest = list(self._delays)[-self.CLOCK_STEP_POINTS :]
        estimate = self._delay()
        if (
            len(self._delays) > self.CLOCK_STEP_POINTS
            and all(abs(d - estimate) > self.CLOCK_STEP_S for d in newest)
            and max(newest) - min(newest) < self.CLOCK_AGREE_S
        ):
            self._delays.clear()
            self._delays.extend(newest)
            estimate = self._delay()
        return t_sender if 0.0 <= estimate < self.SAME_CLOCK_S else t_sender + estimate

    def _delay(self) -> float:
        ranked = sorted(self._delays)
        return ranked[min(self.DELAY_RANK, len(ranked) - 1)]

    def update(
        self,
        tempo: float,
        beat: float,
        playing: bool,
        sig: tuple[int, int],
        t_sender: float,
        t_recv: float,
    ) -> list[SyncEvent]:
        events: list[SyncEvent] = []
        self.numerator, self.denominator = sig
        t = self._local_time(t_sender, t_recv)
        bps = tempo / 60.0
        if playing != self.playing:
            self.playing = playing
            events.append(SyncEvent.START if playing else SyncEvent.STOP)
            self._anchor([(t, beat)], bps)
            return events
        if self.line is None or not playing:
            self._anchor([(t, beat)], bps)
            return events
        if abs(bps - self.line.bps) > 1e-9:
            # The new tempo began after the last snapshot: it explains this much drift from
            # the old line, no more. Further off, the position moved too: a jump.
            since = max(t - self._points[-1][0], 0.0)
            explained = self.OUTLIER_S * bps + abs(bps - self.line.bps) * since
            if abs(beat - self.line.beat_at(t)) > explained:
                self._anchor([(t, beat)], bps)
                events.append(SyncEvent.JUMP)
                return events
            # Tempo change: keep continuity by seeding the new window with the old line's
            # position now, next to the observed one.
            self._anchor([(t, self.line.beat_at(t)), (t, beat)], bps)
            return events
        residual_s = (beat - self.line.beat_at(t)) / bps
        if abs(residual_s) > self.OUTLIER_S and len(self._points) >= 3:
            self.outliers += 1
            self._suspects.append((t, beat))
            agree = self._suspects[-self.JUMP_POINTS :]
            if len(agree) == self.JUMP_POINTS:
                offsets = [b - bps * tt for tt, b in agree]
                if max(offsets) - min(offsets) < 2 * self.OUTLIER_S * bps:
                    self.outliers -= self.JUMP_POINTS  # they were the new truth after all
                    self._anchor(agree, bps)
                    events.append(SyncEvent.JUMP)
            return events
        self._suspects.clear()
        self._points.append((t, beat))
        self._fit(bps)
        return events

    def _anchor(self, points: list[tuple[float, float]], bps: float) -> None:
        self._points.clear()
        self._points.extend(points)
        self._suspects.clear()
        self._fit(bps)

    def _fit(self, bps: float) -> None:
        t_last = self._points[-1][0]
        offset = statistics.median(b - bps * (t - t_last) for t, b in self._points)
        self.line = BeatLine(t_last, offset, bps)


def _fit_line(t: np.ndarray, beat: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of beat over t, in closed form: at 24 points
    np.polyfit's SVD took most of the engine's time per clock tick. NaN for points all at
    one time (no slope: no believable line)."""
    t_mean, beat_mean = t.mean(), beat.mean()
    dt = t - t_mean
    spread = float(dt @ dt)
    if spread <= 1e-18:
        return math.nan, math.nan
    slope = float(dt @ (beat - beat_mean)) / spread
    return slope, float(beat_mean - slope * t_mean)


class MidiClockFit:
    """Beat clock from MIDI clock ticks, start/stop/continue and song position.

    A tick's arrival time is trusted only when it is plausible. One that comes late
    against the line (after a stall), or sooner after the last than twice the line's
    tempo allows (the catch-up burst after a stall), advances the count but not the fit,
    so the line bridges the gap at its tempo. A run of such ticks at a possible pace is
    the truth after all, and the line re-anchors on it: BEND_POINTS late ones (the clock
    really paused, or slowed at once), or 2 * BEND_POINTS fast ones (the tempo more than
    doubled at once). Late ones that keep the line's pace, all late by the same whole
    number of ticks, are not a pause but ticks lost on the way (a JACK xrun): the count
    moves on by as many, and the line stays where it was.
    """

    WINDOW = 24  # ticks in the fit (one beat)
    TRIM_S = 0.002  # refit without ticks this late against the first fit
    BEND_POINTS = 4  # this many newest ticks all off the same side = tempo change
    BEND_S = 0.0015
    LATE_S = 0.005  # a tick this late against the line says nothing of the tempo
    MAX_SPEEDUP = 2.0  # a tick sooner than this many times the line's tempo is doubted
    MAX_TEMPO = 999.0  # the protocol's fastest: ticks closer than this never count
    LOST_SLACK = 0.25  # ticks: late by this close to a whole number of ticks = lost ones
    RETEMPO_TOLERANCE = 0.01  # Live's stated tempo this far from the line's: take it

    def __init__(self) -> None:
        self.line: BeatLine | None = None
        self.running = False
        self.last_tick_t = -1e9
        self.late_ticks = 0  # ticks whose time was not used (stalls, bursts)
        self.lost_ticks = 0  # ticks that never came, inferred from the ones after them
        self._position = 0  # ticks; the next tick lands on this position
        self._points: deque[tuple[float, float]] = deque(maxlen=self.WINDOW)
        self._late: list[tuple[float, float]] = []  # a run of late ticks at a possible pace
        self._fast: list[tuple[float, float]] = []  # a run of too-soon ticks, likewise
        self._newest: tuple[float, float] | None = None  # the last tick's (t, beat)

    def on_message(self, status: int, data: bytes | list[int], t: float) -> list[SyncEvent]:
        if status == MIDI_CLOCK:
            return self._tick(t)
        if status == MIDI_START:
            self._position = 0
            self._restart()
            return [SyncEvent.START]
        if status == MIDI_CONTINUE:
            self._restart()
            return [SyncEvent.START]
        if status == MIDI_STOP:
            was = self.running
            self.running = False
            return [SyncEvent.STOP] if was else []
        if status == MIDI_SPP and len(data) >= 2:
            position = (data[0] | (data[1] << 7)) * 6  # song position is in 16ths
            if not self.running:
                self._position = position
                self._points.clear()
                return []
            # While running (Live at a loop wrap): the next tick keeps its time and gets
            # the new position, so the line moves with the count and keeps its tempo.
            self.shift(position - self._position)
            return [SyncEvent.JUMP]
        return []

    def _restart(self) -> None:
        self.running = True
        self._newest = None
        self._points.clear()
        self._late.clear()
        self._fast.clear()
        self.line = None

    def shift(self, ticks: int) -> None:
        """Move the count by whole ticks (one was lost or doubled on the way, or a jump)."""
        self._position += ticks
        moved = ticks / TICKS_PER_BEAT
        self._points = deque(((t, b + moved) for t, b in self._points), self.WINDOW)
        self._late = [(t, b + moved) for t, b in self._late]
        self._fast = [(t, b + moved) for t, b in self._fast]
        if self._newest is not None:
            self._newest = (self._newest[0], self._newest[1] + moved)
        if self.line is not None:
            self.line = BeatLine(self.line.t0, self.line.beat0 + moved, self.line.bps)

    def retempo(self, bps: float) -> bool:
        """Live says the tempo is now `bps`. Ticks show a tempo change only once several of
        them have bent the line (about 100 ms, and notes placed meanwhile are off by the
        tempo difference times that), so a line further off than RETEMPO_TOLERANCE goes
        on from the newest tick at Live's tempo at once, its window refilled along it for
        the ticks to come to refine."""
        line = self.line
        if (
            line is None
            or self._newest is None
            or abs(bps / line.bps - 1) <= self.RETEMPO_TOLERANCE
        ):
            return False
        t, beat = self._newest
        spt = 1.0 / (bps * TICKS_PER_BEAT)
        past = range(self.WINDOW - 1, -1, -1)
        self._points = deque(((t - k * spt, beat - k / TICKS_PER_BEAT) for k in past), self.WINDOW)
        self._late.clear()
        self._fast.clear()
        self.line = BeatLine(t, beat, bps)
        return True

    def _tick(self, t: float) -> list[SyncEvent]:
        previous, self.last_tick_t = self.last_tick_t, t
        if not self.running:
            return []
        beat = self._position / TICKS_PER_BEAT
        self._position += 1
        self._newest = (t, beat)
        line = self.line
        if line is not None and len(self._points) >= 2:
            interval = t - previous
            possible = interval >= 1.0 / (TICKS_PER_BEAT * self.MAX_TEMPO / 60.0)
            fastest_bps = min(line.bps * self.MAX_SPEEDUP, self.MAX_TEMPO / 60.0)
            if interval < 1.0 / (TICKS_PER_BEAT * fastest_bps):
                return self._doubt(self._fast, (t, beat), possible, 2 * self.BEND_POINTS, line)
            self._fast.clear()
            if t - line.time_at(beat) > self.LATE_S:
                return self._doubt(self._late, (t, beat), True, self.BEND_POINTS, line)
        self._late.clear()
        self._fast.clear()
        self._points.append((t, beat))
        if len(self._points) >= 2:
            self._fit()
        return []

    def _doubt(
        self,
        run: list[tuple[float, float]],
        point: tuple[float, float],
        possible: bool,
        n: int,
        line: BeatLine,
    ) -> list[SyncEvent]:
        """A tick whose time is not used; `n` in a row at a possible pace are the truth."""
        self.late_ticks += 1
        if not possible:
            run.clear()
            return []
        run.append(point)
        if len(run) < n:
            return []
        lost = self._lost(run, line) if run is self._late else 0
        if lost:
            self._position += lost
            self.lost_ticks += lost
            self._points.extend((t, b + lost / TICKS_PER_BEAT) for t, b in run)
        else:
            self._points.clear()
            self._points.extend(run)
        run.clear()
        self._fit()
        return []

    def _lost(self, run: list[tuple[float, float]], line: BeatLine) -> int:
        """Ticks lost before `run`: its ticks all late by the same whole number of ticks."""
        late = [(t - line.time_at(b)) * line.bps * TICKS_PER_BEAT for t, b in run]
        whole = round(late[0])
        return whole if all(abs(x - whole) < self.LOST_SLACK for x in late) else 0

    def _fit(self) -> None:
        pts = np.array(self._points)  # (n, 2): t, beat
        t_ref = pts[-1, 0]
        t, beat = pts[:, 0] - t_ref, pts[:, 1]
        if len(pts) < 3:
            bps = (beat[-1] - beat[0]) / max(t[-1] - t[0], 1e-6)
            if MIN_BPS <= bps <= self.MAX_TEMPO / 60.0:
                self.line = BeatLine(t_ref, float(beat[-1]), float(bps))
            return
        slope, icept = _fit_line(t, beat)
        late_s = (beat - (icept + slope * t)) / slope  # > 0: the tick came early
        newest = late_s[-self.BEND_POINTS :]
        if len(pts) > 2 * self.BEND_POINTS and (
            np.all(newest > self.BEND_S) or np.all(newest < -self.BEND_S)
        ):
            # The tempo changed: forget ticks from before the change.
            while len(self._points) > self.BEND_POINTS:
                self._points.popleft()
            return self._fit()
        keep = late_s > -self.TRIM_S  # drop ticks delivered late (scheduling hiccups)
        if keep.sum() >= 3 and not keep.all():
            slope, icept = _fit_line(t[keep], beat[keep])
        if MIN_BPS <= slope <= self.MAX_TEMPO / 60.0:  # else keep the last believable line
            self.line = BeatLine(t_ref, float(icept), float(slope))


class Sync:
    """The engine's beat clock: MIDI clock when it is running, else transport snapshots.

    MIDI clock carries no position, so a tick lost on the way (a JACK xrun, a busy
    machine) would leave the count behind for good, and a jump Live sends no song position
    for (a loop wrap, a seek) would leave it at the old place. While both run, the clock's
    count is checked against Live's position from the snapshots: a whole-tick disagreement
    seen on RECONCILE_POINTS snapshots in a row is corrected, and at once when the
    snapshots themselves have just agreed on a jump.
    """

    CLOCK_TIMEOUT_S = 1.0  # MIDI clock older than this no longer counts; a shorter stall
    # is bridged by the line at its tempo
    RECONCILE_POINTS = 3
    RECONCILE_SLACK = 0.35  # ticks: a disagreement must be this close to whole ticks
    JUMP_TICKS = TICKS_PER_BEAT // 2  # a correction this large is a jump, not a lost tick

    def __init__(self) -> None:
        self.clock = MidiClockFit()
        self.transport = TransportFit()
        self._disagree: list[int] = []
        self._live_bps: float | None = None  # the tempo of Live's last snapshot

    def follow_tempo(self, now: float) -> bool:
        """Call after each transport snapshot: when Live's tempo has just changed while
        MIDI clock runs, the clock's line takes it at once (MidiClockFit.retempo). Only
        on a change, so that a clock that keeps another tempo than Live states is still
        the one followed."""
        live = self.transport.line
        if live is None:
            return False
        changed = self._live_bps is not None and live.bps != self._live_bps
        self._live_bps = live.bps
        return changed and self.using_clock(now) and self.clock.retempo(live.bps)

    def reconcile(self, now: float, jumped: bool = False) -> int:
        """Call after each transport snapshot (`jumped`: it reported a jump); returns the
        ticks the clock was moved by."""
        clock, live = self.clock.line, self.transport.line
        if (
            not (self.using_clock(now) and self.transport.playing and self.transport.settled)
            or clock is None
            or live is None
        ):
            self._disagree.clear()
            return 0
        ticks = (live.beat_at(now) - clock.beat_at(now)) * TICKS_PER_BEAT
        n = round(ticks)
        if n == 0 or abs(ticks - n) > self.RECONCILE_SLACK:
            self._disagree.clear()
            return 0
        self._disagree = [*self._disagree, n][-self.RECONCILE_POINTS :]
        agreed = len(self._disagree) == self.RECONCILE_POINTS and len(set(self._disagree)) == 1
        if not (agreed or jumped):
            return 0
        self._disagree.clear()
        self.clock.shift(n)
        return n

    def using_clock(self, now: float) -> bool:
        """MIDI clock runs, has a line, and ticked lately."""
        clock = self.clock
        return (
            clock.running
            and clock.line is not None
            and now - clock.last_tick_t < self.CLOCK_TIMEOUT_S
        )

    def line(self, now: float) -> BeatLine | None:
        return self.clock.line if self.using_clock(now) else self.transport.line

    def playing(self, now: float) -> bool:
        if self.using_clock(now):
            return True
        return self.transport.playing and self.transport.line is not None

    @property
    def meter(self) -> tuple[int, int]:
        return self.transport.numerator, self.transport.denominator
