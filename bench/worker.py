"""One cell (suite x model x backend x precision x device), in two worker processes.

`prepare_cell` builds (or finds) the artifact from the float checkpoint; `measure_cell` then loads it
in a fresh process, times it and evaluates it. Keeping them apart means the measured peak memory
belongs to the loaded backend alone (no export or calibration heap, no torch in an ONNX Runtime
process) and a native crash takes down only this cell. Everything travels in `CellSpec`.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.timing import LatencyStats, TimingConfig


@dataclass(frozen=True)
class CellSpec:
    suite: str
    model: str
    backend: str
    precision: str
    device: str
    threads: int
    batch_size: int
    timing: TimingConfig
    checkpoint: Path
    reference: Path  # fp32 reference logits (N, C, H, W) on the evaluation split, .npy
    options: tuple[tuple[str, str], ...] = ()  # the backend's options, defaults filled in
    data_dir: Path | None = None
    onnx: Path | None = None  # the user's normalized fp32 ONNX file, for ONNX-based backends
    gradcam: bool = True
    gradcam_layers: tuple[str, ...] = ()
    threshold: float = 0.5

    def load_suite(self) -> Any:
        from bench.suite import get_suite

        return get_suite(self.suite, data_dir=self.data_dir)


@dataclass(frozen=True)
class PreparedCell:
    artifact_dir: Path
    meta: dict[str, Any]
    cached: bool
    prepare_s: float


@dataclass(frozen=True)
class CellResult:
    row: Any  # bench.results.Row
    samples_ns: np.ndarray | None = None
    per_image_dice: np.ndarray | None = None
    predictions_head: np.ndarray | None = None  # labels of the first evaluation images, for the montage
    gradcam: Any = None  # bench.gradcam_cell.GradcamCellResult


_STAGE_CONN: Any = None


def stage(name: str) -> None:
    """Tell the parent which stage this cell is in (calibrate / time / evaluate / ...), for progress."""
    if _STAGE_CONN is not None:
        _STAGE_CONN.send(("stage", name))


def base_row(spec: CellSpec, status: str, **values: object) -> Any:
    from bench.results import Row

    return Row(suite=spec.suite, model=spec.model, backend=spec.backend, precision=spec.precision,
               device=spec.device, status=status, batch_size=spec.batch_size, threads=spec.threads, **values)


def unavailable_reason(spec: CellSpec) -> str | None:
    from bench.backend import get_backend

    backend = get_backend(spec.backend)
    if reason := backend.unavailable_reason(spec.device):
        return reason
    if spec.precision not in backend.precisions:
        return f"{spec.backend} has no precision '{spec.precision}' (has {', '.join(backend.precisions)})"
    return None


def prepare_cell(spec: CellSpec) -> PreparedCell:
    """Load the float checkpoint and build (or find) the backend's artifact."""
    import torch

    from bench.artifacts import ensure_artifact
    from bench.backend import PrepareContext, get_backend
    from bench.training import load_checkpoint

    stage("calibrate")
    torch.set_num_threads(spec.threads)
    suite = spec.load_suite()
    model, _ = load_checkpoint(spec.model, suite, spec.checkpoint)
    ctx = PrepareContext(model_name=spec.model, model=model, calibration=suite.normalize(suite.load("calibration").images),
                         input_shape=(suite.in_channels, *suite.input_size), num_classes=suite.num_classes,
                         precision=spec.precision, device=spec.device, options=dict(spec.options), onnx_path=spec.onnx)
    artifact, cached, prepare_s = ensure_artifact(get_backend(spec.backend), ctx, spec.checkpoint, f"{spec.model}--{spec.suite}")
    return PreparedCell(artifact.directory, artifact.meta, cached, prepare_s)


def _batch(images: np.ndarray, batch_size: int) -> np.ndarray:
    reps = -(-batch_size // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch_size])


def _evaluate(session: Any, images: np.ndarray, reference_logits: np.ndarray, batch_size: int,
              threshold: float) -> tuple[np.ndarray, float]:
    """Labels (N, H, W) of the backend, and the SQNR of its logits against the fp32 reference's,
    streamed batch by batch so the whole logits tensor is never held (it would inflate peak RSS)."""
    from bench.metrics import SqnrAccumulator, labels_from_logits

    sqnr = SqnrAccumulator()
    labels = []
    for i in range(0, len(images), batch_size):
        logits = session.to_numpy(session.run(session.to_input(images[i : i + batch_size]))).astype(np.float32)
        sqnr.add(reference_logits[i : i + batch_size], logits)
        labels.append(labels_from_logits(logits, threshold))
    return np.concatenate(labels), sqnr.db


def measure_cell(spec: CellSpec, prepared: PreparedCell) -> CellResult:
    """Load the artifact, time it, evaluate it against the truth and the fp32 reference."""
    from bench.backend import Artifact, get_backend
    from bench.memory import peak_rss_mib, reset_peak_rss
    from bench.metrics import labels_from_logits, per_image_dice, prediction_drift
    from bench.timing import measure_latency

    started = time.perf_counter()
    backend = get_backend(spec.backend)
    suite = spec.load_suite()
    evaluation = suite.load("evaluation")
    images = suite.normalize(evaluation.images)
    reference_logits = np.load(spec.reference)

    artifact = Artifact(prepared.artifact_dir, prepared.meta)
    coverage = backend.coverage(artifact)
    if spec.precision == "int8" and (coverage is None or coverage.int8_count == 0):
        found = "no operator coverage reported" if coverage is None else "the artifact contains no int8 operator"
        return CellResult(base_row(spec, f"error: {found}; it would silently run in float"))

    stage("load")
    memory_method = reset_peak_rss()
    session = backend.load(artifact, spec.device, spec.threads)
    inputs = session.to_input(_batch(images, spec.batch_size))
    session.reset_device_memory()
    stage("time")
    samples = measure_latency(lambda: session.time_call(inputs), spec.timing)
    stage("evaluate")
    preds, sqnr = _evaluate(session, images, reference_logits, spec.batch_size, spec.threshold)
    peak = peak_rss_mib()
    device_peak = session.device_memory_peak()

    n, fg, ignore = suite.num_classes, suite.foreground_classes, suite.ignore_label
    drift = prediction_drift(preds, labels_from_logits(reference_logits, spec.threshold), evaluation.masks, n, fg, ignore)
    scores, ref_scores = drift.current, drift.reference
    stats = LatencyStats.from_samples(samples)
    scalar_drifts = {f"{name}_drift" for name in scores.SCALARS}
    quality = scores.as_dict(list(suite.classes)) | drift.metrics(list(suite.classes))
    per_class = {k: v for k, v in quality.items() if k not in scores.SCALARS and k not in scalar_drifts
                 and k not in ("pixel_agreement", "miou_vs_reference", "bf_vs_reference")}
    row = base_row(
        spec, "ok",
        latency_p50_ms=stats.p50_ms, latency_p90_ms=stats.p90_ms, latency_p99_ms=stats.p99_ms,
        latency_mean_ms=stats.mean_ms, latency_stdev_ms=stats.stdev_ms, latency_min_ms=stats.min_ms,
        latency_cv=stats.cv, latency_iterations=stats.iterations,
        throughput_ips=spec.batch_size / (stats.p50_ms / 1e3), timer=session.timer,
        peak_rss_mib=peak, memory_method=memory_method, model_size_bytes=artifact.size_bytes,
        peak_device_mib=device_peak[0] if device_peak else None,
        device_memory_method=device_peak[1] if device_peak else None,
        int8_ops=coverage.int8_count if coverage else None, float_ops=coverage.float_count if coverage else None,
        float_op_types=",".join(sorted(coverage.float)) if coverage else None,
        dice=scores.dice, miou=scores.miou, global_accuracy=scores.global_accuracy, mean_accuracy=scores.mean_accuracy,
        weighted_iou=scores.weighted_iou, mean_bf_score=scores.mean_bf_score,
        dice_drift=quality["dice_drift"], miou_drift=quality["miou_drift"],
        global_accuracy_drift=quality["global_accuracy_drift"], mean_accuracy_drift=quality["mean_accuracy_drift"],
        weighted_iou_drift=quality["weighted_iou_drift"], mean_bf_score_drift=quality["mean_bf_score_drift"],
        pixel_agreement=drift.pixel_agreement, miou_vs_reference=quality["miou_vs_reference"], sqnr_db=sqnr,
        prepare_s=prepared.prepare_s, artifact_cached=prepared.cached, artifact_key=prepared.meta.get("key"),
        duration_s=time.perf_counter() - started, notes=backend.notes(artifact), per_class=per_class,
        options=",".join(f"{k}={v}" for k, v in spec.options),
        details={"options": dict(spec.options), "artifact_files": [p.name for p in artifact.files],
                 "int8_ops": coverage.int8 if coverage else None, "float_ops": coverage.float if coverage else None,
                 "prepare_meta": prepared.meta},
    )
    return CellResult(row, samples, per_image_dice(preds, evaluation.masks, n, fg, ignore),
                      predictions_head=preds[: suite.gradcam_images])


def worker_main(function: Callable[..., Any], args: tuple, conn: Any) -> None:
    """Process entry point: sends ("stage", name) messages, then ("ok", value) or ("error", message)."""
    global _STAGE_CONN
    _STAGE_CONN = conn
    try:
        message: tuple[str, Any] = ("ok", function(*args))
    except Exception as exc:  # noqa: BLE001 - any failure becomes this cell's error row
        traceback.print_exc()
        message = ("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    conn.send(message)
    conn.close()
