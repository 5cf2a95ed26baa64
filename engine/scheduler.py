"""Hands AI notes to the output port in time and remembers every note that sounds.

Owned by the generator thread (no locks). Due times are `time.perf_counter()` seconds.

- A timed port (JACK, `lkjam.engine.ports.JackClient`) takes each message `lead_s` early
  with the time it is due and writes it at that frame itself: waiting for a hand-over
  can be an ordinary sleep.
- Any other port sends a message the moment it gets it, so waiting is a precise sleep on
  the wake event (new input interrupts it) followed by a short spin that yields the GIL.

Every message is due `offset_s` early: the musician's output offset.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from typing import Protocol

from lkjam.engine.trace import Trace

NOTE_ON, NOTE_OFF, CONTROL = 0x90, 0x80, 0xB0
CC_ALL_NOTES_OFF = 123
SPIN_S = 0.0006  # the last stretch before a send is spun, not slept
MAX_PENDING = 1024  # scheduled sends; the generator never has more than a few


class Output(Protocol):
    def send(self, message: Sequence[int], at: float | None = None) -> None: ...


class Wake(Protocol):
    """What a sleeper waits on: a threading.Event, or a JACK client's input that is read
    while it is waited on (ports._InputWake)."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def wait_until(deadline: float, wake: Wake, *, spin: bool = True) -> bool:
    """Sleep until `deadline` (perf_counter s); True as soon as `wake` is set instead."""
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return wake.is_set()
        if not spin or remaining > SPIN_S:
            if wake.wait(remaining - SPIN_S if spin else remaining):
                return True
        else:
            if wake.is_set():
                return True
            time.sleep(0)  # let rtmidi's callback thread have the GIL while we spin


class Scheduler:
    """Timed note-ons and note-offs on one MIDI channel, with the set of sounding notes."""

    def __init__(self, output: Output, channel: int = 1, trace: Trace | None = None) -> None:
        if not 1 <= channel <= 16:
            raise ValueError(f"channel must be in 1..16, got {channel}")
        self.output = output
        self.trace = trace or Trace()
        self.timed: bool = getattr(output, "timed", False)  # takes `at` and keeps it
        self.port_lead_s: float = getattr(output, "lead_s", 0.0)  # how early it takes one
        self.offset_s = 0.0  # the musician's output offset (controls.output_offset_ms)
        self.status_on = NOTE_ON | (channel - 1)
        self.status_off = NOTE_OFF | (channel - 1)
        self.status_cc = CONTROL | (channel - 1)
        # heap of (hand-over s, seq, is_on, pitch, velocity, token, due s)
        self._pending: list[tuple[float, int, bool, int, int, int, float]] = []
        self._seq = 0
        self.sounding: dict[int, int] = {}  # pitch -> token of the note now sounding
        self.dropped = 0  # notes refused by a full queue; reported in `status`

    def note(self, pitch: int, velocity: int, t_on: float, t_off: float) -> bool:
        """Schedule one AI note; False (and counted) if the queue is full."""
        if len(self._pending) + 2 > MAX_PENDING:
            self.dropped += 1
            return False
        self._seq += 1
        token = self._seq
        due_on, due_off = t_on - self.offset_s, max(t_off, t_on) - self.offset_s
        lead = self.port_lead_s
        heapq.heappush(
            self._pending, (due_on - lead, 2 * token, True, pitch, velocity, token, due_on)
        )
        heapq.heappush(
            self._pending, (due_off - lead, 2 * token + 1, False, pitch, 0, token, due_off)
        )
        return True

    @property
    def lead_s(self) -> float:
        """How long before its time each message is handed to the port."""
        return self.port_lead_s + self.offset_s

    @property
    def next_due(self) -> float:
        return self._pending[0][0] if self._pending else float("inf")

    def run_due(self, now: float) -> int:
        """Hand over everything whose time has come by `now`; returns how many messages."""
        sent = 0
        while self._pending and self._pending[0][0] <= now:
            _, _, is_on, pitch, velocity, token, due = heapq.heappop(self._pending)
            at = due if self.timed else None
            if is_on:
                if pitch in self.sounding:  # same pitch again: end the old one first
                    self._send_off(pitch, at)
                self.output.send((self.status_on, pitch, velocity), at)
                self.sounding[pitch] = token
            elif self.sounding.get(pitch) == token:
                self._send_off(pitch, at)
                del self.sounding[pitch]
            else:
                continue  # its note was retriggered or released already
            self.trace.emit("sent", pitch=pitch, velocity=velocity, due=due)
            sent += 1
        return sent

    def _send_off(self, pitch: int, at: float | None = None) -> None:
        self.output.send((self.status_off, pitch, 0), at)

    def release_all(self) -> int:
        """Cancel everything pending and end every sounding note; returns notes ended. A
        timed port ends a note it was handed but has not played yet right after it."""
        self._pending.clear()
        self.trace.emit("release", pitches=sorted(self.sounding))
        ended = len(self.sounding)
        for pitch in sorted(self.sounding):
            self._send_off(pitch)
        self.sounding.clear()
        return ended

    def all_notes_off(self) -> int:
        """release_all, then CC123 (All Notes Off) for anything we may not know of. A timed
        port (JACK) says it again one hand-over lead later: an xrun can drop a period's MIDI."""
        ended = self.release_all()
        self.output.send((self.status_cc, CC_ALL_NOTES_OFF, 0))
        if self.timed:
            at = time.perf_counter() + self.port_lead_s
            self.output.send((self.status_cc, CC_ALL_NOTES_OFF, 0), at)
        return ended
