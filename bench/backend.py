"""The backend contract and its registry.

A backend turns the float reference model into a deployable artifact (files on disk), loads it into
a session, and runs batches. The runner only ever talks to this interface, so every backend is timed,
sized and evaluated the same way. Backends come from the `segbench.backends` entry-point group, so a
separate package can add one without touching this repository (see `Backend` for the whole contract).
"""

from __future__ import annotations

import dataclasses
import time
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from bench.errors import UsageError, unknown_name

if TYPE_CHECKING:  # torch stays out of processes that only run an ONNX artifact
    from torch import nn

    from bench.gradcam.records import GradcamMaps, GradcamRequest

ENTRY_POINT_GROUP = "segbench.backends"
# Keys of the artifact metadata that the harness owns: a backend's `prepare` may set "coverage"
# (an `OpCoverage`) and "notes" (str); "options", "key" and "prepare_s" are written by the cache.
RESERVED_META_KEYS = ("coverage", "notes", "options", "key", "prepare_s")

OptionsT = TypeVar("OptionsT", bound="BackendOptions")


@dataclass(frozen=True)
class BackendOptions:
    """A backend's options: subclass as a frozen dataclass whose fields have defaults.

    Field types say what a value may be: `Literal[...]` (one of the listed strings), `bool` (true or
    false), `int`, or `str` (anything). `--option BACKEND.KEY=VALUE` strings are parsed once, in the
    parent, before any work; `check` adds rules that involve several fields.
    """

    @classmethod
    def parse(cls: type[OptionsT], backend: str, given: Mapping[str, str]) -> OptionsT:
        """The options from strings (defaults for the rest); unknown names and bad values are usage errors."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {}
        for key, text in given.items():
            if key not in names:
                raise UsageError(
                    f"backend '{backend}' has no option '{key}'; valid options: {', '.join(sorted(names)) or 'none'}"
                )
            values[key] = _parse_value(backend, key, str(text), hints[key])
        options = cls(**values)
        if problem := options.check():
            raise UsageError(f"{backend}: {problem}")
        return options

    @classmethod
    def of(cls: type[OptionsT], options: BackendOptions) -> OptionsT:
        """`options` as this class (a backend reading its own options back from a context)."""
        if not isinstance(options, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(options).__name__}")
        return options

    @classmethod
    def choices(cls) -> dict[str, tuple[str, ...]]:
        """Option name -> allowed values, for the options that have a fixed set (help and listings)."""
        hints = typing.get_type_hints(cls)
        return {f.name: _choices(hints[f.name]) for f in dataclasses.fields(cls) if _choices(hints[f.name])}

    def check(self) -> str | None:
        """A problem that involves several fields, in one line; None when the options are consistent."""
        return None

    def as_strings(self) -> dict[str, str]:
        """Every option as the string a user would type (stored with the artifact and in the row)."""
        return {f.name: _format_value(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class NoOptions(BackendOptions):
    """For backends that take none."""


def _choices(hint: Any) -> tuple[str, ...]:
    if typing.get_origin(hint) is Literal:
        return tuple(str(v) for v in typing.get_args(hint))
    if hint is bool:
        return ("true", "false")
    return ()


def _parse_value(backend: str, key: str, text: str, hint: Any) -> Any:
    if choices := _choices(hint):
        if text not in choices:
            raise UsageError(f"option {backend}.{key}={text} is not valid; expected one of {', '.join(choices)}")
        return text == "true" if hint is bool else text
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"option {backend}.{key}={text} is not valid; expected an integer") from None
    return text


def _format_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class PrepareContext:
    """What a backend may use to build its artifact."""

    model_name: str
    model: nn.Module
    calibration: np.ndarray  # normalized calibration images (N, C, H, W) float32
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    precision: str
    device: str
    options: BackendOptions = field(default_factory=NoOptions)
    onnx_path: Path | None = None  # a user's own fp32 ONNX file (--onnx), used instead of exporting `model`


@dataclass(frozen=True)
class OpCoverage:
    """Which operators of the deployed artifact run in int8 and which stayed in float, with counts.

    `boundaries` counts the ops that only enter or leave the int8 domain (quantize/dequantize): they
    are neither int8 compute nor float compute, so they are kept apart."""

    int8: dict[str, int]
    float: dict[str, int]
    boundaries: dict[str, int] = field(default_factory=dict)

    @property
    def int8_count(self) -> int:
        return sum(self.int8.values())

    @property
    def float_count(self) -> int:
        return sum(self.float.values())

    def to_meta(self) -> dict[str, dict[str, int]]:
        return {"int8": dict(self.int8), "float": dict(self.float), "boundaries": dict(self.boundaries)}

    @classmethod
    def from_meta(cls, found: OpCoverage | Mapping[str, Mapping[str, int]] | None) -> OpCoverage | None:
        """From an artifact's stored metadata (or the object itself, before it was stored)."""
        if isinstance(found, OpCoverage) or not found:
            return found or None
        return cls(int8=dict(found["int8"]), float=dict(found["float"]), boundaries=dict(found.get("boundaries", {})))


@dataclass(frozen=True)
class Artifact:
    """A prepared model: a folder of files, plus what the backend wants to remember about it."""

    directory: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*") if p.is_file() and p.name != "artifact.json")

    @property
    def size_bytes(self) -> int:
        """Every file of the artifact, external-data files included."""
        return sum(p.stat().st_size for p in self.files)

    @property
    def options(self) -> dict[str, str]:
        """The backend options the artifact was prepared with (defaults filled in), as strings."""
        return dict(self.meta.get("options", {}))


class Session(ABC):
    """A loaded artifact. `to_input` and `to_numpy` convert outside the timed region."""

    timer: str = "perf_counter_ns"

    @abstractmethod
    def to_input(self, batch: np.ndarray) -> Any: ...

    @abstractmethod
    def run(self, inputs: Any) -> Any:
        """Logits for one batch, in the backend's native type; may return before the device is done."""

    @abstractmethod
    def to_numpy(self, outputs: Any) -> np.ndarray: ...

    def synchronize(self) -> None:
        """Block until queued work is finished; a no-op for synchronous CPU backends."""

    def time_call(self, inputs: Any) -> int:
        """Nanoseconds for one `run` until its results are ready. GPU sessions override this with
        device events recorded on their own stream (and set `timer` accordingly)."""
        start = time.perf_counter_ns()
        self.run(inputs)
        self.synchronize()
        return time.perf_counter_ns() - start

    def reset_device_memory(self) -> None:
        """Reset the device allocator's peak counter; nothing to do on CPU."""

    def device_memory_peak(self) -> tuple[float, str] | None:
        """(peak MiB on the device since the reset, method), or None on CPU."""
        return None


class Backend(ABC):
    """The contract every backend, built in or from a plugin, fulfils.

    Class attributes: `name` (the registry name), `precisions` (the first is the default), `devices`,
    and `Options`, a frozen `BackendOptions` dataclass (default `NoOptions`), parsed once in the parent.

    `prepare(ctx, out_dir)` writes the artifact's files into `out_dir` and returns metadata (JSON-able)
    kept beside them. It runs in a worker process of its own, with torch's threads set to the run's.
    Reserved metadata keys (`RESERVED_META_KEYS`): "coverage" (an `OpCoverage` of the deployed artifact,
    stored by the harness and read back by `coverage`), "notes" (one line carried into the row); the
    harness writes "options", "key" and "prepare_s" itself.

    `load(artifact, device, threads)` returns a `Session` in a fresh process; it must fix the runtime's
    intra-op threads to `threads` (and inter-op to 1 where the runtime has such a pool), since timings
    are only comparable at a fixed, recorded thread count. Compilation or warm-up belongs in `load` or
    `Session.to_input`, never in `Session.run`, which is what is timed.

    An int8 backend must report, through "coverage", which operators really run in int8 after the
    runtime's own fusions and which stayed in float; an int8 artifact without coverage, or with no int8
    operator, is an error row, never a silent fp32 success.

    `unavailable_reason(device)` says why the backend cannot run here (a missing package, no CUDA
    device); the row then reads `unavailable: <reason>` and no number is invented. It is asked once
    per run, in the parent.

    `gradcam(artifact, request)` explains the backend's own predictions (None: it cannot, and the row
    says so); `bench.gradcam` holds the methods a backend can use.

    The artifact cache key covers the checkpoint, the backend's name, precision, device and options,
    the calibration data, the input shape, a user's ONNX file and the backend's own source file; a hit
    changes no number except the set-up time.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]]
    Options: ClassVar[type[BackendOptions]] = NoOptions

    @property
    def default_precision(self) -> str:
        return self.precisions[0]

    def parse_options(self, given: Mapping[str, str]) -> BackendOptions:
        """The user's `--option` strings as this backend's typed options, checked."""
        return self.Options.parse(self.name, given)

    def artifact_options(self, artifact: Artifact) -> BackendOptions:
        """The options an artifact was prepared with, typed again."""
        return self.Options.parse(self.name, artifact.options)

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        """Operators that run in int8 vs float in the deployed artifact, as `prepare` recorded them."""
        return OpCoverage.from_meta(artifact.meta.get("coverage"))

    def notes(self, artifact: Artifact) -> str:
        """A short remark carried into the row (deprecations, compile time, fallbacks)."""
        return str(artifact.meta.get("notes", ""))

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> GradcamMaps | None:
        """Grad-CAM maps computed by this backend's own arithmetic (autograd, finite differences on its
        graph cut at the feature layer, or a fake-quant simulation with its quantization parameters).

        None means the backend cannot explain itself; the row then says so instead of borrowing the
        float model's maps, which would hide exactly the drift Grad-CAM is meant to show."""
        return None

    def unavailable_reason(self, device: str) -> str | None:
        """None when the backend can run on `device` here, else why not."""
        if device not in self.devices:
            return f"{self.name} does not support device '{device}' (supports {', '.join(self.devices)})"
        return None

    @abstractmethod
    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        """Write the artifact's files into `out_dir`; return metadata to keep with it."""

    @abstractmethod
    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        """Load for running; options are in `artifact.options` (typed: `artifact_options`)."""


def _discover() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}  # loaded lazily, one by one


def list_backends() -> list[str]:
    return sorted(_discover())


def get_backend(name: str) -> Backend:
    eps = _discover()
    if name not in eps:
        raise unknown_name("backend", name, list(eps))
    try:
        cls = eps[name].load()
    except Exception as exc:  # a plugin that fails to import is reported, not fatal to others
        raise UsageError(f"backend '{name}' failed to load: {type(exc).__name__}: {exc}") from exc
    return cls()
