"""Offline accompaniment: the engine's decoding rule (`lkjam.engine.decoder`), run as fast
as the step allows, with song time standing in for the wall clock.

Used by `lkjam accompany` (MIDI files), the engine's `accompany` request (clip notes ->
AI clip notes) and `lkjam eval`:

1. Input events (human, clip) are fed in stream order; after each the decoder draws a plan.
2. While the plan's beat comes before the next input event (an AI note at the same beat as
   an input comes after it, as in stream order), the plan is committed and the next drawn.
   A chord is several shift-0 notes.
3. Otherwise the next input is fed and the plan is redrawn.

After the last input, notes keep coming until a WAIT or `end_beat`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lkjam.engine.decoder import MAX_NOTES_PER_BEAT, Decoder, Planner
from lkjam.engine.events import EVENT_DTYPE, note_ends
from lkjam.engine.model_file import ModelMeta

from lkjam._step import ROLE_AI, ROLE_CLIP, ROLE_HUMAN

EPS = 1e-6  # beats: onsets closer than this are "the same beat"


def accompany(
    step: Planner,
    events: np.ndarray,
    *,
    mode: str = "accompany",
    density: float = 0.5,
    voices: float = 0.0,
    own_density: float = ModelMeta.density,
    own_voices: float = ModelMeta.voices,
    human_roles: Sequence[int] = (ROLE_HUMAN, ROLE_CLIP),
    temperature: float = 1.0,
    top_p: float = 0.95,
    wait_bias: float = 0.0,
    seed: int = 0,
    numerator: int = 4,
    denominator: int = 4,
    scale: tuple[int, Sequence[int]] | None = None,
    pitch_mask: np.ndarray | None = None,
    chord_lock: bool = True,
    yielding: bool = True,
    max_notes_per_beat: int = MAX_NOTES_PER_BEAT,
    end_beat: float | None = None,
) -> np.ndarray:
    """The AI part for `events`, as a sorted EVENT_DTYPE array of role-ai notes.

    step: a Step (or any Planner); it is reset, seeded and re-configured here, so don't
        pass one that is playing live.
    events: EVENT_DTYPE input; events whose role is in `human_roles` are fed (with their
        roles and durations), any others (e.g. old AI notes) are ignored.
    mode: "accompany" (play along) or "call_response" (answer the human's phrases).
    density: the Density control, 0..1; 0.5 asks for the model's own rate, `own_density`
        AI onsets per beat (its ModelMeta).
    voices: AI notes per onset asked for; 0 = the model's own, `own_voices`.
    temperature, top_p, wait_bias: sampling, as `Step.predict`.
    seed: the step's RNG seed: the same inputs and seed give the same output.
    numerator, denominator: meter (bar phase features).
    scale: (root pitch class, intervals) to condition on a known key, as Live's scale.
    pitch_mask: (128,) bool, the pitches the AI may play (e.g. `scale_mask(...)`).
    chord_lock: AI pitches make a chord with what sounds (`Decoder.plan`).
    yielding: in call and response, answers wait for the human to let go (`Decoder.plan`).
    max_notes_per_beat: the runaway bound of `Decoder.commit`.
    end_beat: no AI note starts at or after it; default one bar after the input ends.
    """
    inputs = events[np.isin(events["role"], np.asarray(human_roles, dtype=np.uint8))]
    inputs = inputs[np.lexsort((inputs["pitch"], inputs["role"], inputs["beat"]))]
    if end_beat is None:
        last_end = float(note_ends(inputs).max()) if len(inputs) else 0.0
        end_beat = last_end + 4.0 * numerator / denominator

    step.seed(seed)
    step.set_meter(numerator, denominator)
    if scale is None:
        step.clear_scale()
    else:
        step.set_scale(int(scale[0]), [int(i) for i in scale[1]])
    decoder = Decoder(
        step, own_density=own_density, own_voices=own_voices, max_notes_per_beat=max_notes_per_beat
    )
    decoder.lock_scale(pitch_mask)
    decoder.temperature, decoder.top_p = temperature, top_p
    decoder.chord_lock, decoder.yielding = chord_lock, yielding
    decoder.restart()
    decoder.condition(mode, density, voices)

    beats = inputs["beat"].astype(np.float64).tolist()
    durs = inputs["dur"].astype(np.float64).tolist()
    pitches = inputs["pitch"].tolist()
    vels = inputs["vel"].tolist()
    roles = inputs["role"].tolist()

    out: list[tuple[float, float, int, int]] = []  # (beat, dur, pitch, velocity)
    for k in range(len(beats) + 1):
        limit = min(beats[k], end_beat) - EPS if k < len(beats) else end_beat - EPS
        while (plan := decoder.plan(wait_bias)) is not None and plan.beat < limit:
            note = decoder.commit()
            if note is not None:
                out.append((note.beat, note.duration, note.pitch, note.velocity))
        if k < len(beats):
            decoder.feed(beats[k], roles[k], pitches[k], vels[k], durs[k])

    result = np.zeros(len(out), dtype=EVENT_DTYPE)
    if out:
        table = np.array(out, dtype=np.float64)
        result["beat"] = table[:, 0]
        result["dur"] = table[:, 1]
        result["pitch"] = table[:, 2]
        result["vel"] = table[:, 3]
        result["role"] = ROLE_AI
    return result[np.lexsort((result["pitch"], result["beat"]))]
