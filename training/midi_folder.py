"""Folders of the user's MIDI files as training data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from lkjam.engine.keys import key_of
from lkjam.training.piece_cache import cache_file, cached
from lkjam.training.pieces import ROLE_HUMAN, DataError, Piece, make_piece
from tqdm import tqdm

MIDI_SUFFIXES = (".mid", ".midi")


def read_midi(path: Path, human_track: int | None = None) -> Piece:
    """One MIDI file as a piece, read by the engine's reader (the same track choice as
    `lkjam accompany`): the human track is voice 0, every other note track voice 1 (ai).
    Raises lkjam.engine.midi_file.MidiFileError for unusable files."""
    from lkjam.engine.midi_file import read_midi as read_song

    song = read_song(path, human_track)
    ev = song.events
    root, minor = key_of(song.key) if song.key else (-1, False)
    return make_piece(
        f"midi/{path.name}",
        ev["beat"],
        ev["dur"],
        ev["pitch"],
        ev["vel"],
        (ev["role"] != ROLE_HUMAN).astype(np.uint8),
        numerator=song.numerator,
        denominator=song.denominator,
        key_root=root,
        key_minor=minor,
    )


def _skip_reason(message: str) -> str:
    if "no pitched notes" in message:
        return "no notes"
    if "track" in message and "tracks with notes" in message:
        return "no such track with notes"
    return "unreadable"


@dataclass
class MidiSummary:
    folder: Path
    found: int = 0
    used: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> file names

    def text(self) -> str:
        parts = [f"{self.folder}: {self.used} of {self.found} MIDI files used"]
        for reason, names in sorted(self.skipped.items()):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            parts.append(f"{len(names)} skipped ({reason}): {shown}")
        return "; ".join(parts)


def load_midi_folder(
    folder: Path,
    human_track: int | None = None,
    *,
    cache: Path | None = None,
    progress: bool = True,
) -> tuple[list[Piece], MidiSummary]:
    """All usable .mid/.midi files under `folder` (recursively). Unreadable files and
    files without notes are skipped and counted; no usable file at all is a DataError."""
    from lkjam.engine.midi_file import MidiFileError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    summary = MidiSummary(folder, found=len(files))
    if not files:
        raise DataError(f"{folder}: no .mid or .midi files found")
    # The cache key covers every file's name, size and modification time.
    h = hashlib.sha256(f"{folder.resolve()}|{human_track}".encode())
    for p in files:
        st = p.stat()
        h.update(f"|{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())

    def build() -> tuple[list[Piece], dict[str, object]]:
        pieces: list[Piece] = []
        for p in tqdm(files, desc=f"reading {folder.name}", unit="file", disable=not progress):
            try:
                pieces.append(read_midi(p, human_track))
            except MidiFileError as exc:
                summary.skipped.setdefault(_skip_reason(str(exc)), []).append(p.name)
        return pieces, {"skipped": summary.skipped}

    pieces, info = cached(cache_file(cache, f"midi-{h.hexdigest()[:16]}"), build)
    summary.skipped = cast("dict[str, list[str]]", info["skipped"])
    summary.used = len(pieces)
    if not pieces:
        raise DataError(f"no usable MIDI: {summary.text()}")
    return pieces, summary
