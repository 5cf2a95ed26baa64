"""JamGRU: the PyTorch reference of the C++ step (cpp_step/model.hpp).

Same maths, same parameter names: features (B, T, F) -> stacked GRU -> four linear heads
that describe the next AI event. `export_tensors` gives the arrays a model file stores and
`lkjam._step.Step` loads, so training and the real-time step run the very same weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

HEADS = ("time", "pitch", "velocity", "duration")
TOPOLOGY_KEYS = ("features", "hidden", "layers", *HEADS)


class JamGRU(nn.Module):
    """A GRU over event features with one classifier head per output of the next AI event.

    `topology` is a dict like `lkjam._step.TOPOLOGIES["default"]`: features, hidden, layers
    and the class counts of the time, pitch, velocity and duration heads.
    """

    def __init__(self, topology: Mapping[str, int]) -> None:
        super().__init__()
        missing = [k for k in TOPOLOGY_KEYS if k not in topology]
        unknown = [k for k in topology if k not in TOPOLOGY_KEYS]
        if missing or unknown:
            raise ValueError(f"topology: missing keys {missing}, unknown keys {unknown}")
        self.topology = {k: int(topology[k]) for k in TOPOLOGY_KEYS}
        hidden = self.topology["hidden"]
        self.gru = nn.GRU(
            self.topology["features"], hidden, self.topology["layers"], batch_first=True
        )
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, self.topology[name]) for name in HEADS})

    def forward(
        self, features: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """features (B, T, F), h0 (layers, B, H) or None -> ({head: (B, T, C)}, h (layers, B, H))

        The logits at step t describe the next AI event after event t.
        """
        out, h = self.gru(features, h0)  # out (B, T, H): the top layer after each event
        return {name: head(out) for name, head in self.heads.items()}, h


def export_tensors(model: JamGRU) -> dict[str, np.ndarray]:
    """The model's parameters as float32 arrays under their torch names (copies, not views)."""
    return {
        name: t.detach().cpu().to(torch.float32).numpy().copy()
        for name, t in model.state_dict().items()
    }


def import_tensors(model: JamGRU, tensors: Mapping[str, np.ndarray]) -> None:
    """Loads arrays from `export_tensors` (or a model file) into `model`; strict on names."""
    state = {name: torch.from_numpy(np.asarray(a, dtype=np.float32)) for name, a in tensors.items()}
    model.load_state_dict(state, strict=True)
