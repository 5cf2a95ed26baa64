"""The music21 corpus as training data (no downloads): list a source's items cheaply, parse
each once (then read it from the cache), split the pieces.

Sources:
- `chorales`: Bach chorales with four parts (soprano, alto, tenor, bass).
- `folk`: Essen, O'Neill's 1850, Ryan's Mammoth and the Nottingham sample: a melody and its
  chords (training.scores).
- `chamber`: madrigals, masses, motets, string quartets and a trio sonata, one voice per part.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lkjam.training.piece_cache import cache_file, cached
from lkjam.training.pieces import DataError, Piece
from lkjam.training.scores import score_to_piece
from lkjam.training.splits import Corpus, split_corpus
from tqdm import tqdm

# Seed of the per-source sampling of corpus pieces: fixed so that a cap always selects
# the same pieces (and a larger cap a superset).
_CORPUS_SEED = 20240601


@dataclass(frozen=True)
class CorpusItem:
    name: str  # "<source>/<path in corpus>[#tune number]"
    path: Path
    number: int | None = None  # tune number inside a multi-tune ABC file


def _corpus_root() -> Path:
    from music21 import corpus

    return Path(corpus.__file__).parent


_CHORD_SYMBOL = re.compile(r"[A-G][b#]?(m|maj|min|dim|aug|sus|M)?[0-9]*(/[A-G][b#]?)?")


def _abc_tunes(path: Path) -> list[tuple[int, bool]]:
    """(tune number, has chord symbols) for each tune of an ABC file, without parsing it."""
    text = path.read_text(encoding="latin-1")
    tunes: list[tuple[int, bool]] = []
    for chunk in re.split(r"^X:", text, flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        m = re.match(r"\s*(\d+)", head)
        if m:
            music = "\n".join(ln for ln in body.splitlines() if not re.match(r"^[A-Za-z]:", ln))
            quoted = re.findall(r'"([^"]*)"', music)  # chord symbols, fingerings, remarks
            chords = any(_CHORD_SYMBOL.fullmatch(q) for q in quoted)
            tunes.append((int(m.group(1)), chords))
    return tunes


def _list_chorales() -> list[list[CorpusItem]]:
    root = _corpus_root()
    return [[CorpusItem(f"chorales/{p.name}", p) for p in sorted((root / "bach").glob("bwv*.mxl"))]]


def _list_folk() -> list[list[CorpusItem]]:
    root = _corpus_root()
    plain: list[CorpusItem] = []
    with_chords: list[CorpusItem] = []
    for coll in ("nottingham-dataset", "essenFolksong", "oneills1850", "ryansMammoth"):
        for path in sorted((root / coll).glob("*.abc")):
            for number, has_chords in _abc_tunes(path):
                item = CorpusItem(f"folk/{coll}/{path.stem}#{number}", path, number)
                (with_chords if has_chords else plain).append(item)
    # Tunes with real chord symbols are rare: they come first.
    return [with_chords, plain]


def _list_chamber() -> list[list[CorpusItem]]:
    root = _corpus_root()
    paths = sorted((root / "monteverdi").glob("*.mxl"))
    paths += sorted((root / "josquin").glob("*.abc"))
    for composer in ("haydn", "mozart", "beethoven"):
        paths += sorted((root / composer).rglob("*.mxl"))
    paths += sorted((root / "corelli").rglob("*.xml"))
    paths += sorted((root / "palestrina").glob("*.krn"))
    return [[CorpusItem(f"chamber/{p.relative_to(root)}", p) for p in paths]]


@dataclass(frozen=True)
class SourceSpec:
    list_items: Callable[[], list[list[CorpusItem]]]  # priority groups, first group first
    folk: bool  # melody + chords rather than one voice per part
    min_parts: int  # other part counts are skipped
    max_parts: int


SOURCES: dict[str, SourceSpec] = {
    "chorales": SourceSpec(_list_chorales, folk=False, min_parts=4, max_parts=4),
    "folk": SourceSpec(_list_folk, folk=True, min_parts=1, max_parts=99),
    "chamber": SourceSpec(_list_chamber, folk=False, min_parts=2, max_parts=6),
}


def select_items(source: str, cap: int) -> list[CorpusItem]:
    """The first `cap` items of a fixed seeded shuffle of each priority group in turn, so
    a cap always selects the same items and a larger cap a superset."""
    rng = np.random.default_rng(_CORPUS_SEED)
    chosen: list[CorpusItem] = []
    for group in SOURCES[source].list_items():
        chosen += [group[i] for i in rng.permutation(len(group))]
    return chosen[:cap]


def _parse_item(source: str, item: CorpusItem) -> tuple[Piece | None, str]:
    """Parse one corpus item; (None, reason) when it cannot be used."""
    from music21 import converter

    spec = SOURCES[source]
    try:
        # forceSource: never read music21's own pickled parse cache.
        score = converter.parse(item.path, forceSource=True, number=item.number)
        parts = len(getattr(score, "parts", [])) or 1
        if not spec.min_parts <= parts <= spec.max_parts:
            return None, f"{parts} parts"
        piece = score_to_piece(item.name, score, folk=spec.folk)
    except Exception as exc:  # music21 raises many types on odd files: counted, never fatal
        return None, f"unreadable ({type(exc).__name__})"
    if piece is None or len(piece.events) < 8:
        return None, "too few notes"
    return piece, ""


def load_source(
    source: str, cap: int, *, cache: Path | None = None, progress: bool = True
) -> tuple[list[Piece], dict[str, object]]:
    """Up to `cap` pieces of a corpus source, parsed once and then read from the cache.

    Returns the pieces and an info dict (items tried, skipped by reason, parse seconds)."""
    if source not in SOURCES:
        raise DataError(f"unknown corpus source {source!r}; known: {', '.join(SOURCES)}")

    def build() -> tuple[list[Piece], dict[str, object]]:
        items = select_items(source, cap)
        t0 = time.perf_counter()
        pieces: list[Piece] = []
        skipped: dict[str, int] = {}
        for item in tqdm(items, desc=f"parsing {source}", unit="piece", disable=not progress):
            piece, reason = _parse_item(source, item)
            if piece is None:
                skipped[reason] = skipped.get(reason, 0) + 1
            else:
                pieces.append(piece)
        seconds = time.perf_counter() - t0
        info: dict[str, object] = {
            "source": source,
            "cap": cap,
            "items": len(items),
            "pieces": len(pieces),
            "skipped": skipped,
            "parse_seconds": round(seconds, 1),
        }
        return pieces, info

    return cached(cache_file(cache, f"{source}-n{cap}"), build)


def load_corpus(
    caps: Mapping[str, int],
    seed: int,
    fraction: float,
    *,
    valid: float = 0.0,
    cache: Path | None = None,
    progress: bool = True,
) -> Corpus:
    """The music21 corpus sources named in `caps` (source -> items tried), split by piece.

    The evaluation uses this with the split seed and fraction recorded in a model's
    provenance to get exactly the pieces that model never saw."""
    return split_corpus(
        {s: load_source(s, cap, cache=cache, progress=progress) for s, cap in caps.items()},
        seed,
        fraction,
        valid,
    )
