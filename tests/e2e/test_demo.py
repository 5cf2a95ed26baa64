"""`lkjam demo` end to end: the real engine process, the real remote script in the fake
Live, real JACK ports (the demo starts its own dummy JACK server), a model file of random
weights shaped to answer both at once and half a beat later."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
from lkjam.engine.events import ROLE_INDEX
from lkjam.engine.model_file import ModelMeta, save_model

from lkjam import _step, demo
from lkjam.demo_live import Timeline, load_piece
from lkjam.demo_report import (
    Note,
    PlannedNote,
    drawn_after_human,
    jam_events,
    match_plans,
    pair_notes,
    planned_notes,
)
from lkjam.random_model import random_tensors


def reacting_model(path: Path) -> Path:
    """Tiny random weights whose next AI note comes at once (~70 %) or half a beat later,
    lasting half a beat: the demo then has reactions (latency) and scheduled notes
    (timing error) to measure."""
    tensors = random_tensors("tiny", seed=3)
    tensors["heads.time.weight"] *= 0.1  # the context barely moves the time choice
    bias = tensors["heads.time.bias"]
    bias[_step.shift_bin(0.0)] += 30.85  # e^0.85 ≈ 2.3 : 1 for "now" over half a beat
    bias[_step.shift_bin(0.5)] += 30.0
    tensors["heads.duration.bias"][_step.duration_bin(0.5)] += 30.0
    meta = ModelMeta(topology="tiny", style="reacting", provenance={"data": "random"})
    save_model(path, tensors, meta)
    return path


def figures(report: str) -> dict[str, float]:
    line = next(line for line in report.splitlines() if line.startswith("figures: "))
    return {k: float(v) for k, v in re.findall(r"(\w+)=(\S+)", line)}


@pytest.mark.jack
def test_demo_jams_through_the_real_parts(tmp_path: Path) -> None:
    model = reacting_model(tmp_path / "reacting.safetensors")
    out = tmp_path / "jam"
    command = [sys.executable, "-m", "lkjam", "demo", "--seconds", "8", "--tempo", "200"]
    command += ["--out", str(out), "--model", str(model), "--backend", "jack"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = (out / "engine.log").read_text() if (out / "engine.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log
    assert "MIDI jack (private JACK server" in result.stdout
    assert "[#" in result.stdout  # progress was shown

    report = (out / "report.txt").read_text()
    assert "stuck notes    0" in report and "latency" in report and "NiCR" in report
    f = figures(report)
    assert f["notes_ai"] > 0 and f["notes_human"] > 0 and f["notes_clip"] > 0
    assert f["stuck"] == 0
    # The figures are measured, ordered and in milliseconds; their size is the bench's job.
    # The bounds tell behaviours apart, not machine speeds (at 200 bpm a beat is 300 ms): a
    # median under 100 ms is a reaction in the same pass and a scheduled note on its beat,
    # not one put off by half a beat (150 ms) or more; a p99 under 1 s is no note held back
    # a bar (1.2 s). Load on a shared machine delays notes by up to tens of ms, inside both.
    assert f["latency_n"] > 0 and 0 < f["latency_p50_ms"] < 100
    assert f["latency_p50_ms"] <= f["latency_p99_ms"] < 1000
    assert 0 < f["reaction_n"] <= f["notes_human"] and 0 < f["reaction_p50_ms"] < 100
    assert f["timing_n"] > 0 and 0 <= f["timing_err_p50_ms"] < 100
    assert f["timing_err_p50_ms"] <= f["timing_err_p99_ms"] < 1000
    assert 0 <= f["nicr"] <= 1
    # The summary printed is the report's.
    assert report.splitlines()[4] in result.stdout

    jam = mido.MidiFile(out / "jam.mid")
    assert [t.name for t in jam.tracks[1:]] == ["human", "clip", "ai"]
    tempos = [m.tempo for m in jam.tracks[0] if m.type == "set_tempo"]
    assert [round(mido.tempo2bpm(t)) for t in tempos] == [200, 220]
    ai_ons = [m for m in jam.tracks[3] if m.type == "note_on" and m.velocity > 0]
    assert 0 < len(ai_ons) <= f["notes_ai"]  # a note repeated on its own onset is written once

    assert (out / "jam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The controls reached the engine: it played accompany with the model it was given.
    assert "model reacting" in log and "released" in log


def test_missing_default_model_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "DEFAULT_MODEL_PATH", tmp_path / "models" / "default.safetensors")
    assert demo.main(["--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "default model is not in this install" in err and "--model FILE" in err
    assert str(tmp_path / "models" / "default.safetensors") in err


def test_without_jackd_it_says_what_to_install(tmp_path: Path) -> None:
    model = reacting_model(tmp_path / "m.safetensors")
    env = {**os.environ, "PATH": str(tmp_path)}  # no jackd on this PATH
    env.pop("LKJAM_MIDI_BACKEND", None)
    command = [sys.executable, "-m", "lkjam", "demo", "--model", str(model), "--backend", "jack"]
    command += ["--out", str(tmp_path / "out")]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "apt-get install jackd2" in result.stderr
    assert not (tmp_path / "out" / "report.txt").exists()


def test_timeline_changes_tempo_without_a_jump() -> None:
    line = Timeline(t0=10.0, tempo=120.0, change_beat=8.0, new_tempo=132.0)
    assert line.change_time == pytest.approx(14.0)
    assert line.beat_at(14.0 - 1e-9) == pytest.approx(8.0)
    assert line.beat_at(15.0) == pytest.approx(8.0 + 132 / 60)
    for beat in (0.0, 3.3, 8.0, 20.5):
        assert line.beat_at(line.time_at(beat)) == pytest.approx(beat)


def test_notes_are_paired_and_stuck_ones_found() -> None:
    messages = [
        (0.0, bytes((0x90, 60, 100))),
        (0.1, bytes((0x90, 64, 90))),
        (0.2, bytes((0x80, 60, 0))),
        (0.3, bytes((0x90, 64, 80))),  # retrigger: ends the first 64
        (0.4, bytes((0xB0, 123, 0))),  # All Notes Off does not count as a note-off
    ]
    notes = pair_notes(messages)
    assert [(n.pitch, n.t_on, n.t_off) for n in notes] == [
        (60, 0.0, 0.2),
        (64, 0.1, 0.3),
        (64, 0.3, None),
    ]


def test_planned_notes_match_what_was_heard() -> None:
    plans = [
        PlannedNote(60, 1.0, t_on=1.0, now=0.996, after="clip"),
        PlannedNote(62, 1.5, t_on=1.5, now=1.496, after="ai"),  # cancelled by a stop
        PlannedNote(64, 2.0, t_on=1.9, now=2.0, after="human", fed_beat=2.0),
    ]
    heard = [Note(1.002, 1.2, 60, 90), Note(2.003, 2.4, 64, 90)]
    matched = match_plans(plans, heard)
    assert [(p.pitch, t) for p, t in matched] == [(60, 1.002), (64, 2.003)]
    assert not matched[0][0].immediate and matched[1][0].immediate
    assert np.isclose(matched[1][1] - matched[1][0].now, 0.003)


def test_plans_and_reactions_come_from_the_trace() -> None:
    trace = [
        {"v": 1, "kind": "input", "t": 0.99, "pitch": 60, "velocity": 90, "beat": 2.0},
        {"v": 1, "kind": "drawn", "t": 1.0, "after": "human", "beat": 2.0},
        {"v": 1, "kind": "drawn", "t": 1.2, "after": "clip", "beat": 2.5},
        {"v": 1, "kind": "drawn", "t": 1.3, "after": None, "beat": None},
        {"v": 1, "kind": "plan", "t": 1.4, "pitch": 64, "velocity": 80, "beat": 2.5,
         "duration": 0.5, "t_on": 1.5, "after": "clip"},
        {"v": 1, "kind": "sent", "t": 1.5, "pitch": 64, "velocity": 80, "due": 1.5},
    ]  # fmt: skip
    assert drawn_after_human(trace) == [1.0]
    assert planned_notes(trace) == [PlannedNote(64, 2.5, 1.5, now=1.4, after="clip", fed_beat=2.0)]
    # Planned after the human note, on its beat, before its time came: a reaction.
    assert PlannedNote(64, 2.0, 1.5, now=1.4, after="human", fed_beat=2.0).immediate
    assert not PlannedNote(64, 2.5, 1.5, now=1.4, after="human", fed_beat=2.0).immediate
    # Half a beat after the human note, but committed late (the engine stalled): a late
    # note, not a reaction.
    assert not PlannedNote(64, 2.5, 1.5, now=1.52, after="human", fed_beat=2.0).immediate

    def plan(t: float, beat: float, t_on: float, after: str) -> dict[str, Any]:
        return {"v": 1, "kind": "plan", "t": t, "pitch": 67, "velocity": 80, "beat": beat,
                "duration": 0.5, "t_on": t_on, "after": after}  # fmt: skip

    def immediate(events: list[dict[str, Any]]) -> list[bool]:
        return [p.immediate for p in planned_notes(events)]

    # Chord notes stacked on an AI note, on its beat: scheduled when it was scheduled...
    assert immediate([*trace, plan(1.4, 2.5, 1.5, "ai")]) == [False, False]
    # ...reactions when it was one (due at once on the human note's beat)...
    reaction = [trace[0], plan(1.0, 2.0, 0.99, "human"), plan(1.0, 2.0, 0.99, "ai")]
    assert immediate(reaction) == [True, True]
    # ...and late when it was late (half a beat after the human note, committed after
    # its time).
    late = [trace[0], plan(1.3, 2.5, 1.25, "human"), plan(1.3, 2.5, 1.25, "ai")]
    assert immediate(late) == [False, False]
    # After a transport start or jump, nothing fed before is answered.
    jumped = [trace[0], {"v": 1, "kind": "transport", "t": 1.0, "why": "jump", "beat": 0.0}]
    assert immediate([*jumped, plan(1.0, 0.0, 0.99, "clip")]) == [False]


def test_a_note_a_hair_before_beat_0_is_written_on_it() -> None:
    """The engine's sync is exact to a fraction of a millisecond either way: an AI note on
    beat 0 may arrive just before it, and the jam file must still be written."""
    timeline = Timeline(t0=10.0, tempo=120.0, change_beat=8.0, new_tempo=132.0)
    ai = [Note(9.9999, 10.2, 60, 90), Note(10.5, 10.7, 64, 90)]
    events = jam_events(load_piece(), timeline, 4.0, [], ai)
    ai_rows = events[events["role"] == ROLE_INDEX["ai"]]
    assert sorted(ai_rows["beat"].tolist()) == [0.0, 1.0]
    assert events["beat"].min() >= 0.0
