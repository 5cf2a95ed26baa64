"""The protocol as the remote script uses it, generated from engine/protocol.py.

Do not edit. It is made by
`python -m lkjam.engine.protocol --remote > remote_script/LKJam/protocol_table.py`,
and a test checks that it matches the table. docs/protocol.md describes every message.
"""

PROTOCOL_VERSION = 1  # every message's "v"
MAX_MESSAGE_BYTES = 1048576  # larger frames are refused
MAX_CLIP_NOTES = 4096  # notes in one clip_notes answer
ENGINE_TYPES = ("welcome", "status", "clip_notes", "error")  # the messages the engine sends
MODES = ("off", "accompany", "call_response")  # controls.mode
CLIP_ROLES = ("clip", "human", "ai", "ignore")  # clip.role
