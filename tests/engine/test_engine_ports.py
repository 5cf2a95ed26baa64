"""MIDI ports: backend choice in one place, bounded input, idempotent close, `lkjam ports`."""

from __future__ import annotations

import pytest
import rtmidi
from lkjam.engine import ports
from lkjam.engine.ports import JackClient, PortError, choose_backend

from lkjam.jackd import JackServer


def test_backend_comes_from_flag_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Holds whatever rtmidi has compiled in here (CoreMIDI on a Mac): APIs and platform are
    pinned to a Linux rtmidi with ALSA, whose sequencer is not usable, and a libjack."""
    monkeypatch.setattr(ports.sys, "platform", "linux")
    monkeypatch.setattr(ports, "_alsa_seq_usable", lambda: False)
    monkeypatch.setattr(ports, "jack_error", lambda: "")
    compiled = [rtmidi.API_LINUX_ALSA]
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
    with pytest.raises(PortError, match="'coremidi' cannot be used here: it is not compiled"):
        choose_backend("coremidi")
    monkeypatch.setattr(ports, "jack_error", lambda: "libjack.so.0 is not installed")
    with pytest.raises(PortError, match=r"'jack' cannot be used here: libjack\.so\.0 is not"):
        choose_backend("jack")


@pytest.mark.jack
def test_ports_command_and_missing_port_errors(
    jack_server: JackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with JackClient(output="lkjam test listed"):
        assert ports.main(["--backend", "jack"]) == 0
    out = capsys.readouterr().out
    assert "backend used: jack (virtual ports)" in out
    assert "lkjam test listed" in out
    with pytest.raises(PortError, match="'nowhere' not found"):
        ports._find(["a:b", "c:d"], "nowhere")
    assert ports._find(["lkjam:lkjam out", "x:y"], "lkjam out") == 0
