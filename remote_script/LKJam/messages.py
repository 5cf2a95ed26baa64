"""The wire format shared with the engine: one UTF-8 JSON object per ZeroMQ frame.

Every message carries "v" (the protocol version) and "type"; docs/protocol.md describes
them all. The constants come from protocol_table.py, generated from the engine's table.
"""

import json
from typing import Any, Dict, List, Optional

from .protocol_table import ENGINE_TYPES, MAX_CLIP_NOTES, MAX_MESSAGE_BYTES, PROTOCOL_VERSION

SCRIPT_VERSION = "0.1.0"

Message = Dict[str, Any]


def make(kind: str, **fields: Any) -> Message:
    message: Message = {"v": PROTOCOL_VERSION, "type": kind}
    message.update(fields)
    return message


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


def decode(frames: List[bytes]) -> Message:
    """Parse one engine message; ValueError with the reason when it is malformed."""
    if len(frames) != 1:
        raise ValueError("expected 1 frame, got %d" % len(frames))
    if len(frames[0]) > MAX_MESSAGE_BYTES:
        raise ValueError("message of %d bytes exceeds the cap" % len(frames[0]))
    try:
        message = json.loads(frames[0].decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError("not UTF-8 JSON: %s" % exc) from exc
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    if message.get("v") != PROTOCOL_VERSION:
        raise ValueError("field 'v' must be %d, got %r" % (PROTOCOL_VERSION, message.get("v")))
    if message.get("type") not in ENGINE_TYPES:
        raise ValueError("unknown field 'type' %r" % (message.get("type"),))
    return message


def note_list(raw: Any, limit: int = MAX_CLIP_NOTES) -> Optional[List[List[float]]]:
    """Validate `notes` from clip_notes: [[pitch, start, dur, vel], ...] or None."""
    if not isinstance(raw, list) or len(raw) > limit:
        return None
    notes = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 4:
            return None
        try:
            pitch, start, dur, vel = int(item[0]), float(item[1]), float(item[2]), int(item[3])
        except (TypeError, ValueError):
            return None
        if not (0 <= pitch <= 127 and start >= 0.0 and dur > 0.0 and 1 <= vel <= 127):
            return None
        notes.append([pitch, start, dur, vel])
    return notes
