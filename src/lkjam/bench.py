"""Benchmarks that print figures (never timed assertions): `python -m lkjam.bench WHAT`.

step    µs per cpp_step call vs a PyTorch eager step, and mallocs per step
engine  note-in -> note-out latency and timing error through JACK ports
music   musicianship on hand-made tunes: coverage, chord fit, seeds, density, call/response
style   train a style on a generated folder, then check it plays that texture on the tunes
"""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "step": "lkjam.training.bench_step",
    "engine": "lkjam.bench_engine",
    "music": "lkjam.bench_music",
    "style": "lkjam.stylegen",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHES:
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHES[argv[0]])
    result: int = module.main(argv[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
