"""A piano-roll picture of an event stream (PNG), for `lkjam accompany --png` and the demo.

matplotlib is imported only when drawing: the engine must start without it (it comes with
the `train` extras).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lkjam.engine.events import ROLES, note_ends

ROLE_COLOURS = {"human": "#1f77b4", "clip": "#7f7f7f", "ai": "#ff7f0e"}  # blue, grey, orange


class PianoRollError(RuntimeError):
    """The picture cannot be drawn (matplotlib missing, or an unwritable path)."""


def draw(
    events: np.ndarray,
    path: str | Path,
    *,
    numerator: int = 4,
    denominator: int = 4,
    title: str = "",
    markers: Sequence[tuple[float, str]] = (),
) -> None:
    """Draw `events` (EVENT_DTYPE, any roles) to the PNG `path`: one colour per role, a beat
    grid, heavier bar lines numbered from 1, and labelled vertical `markers` (beat, text),
    e.g. tempo changes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import to_rgba
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise PianoRollError(
            "drawing a piano roll needs matplotlib: pip install 'lkjam[train]'"
        ) from None

    bar = 4.0 * numerator / denominator  # beats per bar
    ends = note_ends(events)
    last = float(ends.max()) if len(events) else bar
    total = max(bar, math.ceil(last / bar) * bar)
    low = int(events["pitch"].min()) - 2 if len(events) else 58
    high = int(events["pitch"].max()) + 2 if len(events) else 74

    # About 0.12 inch per beat, so a bar of eighth notes stays readable; capped for long songs.
    width = float(np.clip(total * 0.12 + 1.5, 8, 48))
    height = float(np.clip((high - low) * 0.09 + 1.5, 3.5, 10))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    legend = []
    for role, name in enumerate(ROLES):
        select = events["role"] == role
        if not select.any():
            continue
        starts = events["beat"][select].astype(np.float64)
        lengths = np.maximum(ends[select] - starts, 1 / 32)
        pitches = events["pitch"][select].astype(np.float64)
        # Louder notes are more opaque: colour (N, 4) RGBA.
        colour = np.tile(to_rgba(ROLE_COLOURS[name]), (len(starts), 1))
        colour[:, 3] = np.clip(0.35 + events["vel"][select] / 127 * 0.65, 0.35, 1.0)
        # One collection per role: far faster than a patch per note on long songs.
        x0, x1 = starts, starts + lengths
        y0, y1 = pitches - 0.4, pitches + 0.4
        boxes = np.stack(
            [
                np.stack([x0, y0], 1),
                np.stack([x0, y1], 1),
                np.stack([x1, y1], 1),
                np.stack([x1, y0], 1),
            ],
            axis=1,
        )  # (N, 4 corners, xy)
        ax.add_collection(
            PolyCollection(
                list(boxes), facecolors=colour, edgecolors="black", linewidths=0.3, zorder=2
            )
        )
        legend.append(Patch(color=ROLE_COLOURS[name], label=f"{name} ({int(select.sum())})"))

    beats = np.arange(0.0, total + 1e-9, 1.0)
    on_bar = np.abs(beats / bar - np.rint(beats / bar)) < 1e-9
    ax.vlines(beats[~on_bar], low, high + 2, colors="#d0d0d0", linewidth=0.4, zorder=0)
    ax.vlines(beats[on_bar], low, high + 2, colors="black", linewidth=0.8, zorder=0)
    for beat, text in markers:
        ax.axvline(beat, color="#d62728", linestyle="--", linewidth=1.2)
        ax.text(beat, high + 0.3, f" {text}", color="#d62728", fontsize=8, va="bottom")

    bar_starts = np.arange(0.0, total, bar)
    step = max(1, len(bar_starts) // 40)  # at most ~40 bar numbers
    ax.set_xticks(bar_starts[::step], [str(i + 1) for i in range(0, len(bar_starts), step)])
    cs = [p for p in range(low, high + 1) if p % 12 == 0]
    ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    ax.set_xlim(0, total)
    ax.set_ylim(low, high + 2)
    ax.set_xlabel(f"bar ({numerator}/{denominator}; thin lines are beats)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(handles=legend, loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    try:
        fig.savefig(Path(path))
    except OSError as exc:
        raise PianoRollError(f"{path}: cannot write ({exc.strerror or exc})") from None
