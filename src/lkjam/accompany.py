"""`lkjam accompany IN.mid -o OUT.mid`: accompany a MIDI file offline with the engine's step.

The human part is one track of IN.mid (`--human-track`, else a track named "human", else
the top voice); other note tracks are fed as clips. The AI part comes from
`lkjam.engine.offline.accompany`, the real-time decoding rule run as fast as the step
allows. OUT.mid keeps IN.mid's tempo map and meter, with tracks human, clip (if any), ai.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import mido
import numpy as np

from lkjam import metrics
from lkjam.engine.events import ROLES
from lkjam.engine.keys import parse_key
from lkjam.engine.midi_file import MidiFileError, read_midi, write_midi
from lkjam.engine.model_file import ModelFileError, load_model, resolve_style
from lkjam.engine.offline import accompany


def tempo_markers(conductor: Sequence[tuple[float, mido.MetaMessage]]) -> list[tuple[float, str]]:
    """(beat, "♩=BPM") for every tempo change after the first tempo."""
    tempos = [(beat, msg.tempo) for beat, msg in conductor if msg.type == "set_tempo"]
    return [
        (beat, f"♩={mido.tempo2bpm(tempo):.0f}")
        for i, (beat, tempo) in enumerate(tempos)
        if i > 0 and tempo != tempos[i - 1][1]
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lkjam accompany", description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path, metavar="IN.mid")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mid")
    p.add_argument(
        "--human-track",
        type=int,
        default=None,
        metavar="N",
        help="track index (0-based; in a one-track file with several channels: the "
        "channel) of the human part; default: a track named 'human', else the top voice",
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument("--style", default=None, help="a style name (see `lkjam train --style`)")
    model.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="FILE",
        help="a model file (.safetensors); default: the shipped model",
    )
    p.add_argument(
        "--mode",
        choices=("accompany", "call_response"),
        default="accompany",
        help="accompany the human part, or answer its phrases (default: accompany)",
    )
    p.add_argument(
        "--density",
        type=float,
        default=0.5,
        help="0..1: how busy the AI plays; 0.5 = the model's own rate (default)",
    )
    p.add_argument(
        "--voices",
        type=float,
        default=0.0,
        help="AI notes per onset: 1 = lines and arpeggios, 3-4 = block chords; "
        "0 = the model's own (default)",
    )
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--key",
        default=None,
        help="condition on this key, e.g. Am or Eb ('none': no key); "
        "default: the file's key signature, if any",
    )
    p.add_argument("--png", action="store_true", help="also draw OUT.png, a piano roll")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()

    def fail(message: str) -> int:
        print(f"lkjam accompany: {message}", file=sys.stderr)
        return 2

    try:
        song = read_midi(args.input, args.human_track)
    except MidiFileError as exc:
        return fail(str(exc))
    try:
        path = args.model if args.model is not None else resolve_style(args.style or "default")
        model = load_model(path)
    except (ModelFileError, ValueError) as exc:
        return fail(str(exc))
    key_text = song.key if args.key is None else args.key
    try:
        scale = None if key_text in (None, "none") else parse_key(key_text)
    except ValueError as exc:
        return fail(str(exc))

    if not 0.0 <= args.density <= 1.0:
        return fail(f"--density must be in 0..1 (got {args.density})")
    if not 0.0 <= args.voices <= 8.0:
        return fail(f"--voices must be in 0..8 (got {args.voices})")
    try:
        ai = accompany(
            model.step,
            song.events,
            mode=args.mode,
            density=args.density,
            voices=args.voices,
            own_density=model.meta.density,
            own_voices=model.meta.voices,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            numerator=song.numerator,
            denominator=song.denominator,
            scale=scale,
        )
    except ValueError as exc:  # a bad sampling option, named by the step
        return fail(str(exc))
    merged = np.concatenate([song.events, ai])
    merged = merged[np.lexsort((merged["pitch"], merged["role"], merged["beat"]))]
    try:
        write_midi(
            args.output, merged, ticks_per_beat=song.ticks_per_beat, conductor=song.conductor
        )
    except MidiFileError as exc:
        return fail(str(exc))
    elapsed = time.perf_counter() - started

    counts = {name: int(np.sum(merged["role"] == i)) for i, name in enumerate(ROLES)}
    print(
        f"{args.output}: human {counts['human']}, clip {counts['clip']}, ai {counts['ai']} notes "
        f"(human {song.part_unit} {song.human_track}, model {model.path.name}, seed {args.seed}, "
        f"key {key_text or 'unknown'}) in {elapsed:.2f} s"
    )
    shown = ("nicr", "chord_fit", "doubling", "pc_entropy")  # accompaniment, not call/response
    print(" ".join(f"{k}={v:.3f}" for k, v in metrics.summary(merged).items() if k in shown))
    if args.png:
        from lkjam.pianoroll import PianoRollError, draw

        png = args.output.with_suffix(".png")
        try:
            draw(
                merged,
                png,
                numerator=song.numerator,
                denominator=song.denominator,
                title=f"{args.input.name} accompanied by {model.path.name} (seed {args.seed})",
                markers=tempo_markers(song.conductor),
            )
        except PianoRollError as exc:
            return fail(str(exc))
        print(f"{png}: piano roll")
    return 0
