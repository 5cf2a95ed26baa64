"""The engine process applies controls and reports its counts as the protocol table says."""

from __future__ import annotations

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
    finally:
        client.close()
        engine.stop()
