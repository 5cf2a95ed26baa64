"""Real music as event streams: the music21 corpus and folders of the user's MIDI files.

A `Piece` is one piece of music as a sorted `EVENT_DTYPE` array plus a parallel `voice`
array (0 = the melody / top part, higher = lower parts), its meter and its key. Roles
in `Piece.events` are the default assignment (voice 0 human, the rest ai); the training
curriculum reassigns them per stage.

Parsing is slow, so every source is parsed once, with a progress bar, into one `.npz`
file (plain arrays, loaded with `allow_pickle=False`) in the user cache directory, keyed
by source, size cap, data version and encoding version.

Sources (music21 corpus, no downloads):
- `chorales`: Bach chorales with four parts (soprano, alto, tenor, bass).
- `folk`: Essen, O'Neill's 1850, Ryan's Mammoth and the Nottingham sample. The melody is
  voice 0; chords are voice 1 (upper chord tones) and voice 2 (bass). Chords come from the
  tune's chord symbols where it has them (`chords == "symbols"`); the corpus has almost
  none, so otherwise they are inferred by a simple diatonic rule (`chords == "inferred"`).
- `chamber`: madrigals, masses, motets, string quartets and a trio sonata, one voice per part.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lkjam.engine.events import EVENT_DTYPE
from lkjam.engine.keys import MAJOR, MINOR, key_of
from tqdm import tqdm

from lkjam import _step

# Bump when the conversion below changes: old cache files are then ignored.
DATA_VERSION = 2  # 2: folk tunes keep their chords as spans, realized per example
# Seed of the per-source sampling of corpus pieces: fixed so that a cap always selects
# the same pieces (and a larger cap a superset).
_CORPUS_SEED = 20240601

ROLE_HUMAN, ROLE_CLIP, ROLE_AI = _step.ROLE_HUMAN, _step.ROLE_CLIP, _step.ROLE_AI
CHORDS_NONE, CHORDS_SYMBOLS, CHORDS_INFERRED = "", "symbols", "inferred"
_CHORD_KINDS = (CHORDS_NONE, CHORDS_SYMBOLS, CHORDS_INFERRED)


class DataError(ValueError):
    """No usable data: the message names the folder or source and why."""


@dataclass(frozen=True)
class Piece:
    name: str  # "<source>/<id>": stable, the held-out split hashes it
    events: np.ndarray  # EVENT_DTYPE[N], sorted by (beat, role, pitch); beats = quarter notes
    voice: np.ndarray  # uint8[N], parallel to events: 0 = melody / top part
    numerator: int = 4
    denominator: int = 4
    key_root: int = -1  # tonic pitch class, -1 = unknown
    key_minor: bool = False
    chords: str = CHORDS_NONE
    # Chords to realize per example (training.textures): rows of (start beat, end beat,
    # root pitch class, pitch-class bitmask); empty when the voices already hold the harmony.
    chord_spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    @property
    def bar_beats(self) -> float:
        return 4.0 * self.numerator / self.denominator

    @property
    def scale_intervals(self) -> tuple[int, ...]:
        if self.key_root < 0:
            return ()
        return MINOR if self.key_minor else MAJOR

    @property
    def voices(self) -> int:
        return int(self.voice.max()) + 1 if len(self.voice) else 0


def default_roles(voice: np.ndarray) -> np.ndarray:
    return np.where(voice == 0, ROLE_HUMAN, ROLE_AI).astype(np.uint8)


def make_piece(
    name: str,
    beat: np.ndarray,
    dur: np.ndarray,
    pitch: np.ndarray,
    vel: np.ndarray,
    voice: np.ndarray,
    roles: np.ndarray | None = None,
    **meta: object,
) -> Piece:
    """Build a sorted piece; duplicate onsets (same beat, role and pitch) keep the longest."""
    roles = default_roles(voice) if roles is None else roles
    ev = np.zeros(len(beat), dtype=EVENT_DTYPE)
    ev["beat"], ev["dur"], ev["pitch"], ev["vel"], ev["role"] = beat, dur, pitch, vel, roles
    # Longest first, then a stable sort by the stream order of docs/event-stream.md
    # (beat, role, pitch), so the first of each duplicate group is the one to keep.
    order = np.argsort(-ev["dur"], kind="stable")
    order = order[np.lexsort((ev["pitch"][order], ev["role"][order], ev["beat"][order]))]
    ev, vo = ev[order], np.asarray(voice, dtype=np.uint8)[order]
    key = np.stack([ev["beat"], ev["role"].astype(np.float64), ev["pitch"].astype(np.float64)])
    keep = np.ones(len(ev), dtype=bool)
    keep[1:] = np.any(key[:, 1:] != key[:, :-1], axis=0)
    return Piece(name=name, events=ev[keep], voice=vo[keep], **meta)  # type: ignore[arg-type]


def synth_velocity(beat: np.ndarray, voice: np.ndarray, bar_beats: float) -> np.ndarray:
    """Velocities for scores that have none: melody a little louder, metrical accents."""
    vel = np.where(voice == 0, 84, 72).astype(np.int32)
    on_beat = np.isclose(beat % 1.0, 0.0, atol=1e-3)
    downbeat = np.isclose(beat % bar_beats, 0.0, atol=1e-3)
    vel += np.where(downbeat, 10, np.where(on_beat, 4, -4))
    return np.clip(vel, 1, 127).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# Chords for folk tunes


def _triads(root: int, minor: bool) -> list[tuple[int, ...]]:
    """Diatonic triads of a key, most common first (the order is a prior)."""
    if minor:  # i, V (harmonic minor), iv, VI, III, VII
        steps = [(0, 3, 7), (7, 11, 2), (5, 8, 0), (8, 0, 3), (3, 7, 10), (10, 2, 5)]
    else:  # I, V, IV, vi, ii, iii
        steps = [(0, 4, 7), (7, 11, 2), (5, 9, 0), (9, 0, 4), (2, 5, 9), (4, 7, 11)]
    return [tuple((root + s) % 12 for s in chord) for chord in steps]


def infer_chords(
    beat: np.ndarray,
    dur: np.ndarray,
    pitch: np.ndarray,
    root: int,
    minor: bool,
    bar_beats: float,
    seg: float | None = None,
) -> list[tuple[float, float, tuple[int, ...]]]:
    """One diatonic triad per `seg` beats (default: half a bar, a bar in short meters) that
    best covers the melody.

    Returns (start, end, pitch classes with the root first). Each melody note votes for the
    triads containing its pitch class with its overlap in beats (double on the segment's
    first beat); common chords get a small prior, and the last segment prefers the tonic.
    """
    if len(beat) == 0:
        return []
    if seg is None:
        seg = bar_beats / 2 if bar_beats >= 4 else bar_beats
    end = float(np.max(beat + dur))
    chords = _triads(root, minor)
    prior = np.array([0.3, 0.2, 0.15, 0.05, 0.0, -0.05])
    out: list[tuple[float, float, tuple[int, ...]]] = []
    starts = np.arange(0.0, end, seg)
    for i, t0 in enumerate(starts):
        t1 = t0 + seg
        overlap = np.clip(np.minimum(beat + dur, t1) - np.maximum(beat, t0), 0.0, None)
        weight = overlap * np.where(np.isclose(beat, t0), 2.0, 1.0)
        if weight.sum() <= 0:
            if out:  # a rest: the previous chord rings on
                out[-1] = (out[-1][0], float(t1), out[-1][2])
            continue
        pcs = pitch % 12
        score = (
            np.array([np.sum(np.where(np.isin(pcs, c), weight, -0.5 * weight)) for c in chords])
            + prior * seg
        )
        if i == len(starts) - 1:
            score[0] += seg
        out.append((float(t0), float(t1), chords[int(np.argmax(score))]))
    return out


# ---------------------------------------------------------------------------------------
# music21 scores


@dataclass
class _Notes:
    """Notes being collected for one piece (parallel lists)."""

    beat: list[float] = field(default_factory=list)
    dur: list[float] = field(default_factory=list)
    pitch: list[int] = field(default_factory=list)
    voice: list[int] = field(default_factory=list)

    def add(self, beat: float, dur: float, pitch: int, voice: int) -> None:
        if dur > 0 and 0 <= pitch <= 127:
            self.beat.append(beat)
            self.dur.append(dur)
            self.pitch.append(pitch)
            self.voice.append(voice)


def _score_meta(score: object) -> tuple[int, int, int, bool, float]:
    """(numerator, denominator, key root, minor, pickup shift in beats) of a music21 score."""
    from music21 import key, meter, stream

    s: stream.Score = score  # type: ignore[assignment]
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
    ks = s.recurse().getElementsByClass(key.KeySignature).first()
    root, minor = -1, False
    if isinstance(ks, key.Key):
        root, minor = ks.tonic.pitchClass, ks.mode == "minor"
    elif ks is not None:  # a bare signature: the major key has the same scale pitch classes
        root = ks.asKey("major").tonic.pitchClass
    # Bar 0 must start at beat 0 for the bar-phase features: shift pickups forward.
    first: stream.Stream = s.parts.first() or s
    m0 = first.getElementsByClass(stream.Measure).first()
    shift = float(m0.paddingLeft) if m0 is not None else 0.0
    return int(num), int(den), int(root), bool(minor), shift


def _part_notes(part: object, voice: int, shift: float, notes: _Notes) -> None:
    from music21 import stream

    p: stream.Stream = part  # type: ignore[assignment]
    for n in p.stripTies().flatten().notes:
        if n.duration.isGrace:
            continue
        for pt in n.pitches:
            notes.add(float(n.offset) + shift, float(n.quarterLength), int(pt.midi), voice)


def score_to_piece(name: str, score: object, *, folk: bool = False) -> Piece | None:
    """Convert a parsed music21 score. Parts become voices ordered by mean pitch (top =
    voice 0); for `folk` the single melody is voice 0 and chords are added. None if empty."""
    from music21 import harmony

    num, den, root, minor, shift = _score_meta(score)
    bar_beats = 4.0 * num / den
    parts = list(score.parts) or [score]  # type: ignore[attr-defined]
    per_part: list[_Notes] = []
    for part in parts:
        notes = _Notes()
        _part_notes(part, 0, shift, notes)
        if notes.beat:
            per_part.append(notes)
    if not per_part:
        return None
    per_part.sort(key=lambda n: -float(np.mean(n.pitch)))
    all_notes = _Notes()
    for v, notes in enumerate(per_part[:1] if folk else per_part):
        for b, d, p in zip(notes.beat, notes.dur, notes.pitch, strict=True):
            all_notes.add(b, d, p, v)
    chords_kind = CHORDS_NONE
    spans = np.zeros((0, 4))
    if folk:
        mel = per_part[0]
        beat, dur, pitch = np.array(mel.beat), np.array(mel.dur), np.array(mel.pitch)
        symbols = [
            c
            for c in score.flatten().getElementsByClass(harmony.ChordSymbol)  # type: ignore[attr-defined]
            if not isinstance(c, harmony.NoChord) and c.pitches
        ]
        end = float(np.max(beat + dur))
        if symbols:
            chords_kind = CHORDS_SYMBOLS
            starts = [float(c.offset) + shift for c in symbols] + [end]
            chords = [
                (starts[i], starts[i + 1], tuple(dict.fromkeys(p.pitchClass for p in c.pitches)))
                for i, c in enumerate(symbols)
                if starts[i + 1] > starts[i]
            ]
        else:
            if root < 0:
                return None
            chords_kind = CHORDS_INFERRED
            chords = infer_chords(beat, dur, pitch, root, minor, bar_beats)
        spans = np.array(
            [(t0, t1, pcs[0], sum(1 << pc for pc in set(pcs))) for t0, t1, pcs in chords],
            dtype=np.float64,
        ).reshape(-1, 4)
    beat_a = np.array(all_notes.beat, dtype=np.float64)
    voice_a = np.array(all_notes.voice, dtype=np.uint8)
    return make_piece(
        name,
        beat_a,
        np.array(all_notes.dur, dtype=np.float32),
        np.array(all_notes.pitch, dtype=np.uint8),
        synth_velocity(beat_a, voice_a, bar_beats),
        voice_a,
        numerator=num,
        denominator=den,
        key_root=root,
        key_minor=minor,
        chords=chords_kind,
        chord_spans=spans,
    )


# ---------------------------------------------------------------------------------------
# Corpus sources: list items cheaply, parse each item once


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


# ---------------------------------------------------------------------------------------
# The cache: one .npz of plain arrays per source


def cache_dir() -> Path:
    """The user cache directory (XDG_CACHE_HOME, or the platform's usual place)."""
    if os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path.home() / ".cache"
    return base / "lkjam"


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
        "chords": np.array([_CHORD_KINDS.index(p.chords) for p in pieces], dtype=np.int8),
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
                chords=_CHORD_KINDS[int(z["chords"][i])],
                chord_spans=spans[span_start[i] : span_start[i + 1]],
            )
            for i in range(len(start) - 1)
        ]
        info = json.loads(str(z["info"]))
    return pieces, info


def _cache_file(directory: Path | None, stem: str) -> Path:
    tag = f"d{DATA_VERSION}-e{_step.ENCODING_VERSION}"
    return (directory or cache_dir()) / "data" / f"{stem}-{tag}.npz"


def _cached(
    path: Path, build: Callable[[], tuple[list[Piece], dict[str, object]]]
) -> tuple[list[Piece], dict[str, object]]:
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

    return _cached(_cache_file(cache, f"{source}-n{cap}"), build)


# ---------------------------------------------------------------------------------------
# Folders of user MIDI files

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

    pieces, info = _cached(_cache_file(cache, f"midi-{h.hexdigest()[:16]}"), build)
    summary.skipped = info["skipped"]  # type: ignore[assignment]
    summary.used = len(pieces)
    if not pieces:
        raise DataError(f"no usable MIDI: {summary.text()}")
    return pieces, summary


# ---------------------------------------------------------------------------------------
# Held-out split


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


# ---------------------------------------------------------------------------------------
# A whole corpus, split


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
