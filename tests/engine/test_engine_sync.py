"""Beat clock fitting: jittery transport snapshots and MIDI clock, tempo changes, outliers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from lkjam.engine.sync import (
    MIDI_CLOCK,
    MIDI_SPP,
    MIDI_START,
    MIDI_STOP,
    MidiClockFit,
    Sync,
    SyncEvent,
    TransportFit,
    _fit_line,
)


class TempoMap:
    """The truth: piecewise-constant tempo, beat(t) and t(beat) in seconds."""

    def __init__(self, changes: list[tuple[float, float]]) -> None:
        self.changes = changes  # (t start, bpm), t ascending, first at 0

    def beat(self, t: float) -> float:
        beat = 0.0
        for (t0, bpm), nxt in zip(self.changes, [*self.changes[1:], (np.inf, 0.0)], strict=True):
            if t <= t0:
                break
            beat += (min(t, nxt[0]) - t0) * bpm / 60.0
        return beat

    def tempo(self, t: float) -> float:
        return [bpm for t0, bpm in self.changes if t0 <= t][-1]


def feed_transport(
    fit: TransportFit, truth: TempoMap, times: np.ndarray, rng: np.random.Generator
) -> list[SyncEvent]:
    """Snapshots as the remote script sends them: Live's beat read at a jittery moment
    (Live updates it per audio buffer), the sender's clock offset from ours by 1000 s,
    delivered 0.2..3 ms later."""
    events: list[SyncEvent] = []
    for t in times:
        read_error = rng.uniform(-0.006, 0.006)  # seconds
        beat = truth.beat(t + read_error)
        delivery = rng.uniform(0.0002, 0.003)
        events += fit.update(truth.tempo(t), beat, True, (4, 4), t - 1000.0, t + delivery)
    return events


def errors_ms(beat_at: Callable[[float], float], truth: TempoMap, times: np.ndarray) -> np.ndarray:
    return np.array([(beat_at(t) - truth.beat(t)) / (truth.tempo(t) / 60) * 1000 for t in times])


def test_transport_fit_averages_out_jitter() -> None:
    rng = np.random.default_rng(1)
    truth = TempoMap([(0.0, 120.0)])
    fit = TransportFit()
    feed_transport(fit, truth, np.arange(0.0, 5.0, 0.1), rng)
    assert fit.line is not None and abs(fit.line.tempo - 120.0) < 1e-9
    err = errors_ms(fit.line.beat_at, truth, np.array([5.0, 5.05, 5.1]))
    # Single snapshots are off by up to 6 ms; the median of 16 is far closer.
    assert np.abs(err).max() < 2.5, err


def test_transport_fit_rejects_outliers() -> None:
    rng = np.random.default_rng(2)
    truth = TempoMap([(0.0, 100.0)])
    fit = TransportFit()
    feed_transport(fit, truth, np.arange(0.0, 3.0, 0.1), rng)
    # Two snapshots delivered with a stale beat (Live's thread stalled 200 ms).
    for t in (3.0, 3.1):
        fit.update(100.0, truth.beat(t - 0.2), True, (4, 4), t - 1000.0, t + 0.001)
    feed_transport(fit, truth, np.arange(3.2, 3.5, 0.1), rng)
    assert fit.outliers == 2
    assert fit.line is not None
    assert np.abs(errors_ms(fit.line.beat_at, truth, np.array([3.5]))).max() < 3.0


def test_transport_fit_follows_tempo_changes() -> None:
    rng = np.random.default_rng(3)
    truth = TempoMap([(0.0, 120.0), (2.05, 90.0), (4.05, 140.0)])
    fit = TransportFit()
    for t_end in (2.0, 4.0, 6.0):
        feed_transport(fit, truth, np.arange(t_end - 2.0, t_end, 0.1), rng)
        assert fit.line is not None
        assert abs(fit.line.tempo - truth.tempo(t_end - 0.1)) < 1e-9
        err = errors_ms(fit.line.beat_at, truth, np.array([t_end]))
        assert np.abs(err).max() < 3.0, (t_end, err)


def test_transport_fit_reanchors_on_a_jump() -> None:
    rng = np.random.default_rng(4)
    fit = TransportFit()
    feed_transport(fit, TempoMap([(0.0, 120.0)]), np.arange(0.0, 2.0, 0.1), rng)
    jumped = TempoMap([(0.0, 120.0)])
    shifted = np.arange(2.0, 2.5, 0.1)
    events: list[SyncEvent] = []
    for t in shifted:  # the song position was moved back 16 beats
        events += fit.update(120.0, jumped.beat(t) - 16.0, True, (4, 4), t - 1000.0, t + 0.001)
    assert events == [SyncEvent.JUMP]
    assert fit.line is not None
    assert abs(fit.line.beat_at(2.5) - (jumped.beat(2.5) - 16.0)) < 0.01


def test_transport_start_and_stop_are_events() -> None:
    fit = TransportFit()
    assert fit.update(120.0, 0.0, True, (3, 4), 1.0, 1.0) == [SyncEvent.START]
    assert (fit.numerator, fit.denominator) == (3, 4)
    assert fit.update(120.0, 1.0, False, (3, 4), 1.5, 1.5) == [SyncEvent.STOP]
    assert not fit.playing


def clock_ticks(
    fit: MidiClockFit, beats: np.ndarray, t_of: dict[float, float], rng: np.random.Generator
) -> None:
    """Ticks at the true times, timestamped 0..1.33 ms late (one JACK period at 64/48k)."""
    for b in beats:
        fit.on_message(MIDI_CLOCK, b"", t_of[b] + rng.uniform(0, 64 / 48000))


def tick_times(truth: TempoMap, n: int) -> dict[float, float]:
    ts = np.linspace(0, 60, 600_001)
    beats = np.array([truth.beat(t) for t in ts[::100]])
    grid = ts[::100]
    return {k / 24: float(np.interp(k / 24, beats, grid)) for k in range(n)}


def test_midi_clock_gives_a_tight_line_and_follows_tempo_changes() -> None:
    rng = np.random.default_rng(5)
    truth = TempoMap([(0.0, 120.0), (4.0, 150.0)])
    t_of = tick_times(truth, 24 * 16)
    fit = MidiClockFit()
    assert fit.on_message(MIDI_START, b"", 0.0) == [SyncEvent.START]
    beats = np.array(sorted(t_of))
    before = beats[beats < 7.5]  # 3.75 s at 120 bpm
    clock_ticks(fit, before, t_of, rng)
    assert fit.line is not None and abs(fit.line.tempo - 120.0) < 1.0
    t = t_of[before[-1]]
    assert abs(fit.line.beat_at(t) - before[-1]) * 500 < 1.0  # ms at 120 bpm
    after = beats[(beats >= 7.5) & (beats < 16)]
    clock_ticks(fit, after, t_of, rng)
    assert abs(fit.line.tempo - 150.0) < 1.5
    # Half a beat ahead: the true time plus the mean delivery delay (which no receiver
    # can tell from the tempo), within half a millisecond.
    expected = t_of[after[-1]] + 0.5 * 60 / 150 + 0.5 * 64 / 48000
    assert abs(fit.line.time_at(after[-1] + 0.5) - expected) < 0.0005


def test_midi_clock_song_position_and_stop() -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_SPP, bytes([32, 0]), 0.0)  # 32 sixteenths = beat 8
    fit.on_message(0xFB, b"", 0.0)  # continue
    for k in range(24):
        fit.on_message(MIDI_CLOCK, b"", 1.0 + k * 0.5 / 24)
    assert fit.line is not None and abs(fit.line.beat_at(1.0) - 8.0) < 1e-6
    assert fit.on_message(MIDI_STOP, b"", 2.0) == [SyncEvent.STOP]


def test_sync_prefers_running_midi_clock_then_falls_back() -> None:
    sync = Sync()
    sync.transport.update(120.0, 100.0, True, (4, 4), 0.0, 0.0)
    sync.clock.on_message(MIDI_START, b"", 0.0)
    for k in range(24):
        sync.clock.on_message(MIDI_CLOCK, b"", k * 0.5 / 24)
    line = sync.line(0.5)
    assert line is not None and abs(line.beat_at(0.5) - 1.0) < 1e-6
    late = 0.5 + Sync.CLOCK_TIMEOUT_S + 0.1
    line = sync.line(late)
    assert line is not None and abs(line.beat_at(late) - (100.0 + 2 * late)) < 1e-6


def test_a_doubled_clock_tick_is_corrected_from_lives_position() -> None:
    rng = np.random.default_rng(6)
    sync = Sync()
    sync.clock.on_message(MIDI_START, b"", 0.0)
    spb = 0.5  # 120 bpm
    next_snapshot, events = 0.0, 0
    for k in range(24 * 12):
        t = k * spb / 24
        for _ in range(2 if k == 24 * 4 else 1):  # the tick at beat 4 arrives twice
            sync.clock.on_message(MIDI_CLOCK, b"", t + rng.uniform(0, 64 / 48000))
        if t >= next_snapshot:
            beat = (t + rng.uniform(-0.005, 0.005)) / spb
            sync.transport.update(120.0, beat, True, (4, 4), t, t + 0.001)
            events += sync.reconcile(t + 0.001)
            next_snapshot += 0.1
    assert events == -1  # one tick taken back, once
    line = sync.line(6.0)
    assert line is not None and abs(line.beat_at(6.0) - 12.0) * spb < 0.002


def test_one_snapshot_with_a_bad_t_does_not_move_the_clock_offset() -> None:
    rng = np.random.default_rng(7)
    truth = TempoMap([(0.0, 120.0)])
    fit = TransportFit()
    feed_transport(fit, truth, np.arange(0.0, 3.0, 0.1), rng)
    # Stamped 5.2 s ahead by a sender hiccup: a delay no message can have.
    fit.update(120.0, truth.beat(3.0), True, (4, 4), 3.0 - 1000.0 + 5.2, 3.001)
    feed_transport(fit, truth, np.arange(3.1, 5.0, 0.1), rng)
    assert fit.line is not None
    assert np.abs(errors_ms(fit.line.beat_at, truth, np.array([5.0]))).max() < 3.0


def test_the_clock_line_is_the_least_squares_line() -> None:
    rng = np.random.default_rng(10)
    t = np.sort(rng.uniform(-0.5, 0.0, 24))
    beat = 7.0 + 2.2 * t + rng.normal(0, 1e-4, 24)
    assert np.allclose(_fit_line(t, beat), np.polyfit(t, beat, 1), rtol=1e-9, atol=1e-12)
    assert all(math.isnan(x) for x in _fit_line(np.zeros(3), np.arange(3.0)))  # no slope


@pytest.mark.parametrize("sender_clock", [0.0, -1000.0])
def test_a_sender_on_our_clock_is_read_at_its_own_time(sender_clock: float) -> None:
    """Live's script on this machine stamps `t` with our clock: how late its snapshots
    arrive (0.8 ms or more here) says nothing of when it read the beat. On another clock
    only the least delay can be known, and it is taken for the offset."""
    rng = np.random.default_rng(9)
    truth = TempoMap([(0.0, 120.0)])
    fit = TransportFit()
    for t in np.arange(0.0, 3.0, 0.1):
        delivery = 0.0008 + rng.exponential(0.001)
        fit.update(120.0, truth.beat(t), True, (4, 4), t + sender_clock, t + delivery)
    assert fit.line is not None
    late_ms = -errors_ms(fit.line.beat_at, truth, np.array([3.0]))[0]
    if sender_clock == 0.0:
        assert abs(late_ms) < 0.01
    else:
        assert 0.8 <= late_ms < 1.2


def test_a_sender_clock_step_starts_the_offset_over() -> None:
    rng = np.random.default_rng(8)
    truth = TempoMap([(0.0, 120.0)])
    fit = TransportFit()
    feed_transport(fit, truth, np.arange(0.0, 3.0, 0.1), rng)
    for t in np.arange(3.0, 4.0, 0.1):  # another sender, its clock 40.3 s behind
        fit.update(120.0, truth.beat(t), True, (4, 4), t - 1040.3, t + 0.001)
    assert fit.line is not None
    assert np.abs(errors_ms(fit.line.beat_at, truth, np.array([4.0]))).max() < 3.0
    fit.reset()  # the client left: nothing of it is kept
    assert fit.line is None and not fit.playing
    fit.update(120.0, 2.0, True, (4, 4), 50.0, 7.0)
    assert fit.line is not None and abs(fit.line.beat_at(7.0) - 2.0) < 1e-9


def test_a_seek_with_a_tempo_change_in_one_snapshot_is_a_jump() -> None:
    fit = TransportFit()
    for k in range(10):
        fit.update(120.0, 2.0 * k * 0.1, True, (4, 4), k * 0.1, k * 0.1)
    # A small drift the tempo change explains keeps continuity ...
    assert fit.update(150.0, 2.0 + 0.05, True, (4, 4), 1.0, 1.0) == []
    # ... a position the tempo change cannot explain is a jump, taken at once.
    assert fit.update(128.0, 800.0, True, (4, 4), 1.1, 1.1) == [SyncEvent.JUMP]
    assert fit.line is not None and fit.line.beat_at(1.1) == 800.0


def steady_clock(fit: MidiClockFit, ticks: range, spt: float) -> None:
    for k in ticks:
        fit.on_message(MIDI_CLOCK, b"", k * spt)


def test_song_position_while_running_moves_the_line_and_keeps_the_tempo() -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    spt = 0.5 / 24  # 120 bpm
    steady_clock(fit, range(192), spt)  # 8 beats
    assert fit.on_message(MIDI_SPP, bytes([0, 0]), 192 * spt - 0.0001) == [SyncEvent.JUMP]
    assert fit.line is not None and abs(fit.line.tempo - 120.0) < 1e-6
    assert abs(fit.line.beat_at(192 * spt)) < 1e-9  # the next tick is beat 0
    steady_clock(fit, range(192, 240), spt)
    assert abs(fit.line.beat_at(240 * spt) - 2.0) < 1e-9


@pytest.mark.parametrize("stall_s", [0.25, 0.5, 0.9])
def test_a_catch_up_burst_after_a_stall_leaves_the_line_alone(stall_s: float) -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    spt = 0.5 / 24
    steady_clock(fit, range(96), spt)
    held = round(stall_s / spt)
    for _ in range(held):  # every tick of the stall arrives at its end
        fit.on_message(MIDI_CLOCK, b"", 96 * spt + stall_s)
    assert fit.line is not None and abs(fit.line.tempo - 120.0) < 1e-6
    assert fit.late_ticks == held
    steady_clock(fit, range(96 + held, 96 + held + 24), spt)
    assert abs(fit.line.tempo - 120.0) < 1e-6
    assert abs(fit.line.beat_at(10.0) - 20.0) < 1e-9


def test_a_real_pause_of_the_clock_is_followed_after_a_few_ticks() -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    spt = 0.5 / 24
    steady_clock(fit, range(96), spt)
    for k in range(96, 96 + 8):  # Live's clock stood still for 0.3 s, then went on
        fit.on_message(MIDI_CLOCK, b"", k * spt + 0.3)
    assert fit.line is not None and abs(fit.line.tempo - 120.0) < 0.5
    assert abs(fit.line.beat_at(103 * spt + 0.3) - 103 / 24) * 500 < 0.5  # ms


def test_a_jump_the_snapshots_agree_on_moves_the_clock_count_at_once() -> None:
    sync = Sync()
    sync.clock.on_message(MIDI_START, b"", 0.0)
    spt = 0.5 / 24
    moved: list[tuple[bool, int]] = []  # (the snapshot reported a jump, ticks moved)
    for k in range(24 * 8):
        t = k * spt
        sync.clock.on_message(MIDI_CLOCK, b"", t)
        if k % 5 == 0:  # snapshots every ~0.1 s; Live jumped back 4 beats at t = 2
            beat = 2 * t - (4.0 if t >= 2.0 else 0.0)
            events = sync.transport.update(120.0, beat, True, (4, 4), t, t)
            jumped = SyncEvent.JUMP in events
            moved.append((jumped, sync.reconcile(t, jumped=jumped)))
    assert [m for m in moved if m != (False, 0)] == [(True, -96)]
    line = sync.line(4.0)
    assert line is not None and abs(line.beat_at(3.9) - (2 * 3.9 - 4.0)) < 1e-6


def test_a_tempo_that_more_than_doubles_at_once_is_followed() -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    steady_clock(fit, range(48), 1.0 / 24)  # 60 bpm for 2 beats
    t0 = 47 / 24
    for k in range(1, 25):  # then 180 bpm: ticks three times as close
        fit.on_message(MIDI_CLOCK, b"", t0 + k / 72)
    assert fit.line is not None and abs(fit.line.tempo - 180.0) < 0.5
    assert abs(fit.line.beat_at(t0 + 24 / 72) - 71 / 24) < 1e-6  # the 24th fast tick


@pytest.mark.parametrize("lost", [1, 2])
def test_a_lost_tick_never_moves_the_beat(lost: int) -> None:
    rng = np.random.default_rng(9)
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    spt = 0.5 / 24  # 120 bpm
    worst = 0.0
    for k in range(24 * 8):
        if 96 <= k < 96 + lost:
            continue  # lost in a JACK xrun
        t = k * spt + rng.uniform(0, 64 / 48000)  # delivered 0..1 period late
        fit.on_message(MIDI_CLOCK, b"", t)
        if k > 24:
            assert fit.line is not None
            worst = max(worst, abs(fit.line.beat_at(k * spt) - k / 24) * 0.5)  # seconds
    assert fit.lost_ticks == lost
    assert worst < 0.0015  # within JACK's own quantization, never a tick (20.8 ms)


def test_a_tempo_that_halves_at_once_is_not_taken_for_lost_ticks() -> None:
    fit = MidiClockFit()
    fit.on_message(MIDI_START, b"", 0.0)
    steady_clock(fit, range(48), 0.5 / 24)  # 120 bpm for 2 beats
    t0 = 47 * 0.5 / 24
    for k in range(1, 25):  # then 60 bpm
        fit.on_message(MIDI_CLOCK, b"", t0 + k / 24)
    assert fit.lost_ticks == 0
    assert fit.line is not None and abs(fit.line.tempo - 60.0) < 0.5
    assert abs(fit.line.beat_at(t0 + 1.0) - 71 / 24) < 1e-6


@pytest.mark.parametrize("snapshots", [True, False], ids=["with-live-tempo", "ticks-only"])
def test_a_tempo_change_live_states_is_taken_before_the_ticks_show_it(snapshots: bool) -> None:
    """120 -> 100 bpm at t = 2 s; the script's next snapshot (every 0.1 s) comes 30 ms
    later. From it on the line is within a period of the truth, whereas the ticks alone
    take several more to show the change, and the line is ms off meanwhile."""
    truth = TempoMap([(0.0, 120.0), (2.0, 100.0)])
    ticks = [(t, True) for t in tick_times(truth, 24 * 8).values()]
    shots = [(t, False) for t in np.arange(0.03, 4.0, 0.1)] if snapshots else []
    sync = Sync()
    sync.clock.on_message(MIDI_START, b"", 0.0)
    worst = 0.0  # seconds, between the snapshot and the end of the next beat
    for t, is_tick in sorted(ticks + shots):
        if not is_tick:
            sync.transport.update(truth.tempo(t), truth.beat(t), True, (4, 4), t, t)
            sync.follow_tempo(t)
            continue
        sync.clock.on_message(MIDI_CLOCK, b"", t)
        line = sync.line(t)
        if 2.03 <= t < 2.6 and line is not None:
            later = t + 0.01  # a note committed now, 10 ms ahead
            worst = max(worst, abs(line.time_at(truth.beat(later)) - later))
    assert (worst < 64 / 48000) == snapshots, f"{worst * 1000:.2f} ms"
