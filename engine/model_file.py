"""The model file: safetensors weights plus JSON metadata, loaded with numpy into the C++ step.

Format (docs/model-file.md): a safetensors file of float32 tensors named as in torch
(`gru.weight_ih_l0`, `heads.time.bias`, ...) whose `__metadata__` holds one key, "lkjam",
a JSON object (see `ModelMeta`). The header is validated here, before any tensor is used, so
a missing, truncated or corrupt file, an unknown topology or a foreign encoding version all
give one `ModelFileError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lkjam import _step

FORMAT_VERSION = 1
METADATA_KEY = "lkjam"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.safetensors"
_MAX_HEADER_BYTES = 16 * 1024 * 1024  # far above any real header; guards against garbage lengths
_STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def user_dir(kind: Literal["data", "cache"]) -> Path:
    """lkjam's folder for the user's files of `kind`: styles are "data", training's parsed
    music and checkpoints "cache". The platform's usual place, or $XDG_DATA_HOME /
    $XDG_CACHE_HOME where XDG is the convention; $XDG_CACHE_HOME moves the cache on every
    platform (tests point it at a temporary folder)."""
    xdg = os.environ.get(f"XDG_{kind.upper()}_HOME")
    if xdg and (kind == "cache" or sys.platform not in ("darwin", "win32")):
        return Path(xdg) / "lkjam"
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / ("Caches" if kind == "cache" else "Application Support") / "lkjam"
    if sys.platform == "win32":
        var, default = ("LOCALAPPDATA", "Local") if kind == "cache" else ("APPDATA", "Roaming")
        return Path(os.environ.get(var, home / "AppData" / default)) / "lkjam"
    return home / (".cache" if kind == "cache" else ".local/share") / "lkjam"


STYLES_DIR = user_dir("data") / "styles"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"model file {os.fspath(path)}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass
class ModelMeta:
    """What a model file says about itself (the JSON under the "lkjam" metadata key)."""

    topology: str = "default"  # a name in lkjam._step.TOPOLOGIES
    sizes: dict[str, int] = field(default_factory=dict)  # layer/head sizes; {} = compiled sizes
    style: str = "default"
    provenance: dict[str, Any] = field(default_factory=dict)  # data, stages, steps, metrics
    # The accompaniment the model learned, which Density 0.5 asks of it: AI onsets per beat
    # and AI notes per onset time (docs/event-stream.md, "Conditioning").
    density: float = 2.0
    voices: float = 2.0
    format_version: int = FORMAT_VERSION
    encoding_version: int = _step.ENCODING_VERSION

    def __post_init__(self) -> None:
        if not self.sizes and self.topology in _step.TOPOLOGIES:
            self.sizes = dict(_step.TOPOLOGIES[self.topology])

    def to_json(self) -> str:
        data = asdict(self)
        data["topology"] = {"name": self.topology, **self.sizes}
        data["accompaniment"] = {"density": data.pop("density"), "voices": data.pop("voices")}
        del data["sizes"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        """Parses the metadata JSON; ValueError naming the field on anything unexpected."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("metadata must be a JSON object")
        known = {"format_version", "encoding_version", "topology", "style", "provenance"}
        known |= {"accompaniment"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown metadata field(s) {unknown}")
        optional = {"provenance"}
        if data.get("encoding_version") == 1:  # no conditioning yet: let the version check say so
            optional.add("accompaniment")
        missing = sorted(known - set(data) - optional)
        if missing:
            raise ValueError(f"missing metadata field(s) {missing}")
        topo = data["topology"]
        if not isinstance(topo, dict) or not isinstance(topo.get("name"), str):
            raise ValueError("metadata field 'topology' must be an object with a 'name'")
        sizes = {k: v for k, v in topo.items() if k != "name"}
        if not all(isinstance(v, int) for v in sizes.values()):
            raise ValueError("metadata field 'topology' sizes must be integers")
        for name in ("format_version", "encoding_version"):
            if not isinstance(data[name], int):
                raise ValueError(f"metadata field '{name}' must be an integer")
        if not isinstance(data["style"], str):
            raise ValueError("metadata field 'style' must be a string")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise ValueError("metadata field 'provenance' must be an object")
        accompaniment = data.get("accompaniment", {"density": cls.density, "voices": cls.voices})
        rates = [
            accompaniment.get(k) if isinstance(accompaniment, dict) else None
            for k in ("density", "voices")
        ]
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 16 for v in rates
        ):
            raise ValueError(
                "metadata field 'accompaniment' must be an object of 'density' and 'voices', "
                "numbers in 0..16"
            )
        return cls(
            topology=topo["name"],
            sizes=sizes,
            style=data["style"],
            provenance=provenance,
            density=float(rates[0]),  # type: ignore[arg-type]
            voices=float(rates[1]),  # type: ignore[arg-type]
            format_version=data["format_version"],
            encoding_version=data["encoding_version"],
        )


@dataclass(frozen=True)
class LoadedModel:
    step: _step.Step
    meta: ModelMeta
    path: Path


def _check_meta(path: Path, meta: ModelMeta) -> None:
    if meta.format_version != FORMAT_VERSION:
        raise ModelFileError(
            path, f"format version {meta.format_version}, this lkjam reads {FORMAT_VERSION}"
        )
    if meta.encoding_version != _step.ENCODING_VERSION:
        raise ModelFileError(
            path,
            f"event encoding version {meta.encoding_version}, this lkjam uses "
            f"{_step.ENCODING_VERSION}; retrain the model with this version",
        )
    if meta.topology not in _step.TOPOLOGIES:
        raise ModelFileError(
            path,
            f"topology '{meta.topology}' is not compiled into lkjam._step "
            f"(compiled: {', '.join(sorted(_step.TOPOLOGIES))})",
        )
    compiled = dict(_step.TOPOLOGIES[meta.topology])
    if meta.sizes != compiled:
        raise ModelFileError(
            path, f"topology '{meta.topology}' sizes {meta.sizes} differ from compiled {compiled}"
        )


def read_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], ModelMeta]:
    """Reads and validates a model file without building a step: (tensors, meta)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(path, "no such file") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read ({exc.strerror})") from None

    if len(data) < 8:
        raise ModelFileError(path, f"truncated: {len(data)} bytes, not even a header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES:
        raise ModelFileError(path, f"corrupt header: implausible header length {header_len}")
    if 8 + header_len > len(data):
        raise ModelFileError(
            path, f"truncated: header needs {8 + header_len} bytes, file has {len(data)}"
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(path, "corrupt header: not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelFileError(path, "corrupt header: not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        raise ModelFileError(path, f"no '{METADATA_KEY}' metadata: not an lkjam model file")
    try:
        meta = ModelMeta.from_json(metadata[METADATA_KEY])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"corrupt metadata: {exc}") from None
    _check_meta(path, meta)

    body = memoryview(data)[8 + header_len :]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            shape = [int(d) for d in shape]
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(path, f"corrupt header: bad entry for tensor '{name}'") from None
        if dtype != "F32":
            raise ModelFileError(path, f"tensor '{name}' has dtype {dtype}, expected F32")
        count = math.prod(shape)
        if min(shape, default=0) < 0 or begin < 0 or end - begin != 4 * count:
            raise ModelFileError(
                path,
                f"corrupt header: tensor '{name}' byte range {begin}..{end}"
                f" does not hold shape {shape}",
            )
        if end > len(body):
            raise ModelFileError(
                path, f"truncated: tensor '{name}' ends at data byte {end}, data has {len(body)}"
            )
        tensors[name] = np.frombuffer(body, dtype="<f4", count=count, offset=begin).reshape(shape)
    return {k: v.copy() for k, v in tensors.items()}, meta


def load_model(path: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Loads a model file (default: the shipped model) into a ready `lkjam._step.Step`."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    tensors, meta = read_tensors(path)
    try:
        step = _step.Step(meta.topology, tensors)
    except ValueError as exc:  # missing, misshaped or non-finite tensor
        raise ModelFileError(path, str(exc)) from None
    return LoadedModel(step=step, meta=meta, path=path)


def save_model(
    path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray], meta: ModelMeta
) -> None:
    """Writes a model file atomically, after checking that the step accepts the tensors."""
    from safetensors.numpy import save_file

    path = Path(path)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    _check_meta(path, meta)
    try:
        _step.Step(meta.topology, arrays)
    except ValueError as exc:
        raise ModelFileError(path, f"not saved: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(arrays, tmp, metadata={METADATA_KEY: meta.to_json()})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_style_name(name: str) -> None:
    if not _STYLE_NAME.match(name):
        raise ValueError(f"style name {name!r} must be letters, digits, '_', '.' or '-'")


def list_styles(dirs: Iterable[str | os.PathLike[str]] | None = None) -> list[str]:
    """Style names available: "default" (if shipped) plus `<style>.safetensors` in `dirs`."""
    names = {"default"} if DEFAULT_MODEL_PATH.exists() else set()
    for d in [STYLES_DIR] if dirs is None else dirs:
        directory = Path(d)
        if directory.is_dir():
            names.update(
                p.stem for p in directory.glob("*.safetensors") if _STYLE_NAME.match(p.stem)
            )
    return sorted(names)


def resolve_style(name: str, dirs: Iterable[str | os.PathLike[str]] | None = None) -> Path:
    """The model file of a style: a user style in `dirs` (default STYLES_DIR) wins over the
    shipped default."""
    _check_style_name(name)
    search = [Path(d) for d in ([STYLES_DIR] if dirs is None else dirs)]
    for directory in search:
        candidate = directory / f"{name}.safetensors"
        if candidate.exists():
            return candidate
    if name == "default":
        return DEFAULT_MODEL_PATH
    raise ModelFileError(
        search[0] / f"{name}.safetensors" if search else Path(f"{name}.safetensors"),
        f"no style named '{name}' (looked in {', '.join(map(str, search)) or 'nowhere'})",
    )
