"""The engine's trace: what it did, as JSON lines for tools (docs/engine.md, "Trace").

Off by default: `emit` then returns at once, so a hook costs one call. On
(`lkjam engine --trace FILE`), `emit` only queues the event with its time; a writer thread
formats and writes the queue a few times a second, so the generator thread never formats
JSON or touches the file. `read_trace` is the tools' side of the format.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACE_VERSION = 1
WRITE_S = 0.2  # how often the writer empties the queue


class TraceError(ValueError):
    """A trace file this version cannot read."""


class Trace:
    """`emit(kind, **fields)`: one event, stamped `t` (perf_counter s) unless given."""

    def __init__(
        self, path: Path | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock = clock
        # Appends (any thread) and pops (the writer) on a deque need no lock.
        self._queue: deque[tuple[str, float, dict[str, Any]]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path is None:
            return
        self._file = path.open("w", encoding="utf-8")
        self._queue = deque()
        self._thread = threading.Thread(target=self._run, name="lkjam-trace", daemon=True)
        self._thread.start()

    @property
    def on(self) -> bool:
        return self._queue is not None

    def emit(self, kind: str, **fields: Any) -> None:
        queue = self._queue
        if queue is not None:
            queue.append((kind, self.clock(), fields))

    def _run(self) -> None:
        while not self._stop.wait(WRITE_S):
            self._write()
        self._write()

    def _write(self) -> None:
        assert self._queue is not None
        lines = []
        while self._queue:
            kind, t, fields = self._queue.popleft()
            lines.append(json.dumps({"v": TRACE_VERSION, "kind": kind, "t": t, **fields}) + "\n")
        if lines:
            self._file.writelines(lines)
            self._file.flush()

    def close(self) -> None:
        """Write what is queued and close the file; idempotent. Emits after this are lost."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._file.close()


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The events of a trace file, in order; TraceError for another version."""
    events = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            event = json.loads(line)
            if event.get("v") != TRACE_VERSION:
                raise TraceError(
                    f"{path}:{number}: trace version {event.get('v')!r}, "
                    f"this reader knows {TRACE_VERSION}"
                )
            events.append(event)
    return events
