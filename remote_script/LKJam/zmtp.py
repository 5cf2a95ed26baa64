"""A ZeroMQ DEALER client in pure standard-library Python (ZMTP 3.1, NULL mechanism).

Live's embedded Python has no pyzmq, so the script speaks the wire protocol itself:
the 64-byte greeting, the READY command carrying Socket-Type DEALER, and message
frames (short and long, multipart). Everything runs on a non-blocking TCP socket that
the caller drives with `poll()` from Live's ~100 ms tick; no call ever blocks. Two
things that would: a DNS lookup (a host name in the endpoint) runs on a short-lived
daemon thread, and connect completion is checked with `selectors` (epoll, kqueue),
never `select.select`, which refuses file descriptors >= 1024 (common in a big set on
macOS).

A refused or reset connection is a normal state here (the engine is simply not
running, or restarted): the client logs the change once, closes, and retries with
exponential backoff. Messages are only accepted while connected; the caller resends
its full state from `on_ready`, so nothing stale is ever replayed after a reconnect.
"""

import contextlib
import errno
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

# Frame flag bits (ZMTP 3.x).
FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04

GREETING_SIZE = 64
SOCKET_TYPE = b"DEALER"

# Errors that mean "try again later" on a non-blocking socket, including Windows'
# WSAEWOULDBLOCK (10035), WSAEINPROGRESS (10036) and WSAEALREADY (10037).
WOULD_BLOCK = frozenset(
    code
    for code in (
        getattr(errno, "EWOULDBLOCK", None),
        getattr(errno, "EAGAIN", None),
        getattr(errno, "EINPROGRESS", None),
        getattr(errno, "EALREADY", None),
        getattr(errno, "WSAEWOULDBLOCK", None),
        10035,
        10036,
        10037,
    )
    if code is not None
)

# Errors that mean "the engine is not there (any more)": refused, reset, aborted...
# Windows spells them WSAECONNRESET (10054), WSAECONNREFUSED (10061), etc.
CONNECTION_LOST = frozenset(
    code
    for code in (
        getattr(errno, "ECONNREFUSED", None),
        getattr(errno, "ECONNRESET", None),
        getattr(errno, "ECONNABORTED", None),
        getattr(errno, "EPIPE", None),
        getattr(errno, "ENOTCONN", None),
        getattr(errno, "ETIMEDOUT", None),
        getattr(errno, "EHOSTUNREACH", None),
        getattr(errno, "ENETUNREACH", None),
        getattr(errno, "ESHUTDOWN", None),
        10053,
        10054,
        10057,
        10058,
        10060,
        10061,
        10065,
    )
    if code is not None
)

# Connection states.
IDLE = "idle"  # no socket; waiting for the next attempt
RESOLVING = "resolving"  # a host name is being looked up on a helper thread
CONNECTING = "connecting"  # TCP connect in progress
GREETING = "greeting"  # our greeting sent, waiting for the peer's
HANDSHAKE = "handshake"  # READY sent, waiting for the peer's READY
READY = "ready"  # messages flow


class ProtocolError(Exception):
    """The peer sent something that is not ZMTP 3.x with the NULL mechanism."""


def greeting() -> bytes:
    """Our greeting: signature, version 3.1, mechanism NULL, as-server 0, zero filler."""
    signature = b"\xff" + b"\x00" * 8 + b"\x7f"
    mechanism = b"NULL".ljust(20, b"\x00")
    data = signature + b"\x03\x01" + mechanism + b"\x00"
    return data.ljust(GREETING_SIZE, b"\x00")


def check_greeting(data: bytes) -> None:
    """Raise ProtocolError unless `data` (64 bytes) is a ZMTP 3.x NULL greeting."""
    if data[0:1] != b"\xff" or data[9:10] != b"\x7f":
        raise ProtocolError("peer is not a ZeroMQ socket (bad greeting signature)")
    if data[10] < 3:
        raise ProtocolError("peer speaks ZMTP %d.x; 3.x is required" % data[10])
    mechanism = data[12:32].rstrip(b"\x00")
    if mechanism != b"NULL":
        raise ProtocolError("peer wants mechanism %r; only NULL is supported" % mechanism)


def encode_frame(body: bytes, flags: int = 0) -> bytes:
    """One frame: flags, 1-byte size (short) or 8-byte big-endian size (long), body."""
    size = len(body)
    if size <= 255:
        return struct.pack("BB", flags, size) + body
    return struct.pack(">BQ", flags | FLAG_LONG, size) + body


def encode_message(frames: List[bytes]) -> bytes:
    """A multipart message: MORE on every frame but the last."""
    last = len(frames) - 1
    return b"".join(
        encode_frame(frame, FLAG_MORE if i < last else 0) for i, frame in enumerate(frames)
    )


def encode_command(name: bytes, data: bytes = b"") -> bytes:
    return encode_frame(struct.pack("B", len(name)) + name + data, FLAG_COMMAND)


def encode_ready(socket_type: bytes = SOCKET_TYPE) -> bytes:
    """READY with metadata: property name (1-byte size) then value (4-byte size)."""
    props = b""
    for name, value in ((b"Socket-Type", socket_type), (b"Identity", b"")):
        props += struct.pack("B", len(name)) + name + struct.pack(">I", len(value)) + value
    return encode_command(b"READY", props)


def decode_frame(buf: bytearray, max_size: int) -> Optional[Tuple[int, bytes, int]]:
    """Return (flags, body, consumed) for the first complete frame in buf, or None."""
    if len(buf) < 2:
        return None
    flags = buf[0]
    if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
        raise ProtocolError("frame has reserved flag bits set (0x%02x)" % flags)
    if flags & FLAG_LONG:
        if len(buf) < 9:
            return None
        size = struct.unpack(">Q", bytes(buf[1:9]))[0]
        header = 9
    else:
        size = buf[1]
        header = 2
    if size > max_size:
        raise ProtocolError("frame of %d bytes exceeds the %d byte cap" % (size, max_size))
    if len(buf) < header + size:
        return None
    return flags, bytes(buf[header : header + size]), header + size


def parse_command(body: bytes) -> Tuple[bytes, bytes]:
    """Split a command body into (name, data)."""
    if not body:
        raise ProtocolError("empty command frame")
    size = body[0]
    if len(body) < 1 + size:
        raise ProtocolError("truncated command name")
    return bytes(body[1 : 1 + size]), bytes(body[1 + size :])


def parse_metadata(data: bytes) -> Dict[str, bytes]:
    """READY metadata as {lowercase name: value}."""
    props: Dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        size = data[pos]
        name = data[pos + 1 : pos + 1 + size]
        pos += 1 + size
        if pos + 4 > len(data):
            raise ProtocolError("truncated READY metadata")
        (vsize,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        if pos + vsize > len(data):
            raise ProtocolError("truncated READY metadata value")
        props[name.decode("ascii", "replace").lower()] = data[pos : pos + vsize]
        pos += vsize
    return props


def numeric_address(host: str, port: int) -> Optional[Tuple[int, tuple]]:
    """(family, sockaddr) for an IP literal, None for a name that needs DNS."""
    for family, sockaddr in (
        (socket.AF_INET, (host, port)),
        (socket.AF_INET6, (host, port, 0, 0)),
    ):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family, sockaddr
    return None


class Lookup(object):
    """getaddrinfo on a daemon thread, so a slow DNS server never stalls Live's thread."""

    def __init__(self, host: str, port: int) -> None:
        self.result: Union[List[Any], OSError, None] = None
        self.done = threading.Event()
        thread = threading.Thread(target=self._run, args=(host, port), name="lkjam-dns")
        thread.daemon = True  # a lookup hanging at exit must not keep Live running
        thread.start()

    def _run(self, host: str, port: int) -> None:
        try:
            self.result = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:  # socket.gaierror included
            self.result = exc
        finally:
            self.done.set()


class OutQueue(object):
    """Bounded FIFO of encoded messages; a message with a key replaces the queued one.

    Transport snapshots all share one key, so only the newest waits to go out: a slow
    or stalled socket never makes the script send a backlog of stale positions.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0  # messages discarded because the queue was full
        self._items: "OrderedDict[object, bytes]" = OrderedDict()
        self._serial = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, data: bytes, key: object = None) -> None:
        if key is None:
            self._serial += 1
            key = ("#", self._serial)
        elif key in self._items:
            del self._items[key]  # the newer value goes to the back, the old one is gone
        self._items[key] = data
        while len(self._items) > self.limit:
            self._items.popitem(last=False)
            self.dropped += 1

    def pop(self) -> bytes:
        return self._items.popitem(last=False)[1]

    def clear(self) -> None:
        self._items.clear()


class DealerClient(object):
    """A non-blocking ZMTP 3.1 DEALER connection to one endpoint, driven by `poll()`."""

    def __init__(
        self,
        host: str,
        port: int,
        log: Callable[[str], None],
        on_ready: Optional[Callable[[], None]] = None,
        clock: Callable[[], float] = time.perf_counter,
        queue_limit: int = 64,
        backoff_min: float = 0.25,
        backoff_max: float = 4.0,
        handshake_timeout: float = 3.0,
        max_message: int = 4 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self._log = log
        self._on_ready = on_ready
        self._clock = clock
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._handshake_timeout = handshake_timeout
        self._max_message = max_message
        self.queue = OutQueue(queue_limit)
        self.state = IDLE
        self._sock: Optional[socket.socket] = None
        self._selector: Optional[selectors.BaseSelector] = None  # our socket, for writability
        self._lookup: Optional[Lookup] = None
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._parts: List[bytes] = []
        self._parts_size = 0
        self._backoff = backoff_min
        self._next_attempt = 0.0
        self._deadline = 0.0
        self._unreachable_logged = False  # "engine not running" is said once per outage
        self.attempts = 0  # connection attempts so far
        self.connects = 0  # successful handshakes so far

    @property
    def endpoint(self) -> str:
        return "tcp://%s:%d" % (self.host, self.port)

    @property
    def connected(self) -> bool:
        return self.state == READY

    def send(self, frames: List[bytes], key: object = None) -> bool:
        """Queue one (multipart) message; False, and dropped, when not connected."""
        if self.state != READY:
            return False
        self.queue.put(encode_message(frames), key)
        return True

    def poll(self, max_read: int = 256 * 1024) -> List[List[bytes]]:
        """Advance the connection without blocking; return the messages received."""
        received: List[List[bytes]] = []
        try:
            if self.state == IDLE and self._clock() >= self._next_attempt:
                self._start_connect()
            if self.state == RESOLVING:
                self._check_resolved()
            if self.state == CONNECTING:
                self._check_connected()
            if self.state in (GREETING, HANDSHAKE) and self._clock() > self._deadline:
                raise ProtocolError("no ZMTP handshake within %.1f s" % self._handshake_timeout)
            if self.state in (GREETING, HANDSHAKE, READY):
                self._flush()
                self._read(max_read, received)
                self._flush()
        except ProtocolError as exc:
            self._lost("protocol error from %s: %s" % (self.endpoint, exc), quiet=False)
        except OSError as exc:
            code = getattr(exc, "winerror", None) or exc.errno
            if code in WOULD_BLOCK:
                pass  # nothing to do this tick
            elif code in CONNECTION_LOST:
                self._lost("engine not reachable at %s (%s)" % (self.endpoint, _reason(exc)))
            else:
                self._lost("socket error on %s: %s" % (self.endpoint, _reason(exc)), quiet=False)
        return received

    def retry_soon(self) -> None:
        """Forget the backoff: the engine may be about to appear (we just started it)."""
        self._backoff = self._backoff_min
        if self.state == IDLE:
            self._next_attempt = min(self._next_attempt, self._clock() + self._backoff_min)

    def close(self) -> None:
        """Close now (idempotent); poll() would reconnect, so stop polling afterwards."""
        if self._sock is not None:
            # Unread input makes close() send a reset, which can discard our last bytes
            # (the `bye`) at the peer: read what is pending first.
            with contextlib.suppress(OSError):
                self._sock.recv(65536)
        self._drop_socket()
        self.state = IDLE

    def flush(self) -> None:
        """Push queued messages now (non-blocking) instead of waiting for the next poll."""
        if self.state == READY:
            self.poll(max_read=0)

    def flush_blocking(self, timeout: float = 0.2) -> None:
        """Best effort: push queued bytes for up to `timeout` s (used for `bye` on exit)."""
        end = self._clock() + timeout
        while self.state == READY and (self._wbuf or len(self.queue)) and self._clock() < end:
            self.poll(max_read=0)
            if self._wbuf and self._selector is not None:
                self._selector.select(0.01)

    # -- internals ---------------------------------------------------------------

    def _start_connect(self) -> None:
        self.attempts += 1
        address = numeric_address(self.host, self.port)
        if address is None:
            self._lookup = Lookup(self.host, self.port)
            self.state = RESOLVING
            return
        self._connect(*address)

    def _check_resolved(self) -> None:
        lookup = self._lookup
        assert lookup is not None
        if not lookup.done.is_set():
            return
        self._lookup = None
        result = lookup.result
        if isinstance(result, OSError) or not result:
            self._lost("cannot resolve %s (%s)" % (self.host, result))
            return
        family, _, _, _, sockaddr = result[0]
        self._connect(family, sockaddr)

    def _connect(self, family: int, sockaddr: tuple) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sys.platform == "darwin":
            # A write to a reset socket must be EPIPE, never a SIGPIPE that ends Live.
            nosigpipe = getattr(socket, "SO_NOSIGPIPE", 0x1022)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, nosigpipe, 1)
        self._sock = sock
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_WRITE)
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._parts = []
        self._parts_size = 0
        self.queue.clear()
        self.state = CONNECTING
        self._deadline = self._clock() + self._handshake_timeout
        code = sock.connect_ex(sockaddr)
        if code == 0:
            self._connected()
        elif code not in WOULD_BLOCK:
            raise OSError(code, os.strerror(code))

    def _check_connected(self) -> None:
        sock, selector = self._sock, self._selector
        assert sock is not None and selector is not None
        # Windows reports a failed connect in select's exception set; the selector
        # folds that into "writable" there, and SO_ERROR or getpeername tells which.
        if not selector.select(0):
            if self._clock() > self._deadline:
                raise OSError(errno.ETIMEDOUT, "connect timed out")
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            raise OSError(code, os.strerror(code))
        sock.getpeername()  # ENOTCONN (WSAENOTCONN) when the connect failed silently
        self._connected()

    def _connected(self) -> None:
        self.state = GREETING
        self._wbuf += greeting()

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            # Encode queued messages lazily, a little at a time, so a full kernel buffer
            # leaves them in the queue where newer snapshots can still replace them.
            while self.state == READY and len(self.queue) and len(self._wbuf) < 65536:
                self._wbuf += self.queue.pop()
            if not self._wbuf:
                return
            try:
                sent = sock.send(self._wbuf)
            except OSError as exc:
                if (getattr(exc, "winerror", None) or exc.errno) in WOULD_BLOCK:
                    return
                raise
            del self._wbuf[:sent]
            if sent == 0:
                return

    def _read(self, max_read: int, received: List[List[bytes]]) -> None:
        sock = self._sock
        total = 0
        while sock is not None and total < max_read and self._sock is sock:
            try:
                chunk = sock.recv(min(65536, max_read - total))
            except OSError as exc:
                if (getattr(exc, "winerror", None) or exc.errno) in WOULD_BLOCK:
                    break
                raise
            if not chunk:
                raise OSError(errno.ECONNRESET, "connection closed by the engine")
            total += len(chunk)
            self._rbuf += chunk
            self._parse(received)

    def _parse(self, received: List[List[bytes]]) -> None:
        if self.state == GREETING:
            if len(self._rbuf) < GREETING_SIZE:
                return
            check_greeting(bytes(self._rbuf[:GREETING_SIZE]))
            del self._rbuf[:GREETING_SIZE]
            self._wbuf += encode_ready()
            self.state = HANDSHAKE
        while self._sock is not None:
            frame = decode_frame(self._rbuf, self._max_message)
            if frame is None:
                return
            flags, body, consumed = frame
            del self._rbuf[:consumed]
            if flags & FLAG_COMMAND:
                self._command(body)
            elif self.state != READY:
                raise ProtocolError("message frame before READY")
            else:
                self._parts.append(body)
                self._parts_size += len(body)
                if self._parts_size > self._max_message:
                    raise ProtocolError("message exceeds the %d byte cap" % self._max_message)
                if not flags & FLAG_MORE:
                    received.append(self._parts)
                    self._parts = []
                    self._parts_size = 0

    def _command(self, body: bytes) -> None:
        name, data = parse_command(body)
        if name == b"READY" and self.state == HANDSHAKE:
            peer = parse_metadata(data).get("socket-type", b"")
            if peer not in (b"ROUTER", b"DEALER"):
                raise ProtocolError("peer socket type %r cannot talk to a DEALER" % peer)
            self.state = READY
            self.connects += 1
            self._backoff = self._backoff_min
            self._unreachable_logged = False
            self._log("connected to the engine at %s" % self.endpoint)
            if self._on_ready is not None:
                self._on_ready()
        elif name == b"ERROR":
            reason = data[1 : 1 + data[0]] if data else b""
            raise ProtocolError("peer closed the handshake: %s" % reason.decode("utf-8", "replace"))
        elif name == b"PING":
            # PONG echoes the context after the 2-byte TTL.
            self._wbuf += encode_command(b"PONG", data[2:])
        # Other commands (PONG, SUBSCRIBE...) mean nothing to a DEALER: ignore them.

    def _lost(self, text: str, quiet: bool = True) -> None:
        was_ready = self.state == READY
        self._drop_socket()
        self.state = IDLE
        if was_ready:
            self._log("connection to the engine lost; reconnecting")
            self._backoff = self._backoff_min
            self._unreachable_logged = False
        if not quiet or not self._unreachable_logged:
            self._log(text + "; retrying in the background")
            self._unreachable_logged = True
        self._next_attempt = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2.0, self._backoff_max)

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        selector, self._selector = self._selector, None
        if selector is not None:
            selector.close()
        self._lookup = None  # a pending lookup finishes on its own; its answer is unused
        self.queue.clear()
        self._wbuf = bytearray()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)
