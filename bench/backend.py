"""The backend protocol and its registry.

A backend turns the float reference model into a deployable artifact (files on disk), loads it into
a session, and runs batches. The runner only ever talks to this interface, so every backend is timed,
sized and evaluated the same way. Backends come from the `segbench.backends` entry-point group, so a
separate package can add one without touching this repository.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.errors import UsageError, unknown_name

if TYPE_CHECKING:  # torch stays out of processes that only run an ONNX artifact
    from torch import nn

    from bench.gradcam_types import GradcamMaps, GradcamRequest

ENTRY_POINT_GROUP = "segbench.backends"


@dataclass(frozen=True)
class PrepareContext:
    """What a backend may use to build its artifact."""

    model_name: str
    model: "nn.Module"
    calibration: np.ndarray  # normalized calibration images (N, C, H, W) float32
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    precision: str
    device: str
    options: dict[str, Any] = field(default_factory=dict)
    onnx_path: Path | None = None  # a user's own fp32 ONNX file (--onnx), used instead of exporting `model`


@dataclass(frozen=True)
class OpCoverage:
    """Which operators of the deployed artifact run in int8 and which stayed in float, with counts."""

    int8: dict[str, int]
    float: dict[str, int]

    @property
    def int8_count(self) -> int:
        return sum(self.int8.values())

    @property
    def float_count(self) -> int:
        return sum(self.float.values())


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
        """The backend options the artifact was prepared with (defaults filled in)."""
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
    """Subclasses set `name`, `precisions` (first is the default), `devices`, and may declare
    `options` (name -> default, strings) with `option_choices` (name -> allowed values)."""

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]]
    options: ClassVar[dict[str, str]] = {}
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    @property
    def default_precision(self) -> str:
        return self.precisions[0]

    def resolve_options(self, given: dict[str, str]) -> dict[str, str]:
        """Defaults overlaid with the user's values; unknown names and values are usage errors."""
        for key, value in given.items():
            if key not in self.options:
                valid = ", ".join(sorted(self.options)) or "none"
                raise UsageError(f"backend '{self.name}' has no option '{key}'; valid options: {valid}")
            choices = self.option_choices.get(key)
            if choices and value not in choices:
                raise UsageError(f"option {self.name}.{key}={value} is not valid; expected one of {', '.join(choices)}")
        return {**self.options, **given}

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        """Operators that run in int8 vs float in the deployed artifact; int8 backends must say."""
        return None

    def notes(self, artifact: Artifact) -> str:
        """A short remark carried into the row (deprecations, compile time, fallbacks)."""
        return str(artifact.meta.get("notes", ""))

    def gradcam(self, artifact: Artifact, request: "GradcamRequest") -> "GradcamMaps | None":
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
        """Load for running; options are in `artifact.options`."""


def _discover() -> dict[str, type[Backend]]:
    found: dict[str, type[Backend]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep  # loaded lazily: a broken plugin must not break the others
    return found


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
