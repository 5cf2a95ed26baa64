"""A stand-in for Ableton Live's `Live` module, for tests and the demo.

It offers only names that exist in Live 12.1.11's API (a test checks every public
name against the API dump), so code that passes here calls nothing Live lacks.
"""

from . import Application, Clip, ClipSlot, Device, DeviceParameter, RackDevice, Song, Track

__all__ = [
    "Application",
    "Clip",
    "ClipSlot",
    "Device",
    "DeviceParameter",
    "RackDevice",
    "Song",
    "Track",
]
