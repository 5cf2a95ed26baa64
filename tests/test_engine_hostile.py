"""Hostile input (issue 13): JSON of every shape through the protocol, then the engine
itself through real sockets under the frames, clips and style switches that once ended or
stalled it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lkjam.engine.protocol import MESSAGES, ProtocolError, decode, encode, validate

# ---- JSON text of every shape ---------------------------------------------------------
# Built as text, not with json.dumps: Python refuses to print integers of more than 4300
# digits, and the point is to send what a careless or hostile client could.


def _digits(n: int) -> str:
    return "9" * n


numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=300, max_value=6000).map(_digits),  # 310+ digits overflow a float
    st.integers(min_value=300, max_value=6000).map(lambda n: "-" + _digits(n)),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["60.0", "100.0", "4.0", "-0.0", "1e400", "-1e400", "1e-400", "1E308"]),
    st.integers(min_value=-400, max_value=400).map(lambda e: f"1e{e}"),
)
strings = st.one_of(
    st.text(max_size=20).map(json.dumps),
    st.integers(min_value=1000, max_value=200_000).map(lambda n: json.dumps("x" * n)),
    st.sampled_from([r'"\ud800"', r'"\udfff x"', r'"\u0000"']),  # lone surrogates, NUL
)
scalars = st.one_of(numbers, strings, st.sampled_from(["null", "true", "false"]))


def _nest(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else '{"a":' * depth + "1" + "}" * depth


big = st.one_of(
    st.tuples(st.integers(min_value=50, max_value=100_000), st.sampled_from(["list", "obj"])).map(
        lambda d: _nest(*d)
    ),
    st.tuples(st.integers(min_value=1000, max_value=100_000), numbers).map(
        lambda n: "[" + ",".join([n[1]] * n[0]) + "]" if len(n[1]) * n[0] < 1_200_000 else "[]"
    ),
)
json_text = st.recursive(
    scalars | big,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(strings, inner), max_size=4).map(
            lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=8,
)


def _note_text(draw: st.DrawFn, example_note: list[Any]) -> str:
    """A note of a clip or accompany with one element hostile."""
    parts = [json.dumps(x) for x in example_note]
    parts[draw(st.integers(0, 3))] = draw(json_text)
    return "[" + ",".join(parts) + "]"


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    """One frame: a valid message of any type with some field values (or a note's
    elements) replaced by hostile JSON, or hostile JSON in place of the whole message."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_text).encode()
    kind = draw(st.sampled_from(sorted(MESSAGES)))
    spec = MESSAGES[kind]
    fields = {name: json.dumps(value) for name, value in spec.example.items()}
    for name in draw(st.lists(st.sampled_from(sorted(spec.fields) or ["v"]), max_size=3)):
        example = spec.example.get(name)
        if isinstance(example, list) and example and isinstance(example[0], list):
            notes = [_note_text(draw, example[0]) for _ in range(draw(st.integers(1, 3)))]
            fields[name] = "[" + ",".join(notes) + "]"
        else:
            fields[name] = draw(json_text)
    body = ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items())
    version = draw(st.sampled_from(["1", "1", "1", "1.0", _digits(400)]))
    return f'{{"v":{version},"type":{json.dumps(kind)}{"," if body else ""}{body}}}'.encode()


FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(hostile_frames())
def test_decode_raises_only_protocol_errors(frame: bytes) -> None:
    try:
        message = decode(frame, direction=None)
    except ProtocolError:
        return
    # What passes must be sendable again as it is: finite, in range, printable.
    fields = {k: v for k, v in message.items() if k not in ("v", "type")}
    assert decode(encode(message["type"], **fields), direction=None) == message


@FUZZ
@given(hostile_frames())
def test_validate_raises_only_protocol_errors(frame: bytes) -> None:
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return  # not JSON at all: decode's job (above), not validate's
    with contextlib.suppress(ProtocolError):
        validate(obj)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"tempo":' + _digits(400), "transport.tempo: must be a number in 20..999"),
        ('"tempo":-' + _digits(400), "transport.tempo: must be a number in 20..999"),
        ('"tempo":' + _digits(5000), "message: not JSON"),
        ('"tempo":120,"beat":' + _digits(320), "transport.beat: must be a number"),
        ('"tempo":' + "[" * 5000 + "]" * 5000, "message: not JSON (nested too deeply)"),
        ('"tempo":' + "[" * 500 + "]" * 500, "transport.tempo: must be a number"),
        ('"tempo":120.0,"beat":[' + "0," * 99_999 + "0]", "transport.beat: must be a number"),
    ],
)
def test_the_frames_from_the_issue_are_protocol_errors(text: str, expected: str) -> None:
    rest = {"tempo": 120.0, "beat": 0.0, "playing": True, "sig": [4, 4], "t": 1.0}
    for name in ("tempo", "beat"):
        if f'"{name}":' in text:
            del rest[name]
    tail = json.dumps(rest)[1:]
    frame = f'{{"v":1,"type":"transport",{text},{tail}'.encode()
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert str(info.value).startswith(expected), str(info.value)
