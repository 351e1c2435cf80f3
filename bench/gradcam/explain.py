"""Grad-CAM of one prepared artifact: the backend explains its own predictions, compared with the fp32 model's.

The fp32 reference maps (autograd on the float checkpoint) are computed once per checkpoint, suite,
layers and classes and cached; every backend's maps are then compared with them image by image and
class by class. The result is one record: the row's Grad-CAM columns, the per-(layer, image, class)
records for gradcam.parquet, and the maps the montage draws.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.gradcam.divergence import GradcamSummary

if TYPE_CHECKING:
    from torch import nn

    from bench.backend import Artifact, Backend
    from bench.data.suite import Suite


@dataclass(frozen=True)
class GradcamResult:
    """One cell's Grad-CAM outcome. `summaries` is ordered: the first layer's metrics are the row's
    main `gradcam_*` columns, the others become `gradcam_<metric>@<layer>` columns."""

    method: str | None
    note: str
    summaries: dict[str, GradcamSummary] = field(default_factory=dict)
    seconds_per_image: float | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    images: np.ndarray | None = None  # (n, C, H, W) in [0, 1], before normalization
    indices: np.ndarray | None = None  # their positions in the evaluation split
    classes: tuple[int, ...] = ()
    reference_maps: np.ndarray | None = None  # (n, len(classes), H, W) of the primary layer
    backend_maps: np.ndarray | None = None

    @property
    def layer(self) -> str | None:
        return next(iter(self.summaries), None)

    def columns(self) -> dict[str, Any]:
        columns: dict[str, Any] = {"gradcam_method": self.method, "gradcam_note": self.note}
        if self.layer is None:
            return columns
        layers = list(self.summaries)
        columns |= {
            **asdict(self.summaries[layers[0]]),
            "gradcam_layer": layers[0],
            "gradcam_images": None if self.indices is None else len(self.indices),
            "gradcam_s_per_image": self.seconds_per_image,
        }
        for layer in layers[1:]:  # further layers get their own columns, named by layer path
            columns |= {f"{k}@{layer}": v for k, v in asdict(self.summaries[layer]).items()}
        return columns

    @classmethod
    def failed(cls, note: str, method: str | None = None) -> GradcamResult:
        """No maps: the row's measured numbers stand, and the note says why Grad-CAM is empty."""
        return cls(method=method, note=note)


def layers_to_explain(model: nn.Module, model_name: str, requested: tuple[str, ...]) -> tuple[str, ...]:
    """The layers to explain: `--gradcam-layer` (aliases resolved), else the model's documented default."""
    from bench.gradcam.method import GradcamUnsupported, layer_path

    if requested:
        return tuple(dict.fromkeys(layer_path(model, name) for name in requested))
    default = getattr(model, "gradcam_layer", None)
    if not default:
        raise GradcamUnsupported(f"model '{model_name}' names no default Grad-CAM layer; pass --gradcam-layer")
    return (default,)


def explained_indices(count: int, total: int) -> np.ndarray:
    """The first `count` evaluation images: the same ones for every backend and every run."""
    return np.arange(min(count, total))


def reference_maps(
    checkpoint: Path,
    model: nn.Module,
    model_name: str,
    images: np.ndarray,
    layers: tuple[str, ...],
    classes: tuple[int, ...],
    suite_config: dict[str, Any],
) -> dict[str, np.ndarray]:
    """fp32 autograd maps of the float checkpoint, cached by everything they depend on."""
    from bench.cache import atomic_write_bytes, cache_root, code_digest, file_digest, library_versions, stable_hash
    from bench.gradcam.method import gradcam_autograd
    from bench.models import model_code_modules

    key = stable_hash(
        {
            "checkpoint": file_digest(checkpoint),
            "layers": layers,
            "classes": classes,
            "suite": suite_config,
            "images": len(images),
            "code": code_digest("bench.gradcam.method", *model_code_modules(model_name, model)),
            "libraries": library_versions(),
        }
    )
    path = cache_root() / "gradcam" / f"{checkpoint.stem}--{key}.npz"
    if path.exists():
        with np.load(path) as data:
            return {layer: data[layer] for layer in layers}
    maps = gradcam_autograd(model, images, layers, classes)
    buffer = io.BytesIO()
    np.savez(buffer, **maps)  # type: ignore[arg-type]  # numpy's stub types the first keyword only
    atomic_write_bytes(path, buffer.getvalue())
    return maps


def explain_artifact(
    backend: Backend,
    artifact: Artifact,
    model: nn.Module,
    model_name: str,
    suite: Suite,
    checkpoint: Path,
    requested_layers: tuple[str, ...],
    threads: int,
    device: str,
) -> GradcamResult:
    """Maps from the backend's own arithmetic, and their divergence from the fp32 maps per image and class."""
    from bench.backend import GradcamRequest
    from bench.gradcam.divergence import compare_maps
    from bench.gradcam.method import GradcamUnsupported

    evaluation = suite.load("evaluation")
    indices = explained_indices(suite.gradcam_images, len(evaluation))
    images = suite.normalize(evaluation.images[indices])
    classes = tuple(suite.gradcam_classes or ())
    try:
        layers = layers_to_explain(model, model_name, requested_layers)
        reference = reference_maps(checkpoint, model, model_name, images, layers, classes, suite.config())
        request = GradcamRequest(
            model=model,
            images=images,
            layers=layers,
            classes=classes,
            threads=threads,
            calibration=suite.normalize(suite.load("calibration").images),
            device=device,
        )
        maps = backend.gradcam(artifact, request)
    except GradcamUnsupported as exc:
        return GradcamResult.failed(f"Grad-CAM not possible: {exc}")
    if maps is None:
        return GradcamResult.failed(f"{backend.name} cannot compute Grad-CAM on its own arithmetic")
    explained = [layer for layer in layers if layer in maps.maps]
    if not explained:
        return GradcamResult.failed(f"Grad-CAM: no layer could be explained; {maps.notes}", maps.method)
    records, summaries = [], {}
    for layer in explained:
        layer_records, summaries[layer] = compare_maps(reference[layer], maps.maps[layer], classes)
        records += [
            {
                "layer": layer,
                "image_index": int(indices[r.image]),
                "class_index": r.class_index,
                "class_name": suite.classes[r.class_index],
                **{k: v for k, v in asdict(r).items() if k not in ("image", "class_index")},
            }
            for r in layer_records
        ]
    primary = explained[0]
    return GradcamResult(
        method=maps.method,
        note=maps.notes,
        summaries=summaries,
        seconds_per_image=maps.seconds_per_image,
        records=records,
        images=evaluation.images[indices],
        indices=indices,
        classes=classes,
        reference_maps=reference[primary],
        backend_maps=maps.maps[primary],
    )
