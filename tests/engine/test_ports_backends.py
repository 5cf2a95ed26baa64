"""Each platform's MIDI path, driven through a stand-in for python-rtmidi.

This machine's rtmidi has ALSA and JACK only (and no /dev/snd/seq), so CoreMIDI, ALSA and
WinMM (loopMIDI) are checked here against fakes of rtmidi's API: which backend is chosen,
which API the client is created with, and whether ports are created (virtual) or found by
name. The flag/environment precedence and the real JACK client in
test_engine_ports.py and test_jack_client.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import rtmidi
from lkjam.engine import ports
from lkjam.engine.ports import MidiInput, MidiOutput, PortError, choose_backend

ALL_APIS = [
    rtmidi.API_MACOSX_CORE,
    rtmidi.API_LINUX_ALSA,
    rtmidi.API_UNIX_JACK,
    rtmidi.API_WINDOWS_MM,
]


class FakeMidi:
    """Records what ports.py asks of an rtmidi MidiIn/MidiOut."""

    ports: ClassVar[list[str]] = []  # what get_ports() lists (set per test)
    made: ClassVar[list[FakeMidi]] = []

    def __init__(self, api: int, name: str = "", **options: Any) -> None:
        self.api, self.client, self.options = api, name, options
        self.calls: list[tuple[Any, ...]] = []
        self.callback: Any = None
        self.made.append(self)

    def set_error_callback(self, callback: Any) -> None:
        self.calls.append(("set_error_callback",))

    def get_ports(self) -> list[str]:
        return list(self.ports)

    def open_virtual_port(self, name: str) -> None:
        self.calls.append(("open_virtual_port", name))

    def open_port(self, index: int, name: str) -> None:
        if not 0 <= index < len(self.ports):
            raise rtmidi.InvalidPortError(f"invalid port number: {index}")
        self.calls.append(("open_port", index, name))

    def ignore_types(self, **kinds: bool) -> None:
        self.calls.append(("ignore_types", kinds))

    def set_callback(self, callback: Any) -> None:
        self.callback = callback

    def cancel_callback(self) -> None:
        self.callback = None

    def send_message(self, message: Any) -> None:
        self.calls.append(("send_message", list(message)))

    def close_port(self) -> None:
        self.calls.append(("close_port",))

    def delete(self) -> None:
        self.calls.append(("delete",))

    def opened(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("open_virtual_port", "open_port")]


class FakeMidiIn(FakeMidi):
    pass


class FakeMidiOut(FakeMidi):
    pass


def pretend(
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
    apis: list[int],
    alsa_seq: bool = False,
    environment: str | None = None,
) -> None:
    """Be `platform` with an rtmidi that has `apis` compiled in; JACK (lkjam's own client)
    counts as there when its API is in `apis`."""
    monkeypatch.setattr(ports.sys, "platform", platform)
    monkeypatch.setattr(ports.rtmidi, "get_compiled_api", lambda: list(apis))
    jack = rtmidi.API_UNIX_JACK in apis
    monkeypatch.setattr(ports, "jack_error", lambda: "" if jack else "no libjack")
    monkeypatch.setattr(ports, "_alsa_seq_usable", lambda: alsa_seq)
    if environment is None:
        monkeypatch.delenv(ports.ENV_BACKEND, raising=False)
    else:
        monkeypatch.setenv(ports.ENV_BACKEND, environment)


@pytest.fixture
def fake_rtmidi(monkeypatch: pytest.MonkeyPatch) -> type[FakeMidi]:
    monkeypatch.setattr(FakeMidi, "ports", [])
    monkeypatch.setattr(FakeMidi, "made", [])
    monkeypatch.setattr(ports.rtmidi, "MidiIn", FakeMidiIn)
    monkeypatch.setattr(ports.rtmidi, "MidiOut", FakeMidiOut)
    return FakeMidi


@pytest.mark.parametrize(
    ("platform", "apis", "alsa_seq", "expected"),
    [
        ("darwin", [rtmidi.API_MACOSX_CORE], False, "coremidi"),
        ("darwin", ALL_APIS, True, "coremidi"),  # never ALSA/JACK on a Mac by default
        ("win32", [rtmidi.API_WINDOWS_MM], False, "winmm"),
        ("linux", [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK], True, "alsa"),
        ("linux", [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK], False, "jack"),
        ("linux", [rtmidi.API_UNIX_JACK], True, "jack"),  # ALSA not compiled in
        ("linux", [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK], True, "alsa"),
    ],
)
def test_the_platform_picks_the_default_backend(
    monkeypatch: pytest.MonkeyPatch, platform: str, apis: list[int], alsa_seq: bool, expected: str
) -> None:
    pretend(monkeypatch, platform, apis, alsa_seq)
    assert choose_backend() == expected


def test_linux_without_the_sequencer_or_jack_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend(monkeypatch, "linux", [rtmidi.API_LINUX_ALSA], alsa_seq=False)
    with pytest.raises(PortError, match="no usable MIDI backend"):
        choose_backend()


def test_macos_opens_coremidi_virtual_ports(
    monkeypatch: pytest.MonkeyPatch, fake_rtmidi: type[FakeMidi]
) -> None:
    pretend(monkeypatch, "darwin", [rtmidi.API_MACOSX_CORE])
    with MidiOutput() as out, MidiInput() as inp:
        midi_out, midi_in = fake_rtmidi.made
        assert (out.backend, inp.backend) == ("coremidi", "coremidi")
        assert midi_out.api == midi_in.api == rtmidi.API_MACOSX_CORE
        assert midi_out.client == midi_in.client == "lkjam"
        assert midi_out.opened() == [("open_virtual_port", "lkjam out")]
        assert midi_in.opened() == [("open_virtual_port", "lkjam in")]
        assert not out.timed and out.lead_s == 0.0  # sent when due, nothing early
        # Not JACK: the backend's thread calls back (MIDI clock kept, sysex dropped).
        assert ("ignore_types", {"sysex": True, "timing": False, "active_sense": True}) in (
            midi_in.calls
        )
        midi_in.callback(([0x90, 60, 100], 0.0))
        assert [m for _, m in inp.queue] == [bytes([0x90, 60, 100])] and inp.wake.is_set()
        out.send([0x80, 60, 0])
        assert ("send_message", [0x80, 60, 0]) in midi_out.calls
    assert midi_in.calls[-2:] == midi_out.calls[-2:] == [("close_port",), ("delete",)]
    assert midi_in.callback is None  # cancelled before the port closed


@pytest.mark.parametrize("environment", [None, "alsa"])
def test_linux_opens_alsa_virtual_ports_when_jack_is_not_chosen(
    monkeypatch: pytest.MonkeyPatch, fake_rtmidi: type[FakeMidi], environment: str | None
) -> None:
    apis = [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK]
    pretend(monkeypatch, "linux", apis, alsa_seq=True, environment=environment)
    with MidiOutput("lkjam out") as out, MidiInput("lkjam in") as inp:
        midi_out, midi_in = fake_rtmidi.made
        assert (out.backend, inp.backend) == ("alsa", "alsa")
        assert midi_out.api == midi_in.api == rtmidi.API_LINUX_ALSA
        assert midi_out.opened() == [("open_virtual_port", "lkjam out")]
        assert midi_in.opened() == [("open_virtual_port", "lkjam in")]
        assert midi_in.callback is not None


WINDOWS_PORTS = ["Microsoft GS Wavetable Synth 0", "lkjam out 1", "lkjam in 2"]


def test_windows_opens_the_loopmidi_ports_by_name(
    monkeypatch: pytest.MonkeyPatch, fake_rtmidi: type[FakeMidi]
) -> None:
    """WinMM lists loopMIDI's ports with an index appended; they are found by name."""
    pretend(monkeypatch, "win32", [rtmidi.API_WINDOWS_MM])
    fake_rtmidi.ports = WINDOWS_PORTS
    with MidiOutput() as out, MidiInput() as inp:
        midi_out, midi_in = fake_rtmidi.made
        assert (out.backend, inp.backend) == ("winmm", "winmm")
        assert midi_out.api == midi_in.api == rtmidi.API_WINDOWS_MM
        assert midi_out.opened() == [("open_port", 1, "lkjam out")]
        assert midi_in.opened() == [("open_port", 2, "lkjam in")]


@pytest.mark.parametrize("port", [MidiOutput, MidiInput])
def test_windows_without_the_loopmidi_ports_says_to_create_them(
    monkeypatch: pytest.MonkeyPatch, fake_rtmidi: type[FakeMidi], port: type[Any]
) -> None:
    pretend(monkeypatch, "win32", [rtmidi.API_WINDOWS_MM])
    fake_rtmidi.ports = ["Microsoft GS Wavetable Synth 0"]
    name = "lkjam out" if port is MidiOutput else "lkjam in"
    with pytest.raises(PortError) as error:
        port()
    text = str(error.value)
    assert f"MIDI port {name!r} not found" in text
    assert f"create a port named {name!r} in loopMIDI" in text
    assert "Microsoft GS Wavetable Synth 0" in text  # what was seen instead
    (midi,) = fake_rtmidi.made
    assert midi.opened() == [] and midi.calls[-1] == ("delete",)  # nothing left open


def test_a_virtual_port_the_system_refuses_is_a_port_error(
    monkeypatch: pytest.MonkeyPatch, fake_rtmidi: type[FakeMidi]
) -> None:
    def refuse(self: FakeMidi, name: str) -> None:
        raise rtmidi.SystemError("MIDIDestinationCreate failed")

    pretend(monkeypatch, "darwin", [rtmidi.API_MACOSX_CORE])
    monkeypatch.setattr(FakeMidi, "open_virtual_port", refuse)
    with pytest.raises(PortError, match=r"cannot open MIDI output 'lkjam out' \(coremidi\)"):
        MidiOutput()
    assert fake_rtmidi.made[0].calls[-1] == ("delete",)


@pytest.mark.parametrize(
    ("platform", "api", "used"),
    [
        ("darwin", rtmidi.API_MACOSX_CORE, "backend used: coremidi (virtual ports)"),
        ("win32", rtmidi.API_WINDOWS_MM, "backend used: winmm (by name)"),
    ],
)
def test_the_ports_command_on_each_platform(
    monkeypatch: pytest.MonkeyPatch,
    fake_rtmidi: type[FakeMidi],
    capsys: pytest.CaptureFixture[str],
    platform: str,
    api: int,
    used: str,
) -> None:
    pretend(monkeypatch, platform, [api])
    fake_rtmidi.ports = WINDOWS_PORTS
    assert ports.main([]) == 0
    out = capsys.readouterr().out
    assert used in out and "lkjam in 2" in out
    assert {m.api for m in fake_rtmidi.made} == {api}
