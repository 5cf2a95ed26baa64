"""What `lkjam demo` measured: the jam as one event stream, its figures, and its files.

Inputs are wall-clock recordings (perf_counter seconds): what the simulated human sent,
what arrived from `lkjam out`, and the AI notes the engine planned (its trace,
lkjam.engine.trace).
Beats come from the fake transport's true beat line (`Timeline`), never from the engine.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import numpy as np

from lkjam import metrics
from lkjam.demo_live import BEATS_PER_BAR, Message, Piece, Timeline, unroll
from lkjam.engine.events import ROLE_INDEX, ROLES, make_events
from lkjam.engine.midi_file import write_midi

MATCH_WINDOW_S = 0.25  # a recorded note-on belongs to a plan if it arrives this close

DEFINITIONS = """\
definitions
- latency: for each AI note the engine planned at the very beat of a human note it had
  just received (a reaction: the model's time-shift after the human note was 0, so the
  note is due at once), the time from the human note-on leaving the player's MIDI port
  to that AI note-on arriving at the recorder's port. The whole path: port, engine
  input queue, one model step, scheduler, port.
- reaction time (accompany mode): for each human note-on, the time from leaving the
  player's MIDI port to the engine having fed it to the model and drawn the AI's next
  move (the first plan drawn after that note, before the next one). Every human note
  counts, whatever the model then decides; only the output port hop is missing.
- timing error: for each AI note that is not a reaction (scheduled ahead, or committed
  too late), |arrival time at the recorder - the wall time of its planned beat on the
  fake transport's true beat line|. It adds up the engine's sync error (its beat clock
  against the real transport) and the send jitter.
- NiCR (ReaLchords' note-in-chord ratio): over the time when the human or the clip and
  the AI both sound, the share of the human's and clip's sounding pitch classes that the
  AI also sounds (lkjam.metrics.nicr; 1 = the AI always covers the others' notes).
- stuck notes: AI note-ons that never got a note-off, counted after the transport
  stopped, the script said bye and the engine exited. Must be 0."""


@dataclass(frozen=True)
class PlannedNote:
    pitch: int
    beat: float  # song beats
    t_on: float  # the engine's wall time for it
    now: float  # when the engine committed it
    after: str | None  # role of the event it was planned after (None: the first)
    fed_beat: float | None = None  # the beat of the human note or reaction it may answer

    @property
    def immediate(self) -> bool:
        """Planned on the beat of the event just fed (the model's time-shift was 0) and due
        when committed, or on the very frame of a human note heard ahead of it (JACK). A
        plan committed after its time for another reason (the engine stalled) is late, not
        immediate, and a chord note committed ahead of its beat is scheduled: the errors of
        both count in the timing error."""
        on_beat = self.fed_beat is not None and self.beat <= self.fed_beat + 1e-6
        return on_beat and (self.t_on <= self.now or self.after == "human")


def planned_notes(trace: Sequence[dict[str, Any]]) -> list[PlannedNote]:
    """The AI notes the engine committed (its `plan` events)."""
    plans: list[PlannedNote] = []
    fed_beat = None  # the beat a reaction would be on; None: nothing to react to
    for e in trace:
        if e["kind"] == "input":
            fed_beat = e["beat"]
        elif e["kind"] == "transport":
            fed_beat = None  # the stream starts afresh
        elif e["kind"] == "plan":
            plan = PlannedNote(e["pitch"], e["beat"], e["t_on"], e["t"], e["after"], fed_beat)
            plans.append(plan)
            # A chord note stacked on this one is a reaction only if this one was.
            fed_beat = plan.beat if plan.immediate else None
    return plans


def drawn_after_human(trace: Sequence[dict[str, Any]]) -> list[float]:
    """When the engine drew a plan right after feeding a human note (perf_counter s)."""
    return [e["t"] for e in trace if e["kind"] == "drawn" and e["after"] == "human"]


def reaction_times(human_on: np.ndarray, drawn: Sequence[float]) -> np.ndarray:
    """Seconds from each human note-on (sorted send times) to the first plan drawn after
    a human note at or after it and before the next human note-on."""
    drawn_sorted = np.sort(np.asarray(drawn, dtype=np.float64))
    nxt = np.append(human_on[1:], np.inf)
    i = np.searchsorted(drawn_sorted, human_on, side="left")
    ok = i < len(drawn_sorted)
    first = np.where(ok, drawn_sorted[np.minimum(i, len(drawn_sorted) - 1)], np.inf)
    keep = ok & (first < nxt)
    result: np.ndarray = (first - human_on)[keep]
    return result


@dataclass(frozen=True)
class Note:
    t_on: float
    t_off: float | None  # None: never released
    pitch: int
    velocity: int


def pair_notes(messages: Sequence[Message]) -> list[Note]:
    """Note-ons with their note-offs (per pitch, in order). A note-on of a pitch already
    sounding ends the sounding one, as a synthesizer would; All Notes Off ends nothing
    (every note must get its own note-off)."""
    notes: list[Note] = []
    sounding: dict[int, tuple[float, int]] = {}
    for t, m in messages:
        kind = m[0] & 0xF0
        if kind not in (0x80, 0x90) or len(m) < 3:
            continue
        pitch = m[1]
        if pitch in sounding:
            t_on, vel = sounding.pop(pitch)
            notes.append(Note(t_on, t, pitch, vel))
        if kind == 0x90 and m[2] > 0:
            sounding[pitch] = (t, m[2])
    notes += [Note(t_on, None, pitch, vel) for pitch, (t_on, vel) in sounding.items()]
    return sorted(notes, key=lambda n: n.t_on)


def match_plans(
    plans: Sequence[PlannedNote], ons: Sequence[Note]
) -> list[tuple[PlannedNote, float]]:
    """(plan, arrival time) for every planned note that was heard. Both lists are in time
    order (the scheduler sends in planned order; notes of a chord may arrive at the same
    frame in any order); plans cancelled before their time (on stop or a mode change) are
    skipped."""
    matched = []
    used: set[int] = set()
    j = 0
    for plan in plans:
        while j < len(ons) and ons[j].t_on < plan.t_on - MATCH_WINDOW_S:
            j += 1
        k = j
        while k < len(ons) and ons[k].t_on <= max(plan.t_on, plan.now) + MATCH_WINDOW_S:
            if k not in used and ons[k].pitch == plan.pitch:
                matched.append((plan, ons[k].t_on))
                used.add(k)
                break
            k += 1
    return matched


def percentiles(values: np.ndarray) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99)


@dataclass
class Figures:
    latency_ms: np.ndarray  # per reaction
    reaction_ms: np.ndarray  # per human note (accompany mode)
    timing_error_ms: np.ndarray  # per scheduled AI note, signed (late > 0)
    counts: dict[str, int]
    stuck: int
    sounding_after_stop: int
    music: dict[str, float]  # lkjam.metrics.summary
    planned: int  # AI notes the engine scheduled
    heard: int  # of which matched to a recorded note-on
    extra: dict[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        lat50, lat99 = percentiles(self.latency_ms)
        react50, react99 = percentiles(self.reaction_ms)
        err50, err99 = percentiles(np.abs(self.timing_error_ms))
        return {
            "latency_p50_ms": lat50,
            "latency_p99_ms": lat99,
            "latency_n": float(len(self.latency_ms)),
            "reaction_p50_ms": react50,
            "reaction_p99_ms": react99,
            "reaction_n": float(len(self.reaction_ms)),
            "timing_err_p50_ms": err50,
            "timing_err_p99_ms": err99,
            "timing_n": float(len(self.timing_error_ms)),
            "nicr": self.music["nicr"],
            "chord_fit": self.music["chord_fit"],
            **{f"notes_{role}": float(self.counts[role]) for role in ROLES},
            "stuck": float(self.stuck),
        }


def jam_events(
    piece: Piece, timeline: Timeline, stop_beat: float, human: list[Note], ai: list[Note]
) -> np.ndarray:
    """The jam on the song's beat line: human and AI notes placed by their wall times,
    clip notes by the score. Unreleased notes end at the stop."""
    rows: list[tuple[float, float, int, int, int]] = []
    for role, notes in (("human", human), ("ai", ai)):
        for n in notes:
            on = max(0.0, timeline.beat_at(n.t_on))  # a note on beat 0 may come a hair early
            off = timeline.beat_at(n.t_off) if n.t_off is not None else max(stop_beat, on)
            rows.append((on, max(off - on, 1 / 96), n.pitch, max(1, n.velocity), ROLE_INDEX[role]))
    for beat, pitch, dur, vel in unroll(piece, stop_beat):
        rows.append((beat, dur, pitch, vel, ROLE_INDEX["clip"]))
    if not rows:
        return make_events([], [], [], [], [])
    beats, durs, pitches, vels, roles = zip(*rows, strict=True)
    return make_events(beats, durs, pitches, vels, roles)


def music_figures(events: np.ndarray) -> dict[str, float]:
    """lkjam.metrics against the human and clip parts together, plus the call and
    response figures against the human alone (the bass clip never pauses)."""
    human = (ROLE_INDEX["human"],)
    return {
        **metrics.summary(events),
        "human_overlap": metrics.overlap(events, human),
        "human_answer_delay_beats": metrics.answer_delay(events, human),
    }


def analyse(
    piece: Piece,
    timeline: Timeline,
    stop_beat: float,
    human_sent: Sequence[Message],
    ai_received: Sequence[Message],
    plans: Sequence[PlannedNote],
    drawn_after_human: Sequence[float],
    sounding_after_stop: int,
    mode: str,
) -> tuple[np.ndarray, Figures]:
    human = pair_notes(human_sent)
    ai = pair_notes(ai_received)
    events = jam_events(piece, timeline, stop_beat, human, ai)

    human_on = np.array([n.t_on for n in human])
    latency, error = [], []
    matched = match_plans(plans, ai)
    for plan, arrival in matched:
        if not plan.immediate:
            error.append(arrival - timeline.time_at(plan.beat))
        elif plan.after == "human":
            # The human note it reacts to: the last one played by its beat's time.
            i = int(np.searchsorted(human_on, max(plan.t_on, plan.now) + 1e-6, side="right")) - 1
            if i >= 0:
                latency.append(arrival - human_on[i])
    # In call and response a human note is not answered at once by design: no reaction time.
    reaction = reaction_times(human_on, drawn_after_human) if mode == "accompany" else None
    counts = {role: int(np.sum(events["role"] == i)) for i, role in enumerate(ROLES)}
    figures = Figures(
        latency_ms=1000 * np.array(latency),
        reaction_ms=1000 * reaction if reaction is not None else np.zeros(0),
        timing_error_ms=1000 * np.array(error),
        counts=counts,
        stuck=sum(1 for n in ai if n.t_off is None),
        sounding_after_stop=sounding_after_stop,
        music=music_figures(events),
        planned=len(plans),
        heard=len(matched),
    )
    return events, figures


def conductor(
    timeline: Timeline, stop_beat: float, piece: Piece
) -> list[tuple[float, mido.MetaMessage]]:
    """The tempo map (with the change), metre and key of the jam."""
    key = mido.MetaMessage("key_signature", key=KEY_NAMES[piece.root])
    items = [
        (0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(timeline.tempo))),
        (0.0, mido.MetaMessage("time_signature", numerator=BEATS_PER_BAR, denominator=4)),
        (0.0, key),
    ]
    if timeline.change_beat < stop_beat:
        tempo = mido.bpm2tempo(timeline.new_tempo)
        items.append((timeline.change_beat, mido.MetaMessage("set_tempo", tempo=tempo)))
    return items


KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _fmt(value: float, unit: str = "") -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}{unit}"


def summary_text(figures: Figures, header: Sequence[str], mode: str) -> str:
    v = figures.values()
    c = figures.counts
    lines = [*header, ""]
    lines.append(f"notes          human {c['human']} · clip {c['clip']} · ai {c['ai']}")
    n = len(figures.latency_ms)
    if mode == "call_response":
        lines.append(
            "latency        n/a  (call and response: the AI answers when the human's phrase "
            "ends, not at once; see the answer delay)"
        )
    elif n:
        lines.append(
            f"latency        p50 {_fmt(v['latency_p50_ms'], ' ms')} · "
            f"p99 {_fmt(v['latency_p99_ms'], ' ms')}  ({n} reaction{'s' if n != 1 else ''})"
        )
    else:
        lines.append(
            "latency        n/a  (the model answered no human note at once this time; the "
            "reaction time covers every human note)"
        )
    if mode == "accompany":
        lines.append(
            f"reaction time  p50 {_fmt(v['reaction_p50_ms'], ' ms')} · "
            f"p99 {_fmt(v['reaction_p99_ms'], ' ms')}  ({len(figures.reaction_ms)} human "
            "notes fed and answered with a plan)"
        )
    bias = float(np.mean(figures.timing_error_ms)) if len(figures.timing_error_ms) else np.nan
    lines.append(
        f"timing error   p50 {_fmt(v['timing_err_p50_ms'], ' ms')} · "
        f"p99 {_fmt(v['timing_err_p99_ms'], ' ms')}  ({len(figures.timing_error_ms)} "
        f"scheduled notes, mean signed {_fmt(bias, ' ms')})"
    )
    lines.append(
        f"NiCR           {_fmt(v['nicr'])}  (chord fit {_fmt(v['chord_fit'])}, "
        f"melody doubling {_fmt(figures.music['doubling'])})"
    )
    if mode == "call_response":
        lines.append(
            "call/response  answer delay "
            f"{_fmt(figures.music['human_answer_delay_beats'], ' beats')} after the human's "
            f"phrase · overlap with the human {_fmt(figures.music['human_overlap'])}"
        )
    lines.append(
        f"stuck notes    {figures.stuck}  (still sounding once the transport had stopped: "
        f"{figures.sounding_after_stop})"
    )
    lines.append(
        f"AI notes       {figures.planned} scheduled by the engine, {figures.heard} of them "
        "heard on the recorder"
    )
    return "\n".join(lines)


def key_values(figures: Figures) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in figures.values().items())


def write_files(
    out: Path,
    events: np.ndarray,
    figures: Figures,
    timeline: Timeline,
    stop_beat: float,
    piece: Piece,
    header: Sequence[str],
    title: str,
    mode: str,
    notes: Sequence[str] = (),
) -> str:
    """jam.mid, jam.png and report.txt in `out`; returns the summary text."""
    from lkjam.pianoroll import draw

    write_midi(out / "jam.mid", events, conductor=conductor(timeline, stop_beat, piece))
    markers = []
    if timeline.change_beat < stop_beat:
        bar = int(timeline.change_beat // BEATS_PER_BAR) + 1
        text = f"♩={timeline.tempo:.0f} → {timeline.new_tempo:.0f} (bar {bar})"
        markers.append((timeline.change_beat, text))
    draw(events, out / "jam.png", numerator=BEATS_PER_BAR, title=title, markers=markers)
    text = summary_text(figures, header, mode)
    files = "files: jam.mid (tracks human, clip, ai; tempo map with the change), jam.png, "
    files += "engine.log, trace.jsonl"
    wrapped = (
        textwrap.fill(note, 88, initial_indent="- ", subsequent_indent="  ") for note in notes
    )
    definitions = "\n".join([DEFINITIONS, *wrapped])
    report = f"{text}\n\n{definitions}\n\n{files}\nfigures: {key_values(figures)}\n"
    (out / "report.txt").write_text(report, encoding="utf-8")
    return text
