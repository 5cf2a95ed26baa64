"""Slow requests, off the socket and generator threads: model loads and offline clips.

One worker thread runs jobs from a bounded queue; a full queue refuses the job (the
caller answers `error`). Jobs report through callbacks, which must be thread-safe
(`Server.send`, `Generator.submit`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lkjam.engine.decoder import scale_mask
from lkjam.engine.events import make_events
from lkjam.engine.model_file import LoadedModel, load_model
from lkjam.engine.offline import accompany
from lkjam.engine.protocol import MAX_CLIP_NOTES

from lkjam._step import ROLE_HUMAN

log = logging.getLogger("lkjam.engine")

JOB_QUEUE_SIZE = 8


class Worker:
    """A thread running queued jobs one at a time. Use as a context manager."""

    def __init__(self, size: int = JOB_QUEUE_SIZE) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="lkjam-jobs", daemon=True
        )
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False when the queue is full or the worker is closed."""
        if self._thread is None:
            return False
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job's failure must not end the worker
                log.exception("job failed")

    def close(self) -> None:
        """Finish the running job, drop the rest, stop; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._jobs.put(None)
        thread.join(timeout=10)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OfflineModels:
    """One offline step per model file, separate from the live one (worker thread only)."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._model: LoadedModel | None = None

    def get(self, path: Path) -> LoadedModel:
        if self._model is None or self._path != path:
            self._model, self._path = load_model(path), path
        return self._model


def accompany_clip(
    model: LoadedModel,
    notes: Sequence[Sequence[float]],
    length: float,
    *,
    mode: str,
    density: float,
    voices: float,
    temperature: float,
    top_p: float,
    seed: int,
    meter: tuple[int, int],
    scale: tuple[int, Sequence[int]] | None,
    scale_lock: bool,
    chord_lock: bool,
) -> list[list[Any]]:
    """The AI part for a clip: source notes `[pitch, start, dur, vel]` (played as the
    human part) -> AI notes in the same form, inside `length` beats: an accompaniment, or
    an answer in mode "call_response"."""
    if notes:
        table = np.array(notes, dtype=np.float64)  # (N, 4): pitch, start, dur, vel
        events = make_events(
            table[:, 1], table[:, 2], table[:, 0], table[:, 3], [ROLE_HUMAN] * len(notes)
        )
    else:
        events = make_events([], [], [], [], [])
    mask = scale_mask(scale[0], scale[1]) if scale is not None and scale_lock else None
    out = accompany(
        model.step,
        events,
        human_roles=(ROLE_HUMAN,),
        mode=mode,
        density=density,
        voices=voices,
        own_density=model.meta.density,
        own_voices=model.meta.voices,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        numerator=meter[0],
        denominator=meter[1],
        scale=scale,
        pitch_mask=mask,
        chord_lock=chord_lock,
        end_beat=length,
    )
    return [
        [int(e["pitch"]), float(e["beat"]), float(min(e["dur"], length - e["beat"])), int(e["vel"])]
        for e in out[:MAX_CLIP_NOTES]
    ]
