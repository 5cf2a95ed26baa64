"""The controls: macros of a rack named `lkjam` on the AI track, read with listeners.

Macro (1-based)  control       range
1                mode          off | accompany | call_response (thirds of the dial)
2                temperature   0.1 .. 2.0
3                density       0.0 .. 1.0
4                style         index into the engine's style list (from `welcome`)
5                turn_bars     1 .. 16
6                cycle_bars    0 .. 32 (0: the AI answers when the human's phrase ends)
7                top_p         0.5 .. 1.0
8                accompany     turning it past the middle accompanies the selected clip

Without the rack no `controls` are sent and the engine keeps its own settings (its
command line). Style is sent only once the engine has listed its styles.
"""

from typing import Any, Callable, Dict, List, Optional

from .listeners import ListenerRegistry
from .protocol_table import MODES  # the mode dial's thirds, in the table's order

RACK_NAME = "lkjam"


def find_rack(devices: Any) -> Optional[Any]:
    """The first rack whose name is `lkjam` (any case, surrounding spaces ignored)."""
    for device in devices:
        if device.can_have_chains and str(device.name).strip().lower() == RACK_NAME:
            return device
    return None


def _scale(low: float, high: float) -> Callable[[float], float]:
    return lambda x: round(low + (high - low) * x, 4)


def _steps(low: int, high: int) -> Callable[[float], int]:
    return lambda x: round(low + (high - low) * x)


# (name, mapping from the macro's 0..1 position); macro 1 (mode) and 4 (style) are special.
_MACROS = (
    ("mode", None),
    ("temperature", _scale(0.1, 2.0)),
    ("density", _scale(0.0, 1.0)),
    ("style", None),
    ("turn_bars", _steps(1, 16)),
    ("cycle_bars", _steps(0, 32)),
    ("top_p", _scale(0.5, 1.0)),
)
ACCOMPANY_MACRO = 8


class ControlsHandler(object):
    """Listens to the rack's macros; `values()` maps them to the `controls` message."""

    def __init__(self, rack: Any, registry: ListenerRegistry) -> None:
        self.rack = rack
        self.dirty = True
        self._registry = registry
        self._macros: List[Any] = list(rack.parameters)[1:9]  # parameter 0 is "Device On"
        for macro in self._macros:
            registry.add(self, macro, "value", self._changed)
        self._trigger_armed = self._position(ACCOMPANY_MACRO) < 0.5
        self._trigger_fired = False

    def _changed(self) -> None:
        self.dirty = True
        # Edge detection happens here, not in the tick: a quick flick within 100 ms counts.
        if self._position(ACCOMPANY_MACRO) >= 0.5:
            if self._trigger_armed:
                self._trigger_fired = True
            self._trigger_armed = False
        else:
            self._trigger_armed = True

    def close(self) -> None:
        self._registry.remove_owner(self)

    def take_trigger(self) -> bool:
        """True once per turn of the accompany macro past its middle."""
        fired, self._trigger_fired = self._trigger_fired, False
        return fired

    def part(self) -> str:
        """The clip part macro 8 asks for: an answer in call and response, else an
        accompaniment."""
        return "call_response" if self.values([]).get("mode") == "call_response" else "accompany"

    def _position(self, number: int) -> float:
        """Macro `number` (1-based) as 0..1; 0 when the rack has fewer macros."""
        if number > len(self._macros):
            return 0.0
        macro = self._macros[number - 1]
        span = float(macro.max) - float(macro.min)
        return (float(macro.value) - float(macro.min)) / span if span > 0 else 0.0

    def values(self, styles: List[str]) -> Dict[str, Any]:
        controls: Dict[str, Any] = {}
        for number, (name, mapping) in enumerate(_MACROS, 1):
            if number > len(self._macros):
                break
            x = min(1.0, max(0.0, self._position(number)))
            if name == "mode":
                controls[name] = MODES[min(len(MODES) - 1, int(x * len(MODES)))]
            elif name == "style":
                if styles:
                    controls[name] = styles[round(x * (len(styles) - 1))]
            else:
                assert mapping is not None
                controls[name] = mapping(x)
        return controls
