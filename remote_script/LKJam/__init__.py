"""lkjam: a real-time AI co-performer, as an Ableton Live control surface.

Live imports this package from its Remote Scripts folder and calls `create_instance`.
Standard library plus Live's own `Live` module only; runs on Python 3.7 and 3.11.
"""


def create_instance(c_instance):
    """Live's entry point: build the surface for this Live set."""
    # Imported here so the protocol modules (zmtp, messages) load without `Live`.
    from .surface import LKJam

    return LKJam(c_instance)
