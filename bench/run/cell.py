"""One cell, one way: prepare, measure, explain, each in a worker process, under one deadline; then
the row, built once from the records the stages returned.

prepare (worker 1) -> PreparedArtifact -> [int8 coverage checked here] -> load, time, evaluate,
measurement (worker 2, one fresh process) -> QualityResult + Measurement -> explain (worker 3) ->
GradcamResult -> `CellOutcome.row()`. A stage that fails ends the cell with an error row (a failed
Grad-CAM keeps the measured numbers and says why its columns are empty).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.gradcam.explain import GradcamResult
from bench.measure.measurement import Measurement
from bench.measure.quality import QualityResult
from bench.results.row import Row
from bench.run import stages
from bench.run.artifacts import PreparedArtifact
from bench.run.isolation import Deadline, Worker, WorkerFailed, WorkerTimeout
from bench.run.matrix import BackendPlan, CellSpec


@dataclass(frozen=True)
class CellOutcome:
    """What one cell's stages returned; `status` is ok, unavailable: <reason> or error: <message>."""

    spec: CellSpec
    status: str
    prepared: PreparedArtifact | None = None
    measurement: Measurement | None = None
    quality: QualityResult | None = None
    gradcam: GradcamResult | None = None
    duration_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self, speedup_vs_fp32: float | None = None) -> Row:
        spec = self.spec
        options = ",".join(f"{k}={v}" for k, v in sorted(spec.options.as_strings().items()))
        bare = Row(
            suite=spec.suite,
            model=spec.model,
            backend=spec.backend,
            precision=spec.precision,
            device=spec.device,
            status=self.status,
            batch_size=spec.batch_size,
            threads=spec.threads,
            duration_s=self.duration_s,
        )
        if not self.ok or self.prepared is None:
            return bare
        parts = tuple(p for p in (self.measurement, self.prepared, self.quality, self.gradcam) if p is not None)
        details = {"options": spec.options.as_strings(), **self.prepared.details()}
        return replace(
            bare,
            parts=parts,
            speedup_vs_fp32=speedup_vs_fp32,
            duration_s=self.duration_s,
            notes=self.prepared.notes,
            options=options,
            details=details,
        )


def _failed(spec: CellSpec, message: str, started: float) -> CellOutcome:
    return CellOutcome(spec, f"error: {message}", duration_s=time.monotonic() - started)


def run_cell(
    spec: CellSpec, plan: BackendPlan, timeout_s: float, on_stage: Callable[[str], None] = lambda name: None
) -> CellOutcome:
    """The cell's stages in order, each in a worker process, all within `timeout_s`."""
    if plan.unavailable is not None:
        return CellOutcome(spec, f"unavailable: {plan.unavailable}")
    deadline = Deadline(timeout_s)
    started = deadline.started
    try:
        with Worker(on_stage) as worker:
            prepared: PreparedArtifact = worker.call_with_context(deadline.remaining(), stages.prepare, spec)
    except WorkerTimeout:
        return _failed(spec, f"timeout after {timeout_s:g} s", started)
    except WorkerFailed as exc:
        return _failed(spec, f"preparing the artifact: {exc}", started)
    coverage = prepared.coverage
    if spec.precision == "int8" and (coverage is None or coverage.int8_count == 0):
        found = "no operator coverage reported" if coverage is None else "the artifact contains no int8 operator"
        return _failed(spec, f"{found}; it would silently run in float", started)
    try:
        with Worker(on_stage) as worker:
            worker.call_with_context(deadline.remaining(), stages.load, spec, prepared)
            worker.call_with_context(deadline.remaining(), stages.time_session, spec)
            quality: QualityResult = worker.call_with_context(deadline.remaining(), stages.evaluate, spec)
            measurement: Measurement = worker.call_with_context(deadline.remaining(), stages.measurement, spec)
    except WorkerTimeout:
        return _failed(spec, f"timeout after {timeout_s:g} s", started)
    except WorkerFailed as exc:
        return _failed(spec, str(exc), started)
    gradcam = _explain(spec, prepared, deadline, on_stage) if spec.gradcam else None
    return CellOutcome(spec, "ok", prepared, measurement, quality, gradcam, time.monotonic() - started)


def _explain(
    spec: CellSpec, prepared: PreparedArtifact, deadline: Deadline, on_stage: Callable[[str], None]
) -> GradcamResult:
    """The Grad-CAM stage; a failure keeps the measured numbers and says why the columns are empty."""
    try:
        with Worker(on_stage) as worker:
            return worker.call_with_context(max(1.0, deadline.remaining()), stages.explain, spec, prepared)
    except WorkerFailed as exc:
        return GradcamResult.failed(f"Grad-CAM error: {exc}")
