"""A fake Ableton Live (the `Live` module plus a driver) for tests and the demo."""
