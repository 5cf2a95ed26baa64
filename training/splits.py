"""Held-out and validation splits, by piece."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lkjam.training.pieces import CHORDS_INFERRED, CHORDS_SYMBOLS, Piece


def is_held_out(name: str, seed: int, fraction: float) -> bool:
    """Piece-level split: a hash of (seed, name), so it is stable under any cap."""
    return zlib.crc32(f"{seed}:{name}".encode()) / 2**32 < fraction


def split_pieces(
    pieces: Iterable[Piece], seed: int, fraction: float
) -> tuple[list[Piece], list[Piece]]:
    """(train, held out). With two or more pieces, each side gets at least one."""
    pieces = list(pieces)
    held = [p for p in pieces if is_held_out(p.name, seed, fraction)]
    train = [p for p in pieces if not is_held_out(p.name, seed, fraction)]
    if len(pieces) >= 2 and fraction > 0 and (not held or not train):
        ranked = sorted(pieces, key=lambda p: zlib.crc32(f"{seed}:{p.name}".encode()))
        move = ranked[0] if not held else ranked[-1]
        held = [move] if not held else [p for p in pieces if p is not move]
        held_ids = {id(p) for p in held}
        train = [p for p in pieces if id(p) not in held_ids]
    return train, held


@dataclass
class Corpus:
    train: dict[str, list[Piece]]  # source -> pieces
    held_out: dict[str, list[Piece]]  # never trained on; reported in the model's provenance
    valid: dict[str, list[Piece]]  # carved from train: picks each stage's best step
    info: dict[str, dict[str, object]]  # source -> parse info, counts, split

    def digest(self) -> str:
        """Names this exact data (pieces, events and split): a run resumes only on it."""
        h = hashlib.sha256()
        for part in (self.train, self.valid, self.held_out):
            for source in sorted(part):
                for p in part[source]:
                    h.update(f"{source}|{p.name}|".encode())
                    h.update(p.events.tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return ", ".join(
            f"{s}: {len(self.train[s])} train / {len(self.valid[s])} valid / "
            f"{len(self.held_out[s])} held out"
            for s in self.train
        )


def split_corpus(
    sources: Mapping[str, tuple[list[Piece], dict[str, object]]],
    seed: int,
    fraction: float,
    valid: float = 0.0,
) -> Corpus:
    """Split each source by piece into train / valid / held out (valid uses seed + 1);
    record counts and a digest of the held-out names."""
    corpus = Corpus({}, {}, {}, {})
    for source, (pieces, info) in sources.items():
        rest, held = split_pieces(pieces, seed, fraction)
        train, val = split_pieces(rest, seed + 1, valid)
        digest = hashlib.sha256("\n".join(sorted(p.name for p in held)).encode()).hexdigest()
        corpus.train[source], corpus.valid[source], corpus.held_out[source] = train, val, held
        corpus.info[source] = {
            **info,
            "train_pieces": len(train),
            "valid_pieces": len(val),
            "held_out_pieces": len(held),
            "train_events": int(sum(len(p.events) for p in train)),
            "held_out_digest": digest[:16],
            "inferred_chords": sum(p.chords == CHORDS_INFERRED for p in pieces),
            "chord_symbols": sum(p.chords == CHORDS_SYMBOLS for p in pieces),
        }
    return corpus
