"""The protocol table: examples, docs derived from it, validation errors that name fields."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lkjam.engine import protocol
from lkjam.engine.protocol import MESSAGES, ProtocolError, decode, encode

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"


def frame(kind: str, /, **fields: Any) -> bytes:
    return json.dumps({"v": 1, "type": kind, **fields}).encode()


@pytest.mark.parametrize("kind", list(MESSAGES))
def test_every_example_is_valid_and_round_trips(kind: str) -> None:
    spec = MESSAGES[kind]
    message = decode(encode(kind, **spec.example), direction=spec.direction)
    assert message["type"] == kind
    assert {k: v for k, v in message.items() if k not in ("v", "type")} == spec.example


def test_docs_are_generated_from_the_table() -> None:
    assert DOC.read_text() == protocol.markdown(), (
        "docs/protocol.md is stale: run python -m lkjam.engine.protocol > docs/protocol.md"
    )
    text = DOC.read_text()
    for kind, spec in MESSAGES.items():
        assert f"### `{kind}`" in text
        assert json.dumps({"v": 1, "type": kind, **spec.example}) in text
        for name in spec.fields:
            assert f"| `{name}` |" in text


def test_the_remote_scripts_copy_is_generated_from_the_table() -> None:
    assert (REPO / protocol.REMOTE_FILE).read_text() == protocol.remote_module(), (
        f"{protocol.REMOTE_FILE} is stale: run "
        f"python -m lkjam.engine.protocol --remote > {protocol.REMOTE_FILE}"
    )
    copy: dict[str, Any] = {}
    exec(protocol.remote_module(), copy)  # what the script imports
    assert copy["PROTOCOL_VERSION"] == protocol.PROTOCOL_VERSION
    assert copy["MAX_MESSAGE_BYTES"] == protocol.MAX_MESSAGE_BYTES
    assert copy["MAX_CLIP_NOTES"] == protocol.MAX_CLIP_NOTES
    assert copy["ENGINE_TYPES"] == ("welcome", "status", "clip_notes", "error")
    assert copy["MODES"] == protocol.MODES and copy["CLIP_ROLES"] == protocol.CLIP_ROLES


def test_main_prints_the_docs_or_the_remote_copy() -> None:
    printed: list[str] = []
    assert protocol.main([], printed.append) == 0
    assert protocol.main(["--remote"], printed.append) == 0
    assert printed == [protocol.markdown(), protocol.remote_module()]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{", "message: not JSON"),
        (b"\xff\xfe", "message: not UTF-8"),
        (b"[1, 2]", "message: must be a JSON object"),
        (b'{"type": "hello"}', "message.v: must be 1"),
        (frame("nonsense"), "message.type: must be one of hello, transport"),
        (frame("welcome", engine_version="1", model="m", styles=[]), "message.type"),
        (frame("transport", tempo=0, beat=0, playing=True, sig=[4, 4], t=0), "transport.tempo"),
        (frame("transport", tempo=120, beat=0, playing=1, sig=[4, 4], t=0), "transport.playing"),
        (frame("transport", tempo=120, beat=0, playing=True, sig=[4, 3], t=0), "transport.sig"),
        (frame("transport", tempo=120, beat=0, playing=True, sig=[4, 4]), "transport.t: missing"),
        (frame("scale", root=12, intervals=[0]), "scale.root"),
        (frame("scale", root=0, intervals=[0, 13]), "scale.intervals[1]"),
        (frame("controls", mode="jam"), "controls.mode: must be one of off, accompany"),
        (frame("controls", temperature=float("1e400")), "controls.temperature"),
        (frame("controls", colour="red"), "controls.colour: unknown field"),
        (frame("accompany", id=True, track=0, slot=0, length=4, notes=[]), "accompany.id"),
        (
            frame("accompany", id=1, track=0, slot=0, length=4, notes=[[60, 0, 1]]),
            "accompany.notes[0]: must be [pitch, start, dur, vel]",
        ),
        (
            frame("accompany", id=1, track=0, slot=0, length=4, notes=[[60, 0, 0, 100]]),
            "accompany.notes[0]: dur",
        ),
        (
            frame("accompany", id=1, track=0, slot=0, length=4, notes=[[128, 0, 1, 100]]),
            "accompany.notes[0]: pitch",
        ),
    ],
)
def test_errors_name_the_field(data: bytes, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    assert str(info.value).startswith(expected), str(info.value)


def test_size_cap_is_checked_before_parsing() -> None:
    big = frame(
        "hello", live_version="x" * protocol.MAX_MESSAGE_BYTES, python="", script_version=""
    )
    with pytest.raises(ProtocolError, match=r"message: \d+ bytes, at most 1048576"):
        decode(big)
    notes = [[60, 0.0, 1.0, 100]] * (protocol.MAX_NOTES + 1)
    with pytest.raises(ProtocolError, match="at most 20000"):
        decode(frame("accompany", id=1, track=0, slot=0, length=4.0, notes=notes))


def test_encode_refuses_bad_outgoing_fields() -> None:
    with pytest.raises(ProtocolError, match=r"clip_notes\.notes"):
        encode("clip_notes", id=1, notes=[[60, 0.0, -1.0, 100]])


def test_optional_fields_may_be_left_out_and_normalise_numbers() -> None:
    message = decode(frame("controls", density=1))
    assert message == {"v": 1, "type": "controls", "density": 1.0}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_protocol_errors_only(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(MESSAGES)), st.dictionaries(st.text(max_size=12), json_values))
def test_arbitrary_objects_give_protocol_errors_only(kind: str, fields: dict[str, Any]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(frame(kind, **fields), direction=None)


def test_every_number_field_has_a_range() -> None:
    # _is_num accepts JSON integers of any size and float() runs after the range check, so
    # an unbounded number field would let a 310-digit integer raise OverflowError.
    for kind, spec in MESSAGES.items():
        for name, f in spec.fields.items():
            if f.kind in ("num", "pair"):
                assert f.lo is not None and f.hi is not None, f"{kind}.{name}"


def clip(notes: list[list[float]], loop: list[float], looping: bool, length: float = 4) -> bytes:
    return frame(
        "clip",
        track=0,
        slot=0,
        name="c",
        role="clip",
        length=length,
        looping=looping,
        loop=loop,
        playing=True,
        start_beat=0.0,
        notes=notes,
    )


@pytest.mark.parametrize(
    ("notes", "loop", "looping", "expected"),
    [
        ([[60, 0.0, 1.0, 100]], [0.0, 1e-9], True, "clip.loop: a looping clip's loop must last"),
        ([[60, 0.0, 1.0, 100]], [0.0, 0.0], True, "clip.loop: a looping clip's loop must last"),
        ([[60, 0.0, 1.0, 100]], [0.0, 0.04], True, "clip.loop: a looping clip's loop must last"),
        (  # the 20,000 notes in a one-beat loop
            [[60 + i % 12, (i % 1000) / 1000, 0.1, 100] for i in range(20_000)],
            [0.0, 1.0],
            True,
            "clip.notes: 20000 notes per beat in a loop of 1 beats",
        ),
        ([[60, 0.0, 0.01, 100]] * 6, [0.0, 1 / 24], True, "clip.notes: 144 notes per beat"),
        (  # a dense first half-beat, then the loop's start joins the end of the first pass
            [[60, i / 200, 0.01, 100] for i in range(100)] + [[62, 1.9, 0.01, 100]] * 30,
            [0.0, 2.0],
            True,
            "clip.notes: 130 notes start within one beat (clip beat 1.9)",
        ),
        ([[60, 0.0, 1.0, 100]] * 129, [0.0, 4.0], False, "clip.notes: 129 notes start within"),
        ([[60, 0.0, 1.0, 100]], [0.0, 1e300], False, "clip.loop: must be [start, end] numbers"),
    ],
)
def test_clips_the_generator_could_not_keep_up_with_are_refused(
    notes: list[list[float]], loop: list[float], looping: bool, expected: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(clip(notes, loop, looping))
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    ("notes", "loop", "looping"),
    [
        ([[60, 0.0, 0.01, 100]] * 5, [0.0, 1 / 24], True),  # 120 per beat: a tick-long loop
        ([[60, i / 128, 0.01, 100] for i in range(128)], [0.0, 1.0], True),
        ([[60, i / 64, 0.01, 100] for i in range(20_000)], [0.0, 312.5], True),
        ([[60, 0.0, 0.01, 100]] * 200, [0.0, 0.0], False),  # never played: length 0
    ],
)
def test_dense_but_playable_clips_pass(
    notes: list[list[float]], loop: list[float], looping: bool
) -> None:
    message = decode(clip(notes, loop, looping, length=loop[1]))
    assert len(message["notes"]) == len(notes)


def test_lone_surrogates_are_not_text() -> None:
    data = b'{"v":1,"type":"hello","live_version":"\\ud800","python":"","script_version":""}'
    with pytest.raises(ProtocolError, match=r"hello\.live_version: not valid Unicode"):
        decode(data)
