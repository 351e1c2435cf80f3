"""The Grad-CAM stage of a cell: the backend explains its own predictions, compared with the fp32 model's.

It runs in its own worker process after timing and evaluation, so neither its memory nor its time
touches the measured numbers. The fp32 reference maps (autograd on the float checkpoint) are computed
once per model, suite, layers and classes and cached; every backend row is then compared with them
image by image and class by class.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.worker import CellSpec, PreparedCell, stage


@dataclass(frozen=True)
class GradcamCellResult:
    """Row columns, per-(layer, image, class) records, and the maps for the montage figure."""

    columns: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    images: np.ndarray | None = None  # (n, C, H, W) in [0, 1], before normalization
    indices: np.ndarray | None = None  # their positions in the evaluation split
    classes: tuple[int, ...] = ()
    layer: str = ""
    reference_maps: np.ndarray | None = None  # (n, len(classes), H, W) of the primary layer
    backend_maps: np.ndarray | None = None


def gradcam_layers(spec: CellSpec, model: Any) -> tuple[str, ...]:
    """The layers to explain: `--gradcam-layer`, else the model's documented default."""
    from bench.gradcam import GradcamUnsupported, layer_path

    if spec.gradcam_layers:
        return tuple(dict.fromkeys(layer_path(model, name) for name in spec.gradcam_layers))
    default = getattr(model, "gradcam_layer", None)
    if not default:
        raise GradcamUnsupported(f"model '{spec.model}' names no default Grad-CAM layer; pass --gradcam-layer")
    return (default,)


def explained_indices(count: int, total: int) -> np.ndarray:
    """The first `count` evaluation images: the same ones for every backend and every run."""
    return np.arange(min(count, total))


def reference_maps(spec: CellSpec, model: Any, images: np.ndarray, layers: tuple[str, ...],
                   classes: tuple[int, ...], suite_config: dict[str, Any]) -> dict[str, np.ndarray]:
    """fp32 autograd maps of the float checkpoint, cached by everything they depend on."""
    from bench.cache import atomic_write_bytes, cache_root, file_digest, stable_hash
    from bench.gradcam import gradcam_autograd

    key = stable_hash({"checkpoint": file_digest(spec.checkpoint), "layers": layers, "classes": classes,
                       "suite": suite_config, "images": len(images), "v": 1})
    path = cache_root() / "gradcam" / f"{spec.checkpoint.stem}--{key}.npz"
    if path.exists():
        with np.load(path) as data:
            return {layer: data[layer] for layer in layers}
    maps = gradcam_autograd(model, images, layers, classes)
    buffer = io.BytesIO()
    np.savez(buffer, **maps)
    atomic_write_bytes(path, buffer.getvalue())
    return maps


def _unexplained(method: str | None, note: str) -> GradcamCellResult:
    return GradcamCellResult(columns={"gradcam_method": method, "gradcam_note": note})


def gradcam_cell(spec: CellSpec, prepared: PreparedCell) -> GradcamCellResult:
    """Maps from the backend's own arithmetic, divergence from the fp32 maps, per image and class."""
    import torch

    from bench.backend import Artifact, get_backend
    from bench.gradcam import GradcamUnsupported
    from bench.gradcam_divergence import compare_maps
    from bench.gradcam_types import GradcamRequest
    from bench.training import load_checkpoint

    stage("gradcam")
    torch.set_num_threads(spec.threads)
    suite = spec.load_suite()
    model, _ = load_checkpoint(spec.model, suite, spec.checkpoint)
    evaluation = suite.load("evaluation")
    indices = explained_indices(suite.gradcam_images, len(evaluation))
    images = suite.normalize(evaluation.images[indices])
    classes = tuple(suite.gradcam_classes)
    try:
        layers = gradcam_layers(spec, model)
        reference = reference_maps(spec, model, images, layers, classes, suite.config())
        request = GradcamRequest(model=model, images=images, layers=layers, classes=classes, threads=spec.threads,
                                 calibration=suite.normalize(suite.load("calibration").images), device=spec.device)
        maps = get_backend(spec.backend).gradcam(Artifact(prepared.artifact_dir, prepared.meta), request)
    except GradcamUnsupported as exc:
        return _unexplained(None, f"Grad-CAM not possible: {exc}")
    if maps is None:
        return _unexplained(None, f"{spec.backend} cannot compute Grad-CAM on its own arithmetic")
    explained = [layer for layer in layers if layer in maps.maps]
    if not explained:
        return _unexplained(maps.method, f"Grad-CAM: no layer could be explained; {maps.notes}")
    records, summaries = [], {}
    for layer in explained:
        layer_records, summaries[layer] = compare_maps(reference[layer], maps.maps[layer], classes)
        records += [{"layer": layer, "image_index": int(indices[r.image]), "class_index": r.class_index,
                     "class_name": suite.classes[r.class_index], **{k: v for k, v in asdict(r).items() if k not in ("image", "class_index")}}
                    for r in layer_records]
    primary = explained[0]
    columns = {**summaries[primary].as_row(), "gradcam_method": maps.method, "gradcam_layer": primary,
               "gradcam_s_per_image": maps.seconds_per_image, "gradcam_images": len(indices),
               "gradcam_note": maps.notes}
    for layer in explained[1:]:  # further layers get their own columns, named by layer path
        columns |= {f"{k}@{layer}": v for k, v in summaries[layer].as_row().items()}
    return GradcamCellResult(columns=columns, records=records, images=evaluation.images[indices], indices=indices,
                             classes=classes, layer=primary, reference_maps=reference[primary],
                             backend_maps=maps.maps[primary])
