"""Model files: round trip, and one clear ModelFileError naming the file for each bad file."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from lkjam.engine import model_file
from lkjam.engine.model_file import (
    METADATA_KEY,
    ModelFileError,
    ModelMeta,
    list_styles,
    load_model,
    resolve_style,
    save_model,
    user_dir,
)
from lkjam.training.model import JamGRU, export_tensors
from safetensors.numpy import load_file, save_file

from lkjam import _step


@pytest.fixture(scope="module")
def tensors() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return export_tensors(JamGRU(_step.TOPOLOGIES["tiny"]))


@pytest.fixture
def good(tmp_path: Path, tensors: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "good.safetensors"
    meta = ModelMeta(topology="tiny", style="folk", provenance={"data": "essen", "steps": 10})
    save_model(path, tensors, meta)
    return path


def rewrite_header(src: Path, dst: Path, edit) -> Path:
    """Copies a model file with its JSON header changed by edit(header)."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return dst


def edit_meta(**changes: object):
    def edit(header: dict) -> None:
        meta = json.loads(header["__metadata__"][METADATA_KEY])
        meta.update(changes)
        header["__metadata__"][METADATA_KEY] = json.dumps(meta)

    return edit


def expect_error(path: Path, match: str) -> None:
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_round_trip(good: Path, tensors: dict[str, np.ndarray]) -> None:
    model = load_model(good)
    assert model.path == good and model.step.topology == "tiny"
    assert model.meta == ModelMeta(
        topology="tiny", style="folk", provenance={"data": "essen", "steps": 10}
    )
    assert model.meta.sizes == _step.TOPOLOGIES["tiny"]
    # Plain safetensors reads the same tensors: the file is standard.
    for name, array in load_file(str(good)).items():
        np.testing.assert_array_equal(array, tensors[name])
    np.testing.assert_array_equal(
        model.step.logits()["time"], _step.Step("tiny", tensors).logits()["time"]
    )
    assert not list(good.parent.glob("*.tmp"))  # atomic write leaves no temporary behind


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.safetensors", "no such file")


def test_truncated_files(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    cuts = [(0, "truncated"), (5, "truncated"), (40, "truncated: header"),
            (len(data) - 1, "truncated: tensor"), (len(data) // 2, "truncated")]  # fmt: skip
    for cut, match in cuts:
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        expect_error(path, match)


def test_corrupt_headers(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(data[:8] + b"\xff" * n + data[8 + n :])
    expect_error(garbage, "corrupt header: not valid JSON")
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 60) + data[8:])
    expect_error(huge, "corrupt header")
    bad_range = rewrite_header(
        good, tmp_path / "range.safetensors",
        lambda h: h["heads.time.bias"].update(data_offsets=[0, 3]),
    )  # fmt: skip
    expect_error(bad_range, "heads.time.bias")
    f16 = rewrite_header(
        good, tmp_path / "f16.safetensors", lambda h: h["heads.time.bias"].update(dtype="F16")
    )
    expect_error(f16, "dtype F16")


def test_not_an_lkjam_file(tmp_path: Path, tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(tensors, str(path))
    expect_error(path, "not an lkjam model file")


def test_wrong_topology(good: Path, tmp_path: Path) -> None:
    unknown = rewrite_header(good, tmp_path / "u.safetensors",
                             edit_meta(topology={"name": "huge", "hidden": 4096}))  # fmt: skip
    expect_error(unknown, "topology 'huge' is not compiled")
    sizes = dict(_step.TOPOLOGIES["tiny"], hidden=32)
    mismatch = rewrite_header(good, tmp_path / "m.safetensors",
                              edit_meta(topology={"name": "tiny", **sizes}))  # fmt: skip
    expect_error(mismatch, "differ from compiled")
    # The tiny tensors under the default topology's name: the step names the bad tensor.
    as_default = rewrite_header(good, tmp_path / "d.safetensors",
                                edit_meta(topology={"name": "default",
                                                    **_step.TOPOLOGIES["default"]}))  # fmt: skip
    expect_error(as_default, "tensor 'gru.weight_ih_l0' has shape")


def test_wrong_versions_and_fields(good: Path, tmp_path: Path) -> None:
    enc = rewrite_header(good, tmp_path / "e.safetensors", edit_meta(encoding_version=1))
    expect_error(enc, "event encoding version 1, this lkjam uses 2")
    fmt = rewrite_header(good, tmp_path / "f.safetensors", edit_meta(format_version=9))
    expect_error(fmt, "format version 9")
    typo = rewrite_header(good, tmp_path / "t.safetensors", edit_meta(stlye="x"))
    expect_error(typo, r"unknown metadata field\(s\) \['stlye'\]")


def without_accompaniment(**changes: object):
    def edit(header: dict) -> None:
        meta = json.loads(header["__metadata__"][METADATA_KEY])
        del meta["accompaniment"]
        meta.update(changes)
        header["__metadata__"][METADATA_KEY] = json.dumps(meta)

    return edit


def test_accompaniment_rates_round_trip_and_are_required(
    good: Path, tmp_path: Path, tensors: dict[str, np.ndarray]
) -> None:
    path = tmp_path / "rates.safetensors"
    save_model(path, tensors, ModelMeta(topology="tiny", density=3.5, voices=1.25))
    meta = load_model(path).meta
    assert (meta.density, meta.voices) == (3.5, 1.25)
    # A v1 file has no rates: the error names its encoding, not a missing field.
    v1 = rewrite_header(
        good, tmp_path / "v1.safetensors", without_accompaniment(encoding_version=1)
    )
    expect_error(v1, "event encoding version 1, this lkjam uses 2")
    missing = rewrite_header(good, tmp_path / "m.safetensors", without_accompaniment())
    expect_error(missing, r"missing metadata field\(s\) \['accompaniment'\]")
    bad = edit_meta(accompaniment={"density": -1, "voices": 2})
    expect_error(rewrite_header(good, tmp_path / "b.safetensors", bad), "'accompaniment'")


def test_bad_tensor_values(tmp_path: Path, tensors: dict[str, np.ndarray]) -> None:
    path = tmp_path / "nan.safetensors"
    nan = dict(tensors)
    nan["heads.pitch.weight"] = tensors["heads.pitch.weight"].copy()
    nan["heads.pitch.weight"][0, 0] = np.nan
    save_file(nan, str(path), metadata={METADATA_KEY: ModelMeta(topology="tiny").to_json()})
    expect_error(path, re.escape("'heads.pitch.weight' contains NaN"))
    missing = {k: v for k, v in tensors.items() if k != "gru.bias_hh_l0"}
    with pytest.raises(
        ModelFileError, match=re.escape("not saved: missing tensor 'gru.bias_hh_l0'")
    ):
        save_model(tmp_path / "missing.safetensors", missing, ModelMeta(topology="tiny"))
    assert not (tmp_path / "missing.safetensors").exists()


def test_styles(tmp_path: Path, good: Path) -> None:
    (tmp_path / "jazz.safetensors").write_bytes(good.read_bytes())
    assert "jazz" in list_styles([tmp_path])
    assert resolve_style("jazz", [tmp_path]) == tmp_path / "jazz.safetensors"
    assert resolve_style("default", [tmp_path / "empty"]) == model_file.DEFAULT_MODEL_PATH
    with pytest.raises(ModelFileError, match="no style named 'metal'"):
        resolve_style("metal", [tmp_path])
    with pytest.raises(ValueError, match="style name"):
        resolve_style("../etc/passwd", [tmp_path])


# (platform, environment beyond HOME) -> (data folder, cache folder), under HOME unless absolute.
_USER_DIRS = [
    ("linux", {}, (".local/share/lkjam", ".cache/lkjam")),
    ("linux", {"XDG_DATA_HOME": "/xd", "XDG_CACHE_HOME": "/xc"}, ("/xd/lkjam", "/xc/lkjam")),
    ("darwin", {}, ("Library/Application Support/lkjam", "Library/Caches/lkjam")),
    # XDG moves the cache everywhere, the styles only where XDG is the convention.
    (
        "darwin",
        {"XDG_DATA_HOME": "/xd", "XDG_CACHE_HOME": "/xc"},
        ("Library/Application Support/lkjam", "/xc/lkjam"),
    ),
    ("win32", {}, ("AppData/Roaming/lkjam", "AppData/Local/lkjam")),
    ("win32", {"APPDATA": "/ad", "LOCALAPPDATA": "/lad"}, ("/ad/lkjam", "/lad/lkjam")),
    (
        "win32",
        {"XDG_DATA_HOME": "/xd", "XDG_CACHE_HOME": "/xc"},
        ("AppData/Roaming/lkjam", "/xc/lkjam"),
    ),
]


@pytest.mark.parametrize(("platform", "env", "expected"), _USER_DIRS)
def test_user_dirs_follow_the_platform(
    platform: str,
    env: dict[str, str],
    expected: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_file.sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (user_dir("data"), user_dir("cache")) == tuple(tmp_path / e for e in expected)
