"""Live.RackDevice: a rack (instrument, MIDI effect or audio effect rack) with macros."""

from . import _lom
from .Device import Device as _Device
from .DeviceParameter import DeviceParameter as _Parameter


@_lom.observable("name", "parameters", "is_active", "visible_macro_count")
class RackDevice(_Device):
    def __init__(self, name, macro_values=(), class_name="MidiEffectGroupDevice"):
        values = list(macro_values) + [0.0] * (8 - len(macro_values))
        macros = [_Parameter("Macro %d" % (i + 1), v) for i, v in enumerate(values)]
        _Device.__init__(self, name, class_name, macros, can_have_chains=True)
        self._values["visible_macro_count"] = 8

    visible_macro_count = _lom.value("visible_macro_count")
