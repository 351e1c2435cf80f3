"""Records shared by Grad-CAM's float path (autograd), its quantized paths (finite differences on a
backend's split graph, fake-quant simulation) and the backends that provide them.

A backend answers a `GradcamRequest` with `GradcamMaps` computed by its own arithmetic; when its graph
can be cut at the feature layer it hands over a `FeatureSplit` and the shared finite-difference code
turns that into maps, so every backend's alphas are computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

METHODS = ("autograd", "finite-difference", "fake-quant")


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


@dataclass(frozen=True)
class GradcamMaps:
    """Unnormalized Grad-CAM maps per layer: (N, len(classes), H, W) float32 at the input size."""

    maps: dict[str, np.ndarray]
    method: str  # one of METHODS
    seconds_per_image: float
    notes: str = ""


@dataclass(frozen=True)
class FeatureSplit:
    """One image's forward pass cut at the feature tensor A by a backend.

    `features` are A's values (K, h, w) as the head reads them (dequantized for an int8 tensor).
    `head_shifted(channels)` reruns the backend's own head for a batch: entry -1 is the unshifted A,
    entry k is A with channel k shifted by `step[k]` everywhere (for an int8 tensor: the integer codes
    moved by a whole number of quantization steps, clipped to the code range); it returns the logits
    (len(channels), C, H, W). Finite differences of the class scores over these passes give alpha.
    """

    features: np.ndarray
    step: np.ndarray  # (K,) shift per channel, in the units of `features`
    head_shifted: Callable[[np.ndarray], np.ndarray]
    meta: dict[str, object] = field(default_factory=dict)
