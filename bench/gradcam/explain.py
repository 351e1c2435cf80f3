"""Grad-CAM of one prepared artifact: the backend explains its own predictions, compared with the fp32 model's.

The fp32 reference maps (autograd on the float checkpoint) are computed once per checkpoint, suite,
layers and classes and cached; every backend's maps are then compared with them image by image and
class by class. The result is one record: the row's Grad-CAM columns, the per-(layer, image, class)
records for gradcam.parquet, and the maps the montage draws.

Just over 400 lines (405), and kept whole: the result record, the reference cache and the verdicts read
on it (noise floor, simulation tolerance, the fp32 self-check) are one record's life, each step reading
what the one before set.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.gradcam.divergence import GradcamSummary

if TYPE_CHECKING:
    from torch import nn

    from bench.backend import Artifact, Backend, GradcamMaps
    from bench.data.suite import Suite


# maps describe a simulation when its logits differ from the deployed program's by more (x max |logit|)
SIMULATION_TOLERANCE = 0.02
FP32_FD_MIN_PEARSON = 0.999  # an fp32 graph's finite-difference maps must match autograd's at least this well
NOISE_FACTOR = 2.0  # a divergence (1 - Pearson) within this many times the method's own (1 - floor) is noise
METHOD_SUFFIX = {"fake-quant": "fakequant", "finite-difference": "fd", "autograd": "autograd"}


@dataclass(frozen=True)
class GradcamResult:
    """One cell's Grad-CAM outcome. `summaries` is ordered: the first layer's metrics are the row's
    main `gradcam_*` columns, the others become `gradcam_<metric>@<layer>` columns; `second` holds the
    second method's (`gradcam_<metric>@fakequant`). `method_pearson` and `step_pearson` are the method's
    own noise floor at the primary layer: the same artifact's maps by the two methods, and by finite
    differences at two step sizes, compared with each other."""

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
    # ok | invalid: <why> | simulation: <why> | error: <cause> (the stage or the method raised; traceback in
    # the cell's log) | not available: <why> (this backend or layer cannot be explained)
    status: str = "ok"
    cut: str = ""  # which graph cut made the primary maps ("onnx", "fx", "pt2e"; "" for autograd)
    second_method: str | None = None
    second: dict[str, GradcamSummary] = field(default_factory=dict)
    method_pearson: float | None = None
    step_pearson: float | None = None
    step_pair: tuple[int, int] | None = None
    vs_deployed_max_abs: float | None = None
    # the second method's own `ok` or `simulation: ...`; `error: ...` or `not available: ...` without its maps
    second_status: str | None = None
    second_vs_deployed_max_abs: float | None = None

    @property
    def layer(self) -> str | None:
        return next(iter(self.summaries), None)

    @property
    def floor_pearson(self) -> float | None:
        """The method's own agreement with itself: the lower of the two floors that were measured. The
        two methods' agreement counts only while the second one's simulation is within tolerance of the
        deployed program (`second_status` ok): a simulation of something else is no floor."""
        method = self.method_pearson if self.second_status in (None, "ok") else None
        floors = [f for f in (method, self.step_pearson) if f is not None and np.isfinite(f)]
        return min(floors) if floors else None

    @property
    def within_noise(self) -> bool | None:
        """True when the divergence from fp32 is not clearly larger than the method's own disagreement."""
        floor, layer = self.floor_pearson, self.layer
        if floor is None or layer is None or self.status.startswith("invalid"):
            return None
        pearson = self.summaries[layer].gradcam_pearson
        if not np.isfinite(pearson):
            return None
        return bool(1.0 - pearson <= NOISE_FACTOR * max(1.0 - floor, 0.0))

    def columns(self) -> dict[str, Any]:
        columns: dict[str, Any] = {"gradcam_method": self.method, "gradcam_note": self.note}
        if self.layer is None:  # nothing explained: the statuses say why the numbers are missing
            columns["gradcam_status"] = self.status
            if self.second_method is not None:
                columns[f"gradcam_status@{METHOD_SUFFIX.get(self.second_method, self.second_method)}"] = (
                    self.second_status or self.status
                )
            return columns
        layers = list(self.summaries)
        valid = not self.status.startswith("invalid")
        columns |= {
            "gradcam_status": self.status,
            "gradcam_cut": self.cut or None,
            **(asdict(self.summaries[layers[0]]) if valid else {}),
            "gradcam_layer": layers[0],
            "gradcam_images": None if self.indices is None else len(self.indices),
            "gradcam_s_per_image": self.seconds_per_image,
            "gradcam_method_pearson": self.method_pearson if valid else None,
            "gradcam_step_pearson": self.step_pearson if valid else None,
            "gradcam_floor_pearson": self.floor_pearson if valid else None,
            "gradcam_within_noise": self.within_noise,
            "gradcam_vs_deployed_max_abs": self.vs_deployed_max_abs,
        }
        if valid:
            for layer in layers[1:]:  # further layers get their own columns, named by layer path
                columns |= {f"{k}@{layer}": v for k, v in asdict(self.summaries[layer]).items()}
        if self.second_method is not None:
            suffix = METHOD_SUFFIX.get(self.second_method, self.second_method)
            if layers[0] in self.second:
                columns |= {f"{k}@{suffix}": v for k, v in asdict(self.second[layers[0]]).items()}
                columns[f"gradcam_vs_deployed_max_abs@{suffix}"] = self.second_vs_deployed_max_abs
            columns[f"gradcam_status@{suffix}"] = self.second_status
        return columns

    def invalidated(self, why: str) -> GradcamResult:
        """The same result with its maps' numbers withdrawn: the method itself failed its check."""
        kept = [r for r in self.records if r.get("method") != self.method]
        return replace(self, status=f"invalid: {why}", records=kept, backend_maps=None)

    @classmethod
    def failed(
        cls, status: str, note: str = "", method: str | None = None, methods: tuple[str, ...] = ()
    ) -> GradcamResult:
        """No maps: the row's measured numbers stand, and `status` (`error: ...` or `not available: ...`)
        says why Grad-CAM is empty. `methods`: those asked for; the second one's status says the same."""
        second = _other_method(methods, method or methods[0]) if methods else None
        return cls(method=method, note=note or status, status=status, second_method=second, second_status=status)


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


def _as_list(found: GradcamMaps | Sequence[GradcamMaps] | None) -> list[GradcamMaps]:
    if found is None:
        return []
    return [found] if not isinstance(found, Sequence) else list(found)


def _pick(
    found: list[GradcamMaps], methods: tuple[str, ...], steps: int
) -> tuple[GradcamMaps | None, GradcamMaps | None]:
    """(primary, second): the first method asked for that produced maps (finite differences at the
    request's own step), then the other one."""
    by_method: dict[str, GradcamMaps] = {}
    for maps in found:
        if maps.maps and maps.method not in by_method and (maps.step is None or maps.step == steps):
            by_method[maps.method] = maps
    order = [m for m in methods if m in by_method] + [m for m in by_method if m not in methods]
    primary = by_method[order[0]] if order else None
    second = by_method[order[1]] if len(order) > 1 else None
    return primary, second


def mean_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Pearson over the (image, class) pairs of two (N, C, H, W) map stacks, pairs with an all-zero
    map left out; NaN when none is left."""
    from bench.gradcam.divergence import divergence_records, summarize

    return summarize(divergence_records(a, b)).gradcam_pearson


def _other_method(methods: tuple[str, ...], primary: str) -> str | None:
    """The method asked for beside the primary one, whose status the row carries too; beside autograd (the
    float reference's own method, asked for by no one) only the fake-quant simulation."""
    others = [m for m in methods if m != primary and (primary in methods or m == "fake-quant")]
    return others[0] if others else None


def _missing_status(found: list[GradcamMaps], method: str | None, backend: str, precision: str) -> str | None:
    """Why the method asked for beside the primary gave no maps: `error: <cause>` when it raised,
    `not available: <why>` when it cannot run here; None when no other method was asked for."""
    if method is None:
        return None
    without = [m for m in found if m.method == method and not m.maps]
    if raised := next((m.error for m in without if m.error), ""):
        return f"error: {raised}"
    if without and without[0].notes:
        return f"not available: {without[0].notes}"
    if precision != "int8":
        return f"not available: nothing quantized to simulate in {precision}"
    return f"not available: {backend} gives no {method} maps"


def _status(primary: GradcamMaps, summary: GradcamSummary, reference: np.ndarray, precision: str) -> str:
    """`invalid: ...` when finite differences on an fp32 graph disagree with autograd (the cut is wrong),
    `simulation: ...` when the explained program's logits are too far from the deployed program's."""
    if precision == "fp32" and primary.method == "finite-difference":
        zero_reference = int(sum(not np.any(m) for m in reference.reshape(-1, *reference.shape[-2:])))
        if summary.gradcam_zero_maps > zero_reference:
            return (
                f"invalid: finite differences on the fp32 graph gave {summary.gradcam_zero_maps} all-zero maps "
                f"where fp32 autograd gave {zero_reference}; the cut at this layer is wrong"
            )
        if not summary.gradcam_pearson >= FP32_FD_MIN_PEARSON:
            return (
                f"invalid: finite differences on the fp32 graph match fp32 autograd with Pearson "
                f"{summary.gradcam_pearson:.4f} < {FP32_FD_MIN_PEARSON}; the cut at this layer is wrong"
            )
    drift, scale = primary.vs_deployed_max_abs, primary.vs_deployed_scale
    if drift is not None and scale and drift > SIMULATION_TOLERANCE * scale:
        return (
            f"simulation: the maps describe the program Grad-CAM ran, whose logits differ from the deployed "
            f"program's by up to {drift:.3g} ({100 * drift / scale:.1f}% of max |logit| {scale:.3g}; "
            f"tolerance {100 * SIMULATION_TOLERANCE:.0f}%)"
        )
    return "ok"


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
    precision: str = "fp32",
    methods: tuple[str, ...] = ("finite-difference", "fake-quant"),
    split: str = "evaluation",
    calibration: np.ndarray | None = None,
) -> GradcamResult:
    """Maps from the backend's own arithmetic by each method asked for, their divergence from the fp32
    maps per image and class, the method's own noise floor, and whether the maps can be trusted.
    `split` is where the explained images come from (`segbench tune` never looks at evaluation);
    `calibration` the normalized images the artifact was calibrated on (default: the calibration split)."""
    from bench.backend import GradcamRequest
    from bench.gradcam.divergence import compare_maps
    from bench.gradcam.method import GradcamUnsupported

    evaluation = suite.load(split)
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
            calibration=suite.normalize(suite.load("calibration").images) if calibration is None else calibration,
            device=device,
            methods=methods,
        )
        found = _as_list(backend.gradcam(artifact, request))
    except GradcamUnsupported as exc:
        return GradcamResult.failed(f"not available: {exc}", f"Grad-CAM not possible: {exc}", methods=methods)
    if not found:
        why = f"{backend.name} cannot compute Grad-CAM on its own arithmetic"
        return GradcamResult.failed(f"not available: {why}", methods=methods)
    primary, second = _pick(found, methods, request.steps)
    notes = "; ".join(dict.fromkeys(m.notes for m in found if m.notes))
    if primary is None:
        raised = next((m.error for m in found if m.error), "")
        status = f"error: {raised}" if raised else f"not available: no layer could be explained ({notes})"
        return GradcamResult.failed(status, f"Grad-CAM: no layer could be explained; {notes}", found[0].method, methods)
    explained = [layer for layer in layers if layer in primary.maps]
    records: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, GradcamSummary]] = {}
    for maps in found:
        for layer in (layer for layer in explained if layer in maps.maps):
            layer_records, summary = compare_maps(reference[layer], maps.maps[layer], classes)
            if maps is primary or maps is second:
                summaries.setdefault(maps.method, {})[layer] = summary
            records += [
                {
                    "layer": layer,
                    "method": maps.method,
                    "step": maps.step,
                    "image_index": int(indices[r.image]),
                    "class_index": r.class_index,
                    "class_name": suite.classes[r.class_index],
                    **{k: v for k, v in asdict(r).items() if k not in ("image", "class_index")},
                }
                for r in layer_records
            ]
    layer = explained[0]
    method_pearson = None
    if (
        second is not None
        and layer in second.maps
        and {primary.method, second.method} == {"finite-difference", "fake-quant"}
    ):
        method_pearson = mean_pearson(primary.maps[layer], second.maps[layer])
    step_pearson, step_pair = None, None
    fd_steps = {m.step: m for m in found if m.method == "finite-difference" and m.step is not None and layer in m.maps}
    floor = [s for s in request.floor_steps if s in fd_steps]
    if len(floor) >= 2:
        step_pair = (floor[0], floor[1])
        step_pearson = mean_pearson(fd_steps[floor[0]].maps[layer], fd_steps[floor[1]].maps[layer])
    result = GradcamResult(
        method=primary.method,
        note=notes,
        summaries=summaries[primary.method],
        seconds_per_image=sum(m.seconds_per_image for m in found),
        records=records,
        images=evaluation.images[indices],
        indices=indices,
        classes=classes,
        reference_maps=reference[layer],
        backend_maps=primary.maps[layer],
        cut=primary.cut,
        second_method=second.method if second is not None else _other_method(methods, primary.method),
        second=summaries.get(second.method, {}) if second is not None else {},
        method_pearson=method_pearson,
        step_pearson=step_pearson,
        step_pair=step_pair,
        vs_deployed_max_abs=primary.vs_deployed_max_abs,
        second_status=(
            _status(second, summaries[second.method][layer], reference[layer], "")
            if second is not None and layer in summaries.get(second.method, {})
            else _missing_status(found, _other_method(methods, primary.method), backend.name, precision)
        ),
        second_vs_deployed_max_abs=None if second is None else second.vs_deployed_max_abs,
    )
    empty = _zero_reference(reference[layer], layer, [suite.classes[c] for c in classes])
    if empty is not None:  # nothing to compare, and no check of the method can pass or fail
        return replace(result, status=empty, second_status=empty if second is not None else result.second_status)
    status = _status(primary, result.summaries[layer], reference[layer], precision)
    if status.startswith("invalid: "):
        return result.invalidated(status.removeprefix("invalid: "))
    return replace(result, status=status)


def _zero_reference(reference: np.ndarray, layer: str, class_names: Sequence[str]) -> str | None:
    """`not available: ...` when every fp32 map of the layer is all zero, else None. ReLU(sum_k alpha_k A_k)
    is then 0 at every pixel: the layer's channels only argue against the class (LR-ASPP's `gate` on
    synthetic-nuclei: the high-level branch lowers the nucleus logit everywhere, the low-level classifier
    finds the nuclei). No divergence can be measured, and the fp32 check could only fail on NaN."""
    if np.any(reference):
        return None
    return (
        f"not available: the fp32 Grad-CAM maps at {layer} are zero for every image and class "
        f"({', '.join(class_names)}): sum_k alpha_k A_k <= 0 everywhere, the layer only argues against the "
        f"class, so there is nothing to compare; explain another layer (--gradcam-layer)"
    )
