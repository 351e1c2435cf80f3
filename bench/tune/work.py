"""What a tune asks of a worker process beyond a cell's stages: the backend's quantizable layers, their
SQNR proxy and the runtime's own accuracy-aware quantization, all from the same float checkpoint and
calibration images as the cell would use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.backend import AccuracyControlResult, QuantLayer
from bench.run.isolation import WorkerContext
from bench.run.matrix import CellSpec


def quantizable_layers(context: WorkerContext, spec: CellSpec) -> list[QuantLayer] | None:
    from bench.backend import get_backend
    from bench.run.stages import prepare_context

    context.stage("list layers")
    return get_backend(spec.backend).quantizable_layers(prepare_context(spec))


def layer_sqnr(context: WorkerContext, spec: CellSpec, images: int) -> dict[str, float] | None:
    """SQNR (dB) per layer of the all-int8 model against the float one, on the first tuning images."""
    from bench.backend import get_backend
    from bench.run.stages import prepare_context

    context.stage("layer SQNR")
    ctx = prepare_context(spec)
    suite = spec.load_suite()
    return get_backend(spec.backend).layer_sqnr(ctx, suite.normalize(suite.load(spec.split).images[:images]))


def accuracy_control(
    context: WorkerContext, spec: CellSpec, metric: str, max_drop: float, out_dir: Path
) -> AccuracyControlResult | None:
    """The backend's own accuracy-aware quantization on the tuning split (`spec.split`), scored by the
    same metric as segbench's rows (`metric` of `score_predictions`, against the truth)."""
    from bench.backend import get_backend
    from bench.measure.metrics import labels_from_logits, score_predictions
    from bench.run.stages import prepare_context

    context.stage("accuracy control")
    ctx = prepare_context(spec)
    suite = spec.load_suite()
    data = suite.load(spec.split)
    names = list(suite.classes)

    def score(logits: np.ndarray, indices: np.ndarray) -> float:
        labels = labels_from_logits(logits, spec.threshold)
        found = score_predictions(
            labels, data.masks[indices], suite.num_classes, suite.foreground_classes, suite.ignore_label, "bf" in metric
        ).as_dict(names)
        return float(found[metric])

    return get_backend(spec.backend).accuracy_control(ctx, suite.normalize(data.images), score, max_drop, out_dir)
