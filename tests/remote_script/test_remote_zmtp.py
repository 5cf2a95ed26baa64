"""The stdlib ZMTP 3.1 DEALER (remote_script/LKJam/zmtp.py) against real libzmq."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from lkjam.remote_script.LKJam import zmtp
from lkjam.remote_script.LKJam.zmtp import DealerClient, OutQueue

MAX_POLLS = 2000  # polls allowed for a state to be reached (each waits up to 5 ms)


class FakeClock:
    """A monotonic clock the test moves by hand, so backoff needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def router(ctx: zmq.Context, port: int, **options: int) -> zmq.Socket:
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.bind(f"tcp://127.0.0.1:{port}")
    return sock


def poll_until(client: DealerClient, done: Callable[[], bool], wait: zmq.Socket | None = None):
    """Poll the client until `done()`; returns the messages it received meanwhile."""
    received = []
    for _ in range(MAX_POLLS):
        received += client.poll()
        if done():
            return received
        if wait is not None:
            wait.poll(5)
        else:
            threading.Event().wait(0.005)
    raise AssertionError(f"state not reached; client state {client.state}")


def recv(sock: zmq.Socket, client: DealerClient) -> list[bytes]:
    """Receive one message on the router, polling the client while waiting."""
    for _ in range(MAX_POLLS):
        client.poll()
        if sock.poll(5):
            return sock.recv_multipart()
    raise AssertionError("router received nothing")


def test_greeting_is_zmtp_3_1_null() -> None:
    data = zmtp.greeting()
    assert len(data) == 64
    assert data[0] == 0xFF and data[9] == 0x7F
    assert data[10:12] == b"\x03\x01"
    assert data[12:32] == b"NULL" + b"\x00" * 16
    assert data[32] == 0  # as-server
    zmtp.check_greeting(data)
    with pytest.raises(zmtp.ProtocolError, match="mechanism"):
        zmtp.check_greeting(data[:12] + b"CURVE".ljust(20, b"\x00") + data[32:])


def test_frames_short_long_and_multipart_round_trip() -> None:
    buf = bytearray(zmtp.encode_message([b"a", b"x" * 255, b"y" * 256, b""]))
    frames = []
    while buf:
        decoded = zmtp.decode_frame(buf, 1 << 20)
        assert decoded is not None
        flags, body, used = decoded
        del buf[:used]
        frames.append((flags, body))
    assert [body for _, body in frames] == [b"a", b"x" * 255, b"y" * 256, b""]
    assert [flags for flags, _ in frames] == [1, 1, 1 | zmtp.FLAG_LONG, 0]
    assert zmtp.decode_frame(bytearray(zmtp.encode_frame(b"abc")[:3]), 10) is None  # partial
    with pytest.raises(zmtp.ProtocolError, match="cap"):
        zmtp.decode_frame(bytearray(zmtp.encode_frame(b"z" * 300)), 100)


def test_handshake_and_messages_both_ways(context: zmq.Context) -> None:
    port = free_port()
    sock = router(context, port)
    logs: list[str] = []
    ready: list[bool] = []
    client = DealerClient("127.0.0.1", port, logs.append, on_ready=lambda: ready.append(True))
    poll_until(client, lambda: client.connected, sock)
    assert ready == [True] and client.connects == 1

    assert client.send([b'{"type":"hello"}'])
    identity, body = recv(sock, client)
    assert body == b'{"type":"hello"}'

    big = bytes(range(256)) * 400  # a long frame (8-byte size)
    client.send([b"part-1", big, b"part-3"])
    assert recv(sock, client)[1:] == [b"part-1", big, b"part-3"]

    sock.send_multipart([identity, b"from the engine"])
    sock.send_multipart([identity, b"one", big])
    got: list[list[bytes]] = []
    for _ in range(MAX_POLLS):
        got += client.poll()
        if len(got) == 2:
            break
        sock.poll(5)
    assert got == [[b"from the engine"], [b"one", big]]
    client.close()
    client.close()  # idempotent
    assert not client.connected


def test_only_the_newest_keyed_message_is_sent(context: zmq.Context) -> None:
    port = free_port()
    sock = router(context, port)
    client = DealerClient("127.0.0.1", port, lambda _: None)
    poll_until(client, lambda: client.connected, sock)
    for beat in range(100):
        client.send([b"transport %d" % beat], key="transport")
    client.send([b"clip"])
    client.send([b"transport 100"], key="transport")
    assert len(client.queue) == 2
    assert recv(sock, client)[1] == b"clip"
    assert recv(sock, client)[1] == b"transport 100"
    assert not sock.poll(50)


def test_out_queue_is_bounded_and_counts_drops() -> None:
    queue = OutQueue(limit=3)
    for i in range(5):
        queue.put(b"%d" % i)
    assert len(queue) == 3 and queue.dropped == 2
    assert [queue.pop() for _ in range(3)] == [b"2", b"3", b"4"]


def test_messages_are_refused_while_disconnected() -> None:
    client = DealerClient("127.0.0.1", free_port(), lambda _: None)
    assert client.send([b"x"]) is False
    assert len(client.queue) == 0


def test_reconnects_after_the_router_restarts(context: zmq.Context) -> None:
    port = free_port()
    clock = FakeClock()
    logs: list[str] = []
    client = DealerClient("127.0.0.1", port, logs.append, clock=clock)
    sock = router(context, port)
    poll_until(client, lambda: client.connected, sock)
    client.send([b"before"])
    assert recv(sock, client)[1] == b"before"

    sock.close(linger=0)
    poll_until(client, lambda: not client.connected)
    assert any("lost" in line for line in logs)

    sock = router(context, port)
    clock.now += 10.0  # past any backoff
    poll_until(client, lambda: client.connected, sock)
    assert client.connects == 2
    client.send([b"after"])
    assert recv(sock, client)[1] == b"after"
    client.close()


def test_engine_not_running_is_logged_once(context: zmq.Context) -> None:
    port = free_port()
    clock = FakeClock()
    logs: list[str] = []
    client = DealerClient("127.0.0.1", port, logs.append, clock=clock)
    for _ in range(300):
        clock.now += 0.5
        client.poll()
    assert client.attempts > 10  # it kept trying...
    assert len(logs) == 1  # ...but said so once
    assert "not reachable" in logs[0]

    sock = router(context, port)  # the engine appears
    clock.now += 10.0
    poll_until(client, lambda: client.connected, sock)
    assert logs[-1].startswith("connected")
    client.close()


def test_backoff_doubles_up_to_a_cap() -> None:
    clock = FakeClock()
    client = DealerClient("127.0.0.1", free_port(), lambda _: None, clock=clock)
    times = []
    for _ in range(1000):
        clock.now += 0.05
        before = client.attempts
        poll_until(client, lambda: client.state == zmtp.IDLE)
        if client.attempts > before:
            times.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]  # doubling...
    assert max(gaps) <= 4.0 + 0.05  # ...capped at backoff_max


def test_heartbeat_pings_are_answered(context: zmq.Context) -> None:
    """libzmq drops a peer that does not PONG its PINGs within the timeout."""
    port = free_port()
    sock = router(context, port, HEARTBEAT_IVL=20, HEARTBEAT_TIMEOUT=800)
    client = DealerClient("127.0.0.1", port, lambda _: None)
    poll_until(client, lambda: client.connected, sock)
    for _ in range(240):  # >= 1.2 s: well past the timeout, many heartbeats
        client.poll()
        sock.poll(5)
    assert client.connected and client.connects == 1
    client.send([b"still here"])
    assert recv(sock, client)[1] == b"still here"


def read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "peer closed"
        data += chunk
    return data


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    flags, size = read_exactly(conn, 2)
    assert not flags & zmtp.FLAG_LONG
    return flags, read_exactly(conn, size)


def test_pong_echoes_the_ping_context() -> None:
    """A hand-written ZMTP peer (no libzmq) checks the handshake and PING/PONG bytes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = DealerClient("127.0.0.1", server.getsockname()[1], lambda _: None)
    client.poll()
    conn, _ = server.accept()
    conn.settimeout(5)
    conn.sendall(zmtp.greeting())
    for _ in range(MAX_POLLS):
        client.poll()
        if client.state == zmtp.HANDSHAKE:
            break
    assert read_exactly(conn, 64) == zmtp.greeting()
    flags, body = read_frame(conn)
    assert flags == zmtp.FLAG_COMMAND
    name, data = zmtp.parse_command(body)
    assert name == b"READY"
    assert zmtp.parse_metadata(data)["socket-type"] == b"DEALER"

    conn.sendall(zmtp.encode_ready(b"ROUTER"))
    conn.sendall(zmtp.encode_command(b"PING", b"\x00\x0a" + b"ctx-42"))
    pong = zmtp.encode_command(b"PONG", b"ctx-42")
    received = b""
    conn.settimeout(0.005)
    for _ in range(MAX_POLLS):  # the client answers only when polled
        client.poll()
        try:
            received += conn.recv(len(pong) - len(received))
        except TimeoutError:
            continue
        if len(received) == len(pong):
            break
    assert client.connected
    assert received == pong
    conn.close()
    server.close()
    client.close()


def test_a_peer_that_is_not_zeromq_is_a_protocol_error() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    logs: list[str] = []
    client = DealerClient("127.0.0.1", port, logs.append)
    poll_until(client, lambda: client.state == zmtp.GREETING)
    conn, _ = server.accept()
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"x" * 64)
    poll_until(client, lambda: client.state == zmtp.IDLE)
    assert any("signature" in line for line in logs)
    conn.close()
    server.close()


def test_windows_error_codes_are_normal_states() -> None:
    assert {10035, 10036} <= zmtp.WOULD_BLOCK
    assert {10054, 10061} <= zmtp.CONNECTION_LOST


def test_a_socket_numbered_above_1023_connects(
    context: zmq.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select.select refuses fds >= 1024 (ValueError), which a big Live set reaches on
    macOS; the client must connect and flush without it."""
    fcntl = pytest.importorskip("fcntl")
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"cannot open fds above 1023 here (hard limit {hard})")
    if soft != resource.RLIM_INFINITY and soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
    monkeypatch.setattr(zmtp.socket, "socket", _high_fd_socket(fcntl, socket.socket))
    try:
        port = free_port()
        sock = router(context, port)
        client = DealerClient("127.0.0.1", port, lambda _: None)
        poll_until(client, lambda: client.connected, sock)
        assert client._sock is not None and client._sock.fileno() >= 1024
        client.send([b"bye"])
        client.flush_blocking(0.5)
        assert recv(sock, client)[1] == b"bye"
        client.close()
    finally:
        monkeypatch.undo()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _high_fd_socket(fcntl: Any, real: Any) -> Callable[..., socket.socket]:
    def make(*args: Any, **kwargs: Any) -> socket.socket:
        low = real(*args, **kwargs)
        try:
            return real(fileno=fcntl.fcntl(low.fileno(), fcntl.F_DUPFD, 1024))
        finally:
            low.close()

    return make


def test_a_host_name_is_resolved_off_lives_thread(
    context: zmq.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow DNS answer for LKJAM_ENGINE=name:port must not stall the tick."""
    port = free_port()
    sock = router(context, port)
    answer = threading.Event()
    real = socket.getaddrinfo

    def slow_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "engine.lkjam.invalid":
            answer.wait(10)  # a DNS server taking its time
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(zmtp.socket, "getaddrinfo", slow_dns)
    client = DealerClient("engine.lkjam.invalid", port, lambda _: None)
    durations = []
    for _ in range(20):
        start = time.perf_counter()
        client.poll()
        durations.append(time.perf_counter() - start)
    # A lookup on this thread would wait the 10 s the DNS server takes: 1 s is a tenth.
    assert max(durations) < 1.0 and not client.connected
    answer.set()
    poll_until(client, lambda: client.connected, sock)
    client.close()


def test_a_name_that_does_not_resolve_is_logged_once_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(zmtp.socket, "getaddrinfo", no_dns)
    clock = FakeClock()
    logs: list[str] = []
    client = DealerClient("nowhere.invalid", 5678, logs.append, clock=clock)
    for _ in range(5):
        poll_until(client, lambda: client.state == zmtp.IDLE and client.attempts > 0)
        clock.now += 10.0
        client.poll()
    assert client.attempts >= 5
    assert sum("cannot resolve nowhere.invalid" in line for line in logs) == 1
