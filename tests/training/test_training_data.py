"""Training data: real corpus pieces and real MIDI files become sorted event streams."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
from lkjam.engine.events import EVENT_DTYPE, make_events
from lkjam.training import corpus_sources, midi_folder, scores, splits
from lkjam.training.curriculum import (
    NO_AUGMENT,
    Augment,
    accompany,
    call_response,
    conditioning,
    make_example,
    with_accompaniment,
)
from lkjam.training.pieces import CHORDS_INFERRED, ROLE_AI, ROLE_CLIP, ROLE_HUMAN, DataError, Piece
from lkjam.training.textures import TEXTURES
from music21 import converter, corpus
from songs import write_song

from lkjam import _step


def _stream_sorted(ev: np.ndarray) -> bool:
    order = np.lexsort((ev["pitch"], ev["role"], ev["beat"]))
    return bool(np.array_equal(order, np.arange(len(ev))))


def test_chorale_becomes_soprano_human_and_lower_voices_ai() -> None:
    path = corpus.getWork("bach/bwv10.7")
    piece = scores.score_to_piece("chorales/bwv10.7", converter.parse(path, forceSource=True))
    assert piece is not None
    ev = piece.events
    assert _stream_sorted(ev)
    assert np.all(ev["dur"] > 0)
    assert (piece.numerator, piece.denominator) == (4, 4)
    assert (piece.key_root, piece.key_minor) == (7, True)  # g minor
    # The human part is exactly the soprano line (ties merged), everything else is ai.
    soprano = converter.parse(path, forceSource=True).parts[0].stripTies().flatten().notes
    human = ev[ev["role"] == ROLE_HUMAN]
    assert len(human) == len(soprano)
    assert [int(p) for p in human["pitch"]] == [n.pitch.midi for n in soprano]
    assert np.allclose(human["dur"], [float(n.quarterLength) for n in soprano])
    assert set(np.unique(ev["role"])) == {ROLE_HUMAN, ROLE_AI}
    assert piece.voices == 4
    # The soprano is the top voice at (almost) every onset.
    ai = ev[ev["role"] == ROLE_AI]
    above = [np.all(ai["pitch"][ai["beat"] == b] <= p) for b, p in human[["beat", "pitch"]]]
    assert np.mean(above) > 0.95


def test_folk_tune_gets_diatonic_chords_below_the_melody_in_every_texture() -> None:
    item = next(it for it in corpus_sources.select_items("folk", 10) if "essen" in it.name)
    tune, reason = corpus_sources._parse_item("folk", item)
    assert tune is not None, reason
    assert tune.chords == CHORDS_INFERRED
    assert tune.voices == 1 and len(tune.chord_spans) > 0  # chords are realized per example
    scale = {(tune.key_root + i) % 12 for i in tune.scale_intervals}
    leading_tone = (tune.key_root + 11) % 12  # raised in minor keys' V chord
    rng = np.random.default_rng(0)
    seen = set()
    rates = set()
    for _ in range(60):
        piece = with_accompaniment(tune, rng)
        assert _stream_sorted(piece.events)
        harmony = piece.events[piece.voice > 0]
        melody = piece.events[piece.voice == 0]
        assert np.array_equal(melody, tune.events)
        assert set(np.unique(harmony["pitch"] % 12)) <= scale | {leading_tone}
        assert harmony["pitch"].max() < melody["pitch"].max()
        assert np.all(harmony["role"] == ROLE_AI)
        seen.add(piece.voices)
        rates.add(round(len(harmony) / len(melody), 2))
    # Several textures: with and without a separate bass voice, at several densities.
    assert seen == {2, 3} and len(rates) >= 3 and len(TEXTURES) >= 5


def test_corpus_cache_is_read_back_without_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, info = corpus_sources.load_source("chorales", 3, cache=tmp_path, progress=False)
    assert info["items"] == 3 and len(first) >= 1
    files = list((tmp_path / "data").glob("chorales-n3-*.npz"))
    assert len(files) == 1

    def no_parsing(*_: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(corpus_sources, "_parse_item", no_parsing)
    again, _ = corpus_sources.load_source("chorales", 3, cache=tmp_path, progress=False)
    assert [p.name for p in again] == [p.name for p in first]
    for a, b in zip(again, first, strict=True):
        assert np.array_equal(a.events, b.events) and np.array_equal(a.voice, b.voice)
        assert (a.key_root, a.numerator, a.chords) == (b.key_root, b.numerator, b.chords)
    with np.load(files[0], allow_pickle=False) as z:  # plain arrays only
        assert z["events"].dtype.names == ("beat", "dur", "pitch", "vel", "role", "flags")


def test_midi_folder_skips_and_counts_bad_files(tmp_path: Path) -> None:
    folder = tmp_path / "songs"
    folder.mkdir()
    for i in range(3):
        write_song(folder / f"song{i}.mid", melody_base=70 + i)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    silent = mido.MidiFile(type=1)
    silent.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="x")]))
    silent.save(folder / "silent.midi")
    (folder / "notes.txt").write_text("not midi")

    pieces, summary = midi_folder.load_midi_folder(folder, cache=tmp_path / "cache", progress=False)
    assert (summary.found, summary.used) == (5, 3)
    assert summary.skipped == {"unreadable": ["broken.mid"], "no notes": ["silent.midi"]}
    assert "3 of 5" in summary.text() and "broken.mid" in summary.text()
    piece = pieces[0]
    assert (piece.numerator, piece.denominator) == (3, 4)
    human = piece.events[piece.events["role"] == ROLE_HUMAN]
    assert human["pitch"].min() >= 70  # the highest track is the human by default
    assert len(human) == 24 and np.allclose(human["dur"], 1.0)

    by_track, _ = midi_folder.load_midi_folder(
        folder, human_track=2, cache=tmp_path / "cache", progress=False
    )
    human = by_track[0].events[by_track[0].events["role"] == ROLE_HUMAN]
    assert human["pitch"].max() < 50  # track 2 is the bass


def test_midi_folder_without_usable_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \.mid or \.midi files"):
        midi_folder.load_midi_folder(tmp_path, cache=tmp_path / "cache", progress=False)
    (tmp_path / "bad.mid").write_bytes(b"\x00" * 40)
    with pytest.raises(DataError, match=r"no usable MIDI.*0 of 1.*unreadable.*bad\.mid"):
        midi_folder.load_midi_folder(tmp_path, cache=tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="not a folder"):
        midi_folder.load_midi_folder(tmp_path / "missing", progress=False)


def _pieces(n: int) -> list[Piece]:
    ev = np.zeros(1, dtype=EVENT_DTYPE)
    return [Piece(f"src/{i}", ev, np.zeros(1, np.uint8)) for i in range(n)]


def test_split_is_by_piece_seeded_and_stable() -> None:
    pieces = _pieces(400)
    train, held = splits.split_pieces(pieces, seed=1, fraction=0.1)
    assert {p.name for p in train}.isdisjoint(p.name for p in held)
    assert len(train) + len(held) == 400
    assert 20 <= len(held) <= 60
    # Same seed: same split, whatever else is in the list; another seed: another split.
    _, held_sub = splits.split_pieces(pieces[:200], seed=1, fraction=0.1)
    assert {p.name for p in held_sub} == {p.name for p in held if int(p.name[4:]) < 200}
    _, other = splits.split_pieces(pieces, seed=2, fraction=0.1)
    assert {p.name for p in other} != {p.name for p in held}
    train2, held2 = splits.split_pieces(_pieces(2), seed=1, fraction=0.1)
    assert len(train2) == len(held2) == 1


def test_call_response_alternates_phrases_and_augmentation_keeps_order() -> None:
    item = next(it for it in corpus_sources.select_items("folk", 10) if "essen" in it.name)
    piece, _ = corpus_sources._parse_item("folk", item)
    assert piece is not None
    rng = np.random.default_rng(0)
    roles = call_response(piece, rng)
    melody = piece.voice == 0
    assert {ROLE_HUMAN, ROLE_AI} <= set(np.unique(roles[melody]))
    assert set(np.unique(roles[~melody])) <= {ROLE_CLIP, 255}
    ex = make_example(piece, "call_response", rng, Augment(jitter=0.05))
    assert _stream_sorted(ex.events)
    assert ex.encode().shape == (len(ex.events), 409)
    plain = make_example(piece, "harmonize", rng, NO_AUGMENT)
    assert np.array_equal(plain.events[plain.events["role"] == ROLE_HUMAN], piece.events)


def test_accompany_view_keeps_the_melody_human_and_may_make_the_bass_a_clip() -> None:
    piece = scores.score_to_piece("chorales/bwv66.6", corpus.parse("bach/bwv66.6"))
    assert piece is not None
    rng = np.random.default_rng(0)
    bass_roles = set()
    for _ in range(40):
        roles = accompany(piece, rng)
        assert np.all(roles[piece.voice == 0] == ROLE_HUMAN)
        assert np.all(roles[piece.voice == 1] == ROLE_AI)
        bass_roles |= set(np.unique(roles[piece.voice == 3]).tolist())
    assert bass_roles == {ROLE_AI, ROLE_CLIP}


def test_conditioning_labels_come_from_the_ais_next_two_bars() -> None:
    # 4/4; AI block chords (3 notes) on every beat of bars 0-1, then nothing; melody to bar 4.
    ai_beats = [b for b in range(8) for _ in range(3)]
    ev = make_events(
        [0.0, 4.0, 8.0, 12.0, *ai_beats],
        [4.0] * 4 + [1.0] * len(ai_beats),
        [72, 74, 76, 77] + [48, 52, 55] * 8,
        [90] * (4 + len(ai_beats)),
        ["human"] * 4 + ["ai"] * len(ai_beats),
    )
    ev = ev[np.lexsort((ev["pitch"], ev["role"], ev["beat"]))]
    rows = conditioning(ev, _step.MODE_ACCOMPANY, 4.0)
    by_beat = {float(e["beat"]): tuple(r) for e, r in zip(ev, rows, strict=True)}
    assert by_beat[0.0] == (0, 24 / 8, 3.0)  # 8 chords of 3 in the next 8 beats
    assert by_beat[4.0] == (0, 12 / 8, 3.0)  # 4 chords left
    assert by_beat[8.0] == (0, 0.0, 0.0)  # the AI falls silent: the label says so
    # Call and response: one rate for the whole example, over the bars the AI plays in.
    rows = conditioning(ev, _step.MODE_CALL_RESPONSE, 4.0)
    assert np.all(rows == [_step.MODE_CALL_RESPONSE, 24 / 8, 3.0])
