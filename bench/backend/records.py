"""What passes between the harness and a backend: the context it prepares from, the artifact it made,
which of its operators run in int8, and the Grad-CAM request it answers with maps of its own arithmetic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.backend.options import BackendOptions, NoOptions
from bench.errors import one_line

if TYPE_CHECKING:  # torch stays out of processes that only run an ONNX artifact
    from torch import nn

GRADCAM_METHODS = ("autograd", "finite-difference", "fake-quant")
# What `--gradcam-method` asks for: finite differences on the artifact's own head, the fake-quant
# simulation by autograd, or both (the primary, finite differences, fills the row's main columns).
GRADCAM_CHOICES = {
    "fd": ("finite-difference",),
    "fakequant": ("fake-quant",),
    "both": ("finite-difference", "fake-quant"),
}


@dataclass(frozen=True)
class ThroughputSetting:
    """One way of running a session for throughput (`segbench run --scenario offline|server`): `callers`
    blocking calls of `batch_size` images at once, and what else the runtime was told (`mode`, in its own
    words: "THROUGHPUT hint, 4 streams", "2 sessions x 1 thread"). `describe()` is the row's
    `offline_setting` and `server_setting`."""

    batch_size: int
    callers: int = 1
    mode: str = ""

    def describe(self) -> str:
        callers = f"{self.callers} caller" + ("s" if self.callers != 1 else "")
        return ", ".join(part for part in (f"batch {self.batch_size}", callers, self.mode) if part)


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


def grouped_conv_label(op: str, groups: int, inputs_per_group: int | None) -> str:
    """A convolution's coverage label: `op` itself when it is not grouped, `<op> (depthwise)` with one input
    channel per group, `<op> (grouped)` for any other group count (or one the runtime does not say), so a
    depthwise layer left in float is told apart from a dense one in every runtime's coverage."""
    if groups <= 1:
        return op
    return f"{op} ({'depthwise' if inputs_per_group == 1 else 'grouped'})"


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
        if isinstance(found, OpCoverage):
            return found
        if not found:
            return None
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


@dataclass(frozen=True)
class GradcamRequest:
    """What a backend needs to explain its own predictions."""

    model: nn.Module  # the float reference model (fp32, eval mode), for rebuilding or simulating
    images: np.ndarray  # normalized (N, C, H, W) float32 images to explain
    layers: tuple[str, ...]  # module paths in the float model, e.g. ("decoder.3",)
    classes: tuple[int, ...]  # class indices to explain
    calibration: np.ndarray  # normalized calibration images, to rebuild a deterministic graph
    threads: int = 1
    device: str = "cpu"
    steps: int = 4  # finite-difference shift in quantization steps of the feature tensor (4 to 8)
    # The quantized-model methods wanted, in order of preference (`GRADCAM_CHOICES`); autograd of a float
    # or reduced-precision torch model is its own method and ignores this.
    methods: tuple[str, ...] = ("finite-difference", "fake-quant")
    # Further finite-difference shifts (same units as `steps`) whose maps measure the method's own noise:
    # `gradcam_step_pearson` compares the maps at the first two. Empty: not measured.
    floor_steps: tuple[int, ...] = (2, 8)


@dataclass(frozen=True)
class GradcamMaps:
    """Unnormalized Grad-CAM maps per layer: (N, len(classes), H, W) float32 at the input size.

    A backend may answer with several (a sequence): the methods it can run and, for finite differences,
    the maps at each step size. `step` is the finite-difference shift (in quantization steps, or the
    same multiple of a float cut's base step); `cut` names the graph cut ("onnx", "fx", "pt2e"), so a
    failed check of one cut can mark every row that used it. `vs_deployed_max_abs` is the largest |logit|
    difference between the program the maps were computed on and the deployed program (0 when it is
    the deployed program itself, None when unknown); `vs_deployed_scale` the deployed logits' largest
    |value|, to judge that difference against."""

    maps: dict[str, np.ndarray]
    method: str  # one of GRADCAM_METHODS
    seconds_per_image: float
    notes: str = ""
    step: int | None = None
    cut: str = ""
    vs_deployed_max_abs: float | None = None
    vs_deployed_scale: float | None = None
    error: str = ""  # a method that raised: its one-line cause (the row's status says `error: ...`)

    @classmethod
    def without_maps(cls, method: str, notes: str) -> GradcamMaps:
        """A method that cannot run here: no maps, and the note says why (the other methods' stand)."""
        return cls(maps={}, method=method, seconds_per_image=0.0, notes=notes)

    @classmethod
    def failed(cls, method: str, exc: BaseException) -> GradcamMaps:
        """A method that raised, while the other methods' maps stand: no maps, the cause on one line for
        the row's status, and the traceback logged (a worker writes it to the cell's log file)."""
        logging.getLogger("segbench").error("Grad-CAM by %s failed", method, exc_info=exc)
        cause = one_line(exc)
        return cls(maps={}, method=method, seconds_per_image=0.0, notes=f"{method} failed: {cause}", error=cause)


@dataclass(frozen=True)
class AccuracyControlResult:
    """What a runtime's own accuracy-aware quantization chose (`Backend.accuracy_control`): the layers it
    kept in float (module paths, as `float_layers` takes them) and the scores it measured itself."""

    method: str  # e.g. "nncf.quantize_with_accuracy_control"
    float_layers: tuple[str, ...]
    float_score: float  # the float model's score, by the runtime's own run of the score function
    quantized_score: float  # the returned model's score, likewise
    seconds: float
    options: dict[str, str] = field(default_factory=dict)  # backend options that deploy the returned model
    notes: str = ""
