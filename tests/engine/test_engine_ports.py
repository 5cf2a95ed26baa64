"""MIDI ports: backend choice in one place, bounded input, idempotent close, `lkjam ports`."""

from __future__ import annotations

import pytest
import rtmidi
from lkjam.engine import ports
from lkjam.engine.ports import MidiInput, MidiOutput, PortError, choose_backend

from lkjam.jackd import JackServer


def test_backend_comes_from_flag_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Holds whatever rtmidi has compiled in here (CoreMIDI on a Mac): APIs and platform are
    pinned to a Linux rtmidi with ALSA and JACK, whose sequencer is not usable."""
    monkeypatch.setattr(ports.sys, "platform", "linux")
    monkeypatch.setattr(ports, "_alsa_seq_usable", lambda: False)
    compiled = [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK]
    monkeypatch.setattr(ports.rtmidi, "get_compiled_api", lambda: compiled)
    monkeypatch.setenv(ports.ENV_BACKEND, "alsa")
    assert choose_backend() == "alsa"  # the environment over the platform's JACK
    assert choose_backend("jack") == "jack"  # the flag over the environment
    monkeypatch.delenv(ports.ENV_BACKEND)
    assert choose_backend() == "jack"
    with pytest.raises(PortError, match="unknown MIDI backend 'pipewire'"):
        choose_backend("pipewire")
    monkeypatch.setenv(ports.ENV_BACKEND, "pipewire")
    with pytest.raises(PortError, match="unknown MIDI backend 'pipewire'"):
        choose_backend()
    with pytest.raises(PortError, match="'coremidi' is not compiled"):
        choose_backend("coremidi")


@pytest.mark.jack
def test_input_queue_is_bounded_and_counts_what_it_drops(jack_server: JackServer) -> None:
    with MidiInput("lkjam test bounded", "jack", capacity=100) as port:
        for k in range(1000):  # as rtmidi's thread would call it, with nobody consuming
            port._on_message(([0x90, k % 128, 100], 0.0))
        assert len(port.queue) == 100 and port.dropped == 900
        assert port.queue[0][1] == bytes([0x90, 0, 100])
        assert port.wake.is_set()
        port.close()
        port.close()  # idempotent
        assert not port.is_open


@pytest.mark.jack
def test_ports_command_and_missing_port_errors(
    jack_server: JackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with MidiOutput("lkjam test listed", "jack"):
        assert ports.main(["--backend", "jack"]) == 0
    out = capsys.readouterr().out
    assert "backend used: jack (virtual ports)" in out
    assert "lkjam test listed" in out
    with pytest.raises(PortError, match="'nowhere' not found"):
        ports._find(["a:b", "c:d"], "nowhere")
    assert ports._find(["lkjam:lkjam out", "x:y"], "lkjam out") == 0
