"""Live.DeviceParameter: a device parameter (a rack macro, here)."""

from . import _lom


@_lom.observable("value", "name")
class DeviceParameter(_lom.LomObject):
    def __init__(self, name, value=0.0, min=0.0, max=127.0, is_quantized=False):
        _lom.LomObject.__init__(
            self,
            name=name,
            original_name=name,
            value=float(value),
            min=float(min),
            max=float(max),
            default_value=float(min),
            is_quantized=is_quantized,
            is_enabled=True,
        )

    name = _lom.value("name")
    original_name = _lom.value("original_name")
    value = _lom.value("value", writable=True)
    min = _lom.value("min")
    max = _lom.value("max")
    default_value = _lom.value("default_value")
    is_quantized = _lom.value("is_quantized")
    is_enabled = _lom.value("is_enabled")
