"""The parsed-data cache: one `.npz` file of plain arrays per source or MIDI folder.

Parsing is slow, so every source is parsed once into a file (loaded with
`allow_pickle=False`) in the user cache directory, keyed by source, size cap, data version
and encoding version.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from lkjam.engine.events import EVENT_DTYPE
from lkjam.engine.model_file import user_dir
from lkjam.training.pieces import CHORD_KINDS, Piece

from lkjam import _step

# Bump when the conversion to pieces changes (training.scores, training.chords,
# training.midi_folder, make_piece): old cache files are then ignored.
DATA_VERSION = 2  # 2: folk tunes keep their chords as spans, realized per example


def save_pieces(path: Path, pieces: Sequence[Piece], info: dict[str, object]) -> None:
    """Write pieces as concatenated arrays plus per-piece offsets (atomic replace)."""
    lengths = [len(p.events) for p in pieces]
    arrays: dict[str, np.ndarray] = {
        "events": np.concatenate([p.events for p in pieces])
        if pieces
        else np.zeros(0, EVENT_DTYPE),
        "voice": np.concatenate([p.voice for p in pieces]) if pieces else np.zeros(0, np.uint8),
        "start": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "name": np.array([p.name for p in pieces], dtype=str),
        "numerator": np.array([p.numerator for p in pieces], dtype=np.int16),
        "denominator": np.array([p.denominator for p in pieces], dtype=np.int16),
        "key_root": np.array([p.key_root for p in pieces], dtype=np.int8),
        "key_minor": np.array([p.key_minor for p in pieces], dtype=bool),
        "chords": np.array([CHORD_KINDS.index(p.chords) for p in pieces], dtype=np.int8),
        "spans": np.concatenate([p.chord_spans for p in pieces]) if pieces else np.zeros((0, 4)),
        "span_start": np.concatenate([[0], np.cumsum([len(p.chord_spans) for p in pieces])]).astype(
            np.int64
        ),
        "info": np.array(json.dumps(info)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub misreads **kwargs
    os.replace(tmp, path)


def load_pieces(path: Path) -> tuple[list[Piece], dict[str, object]]:
    """Read a cache file written by `save_pieces` (never unpickles anything)."""
    with np.load(path, allow_pickle=False) as z:
        events, voice, start = z["events"], z["voice"], z["start"]
        spans, span_start = z["spans"], z["span_start"]
        if events.dtype != EVENT_DTYPE:
            raise ValueError(f"{path}: events have dtype {events.dtype}, expected EVENT_DTYPE")
        pieces = [
            Piece(
                name=str(z["name"][i]),
                events=events[start[i] : start[i + 1]],
                voice=voice[start[i] : start[i + 1]],
                numerator=int(z["numerator"][i]),
                denominator=int(z["denominator"][i]),
                key_root=int(z["key_root"][i]),
                key_minor=bool(z["key_minor"][i]),
                chords=CHORD_KINDS[int(z["chords"][i])],
                chord_spans=spans[span_start[i] : span_start[i + 1]],
            )
            for i in range(len(start) - 1)
        ]
        info = json.loads(str(z["info"]))
    return pieces, info


def cache_file(directory: Path | None, stem: str) -> Path:
    """The cache file of `stem` in `directory` (default: the user cache), named with the data
    and encoding versions so that files of other versions are never read."""
    tag = f"d{DATA_VERSION}-e{_step.ENCODING_VERSION}"
    return (directory or user_dir("cache")) / "data" / f"{stem}-{tag}.npz"


def cached(
    path: Path, build: Callable[[], tuple[list[Piece], dict[str, object]]]
) -> tuple[list[Piece], dict[str, object]]:
    """The pieces and info in `path`; if it is missing or unreadable, `build` them and save."""
    if path.exists():
        try:
            return load_pieces(path)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            print(
                f"lkjam: ignoring unreadable cache {path} ({exc}); parsing again", file=sys.stderr
            )
    pieces, info = build()
    save_pieces(path, pieces, info)
    return pieces, info
