"""Live.Device: a device on a track."""

from . import _lom
from .DeviceParameter import DeviceParameter as _Parameter


@_lom.observable("name", "parameters", "is_active")
class Device(_lom.LomObject):
    def __init__(self, name, class_name="MidiEffect", parameters=None, can_have_chains=False):
        params = [_Parameter("Device On", 1.0, 0.0, 1.0, True), *list(parameters or [])]
        _lom.LomObject.__init__(
            self,
            name=name,
            class_name=class_name,
            class_display_name=class_name,
            parameters=tuple(params),
            can_have_chains=can_have_chains,
            can_have_drum_pads=False,
            is_active=True,
            canonical_parent=None,
        )

    name = _lom.value("name", writable=True)
    class_name = _lom.value("class_name")
    class_display_name = _lom.value("class_display_name")
    parameters = _lom.value("parameters")
    can_have_chains = _lom.value("can_have_chains")
    can_have_drum_pads = _lom.value("can_have_drum_pads")
    is_active = _lom.value("is_active")
    canonical_parent = _lom.value("canonical_parent")

    def _delete(self):
        for parameter in self._values["parameters"]:
            parameter._delete()
        _lom.LomObject._delete(self)
