"""The loop shared by backends whose graph can be cut at the feature layer (ONNX Runtime, FX int8).

A backend supplies, per layer, a function that cuts its own graph for one image (`FeatureSplit`); this
module turns those splits into Grad-CAM maps with the shared finite-difference code and collects, per
layer, either the maps or the reason the graph could not be cut there. A layer that cannot be cut is
left out (with its reason in the notes) rather than explained by the float model, which would hide the
very drift the maps are meant to show.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.backend import GradcamMaps
from bench.gradcam.method import GradcamUnsupported, finite_difference_cams
from bench.gradcam.records import FeatureSplit

METHOD = "finite-difference"


class SplitUnavailable(GradcamUnsupported):
    """The backend's graph cannot be cut at this layer (no such tensor, feature stays float where
    codes were expected, ...); the message is one line for the row's notes."""


@dataclass
class SplitStats:
    """What the splits of one layer looked like, summarized into the notes."""

    kind: str = ""
    clipped: list[float] = field(default_factory=list)  # fraction of shifted codes clipped, per image


def split_gradcam(
    images: np.ndarray,
    layers: Sequence[str],
    classes: Sequence[int],
    splitter_for: Callable[[str], Callable[[np.ndarray], FeatureSplit]],
    prefix: str = "",
    chunk: int = 32,
) -> GradcamMaps:
    """Maps {layer: (N, len(classes), H, W)} by finite differences of each image's split head.

    `splitter_for(layer)` prepares the cut once per layer (sessions, graphs) and returns the function
    that splits one (1, C, H, W) image; it raises `SplitUnavailable` when the layer cannot be cut.
    `seconds_per_image` covers everything from preparing the cuts to the last map, over all layers."""
    images = np.asarray(images, dtype=np.float32)
    start = time.perf_counter()
    out_size = (images.shape[2], images.shape[3])
    maps: dict[str, np.ndarray] = {}
    notes: list[str] = [prefix] if prefix else []
    for layer in layers:
        try:
            split_image = splitter_for(layer)
            stats = SplitStats()
            per_image = []
            for i in range(len(images)):
                split = split_image(images[i : i + 1])
                stats.kind = str(split.meta.get("kind", ""))
                if "clipped" in split.meta:
                    stats.clipped.append(float(split.meta["clipped"]))  # type: ignore[arg-type]
                per_image.append(finite_difference_cams(split, classes, out_size, chunk=chunk))
        except SplitUnavailable as exc:
            notes.append(f"{layer}: not split ({exc})")
            continue
        maps[layer] = np.stack(per_image).astype(np.float32)
        detail = f"{layer}: {stats.kind}" if stats.kind else layer
        if stats.clipped:
            detail += f", {100 * max(stats.clipped):.1f}% of shifted codes clipped at most"
        notes.append(detail)
    if not maps:
        notes.insert(0, "no layer could be split")
    seconds = (time.perf_counter() - start) / max(len(images), 1)
    return GradcamMaps(maps=maps, method=METHOD, seconds_per_image=seconds, notes="; ".join(notes))
