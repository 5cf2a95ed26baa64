"""Hostile input (issue 13): JSON of every shape through the protocol, then the engine
itself through real sockets under the frames, clips and style switches that once ended or
stalled it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_harness import Client, Engine, Session, play
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lkjam.engine.protocol import MESSAGES, ProtocolError, decode, encode, validate

from lkjam import _step
from lkjam.jackd import JackServer
from lkjam.random_model import random_model

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


# ---- the engine through real sockets ----------------------------------------------------

HALF = {"time": {_step.shift_bin(0.5): 40.0}}  # the AI plays half a beat after each event


@pytest.fixture
def session(jack_server: JackServer, tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path, HALF)
    yield s
    s.close()


def _transport(tempo: str, beat: str = "0") -> bytes:
    rest = '"playing":true,"sig":[4,4],"t":1'
    return f'{{"v":1,"type":"transport","tempo":{tempo},"beat":{beat},{rest}}}'.encode()


def _clip(notes: list[list[float]], loop: list[float]) -> bytes:
    fields = dict(MESSAGES["clip"].example, notes=notes, loop=loop, length=loop[1] or 4.0)
    return json.dumps({"v": 1, "type": "clip", **fields}).encode()


HOSTILE: list[tuple[str, bytes, str]] = [
    ("400-digit tempo", _transport(_digits(400)), "transport.tempo"),
    ("5000-digit tempo", _transport(_digits(5000)), "message: not JSON"),
    ("400-digit beat", _transport("120", "-" + _digits(400)), "transport.beat"),
    (
        "400-digit note start",
        json.dumps({"v": 1, "type": "clip", **MESSAGES["clip"].example})
        .replace("[38, 0.0,", f"[38, {_digits(400)},")
        .encode(),
        "clip.notes[0]: start",
    ),
    (
        "400-digit temperature",
        f'{{"v":1,"type":"controls","temperature":{_digits(400)}}}'.encode(),
        "controls.temperature",
    ),
    (
        "deep nesting",
        b'{"v":1,"type":"controls","mode":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "message: not JSON",
    ),
    ("10^5-element array", _transport("[" + ",".join(["0"] * 100_000) + "]"), "transport.tempo"),
    (
        "long string",
        json.dumps({"v": 1, "type": "controls", "style": "x" * 500_000}).encode(),
        "controls.style",
    ),
    ("loop of 1e-9 beats", _clip([[60, 0.0, 1.0, 100]], [0.0, 1e-9]), "clip.loop"),
    (
        "20,000 notes in a one-beat loop",
        _clip([[48 + i % 24, (i % 960) / 960, 0.01, 100] for i in range(20_000)], [0.0, 1.0]),
        "clip.notes",
    ),
]


@pytest.mark.jack
def test_hostile_frames_cost_an_error_each_and_the_ai_plays_on(session: Session) -> None:
    session.client.send("controls", mode="accompany")
    play(
        session.midi,
        session.transport,
        [(session.transport.beat(time.perf_counter()) + 1, 60, 0.5)],
    )
    session.wait_for_ai_notes(3)
    for what, frame, expected in HOSTILE:
        session.client.send_raw(frame)
        reply = session.client.wait("error", timeout=10)
        assert reply["text"].startswith(expected), (what, reply)
    assert session.engine.process.poll() is None, session.engine.log()
    assert session.client.hello()["type"] == "welcome"
    session.wait_for_ai_notes(3)


@pytest.mark.jack
def test_fuzzed_frames_through_the_engine_get_error_then_welcome(
    jack_server: JackServer, tmp_path: Path
) -> None:
    engine = Engine(tmp_path, random_model(tmp_path / "m.safetensors", "tiny"))
    client = Client(engine.endpoint)
    sent = 0

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        phases=[Phase.generate],  # a failure names its frame; no shrinking needed
    )
    @given(hostile_frames())
    def check(frame: bytes) -> None:
        nonlocal sent
        try:
            decode(frame)
        except ProtocolError:
            pass
        else:
            return  # a valid message changes the engine's state: not this test's subject
        client.send_raw(frame)
        assert client.wait("error", timeout=10)["text"], frame[:200]
        sent += 1

    try:
        check()
        assert sent >= 30
        assert engine.process.poll() is None, engine.log()
        assert client.hello()["type"] == "welcome"
    finally:
        client.close()
        engine.stop()


# ---- styles ---------------------------------------------------------------------------


def _settled(client: Client, request: int) -> dict[str, Any]:
    """Wait until the worker has done every job queued so far (it runs them in order: an
    `accompany` request goes behind the style loads), then ask the engine where it is."""
    client.send("accompany", id=request, track=0, slot=0, length=4.0, notes=[[60, 0.0, 1.0, 100]])
    assert client.wait("clip_notes")["id"] == request
    welcome = client.hello()
    status = client.wait("status")
    assert f" · {welcome['model']} · " in status["text"], (welcome, status)  # the generator's
    return welcome


@pytest.mark.jack
def test_the_style_asked_for_last_is_the_style_in_use(
    jack_server: JackServer, tmp_path: Path
) -> None:
    styles = tmp_path / "styles"
    default = random_model(styles / "default.safetensors", "tiny", seed=0, style="default")
    random_model(styles / "folk.safetensors", "tiny", seed=1, style="folk")
    (styles / "broken.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}not a model")
    engine = Engine(tmp_path, default, "--styles-dir", str(styles))
    client = Client(engine.endpoint)
    try:
        welcome = client.hello()
        assert welcome["model"] == "default" and welcome["styles"] == ["default", "folk"]
        # The issue's sequence: a failing load must not undo the requests after it.
        client.send("controls", style="broken")
        client.send("controls", style="folk")
        time.sleep(0.1)
        client.send("controls", style="default")
        assert _settled(client, 1)["model"] == "default", engine.log()
        # Later requests are still honoured, and a failed one may be asked again.
        client.send("controls", style="folk")
        assert _settled(client, 2)["model"] == "folk"
        for attempt in range(2):
            client.send("controls", style="broken")
            text = client.wait("error")["text"]
            assert "broken.safetensors" in text and "still playing folk" in text, (attempt, text)
        client.send("controls", style="default")
        assert _settled(client, 3)["model"] == "default"
        assert engine.process.poll() is None
    finally:
        client.close()
        engine.stop()
