"""The ZeroMQ side of the engine: a ROUTER socket, its clients and validated messages.

Runs on one thread (the socket is not shared). Incoming frames are validated against
`lkjam.engine.protocol`; a bad one is answered with `error` and logged (rate-limited),
never raised. Other threads send through `send`, a bounded outbox drained by the loop;
`send` wakes the loop through a pipe, so that the loop can sleep between messages.

Clients are told apart by routing id. A client is gone after `bye`, after
`CLIENT_TIMEOUT_S` without a message, or when every connection has dropped (seen on a
socket monitor: libzmq's per-peer disconnect notice is a draft API). When the last
client goes, `on_all_gone` runs (the engine releases its notes).

One client owns the transport: the first to send `transport`, until it is gone or sends
none for `TRANSPORT_HANDOVER_S`. Other clients' snapshots are dropped (each is told once
with `error`), so two senders never fight over start, stop and the beat.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import zmq
from lkjam.engine import protocol
from zmq.utils.monitor import parse_monitor_message

log = logging.getLogger("lkjam.engine")

CLIENT_TIMEOUT_S = 5.0
TRANSPORT_HANDOVER_S = 1.0  # the owner's snapshots come 10 a second; a second's pause
# (a script reloaded in Live, a tool that sent one) lets another client take over
OUTBOX_SIZE = 1024
ERROR_LOG_PER_S = 10  # logged error lines per second; the rest are counted
POLL_MS = 100  # the engine's main loop sleeps at most this long, then checks its ports


class BindError(RuntimeError):
    """The endpoint cannot or may not be bound; the text says why."""


def check_port(endpoint: str) -> None:
    """BindError for a tcp:// port outside 0..65535: libzmq takes it modulo 65536 and
    silently binds another port. `*` (any free port) and interface names are left to zmq."""
    if not endpoint.startswith("tcp://"):
        return
    port = endpoint.rsplit(":", 1)[-1]
    if port.isdigit() and int(port) > 65535:
        raise BindError(f"cannot bind {endpoint}: port {port} is out of range 0..65535")


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address."""
    scheme = endpoint.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: not provably local


class Server:
    """A bound ROUTER socket with a client table. Use as a context manager."""

    def __init__(
        self,
        endpoint: str = protocol.DEFAULT_ENDPOINT,
        *,
        allow_remote: bool = False,
        on_message: Callable[[bytes, dict[str, Any]], None],
        on_all_gone: Callable[[str], None] = lambda reason: None,
        client_timeout_s: float = CLIENT_TIMEOUT_S,
        transport_handover_s: float = TRANSPORT_HANDOVER_S,
    ) -> None:
        check_port(endpoint)
        if not is_loopback(endpoint):
            if not allow_remote:
                raise BindError(
                    f"{endpoint} is not a loopback address; pass --allow-remote to accept "
                    "connections from other machines"
                )
            log.warning("listening on %s: other machines can reach this engine", endpoint)
        self.on_message = on_message
        self.on_all_gone = on_all_gone
        self.client_timeout_s = client_timeout_s
        self.clients: dict[bytes, float] = {}  # routing id -> last message (perf_counter s)
        self.transport_handover_s = transport_handover_s
        self.transport_owner: bytes | None = None
        self._owner_seen = 0.0  # the owner's last transport (perf_counter s)
        self._refused: set[bytes] = set()  # told that another client owns the transport
        self.connections = 0
        self.outbox: deque[tuple[bytes | None, bytes]] = deque()
        self.outbox_dropped = 0
        self.errors = 0
        self._error_window = (0.0, 0)  # (second, lines logged in it)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = self._context.socket(zmq.ROUTER)
        sock = self._socket
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.SOCKET_MAX_BYTES)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.SNDHWM, 1000)
        self._monitor: zmq.Socket[bytes] | None = sock.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
        )
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise BindError(f"cannot bind {endpoint}: {exc}") from None
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)

    # ---- sending (any thread) -----------------------------------------------------

    def send(self, client: bytes | None, kind: str, **fields: Any) -> None:
        """Queue a message to one client, or to all (client None)."""
        frame = protocol.encode(kind, **fields)
        if len(self.outbox) >= OUTBOX_SIZE:
            self.outbox_dropped += 1
            return
        self.outbox.append((client, frame))
        self.wake()

    def wake(self) -> None:
        """End the loop's current poll at once (any thread)."""
        # OSError: already woken (the pipe is full), or closed while the engine stops.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"w")

    def _flush(self) -> None:
        sock = self._socket
        assert sock is not None
        while self.outbox:
            client, frame = self.outbox.popleft()
            for rid in [client] if client is not None else list(self.clients):
                try:
                    sock.send_multipart([rid, frame], flags=zmq.NOBLOCK)
                except zmq.Again:
                    self.outbox_dropped += 1  # that client does not read: drop, never block

    # ---- the loop -----------------------------------------------------------------

    def poll_once(self, timeout_ms: int) -> None:
        events = dict(self._poller.poll(timeout_ms))
        if self._wake_r in events:
            while True:
                try:
                    if not os.read(self._wake_r, 4096):
                        break
                except BlockingIOError:
                    break
        if self._monitor is not None and self._monitor in events:
            self._on_monitor()
        sock = self._socket
        if sock is not None and sock in events:
            for _ in range(256):  # bounded burst, then let the outbox and timers run
                try:
                    frames = sock.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_frames(frames)
        self._flush()
        self._expire(time.perf_counter())

    def _on_frames(self, frames: list[bytes]) -> None:
        rid, body = frames[0], frames[1:]
        if rid not in self.clients:
            # Named on its first frame, whatever it is: a client need never say hello.
            log.info("client %s connected", rid.hex())
        self.clients[rid] = time.perf_counter()
        if len(body) != 1:
            self._error(rid, f"message: expected one frame, got {len(body)}")
            return
        try:
            message = protocol.decode(body[0])
        except protocol.ProtocolError as exc:
            self._error(rid, str(exc))
            return
        except Exception:  # a gap in the validator must cost an `error`, never the engine
            log.exception("decoding a %d-byte frame from %s", len(body[0]), rid.hex())
            self._error(rid, "message: could not be read (an engine bug, see its log)")
            return
        if message["type"] == "bye":
            self._drop(rid, "bye")
            return
        if message["type"] == "transport" and not self._owns_transport(rid):
            return
        try:
            self.on_message(rid, message)
        except Exception:  # a bug in a handler must not take the socket down
            log.exception("handling %s from %s", message["type"], rid.hex())
            self._error(rid, f"{message['type']}: internal error, see the engine's log", bad=False)

    def _error(self, rid: bytes, text: str, request_id: Any = None, *, bad: bool = True) -> None:
        """Answer `error`; logged (rate-limited) as a bad message, or, for a request that
        was fine but could not be served (`bad` False), as an error answered."""
        self.errors += 1
        fields: dict[str, Any] = {"text": text[: protocol.MAX_TEXT]}
        if request_id is not None:
            fields["id"] = request_id
        self.send(rid, "error", **fields)
        second = int(time.monotonic())
        window, logged = self._error_window
        if second != window:
            if logged > ERROR_LOG_PER_S:
                log.warning("%d more error(s) not logged", logged - ERROR_LOG_PER_S)
            window, logged = second, 0
        logged += 1
        if logged <= ERROR_LOG_PER_S:
            what = "bad message from" if bad else "answered error to"
            log.warning("%s %s: %s", what, rid.hex(), text)
        self._error_window = (window, logged)

    def error(self, rid: bytes, text: str, request_id: Any = None) -> None:
        """Answer `error` to a valid request that cannot be served, e.g. the engine is busy
        (socket thread only)."""
        self._error(rid, text, request_id, bad=False)

    # ---- clients ------------------------------------------------------------------

    def _owns_transport(self, rid: bytes) -> bool:
        """Whether `rid`'s transport counts; it takes the transport if no one holds it."""
        now = time.perf_counter()
        owner = self.transport_owner
        held = now - self._owner_seen <= self.transport_handover_s
        if owner is not None and owner != rid and held:
            if rid not in self._refused:
                self._refused.add(rid)
                self.error(
                    rid,
                    f"transport: client {owner.hex()} owns the transport; yours is ignored while "
                    "it keeps sending",
                )
            return False
        if owner != rid:
            log.info("client %s owns the transport", rid.hex())
            self.transport_owner = rid
            self._refused.discard(rid)
        self._owner_seen = now
        return True

    def _on_monitor(self) -> None:
        monitor = self._monitor
        assert monitor is not None
        while True:
            try:
                event = parse_monitor_message(monitor.recv_multipart(flags=zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.connections += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.connections = max(0, self.connections - 1)
                if self.connections == 0 and self.clients:
                    self.clients.clear()
                    self.transport_owner = None
                    self._refused.clear()
                    self._all_gone("last connection closed")

    def _drop(self, rid: bytes, why: str) -> None:
        self._refused.discard(rid)
        if rid == self.transport_owner:
            self.transport_owner = None  # the next client to send transport takes it
        if self.clients.pop(rid, None) is not None:
            log.info("client %s left (%s)", rid.hex(), why)
            if not self.clients:
                self._all_gone(f"last client gone ({why})")

    def _expire(self, now: float) -> None:
        for rid, seen in list(self.clients.items()):
            if now - seen > self.client_timeout_s:
                self._drop(rid, f"silent for {self.client_timeout_s:.0f} s")

    def _all_gone(self, reason: str) -> None:
        log.info("%s", reason)
        self.on_all_gone(reason)

    # ---- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Close the sockets; safe to call twice."""
        sock, self._socket = self._socket, None
        monitor, self._monitor = self._monitor, None
        if sock is not None:
            sock.disable_monitor()
            sock.close(linger=0)
        if monitor is not None:
            monitor.close(linger=0)
        if not self._context.closed:
            self._context.term()
        if self._wake_w >= 0:
            # The write end first, so that a late `wake` from another thread fails quietly.
            write_end, self._wake_w = self._wake_w, -1
            os.close(write_end)
            read_end, self._wake_r = self._wake_r, -1
            os.close(read_end)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
