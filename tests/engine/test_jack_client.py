"""lkjam's own JACK client (`lkjam._jack` through `ports.JackClient`) on a real server:
output written at the frame it is due, input stamped with its frame's time and read off
JACK's process thread, one client for both ports, and no note lost when it closes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rtmidi
from engine_harness import wait_for
from lkjam.engine import ports
from lkjam.engine.ports import JackClient, open_ports
from lkjam.engine.scheduler import Scheduler

from lkjam.jackd import JackServer

pytestmark = pytest.mark.jack


@pytest.fixture
def link(jack_server: JackServer) -> Iterator[tuple[JackClient, JackClient]]:
    """A sender's output connected to a recorder's input, warmed up."""
    with (
        JackClient(output="out", client="test-sender") as sender,
        JackClient(input="in", client="test-recorder") as recorder,
    ):
        sender.connect(sender.output_name, recorder.input_name)
        # A connection carries messages from the next cycle on: wait for one to arrive.
        wait_for(lambda: sender.send([0x90, 0, 1]) or recorder.queue, 5, "a link")
        time.sleep(0.3)  # JACK's clock settles after clients join (an xrun may reset it)
        recorder.queue.clear()
        yield sender, recorder


def test_output_is_written_at_the_frame_it_is_due(
    jack_server: JackServer, link: tuple[JackClient, JackClient]
) -> None:
    """python-rtmidi writes every message at the start of the next period: up to a period
    (1.33 ms) late. Handed over early with its time, a message lands on its own frame."""
    sender, recorder = link
    frame = 1 / jack_server.rate
    assert sender.lead_s == pytest.approx(2 * jack_server.period * frame + 0.004)
    due = []
    rng = np.random.default_rng(0)
    for k in range(60):
        t = sender.now() + 0.02 + rng.uniform(0, 0.002)  # anywhere within a period or two
        sender.send([0x90, k, 100], at=t)
        due.append(t)
        time.sleep(0.004)
    time.sleep(0.1)
    # The dummy driver without real-time priority can lose a cycle's MIDI at an xrun.
    got = {m[1]: t for t, m in recorder.queue}
    assert len(got) >= 57 and [m[0::2] for _, m in recorder.queue] == [b"\x90\x64"] * len(got)
    errors = np.abs(np.array([t - due[k] for k, t in got.items()]))
    # At its frame: the recorder times the period from its own wake-up, tens of µs after
    # the sender's, so to within 0.1 ms (all but 1 in 5: the dummy driver without
    # real-time priority hiccups on a loaded machine). Written at the start of the next
    # period instead, 1 in 13 would be.
    assert np.mean(errors <= 0.0001) >= 0.8, np.round(errors * 1e6)
    assert np.median(errors) < 2 * frame


def test_the_same_message_a_period_later_is_read_again(
    link: tuple[JackClient, JackClient],
) -> None:
    """The process thread leaves out a period's events that repeat the period before only
    when JACK ran it twice on one frame time (a stale copy of a lagging client's buffer):
    the same clock tick at the same frame of the next period is a tick of its own."""
    sender, recorder = link
    t = sender.now() + 0.02
    for k in range(8):
        sender.send([0xF8], at=t + k * sender.period_s)
    wait_for(lambda: len(recorder.queue) == 8, 5, "eight ticks")
    times = np.array([t for t, _ in recorder.queue])
    assert np.allclose(np.diff(times), sender.period_s, atol=1e-4)
    assert recorder.stale_in == 0


def test_a_message_handed_over_too_late_is_written_at_once_and_counted(
    link: tuple[JackClient, JackClient],
) -> None:
    sender, recorder = link
    sent = time.perf_counter()
    sender.send([0x90, 1, 100], at=sent - 0.05)  # due 50 ms ago
    sender.send([0x80, 1, 0])  # no time: at once, never late
    wait_for(lambda: len(recorder.queue) == 2, 5, "both messages")
    (t_on, _), (t_off, _) = recorder.queue
    assert t_on > sent - 0.01 and t_off >= t_on  # written when it came, not 50 ms back
    assert sender.late_out == 1


def test_closing_lets_handed_over_messages_leave(link: tuple[JackClient, JackClient]) -> None:
    """A stopped engine leaves no note hanging: a note-off handed over for later still
    goes out when the port closes before its time."""
    sender, recorder = link
    t = sender.now()
    sender.send([0x90, 60, 100], at=t + 0.02)
    sender.send([0x80, 60, 0], at=t + 0.1)
    sender.close()
    wait_for(lambda: len(recorder.queue) == 2, 5, "note-on and note-off")
    assert [m for _, m in recorder.queue] == [bytes([0x90, 60, 100]), bytes([0x80, 60, 0])]
    sender.close()  # idempotent
    sender.send([0x90, 61, 100])  # a closed port sends nothing and raises nothing


def test_input_is_read_off_the_process_thread_with_its_frame_time(
    jack_server: JackServer,
) -> None:
    with JackClient(input="lkjam test input") as midi_in:
        threads = set()
        append = midi_in._append

        def spied(t: float, message: bytes) -> bool:
            threads.add(threading.current_thread().name)
            return append(t, message)

        midi_in._append = spied  # type: ignore[method-assign]
        player = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="lkjam-test-player")
        try:
            names = player.get_ports()
            player.open_port(next(i for i, n in enumerate(names) if n.endswith("test input")))
            wait_for(lambda: player.send_message([0x90, 127, 1]) or midi_in.queue, 5, "a link")
            time.sleep(0.05)  # the last warm-ups arrive too
            midi_in.queue.clear()
            seen: list[float] = []
            for k in range(40):
                if k % 10 == 5:
                    player.send_message([0xF0, 0x7D, k, 0xF7])  # sysex: not ours, dropped
                player.send_message([0x90, k, 100])
                player.send_message([0xFE])  # active sensing: dropped too
                wait_for(lambda: len(midi_in.queue) > len(seen), 5, f"note {k}")
                seen.append(time.perf_counter())
                time.sleep(0.003 * (k % 4))  # within a period, across several
        finally:
            player.delete()
    assert threads == {"lkjam-jack-in"}  # never JACK's process thread
    got = list(midi_in.queue)
    assert [m for _, m in got] == [bytes([0x90, k, 100]) for k in range(40)]
    # The frame's time (how exact it is: test_output_is_written_at_the_frame_it_is_due),
    # in order, and before the reader saw it: not when Python got to it.
    times = np.array([t for t, _ in got])
    assert np.all(times <= np.array(seen)) and np.all(np.diff(times) > 0)
    assert np.all(np.diff(times) > 0)


def test_the_engines_ports_share_one_jack_client(jack_server: JackServer) -> None:
    midi_in, midi_out = open_ports("lkjam test in", "lkjam test out", "jack")
    try:
        assert midi_in is midi_out and isinstance(midi_in, JackClient)
        client = midi_in.input_name.split(":")[0]
        assert midi_out.output_name == f"{client}:lkjam test out"
        scheduler = Scheduler(midi_out)
        assert scheduler.timed and scheduler.lead_s == midi_out.lead_s
        inputs, outputs = ports.list_ports("jack")
        assert midi_out.output_name in inputs and midi_in.input_name in outputs
    finally:
        midi_in.close()
        midi_out.close()


def test_the_engines_input_is_read_by_the_thread_that_waits_for_it(
    jack_server: JackServer,
) -> None:
    """No reader thread in between: the generator's wait on `wake` sleeps until input
    comes, and reads it; a `set` from another thread (a message from Live) ends it too."""
    midi_in, _ = open_ports("lkjam test wait in", "lkjam test wait out", "jack")
    player = JackClient(output="out", client="test-player")
    try:
        assert "lkjam-jack-in" not in {t.name for t in threading.enumerate()}
        player.connect(player.output_name, midi_in.input_name)
        wake = midi_in.wake
        wait_for(lambda: player.send([0x90, 0, 1]) or wake.wait(0.01), 5, "a link")
        wake.clear()
        midi_in.queue.clear()
        assert not wake.wait(0.05) and not midi_in.queue  # nothing came: slept it out
        player.send([0x90, 60, 100])
        started = time.perf_counter()
        assert wake.wait(2.0) and time.perf_counter() - started < 1.0
        assert [m for _, m in midi_in.queue] == [bytes([0x90, 60, 100])]
        wake.clear()
        threading.Timer(0.05, wake.set).start()
        started = time.perf_counter()
        assert wake.wait(2.0) and time.perf_counter() - started < 1.0
        assert len(midi_in.queue) == 1  # woken, nothing read
    finally:
        player.close()
        midi_in.close()


def test_connect_to_waits_for_the_port_to_appear(jack_server: JackServer) -> None:
    """Another program's port may appear after ours: each side connects once it does, and
    a port that never appears is a PortError naming it."""
    with (
        JackClient(output="early out", client="test-early-sender") as sender,
        JackClient(input="early in", client="test-early-recorder") as recorder,
    ):
        later: list[JackClient] = []
        timer = threading.Timer(
            0.3, lambda: later.append(JackClient(input="late in", client="test-late"))
        )
        timer.start()
        try:
            assert sender.connect_to("late in") == "test-late:late in"
            timer.join()
            assert recorder.connect_to("early out") == sender.output_name
            wait_for(
                lambda: sender.send([0x90, 1, 1]) or (recorder.queue and later[0].queue),
                5,
                "both connections",
            )
        finally:
            timer.join()
            for client in later:
                client.close()
        with pytest.raises(ports.PortError, match="'nowhere' did not appear"):
            sender.connect_to("nowhere", timeout_s=0.2)


def test_input_queue_is_bounded_and_counts_what_it_drops(jack_server: JackServer) -> None:
    with JackClient(input="lkjam test bounded", capacity=100) as port:
        for k in range(1000):  # as the reader would, with nobody consuming
            port._put(float(k), bytes([0x90, k % 128, 100]))
        assert len(port.queue) == 100 and port.dropped == 900
        assert port.queue[0][1] == bytes([0x90, 0, 100])
        assert port.wake.is_set()
        port.close()
        port.close()  # idempotent
        assert not port.is_open


def test_jack_without_a_server_is_a_port_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "lkjam-no-such-server")
    with pytest.raises(ports.PortError, match="cannot start the JACK MIDI client"):
        JackClient(output="x")


def test_a_server_that_goes_away_is_reported_and_closing_still_works() -> None:
    server = JackServer(f"lkjam-test-gone-{os.getpid()}").start()
    try:
        port = JackClient(input="in", output="out", client="test-gone")
        assert server.process is not None
        # SIGTERM: a killed jackd would leave its registration behind in /dev/shm, and JACK
        # refuses new servers once a few are registered.
        os.kill(server.process.pid, signal.SIGTERM)
        wait_for(lambda: port.errors, 10, "the error")
        assert list(port.errors) == ["the JACK server went away"]
        port.send([0x90, 60, 100])  # nowhere to go, and no exception
        port.close()
        assert not port.is_open
    finally:
        server.stop()
