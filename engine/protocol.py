"""The ZeroMQ protocol between the Live remote script and the engine, defined once.

`MESSAGES` is the single table of every message: its direction, its fields with their
types and ranges, and an example. Validation (`decode`, `encode`), the error texts and
docs/protocol.md (`python -m lkjam.engine.protocol > docs/protocol.md`) and the remote
script's copy (`python -m lkjam.engine.protocol --remote > remote_script/LKJam/protocol_table.py`,
standard-library Python 3.7) all derive from it; tests check that both committed files
match the table.

Each message is one ZeroMQ frame of UTF-8 JSON: an object with `"v": 1` and a `"type"`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5678"

# Two caps: the application check answers anything above MAX_MESSAGE_BYTES with an
# `error`; ZeroMQ itself drops (and disconnects) a peer whose frame exceeds
# SOCKET_MAX_BYTES, so a runaway client can never make the engine buffer without bound.
MAX_MESSAGE_BYTES = 1 << 20
SOCKET_MAX_BYTES = 4 << 20
MAX_NOTES = 20_000
MAX_TEXT = 1000

TO_ENGINE = "script -> engine"
TO_SCRIPT = "engine -> script"

MODES = ("off", "accompany", "call_response")  # also the order of the mode dial's thirds
CLIP_ROLES = ("clip", "human", "ai", "ignore")
MAX_CLIP_NOTES = 4096  # per clip_notes answer: what the remote script accepts
# A looping clip repeats forever, so its density is the generator's sustained work: a loop
# shorter than one MIDI clock tick, or more notes per beat than this, would keep it
# feeding clip notes and never catch up with the clock.
MIN_LOOP_BEATS = 1 / 24
MAX_OUTPUT_OFFSET_MS = 250.0  # more latency than this is a setup to fix, not to play over
MAX_CLIP_NOTES_PER_BEAT = 128


class ProtocolError(ValueError):
    """A message that does not follow the table; the text names the message and field."""


# ---- field kinds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a message: its kind, range and meaning.

    kind: "str", "int", "num", "bool", "enum", "pair" ([a, b] numbers), "sig"
    ([numerator, denominator]), "ints" (list of ints), "strs" (list of str),
    "notes" (list of [pitch, start, dur, vel]), "id" (str or int).
    """

    kind: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = True
    max_len: int = MAX_TEXT  # characters of a string, or notes of a note list
    default: Any = None  # an optional field's value until one is sent (None: none)

    def describe(self) -> str:
        """The type column of the docs, e.g. `number 20..999`."""
        kind = {"num": "number", "str": "string", "int": "integer", "bool": "boolean"}.get(
            self.kind, self.kind
        )
        if self.kind == "enum":
            return " \\| ".join(f'`"{c}"`' for c in self.choices)
        if self.kind == "notes":
            return "list of `[pitch, start, dur, vel]`"
        if self.kind == "sig":
            return "`[numerator, denominator]`"
        if self.kind == "pair":
            return f"`[start, end]` numbers in {_fmt(self.lo or 0)}..{_fmt(self.hi or 0)}"
        if self.kind == "id":
            return "string or integer"
        if self.kind == "ints":
            kind = "list of integers"
        if self.kind == "strs":
            kind = "list of strings"
        if self.lo is not None and self.hi is not None:
            return f"{kind} {_fmt(self.lo)}..{_fmt(self.hi)}"
        if self.lo is not None:
            return f"{kind} >= {_fmt(self.lo)}"
        return kind


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class MessageSpec:
    direction: str
    doc: str
    fields: Mapping[str, Field]
    example: Mapping[str, Any] = field(default_factory=dict)
    # Rules across fields, run on the normalised message after every field passed.
    check: Callable[[dict[str, Any]], None] | None = None


def _num(doc: str, lo: float | None = None, hi: float | None = None, **kw: Any) -> Field:
    return Field("num", doc, lo, hi, **kw)


def _int(doc: str, lo: float | None = None, hi: float | None = None, **kw: Any) -> Field:
    return Field("int", doc, lo, hi, **kw)


def _notes(limit: int) -> Field:
    doc = f"notes as `[pitch 0..127, start beats >= 0, dur beats > 0, vel 1..127]`, at most {limit}"
    return Field("notes", doc, max_len=limit)


# ---- the table -----------------------------------------------------------------------

MESSAGES: dict[str, MessageSpec] = {
    "hello": MessageSpec(
        TO_ENGINE,
        "First message of a client. The engine answers `welcome` and counts the client "
        "until `bye`, its disconnection, or 5 s without any message from it.",
        {
            "live_version": Field("str", "Live's version, e.g. `12.1.11`"),
            "python": Field("str", "the Python version inside Live"),
            "script_version": Field("str", "the remote script's version"),
        },
        {"live_version": "12.1.11", "python": "3.11.6", "script_version": "0.1.0"},
    ),
    "transport": MessageSpec(
        TO_ENGINE,
        "A snapshot of Live's transport, about 10 per second (also while stopped: it is "
        "the client's heartbeat). Without MIDI clock on `lkjam in`, the engine fits these "
        "to a beat <-> wall-clock line; with it, they check the clock's count. Only the "
        "client that owns the transport is heard (see Sessions).",
        {
            "tempo": _num("beats per minute", 20, 999),
            "beat": _num("song position in beats (quarter notes) at time `t`", -1e6, 1e7),
            "playing": Field("bool", "whether the transport runs"),
            "sig": Field("sig", "time signature; denominator 1, 2, 4, 8, 16 or 32"),
            "t": _num("the sender's monotonic clock, seconds, when `beat` was read", 0, 1e9),
        },
        {"tempo": 120.0, "beat": 32.25, "playing": True, "sig": [4, 4], "t": 5123.042},
    ),
    "scale": MessageSpec(
        TO_ENGINE,
        "Live 12's key and scale. Root -1 or empty `intervals` means no scale is known "
        "(Live's Scale mode is off).",
        {
            "root": _int("root pitch class, 0 = C; -1 = none", -1, 11),
            "intervals": Field("ints", "scale degrees in semitones above the root", 0, 11),
        },
        {"root": 2, "intervals": [0, 2, 3, 5, 7, 9, 10]},
    ),
    "clip": MessageSpec(
        TO_ENGINE,
        "A clip's notes and where it plays. Notes of a playing clip with role `clip` or "
        "`ai` (a clip on the AI track) are fed to the model as context ahead of time; role "
        "`human` feeds them as the human's part; `ignore` or `playing: false` removes the "
        "clip (as `clip_gone` does). Clip time 0 is at song beat `start_beat`; the clip "
        "plays on from there, and "
        "a looping clip, on reaching `loop[1]`, repeats `loop[0]..loop[1]` (a non-looping "
        "one ends at `length`). Sending the same `track`/`slot` again replaces it. A looping "
        "clip's loop lasts at least 1/24 beat (one MIDI clock tick), and at most "
        f"{MAX_CLIP_NOTES_PER_BEAT} notes may start within any one beat of the clip as it "
        "plays, loop repeats included.",
        {
            "track": _int("track index", 0, 10_000),
            "slot": _int("clip slot index", 0, 10_000),
            "name": Field("str", "clip name, for logs"),
            "role": Field("enum", "how the engine uses the notes", choices=CLIP_ROLES),
            "length": _num("clip length in beats", 0, 1e5),
            "looping": Field("bool", "whether the clip loops"),
            "loop": Field("pair", "loop start and end in clip beats, start <= end", -1e5, 1e5),
            "playing": Field("bool", "whether the clip plays"),
            "start_beat": _num("song beat at which clip time 0 plays (or would have)", -1e6, 1e7),
            "notes": _notes(MAX_NOTES),
        },
        {
            "track": 1,
            "slot": 0,
            "name": "Bass",
            "role": "clip",
            "length": 8.0,
            "looping": True,
            "loop": [0.0, 8.0],
            "playing": True,
            "start_beat": 31.5,
            "notes": [[38, 0.0, 1.0, 100], [45, 2.0, 1.0, 90], [41, 4.0, 2.0, 96]],
        },
        check=lambda m: _check_clip(m),
    ),
    "clip_gone": MessageSpec(
        TO_ENGINE,
        "A clip sent with `clip` no longer exists for the engine: it was deleted, stopped, "
        "moved to another track or slot, or its track changed role. Its notes are no longer "
        "fed. Unknown `track`/`slot` pairs are ignored.",
        {
            "track": _int("track index the clip was sent with", 0, 10_000),
            "slot": _int("clip slot index the clip was sent with", 0, 10_000),
        },
        {"track": 1, "slot": 0},
    ),
    "controls": MessageSpec(
        TO_ENGINE,
        "Performance controls. Every field is optional; fields left out keep their value. "
        "A changed `style` hot-swaps the model file; a file that fails to load leaves the "
        "old model playing and answers `error`.",
        {
            "mode": Field(
                "enum", "what the AI does", choices=MODES, required=False, default="accompany"
            ),
            "temperature": _num("sampling temperature", 0.05, 5, required=False, default=1.0),
            "top_p": _num("nucleus sampling mass", 0.01, 1, required=False, default=0.95),
            "density": _num(
                "0 = sparse, 0.5 = the model's own rate, 1 = busy: a third to three times "
                "the model's AI onsets per beat (conditioning)",
                0,
                1,
                required=False,
                default=0.5,
            ),
            "voices": _num(
                "AI notes per onset (1 = lines and arpeggios, 3-4 = block chords); "
                "0 = the model's own",
                0,
                8,
                required=False,
                default=0.0,
            ),
            "style": Field(
                "str",
                "model style name (a file in the styles dir); at start, the engine's "
                "`--style` or `--model`",
                required=False,
            ),
            "turn_bars": _int(
                "call_response: bars a handed-over turn (trigger note, pedal) lasts",
                1,
                64,
                required=False,
                default=2,
            ),
            "cycle_bars": _int(
                "call_response: 0 = the model takes its turns (answers wait for the human to "
                "let go); N = fixed cycles of N bars whose last `turn_bars` belong to the AI",
                0,
                128,
                required=False,
                default=0,
            ),
            "trigger_note": _int(
                "call_response: this pitch (not played) hands the turn to the AI, as the "
                "sustain pedal (CC64 down) always does; -1 = none",
                -1,
                127,
                required=False,
                default=-1,
            ),
            "scale_lock": Field(
                "bool", "keep AI notes inside the known scale", required=False, default=True
            ),
            "chord_lock": Field(
                "bool",
                "an AI note makes a chord (triad or seventh) with what sounds at its onset",
                required=False,
                default=True,
            ),
            "output_offset_ms": _num(
                "send AI notes this much earlier, for the latency you hear after lkjam out "
                "(audio interface, instrument); added to the port's own; at start, the "
                "engine's `--output-offset-ms`",
                0,
                MAX_OUTPUT_OFFSET_MS,
                required=False,
                default=0.0,
            ),
            "seed": _int(
                "reseed the sampler now; at start, the engine's `--seed`",
                0,
                2**31 - 1,
                required=False,
            ),
        },
        {"mode": "call_response", "temperature": 0.9, "top_p": 0.95, "density": 0.5},
    ),
    "accompany": MessageSpec(
        TO_ENGINE,
        "Generate a part for a whole clip offline (many times real time). Answered with "
        "`clip_notes` carrying the same `id`, or `error` with that `id`.",
        {
            "id": Field("id", "request id, echoed in the answer", max_len=100),
            "track": _int("track index of the source clip", 0, 10_000),
            "slot": _int("clip slot index of the source clip", 0, 10_000),
            "length": _num("clip length in beats", 0.25, 1e4),
            "notes": _notes(MAX_NOTES),
            "mode": Field(
                "enum",
                "the part to make: `accompany` plays under the clip, `call_response` answers "
                "its phrases; default: the engine's mode (accompany when it is off)",
                choices=("accompany", "call_response"),
                required=False,
            ),
        },
        {
            "id": 7,
            "track": 0,
            "slot": 2,
            "length": 4.0,
            "notes": [[62, 0.0, 1.0, 100], [65, 1.0, 1.0, 100], [69, 2.0, 2.0, 100]],
        },
    ),
    "bye": MessageSpec(TO_ENGINE, "The client leaves. When the last one goes, notes stop.", {}),
    "welcome": MessageSpec(
        TO_SCRIPT,
        "Answer to `hello`.",
        {
            "engine_version": Field("str", "lkjam version"),
            "model": Field("str", "style name of the loaded model"),
            "styles": Field("strs", "style names available to `controls.style`"),
        },
        {"engine_version": "0.1.0", "model": "default", "styles": ["default", "folk"]},
    ),
    "status": MessageSpec(
        TO_SCRIPT,
        "A line for Live's status bar, sent to every client after `hello` and on changes "
        "(mode, model, transport start and stop), with what the engine has lost since it "
        "started (the engine always sends these counts).",
        {
            "text": Field("str", "the text"),
            "late_notes": _int(
                "AI notes drawn too late to play on time: fed to the model, not played",
                0,
                required=False,
            ),
            "dropped_notes": _int(
                "AI notes not played because the send queue was full", 0, required=False
            ),
            "dropped_in": _int(
                "client messages dropped because the engine was busy (each answered with `error`)",
                0,
                required=False,
            ),
            "dropped_out": _int(
                "messages to clients dropped: the outbox was full or a client did not read",
                0,
                required=False,
            ),
            "clock_ticks_lost": _int(
                "MIDI clock ticks that never came (a JACK xrun), inferred from the ticks after "
                "them and bridged",
                0,
                required=False,
            ),
        },
        {
            "text": "call_response · default · 120.0 bpm",
            "late_notes": 0,
            "dropped_notes": 0,
            "dropped_in": 0,
            "dropped_out": 0,
            "clock_ticks_lost": 0,
        },
    ),
    "clip_notes": MessageSpec(
        TO_SCRIPT,
        "The generated part for an `accompany` request; the script writes it into a new clip.",
        {
            "id": Field("id", "the request's id", max_len=100),
            "notes": _notes(MAX_CLIP_NOTES),
        },
        {"id": 7, "notes": [[50, 0.0, 2.0, 88], [53, 2.0, 2.0, 84]]},
    ),
    "error": MessageSpec(
        TO_SCRIPT,
        "Something the engine could not do. A malformed message is answered with this and "
        "otherwise ignored; it never stops the engine.",
        {
            "text": Field("str", "what went wrong, naming the message and field"),
            "id": Field("id", "the `accompany` request's id, when it is about one", required=False),
        },
        {"text": "transport.tempo: must be a number in 20..999, got 0"},
    ),
}

# ---- validation ----------------------------------------------------------------------


def _is_num(x: object) -> bool:
    # An int is never converted here: JSON integers are unbounded, and float() of one with
    # 310+ digits raises. Every number field has a range, checked first (Python compares
    # int and float exactly), so the later float() only sees values in range.
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and math.isfinite(x))


def _range_text(f: Field) -> str:
    if f.lo is not None and f.hi is not None:
        return f" in {_fmt(f.lo)}..{_fmt(f.hi)}"
    if f.lo is not None:
        return f" >= {_fmt(f.lo)}"
    return ""


def _check_range(where: str, f: Field, x: float, what: str) -> None:
    if (f.lo is not None and x < f.lo) or (f.hi is not None and x > f.hi):
        raise ProtocolError(f"{where}: must be {what}{_range_text(f)}, got {x!r}")


def _scalar(where: str, f: Field, x: object, kind: str) -> Any:
    if kind == "num":
        if not _is_num(x):
            raise ProtocolError(f"{where}: must be a number{_range_text(f)}, got {_short(x)}")
        assert isinstance(x, (int, float))
        _check_range(where, f, x, "a number")
        return float(x)
    if kind == "int":
        if isinstance(x, bool) or not isinstance(x, int):
            raise ProtocolError(f"{where}: must be an integer{_range_text(f)}, got {_short(x)}")
        _check_range(where, f, x, "an integer")
        return x
    raise AssertionError(kind)


def _short(x: object) -> str:
    """`x` for an error text, at most 40 characters, whatever its size or depth."""
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > 64:
        return f"an integer of {x.bit_length()} bits"  # str() refuses 4300+ digits
    if isinstance(x, (list, dict)) and len(x) > 8:
        return f"{'a list' if isinstance(x, list) else 'an object'} of {len(x)} items"
    try:
        text = json.dumps(x)
    except (TypeError, ValueError, RecursionError):  # not JSON, a big int or deep nesting
        return f"a {type(x).__name__} that cannot be shown"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_str(where: str, x: object, max_len: int) -> str:
    if not isinstance(x, str):
        raise ProtocolError(f"{where}: must be a string, got {_short(x)}")
    if len(x) > max_len:
        raise ProtocolError(f"{where}: longer than {max_len} characters")
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:  # JSON's \ud800 escapes decode to lone surrogates
        raise ProtocolError(f"{where}: not valid Unicode text (a lone surrogate)") from None
    return x


def _check_notes(where: str, x: object, limit: int) -> list[list[float]]:
    if not isinstance(x, list):
        raise ProtocolError(f"{where}: must be a list of [pitch, start, dur, vel]")
    if len(x) > limit:
        raise ProtocolError(f"{where}: {len(x)} notes, at most {limit} allowed")
    out: list[list[float]] = []
    for i, note in enumerate(x):
        at = f"{where}[{i}]"
        if not isinstance(note, list) or len(note) != 4:
            raise ProtocolError(f"{at}: must be [pitch, start, dur, vel], got {_short(note)}")
        pitch, start, dur, vel = note
        if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 127:
            raise ProtocolError(f"{at}: pitch must be an integer in 0..127, got {_short(pitch)}")
        if not _is_num(start) or not 0 <= start <= 1e5:
            raise ProtocolError(f"{at}: start must be a number of beats in 0..100000")
        if not _is_num(dur) or not 0 < dur <= 1e4:
            raise ProtocolError(f"{at}: dur must be a number of beats in (0, 10000]")
        if isinstance(vel, bool) or not isinstance(vel, int) or not 1 <= vel <= 127:
            raise ProtocolError(f"{at}: vel must be an integer in 1..127, got {_short(vel)}")
        out.append([pitch, float(start), float(dur), vel])
    return out


def _check_field(where: str, f: Field, x: object) -> Any:
    if f.kind in ("num", "int"):
        return _scalar(where, f, x, f.kind)
    if f.kind == "str":
        return _check_str(where, x, f.max_len)
    if f.kind == "bool":
        if not isinstance(x, bool):
            raise ProtocolError(f"{where}: must be true or false, got {_short(x)}")
        return x
    if f.kind == "enum":
        if x not in f.choices:
            raise ProtocolError(f"{where}: must be one of {', '.join(f.choices)}, got {_short(x)}")
        return x
    if f.kind == "id":
        if isinstance(x, bool) or not isinstance(x, (str, int)):
            raise ProtocolError(f"{where}: must be a string or an integer, got {_short(x)}")
        if isinstance(x, str):
            _check_str(where, x, f.max_len)
        return x
    if f.kind == "pair":
        if not (isinstance(x, list) and len(x) == 2 and all(_is_num(v) for v in x)):
            raise ProtocolError(f"{where}: must be [start, end] numbers, got {_short(x)}")
        for v in x:
            _check_range(where, f, v, "[start, end] numbers")
        if x[0] > x[1]:
            raise ProtocolError(f"{where}: start must not exceed end, got {_short(x)}")
        return [float(x[0]), float(x[1])]
    if f.kind == "sig":
        bad = f"{where}: must be [numerator 1..32, denominator 1|2|4|8|16|32], got {_short(x)}"
        if not (isinstance(x, list) and len(x) == 2 and all(type(v) is int for v in x)):
            raise ProtocolError(bad)
        num, den = x
        if not 1 <= num <= 32 or den not in (1, 2, 4, 8, 16, 32):
            raise ProtocolError(bad)
        return [num, den]
    if f.kind == "ints":
        if not isinstance(x, list) or len(x) > 128:
            raise ProtocolError(f"{where}: must be a list of integers, got {_short(x)}")
        return [_scalar(f"{where}[{i}]", f, v, "int") for i, v in enumerate(x)]
    if f.kind == "strs":
        if not isinstance(x, list) or len(x) > 1000:
            raise ProtocolError(f"{where}: must be a list of strings, got {_short(x)}")
        return [_check_str(f"{where}[{i}]", v, f.max_len) for i, v in enumerate(x)]
    if f.kind == "notes":
        return _check_notes(where, x, f.max_len)
    raise AssertionError(f"unknown field kind {f.kind}")


def validate(obj: object, direction: str | None = None) -> dict[str, Any]:
    """Check a decoded JSON value against the table; returns a normalised copy.

    Raises ProtocolError naming the message type and the field at fault.
    """
    if not isinstance(obj, dict):
        raise ProtocolError(f"message: must be a JSON object, got {_short(obj)}")
    if obj.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"message.v: must be {PROTOCOL_VERSION}, got {_short(obj.get('v'))}")
    kind = obj.get("type")
    spec = MESSAGES.get(kind) if isinstance(kind, str) else None
    if spec is None or (direction is not None and spec.direction != direction):
        known = ", ".join(n for n, s in MESSAGES.items() if direction in (None, s.direction))
        raise ProtocolError(f"message.type: must be one of {known}, got {_short(kind)}")
    out: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": kind}
    for name in obj:
        if name not in spec.fields and name not in ("v", "type"):
            raise ProtocolError(f"{kind}.{name}: unknown field")
    for name, f in spec.fields.items():
        if name not in obj:
            if f.required:
                raise ProtocolError(f"{kind}.{name}: missing ({f.describe()})")
            continue
        out[name] = _check_field(f"{kind}.{name}", f, obj[name])
    if spec.check is not None:
        spec.check(out)
    return out


def _densest_beat(starts: list[float]) -> tuple[int, float]:
    """(most onsets within any one beat, where that beat starts) of sorted `starts`."""
    most, at, lo = 0, 0.0, 0
    for hi, s in enumerate(starts):
        while s - starts[lo] >= 1.0:
            lo += 1
        if hi - lo + 1 > most:
            most, at = hi - lo + 1, starts[lo]
    return most, at


def _check_clip(m: dict[str, Any]) -> None:
    """The clip as the generator unrolls it (ClipTrack): the first pass up to the loop end
    (or `length`), then the loop region forever. Bound its onsets per beat."""
    loop0, loop1 = m["loop"]
    period = loop1 - loop0
    limit = MAX_CLIP_NOTES_PER_BEAT
    if m["looping"] and period < MIN_LOOP_BEATS * (1 - 1e-9):  # tolerate rounding in Live
        raise ProtocolError(
            f"clip.loop: a looping clip's loop must last at least 1/24 beat (one MIDI "
            f"clock tick), got {_short(m['loop'])}"
        )
    end = loop1 if m["looping"] else m["length"]
    starts = sorted(n[1] for n in m["notes"] if n[1] < end)
    if m["looping"]:
        looped = sorted(n[1] - loop0 for n in m["notes"] if loop0 <= n[1] < loop1)
        passes = math.floor(1 / period)  # whole loop passes inside any one beat
        if passes * len(looped) > limit:
            raise ProtocolError(
                f"clip.notes: {passes * len(looped)} notes per beat in a loop of "
                f"{period:.4g} beats, at most {limit} allowed"
            )
        # Any one-beat window of the repeats lies within `passes + 2` passes of the first.
        starts += [loop1 + k * period + o for k in range(passes + 2) for o in looped]
    if len(starts) > limit:
        most, at = _densest_beat(sorted(starts))
        if most > limit:
            raise ProtocolError(
                f"clip.notes: {most} notes start within one beat (clip beat "
                f"{_fmt(round(at, 3))}), at most {limit} allowed"
            )


def decode(frame: bytes, direction: str | None = TO_ENGINE) -> dict[str, Any]:
    """Parse and validate one frame; ProtocolError on any problem."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message: {len(frame)} bytes, at most {MAX_MESSAGE_BYTES} allowed")
    try:
        obj = json.loads(frame.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"message: not JSON ({exc})") from None
    except ValueError:  # Python's limit on integer digits (sys.set_int_max_str_digits)
        raise ProtocolError("message: not JSON (an integer with 4300 or more digits)") from None
    except RecursionError:
        raise ProtocolError("message: not JSON (nested too deeply)") from None
    return validate(obj, direction)


def encode(kind: str, **fields: Any) -> bytes:
    """Build one validated frame of `kind` (raises ProtocolError on a bad field)."""
    message = validate({"v": PROTOCOL_VERSION, "type": kind, **fields})
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


# ---- docs ----------------------------------------------------------------------------

DOC_INTRO = f"""\
# The lkjam ZeroMQ protocol (version {PROTOCOL_VERSION})

<!-- Generated from engine/protocol.py (lkjam.engine.protocol) by
     `python -m lkjam.engine.protocol > docs/protocol.md`; a test checks it is current. -->

The engine binds a ZeroMQ **ROUTER** socket, by default on `{DEFAULT_ENDPOINT}`
(`lkjam engine --endpoint ...`; a non-loopback address also needs `--allow-remote` and
logs a warning). The Live remote script connects as a **DEALER**: it speaks ZMTP 3.1
with the NULL mechanism from the standard library, so any pyzmq DEALER can stand in
for it (the tests do).

## Framing
- Every message is **one frame** of UTF-8 JSON: an object with `"v": {PROTOCOL_VERSION}` and a
  `"type"` from the tables below. Fields not listed are rejected.
- Beats are quarter notes of song time; `t` is the sender's monotonic clock in seconds.
  On the engine's machine that is the engine's own clock (Python's `time.perf_counter`),
  and the engine reads it as such.
- **Size cap:** a frame above {MAX_MESSAGE_BYTES} bytes is answered with `error` and
  ignored; ZeroMQ drops a frame above {SOCKET_MAX_BYTES} bytes and disconnects that peer
  (its DEALER reconnects by itself). At most {MAX_NOTES} notes per message.
- A malformed message (bad UTF-8 or JSON, an integer of 4300 or more digits, nesting
  too deep to parse, unknown type, a missing, unknown or out-of-range field, a clip too
  dense to play, several frames) is answered with `error` naming the field, logged, and
  otherwise ignored. It never stops the engine.

## Sessions
- A client starts with `hello` and gets `welcome`. Clients are told apart by their
  ZeroMQ routing id; several may be connected.
- A client counts as gone after `bye`, when its connection drops, or after 5 s without
  any message (the script sends `transport` about 10 times a second while playing); its
  next message brings it back.
- When the last client is gone, every sounding AI note is released.
- **One client owns the transport**: the first to send `transport`. It keeps it until
  it is gone (as above) or sends no `transport` for 1 s; then the next client to send
  one takes it over. Another client's `transport` is dropped, and that client is told
  once with `error`, so two Live instances (or Live and a tool) never fight over start,
  stop and the beat. A new owner's clock may differ from the old one's: the engine
  learns its offset afresh.
- `status` goes to every client when the engine's state changes.
"""


def markdown() -> str:
    """docs/protocol.md, derived from MESSAGES."""
    parts = [DOC_INTRO]
    for direction in (TO_ENGINE, TO_SCRIPT):
        parts.append(f"\n## Messages {direction}\n")
        for name, spec in MESSAGES.items():
            if spec.direction != direction:
                continue
            parts.append(f"\n### `{name}`\n\n{spec.doc}\n")
            if spec.fields:
                parts.append("\n| field | type | required | meaning |\n|---|---|---|---|\n")
                for fname, f in spec.fields.items():
                    need = "yes" if f.required else "no"
                    meaning = (
                        f.doc
                        if f.default is None
                        else f"{f.doc}; default `{json.dumps(f.default)}`"
                    )
                    parts.append(f"| `{fname}` | {f.describe()} | {need} | {meaning} |\n")
            example = {"v": PROTOCOL_VERSION, "type": name, **spec.example}
            parts.append(f"\nExample:\n\n```json\n{json.dumps(example)}\n```\n")
    return "".join(parts)


# ---- the remote script's copy ---------------------------------------------------------

REMOTE_FILE = "remote_script/LKJam/protocol_table.py"


def _py(name: str, value: int | tuple[str, ...], comment: str) -> str:
    """`name = value  # comment` as ruff formats it (the file is committed as generated)."""
    if isinstance(value, int):
        return f"{name} = {value}  # {comment}\n"
    items = ", ".join(json.dumps(v) for v in value)
    line = f"{name} = ({items})  # {comment}\n"
    if len(line) <= 101:  # 100 characters and the newline
        return line
    lines = "".join(f"    {json.dumps(v)},\n" for v in value)
    return f"# {comment}\n{name} = (\n{lines})\n"


def remote_module() -> str:
    """remote_script/LKJam/protocol_table.py: what the remote script takes from the table,
    as standard-library Python 3.7."""
    engine_types = tuple(n for n, s in MESSAGES.items() if s.direction == TO_SCRIPT)
    roles = MESSAGES["clip"].fields["role"].choices
    modes = MESSAGES["controls"].fields["mode"].choices
    notes = MESSAGES["clip_notes"].fields["notes"].max_len
    return (
        '"""The protocol as the remote script uses it, generated from engine/protocol.py.\n'
        "\n"
        "Do not edit. It is made by\n"
        f"`python -m lkjam.engine.protocol --remote > {REMOTE_FILE}`,\n"
        "and a test checks that it matches the table. docs/protocol.md describes every message.\n"
        '"""\n'
        "\n"
        + _py("PROTOCOL_VERSION", PROTOCOL_VERSION, 'every message\'s "v"')
        + _py("MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES, "larger frames are refused")
        + _py("MAX_CLIP_NOTES", notes, "notes in one clip_notes answer")
        + _py("ENGINE_TYPES", engine_types, "the messages the engine sends")
        + _py("MODES", modes, "controls.mode")
        + _py("CLIP_ROLES", roles, "clip.role")
    )


def main(argv: Sequence[str] | None = None, out: Callable[[str], Any] = sys.stdout.write) -> int:
    """Print docs/protocol.md, or with --remote the remote script's copy of the table."""
    parser = argparse.ArgumentParser(prog="python -m lkjam.engine.protocol")
    parser.add_argument(
        "--remote", action="store_true", help=f"print {REMOTE_FILE} instead of the docs"
    )
    args = parser.parse_args(argv)
    out(remote_module() if args.remote else markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
