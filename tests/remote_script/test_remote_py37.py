"""The remote script really runs on Python 3.7 (Live 11 and 12.0's Python).

Live's Python is not ours to install; where a python3.7 exists (e.g. pyenv), the whole
script runs under it in the fake Live, against a pyzmq ROUTER in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import zmq

REPO = Path(__file__).resolve().parents[2]


def find_python37() -> str | None:
    """A working Python 3.7: $LKJAM_PYTHON37, python3.7 on PATH, or a pyenv install."""
    candidates = [os.environ.get("LKJAM_PYTHON37"), shutil.which("python3.7")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.7*/bin/python3.7"))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 7)":
            return candidate
    return None


PYTHON37 = find_python37()

# Imported the way Live imports it: `LKJam` from a folder on sys.path, no lkjam package.
SESSION = """
import json, sys
sys.path[:0] = [sys.argv[1] + "/remote_script", sys.argv[1] + "/remote_script/fake_live"]
from driver import VERSIONS, FakeLive
live = FakeLive(version=VERSIONS[sys.argv[3]], tempo=100)
keys = live.add_midi_track("Keys [human]")
band = live.add_midi_track("Band", input_routing="lkjam out")
rack = live.add_rack(band)
clip = live.add_clip(keys, 0, 4.0, [(60, 0.0, 1.0, 100)], name="riff")
live.set_scale(2, [0, 2, 3, 5, 7, 9, 10])
live.load_surface(port=int(sys.argv[2]), package="LKJam")
live.play(); live.fire(keys, 0); live.select_clip(clip)
live.run(1.0)
live.set_macro(rack, 8, 127)
for _ in range(100):
    live.run(0.1)
    if band.clip_slots[0].has_clip:
        break
written = band.clip_slots[0].clip
notes = [[n.pitch, n.start_time, n.duration, n.velocity]
         for n in written.get_all_notes_extended()] if written else None
live.disconnect()
print(json.dumps({"notes": notes, "log": live.c_instance.log}))
"""


@pytest.mark.skipif(PYTHON37 is None, reason="no python3.7 here (set LKJAM_PYTHON37)")
@pytest.mark.parametrize("version", ["11.3", "12.0"])  # the Lives that embed Python 3.7
def test_the_script_runs_on_python_3_7(version: str) -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    assert PYTHON37 is not None
    process = subprocess.Popen(
        [PYTHON37, "-c", SESSION, str(REPO), str(port), version],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    received = []
    try:
        while process.poll() is None:
            if not router.poll(100):
                continue
            identity, payload = router.recv_multipart()
            message = json.loads(payload)
            received.append(message)
            if message["type"] == "accompany":
                reply = {
                    "v": 1,
                    "type": "clip_notes",
                    "id": message["id"],
                    "notes": [[62, 0.0, 2.0, 90], [65, 2.0, 2.0, 91]],
                }
                router.send_multipart([identity, json.dumps(reply).encode()])
        out, err = process.communicate(timeout=30)
        while router.poll(200):  # what arrived as the process ended (its bye)
            received.append(json.loads(router.recv_multipart()[1]))
    finally:
        if process.poll() is None:
            process.kill()
        ctx.destroy(linger=0)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    hello = received[0]
    assert hello["type"] == "hello" and hello["python"].startswith("3.7")
    kinds = [m["type"] for m in received]
    assert {"transport", "scale", "clip", "controls", "accompany", "bye"} <= set(kinds), kinds
    assert result["notes"] == [[62, 0.0, 2.0, 90.0], [65, 2.0, 2.0, 91.0]], (kinds, result)
    assert not any("tick failed" in line for line in result["log"])
