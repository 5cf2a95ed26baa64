"""The engine under abuse: fuzzed and oversized frames, a MIDI flood, remote binds."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from engine_harness import Client, Engine, Midi, Transport, free_endpoint, wait_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lkjam.engine import protocol
from lkjam.engine.protocol import MESSAGES, TO_ENGINE, Field
from lkjam.engine.server import BindError, Server

from lkjam.jackd import JackServer
from lkjam.random_model import random_model

FRAMES_PER_EXAMPLE = 100
EXAMPLES = 100  # 10,000 fuzzed frames in all


@pytest.fixture
def engine(jack_server: JackServer, tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path, random_model(tmp_path / "m.safetensors", "default"))
    yield e
    e.stop()


# ---- malformed frames, invalid by construction ---------------------------------------

_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "num": st.sampled_from(["1", None, True, [], {}, 1e12, -1e12]),
    "int": st.sampled_from([0.5, "3", None, True, [], 2**40]),
    "str": st.sampled_from([1, None, [], {}, True, "x" * 5000]),
    "bool": st.sampled_from([0, 1, "true", None, []]),
    "enum": st.sampled_from(["jam", "", 3, None]),
    "id": st.sampled_from([None, True, 1.5, [], "x" * 500]),
    "pair": st.sampled_from([[1], [2.0, 1.0], "0,4", [None, 4], None]),
    "sig": st.sampled_from([[4], [4, 3], [0, 4], [4.0, 4], "4/4", None]),
    "ints": st.sampled_from([[0.5], ["1"], [99], 7, None]),
    "strs": st.sampled_from([[1], "a", None]),
    "notes": st.sampled_from(
        [
            [[60, 0, 1]],
            [[128, 0, 1, 100]],
            [[60, -1, 1, 100]],
            [[60, 0, 0, 100]],
            [[60, 0, 1, 0]],
            [60, 0, 1, 100],
            None,
            "notes",
        ]
    ),
}
_KINDS = sorted(k for k, spec in MESSAGES.items() if spec.direction == TO_ENGINE)


@st.composite
def malformed(draw: st.DrawFn) -> list[bytes]:
    """The frames of one message that must be refused."""
    kind = draw(st.sampled_from(_KINDS))
    spec = MESSAGES[kind]
    message: dict[str, Any] = {"v": 1, "type": kind, **spec.example}
    fields: dict[str, Field] = dict(spec.fields)
    mutations = ["bytes", "unknown field", "version", "type", "frames", "not an object"]
    if fields:
        mutations.append("wrong value")
    if any(f.required for f in fields.values()):
        mutations.append("missing field")
    mutation = draw(st.sampled_from(mutations))
    if mutation == "bytes":
        raw = draw(st.binary(max_size=64))
        return [raw if not raw.startswith(b"{") else b"\xff" + raw]
    if mutation == "wrong value":
        name = draw(st.sampled_from(sorted(fields)))
        message[name] = draw(_WRONG[fields[name].kind])
    elif mutation == "missing field":
        name = draw(st.sampled_from(sorted(n for n, f in fields.items() if f.required)))
        del message[name]
    elif mutation == "unknown field":
        message[draw(st.sampled_from(["extra", "Type", "tempo2", ""]))] = 1
    elif mutation == "version":
        message["v"] = draw(st.sampled_from([0, 2, "1", None, 1.5]))
    elif mutation == "type":
        message["type"] = draw(st.sampled_from(["welcome", "error", "HELLO", "", None, 5]))
    elif mutation == "not an object":
        return [json.dumps(list(message.values())).encode()]
    frame = json.dumps(message).encode()
    if mutation == "frames":
        return [frame, frame]
    return [frame]


@pytest.mark.jack
def test_ten_thousand_malformed_frames_get_errors_and_the_engine_answers(engine: Engine) -> None:
    client = Client(engine.endpoint)
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=[Phase.generate],  # a failure names its frame; no shrinking needed
    )
    @given(st.lists(malformed(), min_size=FRAMES_PER_EXAMPLE, max_size=FRAMES_PER_EXAMPLE))
    def check(batch: list[list[bytes]]) -> None:
        nonlocal sent
        for frames in batch:
            client.send_raw(*frames)
            if not client.socket.poll(5000):
                raise AssertionError(f"no answer to {frames!r}")
            reply = client.recv(0)
            assert reply["type"] == "error" and reply["text"], (frames, reply)
            sent += 1

    check()
    assert sent >= 10_000
    assert engine.process.poll() is None
    assert client.hello()["type"] == "welcome"
    client.close()


@pytest.mark.jack
def test_oversized_frames_are_refused_without_harm(engine: Engine) -> None:
    client = Client(engine.endpoint)
    client.hello()
    client.send_raw(b"x" * (protocol.MAX_MESSAGE_BYTES + 1))
    assert "at most 1048576" in client.wait("error")["text"]
    # Above the socket cap ZeroMQ drops the connection; the DEALER reconnects by itself.
    client.send_raw(b"x" * (protocol.SOCKET_MAX_BYTES + 1))
    # A hello sent while the dropped connection is torn down is lost with it: as the
    # remote script does, say hello again until the engine answers.
    for _ in range(10):
        client.send("hello", live_version="12.1.11", python="3.11", script_version="test")
        if client.socket.poll(1000):
            break
    assert client.wait("welcome")["type"] == "welcome"
    other = Client(engine.endpoint)
    assert other.hello()["type"] == "welcome"
    other.close()
    client.close()


@pytest.mark.slow
@pytest.mark.jack
def test_midi_flood_keeps_memory_bounded(engine: Engine) -> None:
    client = Client(engine.endpoint)
    client.hello()
    transport = Transport(engine.endpoint)
    midi = Midi(engine.in_name, engine.out_name)
    try:
        wait_for(lambda: "transport start" in engine.log(), 10, "the engine playing")
        rss_before = engine.rss_kb()
        sent = 0
        start = time.perf_counter()
        # 100 messages per millisecond slot, catching up when late: 100k/s for 10 s.
        for slot in range(10_000):
            delay = start + slot / 1000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            for k in range(50):
                midi.send(0x90, 48 + k % 24, 100)
                midi.send(0x80, 48 + k % 24, 0)
            sent += 100
        rss_after = engine.rss_kb()
        assert sent == 1_000_000
        growth_mb = (rss_after - rss_before) / 1024
        assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB during the flood"
        assert engine.process.poll() is None
        assert client.hello()["type"] == "welcome"
    finally:
        transport.close()
        client.close()
        engine.stop()  # first, so that nothing reaches the recorder while it closes
        midi.close()


def test_remote_binds_need_permission(caplog: pytest.LogCaptureFixture) -> None:
    port = free_endpoint().rsplit(":", 1)[1]
    with pytest.raises(BindError, match="--allow-remote"):
        Server(f"tcp://0.0.0.0:{port}", on_message=lambda rid, m: None)
    with (
        caplog.at_level(logging.WARNING, logger="lkjam.engine"),
        Server(f"tcp://0.0.0.0:{port}", allow_remote=True, on_message=lambda rid, m: None),
    ):
        assert "other machines can reach this engine" in caplog.text
    with Server(f"tcp://127.0.0.1:{port}", on_message=lambda rid, m: None) as local:
        assert local.endpoint == f"tcp://127.0.0.1:{port}"


# ---- the socket's own bookkeeping (issue 13, item 5), in process ---------------------


def test_a_port_out_of_range_is_refused_not_wrapped(tmp_path: Path) -> None:
    # libzmq takes the port modulo 65536: 99999 would silently become 34463.
    with pytest.raises(BindError, match=r"port 99999 is out of range 0\.\.65535"):
        Server("tcp://127.0.0.1:99999", on_message=lambda rid, m: None)
    model = random_model(tmp_path / "m.safetensors", "tiny")
    command = [sys.executable, "-m", "lkjam", "engine", "--model", str(model)]
    done = subprocess.run(
        [*command, "--endpoint", "tcp://127.0.0.1:99999"], capture_output=True, text=True
    )
    assert done.returncode == 1 and "port 99999 is out of range" in done.stderr, done.stderr


class Dealers:
    """DEALER sockets with chosen routing ids, on one endpoint for an in-process Server."""

    def __init__(self) -> None:
        self.endpoint = free_endpoint()
        self.context = zmq.Context()
        self.sockets: list[zmq.Socket[bytes]] = []

    def connect(self, routing_id: bytes) -> zmq.Socket[bytes]:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
        sock.connect(self.endpoint)
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.context.term()


@pytest.fixture
def dealers() -> Iterator[Dealers]:
    d = Dealers()
    yield d
    d.close()


def exchange(server: Server, client: zmq.Socket[bytes], frame: bytes) -> dict[str, Any]:
    """Send one frame and serve until the answer arrives."""
    client.send(frame)
    for _ in range(400):
        server.poll_once(5)
        if client.poll(0):
            answer: dict[str, Any] = json.loads(client.recv())
            return answer
    raise AssertionError(f"no answer to {frame!r}")


HELLO = protocol.encode("hello", **MESSAGES["hello"].example)
TRANSPORT = protocol.encode("transport", **MESSAGES["transport"].example)


def test_busy_is_logged_as_an_answered_error_not_a_bad_message(
    dealers: Dealers, caplog: pytest.LogCaptureFixture
) -> None:
    def busy(rid: bytes, message: dict[str, Any]) -> None:
        server.error(rid, f"{message['type']}: engine busy, message dropped")

    with (
        Server(dealers.endpoint, on_message=busy) as server,
        caplog.at_level(logging.INFO, logger="lkjam.engine"),
    ):
        client = dealers.connect(b"busy-client")
        assert "engine busy" in exchange(server, client, TRANSPORT)["text"]
        assert exchange(server, client, b"{")["type"] == "error"
    lines = [r.getMessage() for r in caplog.records]
    who = b"busy-client".hex()
    assert f"answered error to {who}: transport: engine busy, message dropped" in lines
    assert [line for line in lines if line.startswith(f"bad message from {who}: message: not")]
    assert not [line for line in lines if "bad message" in line and "busy" in line], lines


def test_a_client_that_never_says_hello_is_named(
    dealers: Dealers, caplog: pytest.LogCaptureFixture
) -> None:
    def answer(rid: bytes, message: dict[str, Any]) -> None:
        server.send(rid, "status", text=message["type"])

    with (
        Server(dealers.endpoint, on_message=answer) as server,
        caplog.at_level(logging.INFO, logger="lkjam.engine"),
    ):
        exchange(server, dealers.connect(b"polite"), HELLO)
        exchange(server, dealers.connect(b"silent type"), TRANSPORT)  # while another is known
    assert f"client {b'silent type'.hex()} connected" in caplog.text


def test_an_exception_in_decode_costs_an_error_not_the_socket(
    dealers: Dealers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = protocol.decode

    def flawed(frame: bytes) -> dict[str, Any]:
        if b"tempo" in frame:
            raise OverflowError("int too large to convert to float")  # what issue 13 saw
        return real(frame)

    def answer(rid: bytes, message: dict[str, Any]) -> None:
        server.send(rid, "status", text="ok")

    monkeypatch.setattr(protocol, "decode", flawed)
    with (
        Server(dealers.endpoint, on_message=answer) as server,
        caplog.at_level(logging.INFO, logger="lkjam.engine"),
    ):
        client = dealers.connect(b"c")
        assert "could not be read" in exchange(server, client, TRANSPORT)["text"]
        assert exchange(server, client, HELLO) == {"v": 1, "type": "status", "text": "ok"}
    assert "OverflowError" in caplog.text
