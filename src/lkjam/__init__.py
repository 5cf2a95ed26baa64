"""lkjam: a real-time AI co-performer for Ableton Live.

The package is assembled from the top-level folders (see pyproject.toml):
`lkjam.engine` (runtime, no torch), `lkjam.training` (torch), `lkjam._step` (the C++
GRU step), `lkjam.remote_script` (the Live control surface) and `lkjam.installers`.
"""

__version__ = "0.1.0"
