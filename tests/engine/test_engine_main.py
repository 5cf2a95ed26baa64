"""The engine process applies controls and reports its counts as the protocol table says."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from engine_harness import Client, Engine, wait_for
from lkjam.engine import protocol

from lkjam.jackd import JackServer
from lkjam.random_model import random_model

pytestmark = pytest.mark.jack

NOTES = [[62 + i % 5, float(i), 1.0, 100] for i in range(8)]


def test_status_carries_every_count_and_accompany_follows_the_mode(
    jack_server: JackServer, tmp_path: Path
) -> None:
    engine = Engine(tmp_path, random_model(tmp_path / "m.safetensors", "tiny"))
    client = Client(engine.endpoint)
    try:
        client.hello()
        status = client.wait("status")
        protocol.validate(status, protocol.TO_SCRIPT)
        counts = set(protocol.MESSAGES["status"].fields) - {"text"}
        assert {name: status[name] for name in counts} == dict.fromkeys(counts, 0)

        # A request without `mode` makes the part of the engine's mode, once it changed.
        client.send("controls", mode="call_response")
        client.wait("status")  # the mode change is announced
        client.send("accompany", id="a", track=0, slot=0, length=8.0, notes=NOTES)
        assert client.wait("clip_notes")["id"] == "a"
        wait_for(lambda: "accompany 'a' (call_response)" in engine.log(), 5, "the log line")
        # What start-up made (the modules, the model) is never scanned by the garbage
        # collector again: a full scan of it stalls every thread for 10-20 ms.
        frozen = re.search(r"(\d+) start-up objects kept out of garbage collection", engine.log())
        assert frozen is not None and int(frozen.group(1)) > 10_000
    finally:
        client.close()
        engine.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_idle_engine_sleeps(jack_server: JackServer, tmp_path: Path) -> None:
    """A client connected, Live stopped (its heartbeat 10 times a second): the engine
    sleeps between messages. The margin: sleeping, it used about 2% of a core on the
    loaded 2-core CI machine, most of it JACK's own client threads, which wake every
    period; one busy loop anywhere (a 5 ms poll, a spinning thread) costs 15% to 100%."""
    engine = Engine(tmp_path, random_model(tmp_path / "m.safetensors", "tiny"))
    client = Client(engine.endpoint)
    try:
        client.hello()
        client.wait("status")
        cpu0, wall0 = cpu_seconds(engine.process.pid), time.perf_counter()
        while time.perf_counter() - wall0 < 4.0:
            client.send("transport", tempo=120.0, beat=0.0, playing=False, sig=[4, 4], t=wall0)
            time.sleep(0.1)
        share = (cpu_seconds(engine.process.pid) - cpu0) / (time.perf_counter() - wall0)
        assert share < 0.10, f"the idle engine used {share:.1%} of a core"
    finally:
        client.close()
        engine.stop()
