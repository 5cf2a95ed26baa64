"""Shared fixtures: a real, private JACK server for MIDI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lkjam.jackd import JackServer


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A `jackd -d dummy` server named for this test run; JACK_DEFAULT_SERVER points at it."""
    with JackServer(f"lkjam-test-{os.getpid()}") as server:
        yield server
