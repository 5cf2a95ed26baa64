"""Shared fixtures: a real, private JACK server for MIDI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lkjam.jackd import JackServer


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A `jackd -d dummy` server named for this test run; JACK_DEFAULT_SERVER points at it.

    Real-time where allowed, as musicians run JACK: without it, a loaded machine starves
    the process threads, and JACK loses or repeats a client's MIDI between clients. With four
    busy loops on a 2-core machine, the real-engine tests then failed most runs; with it,
    they passed."""
    with JackServer(f"lkjam-test-{os.getpid()}", realtime=True) as server:
        yield server
