"""What a tune asks of a worker process beyond a cell's stages: the backend's quantizable layers and
their SQNR proxy, both from the same float checkpoint and calibration images as the cell would use."""

from __future__ import annotations

from bench.backend import QuantLayer
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
