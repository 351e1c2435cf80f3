"""One variant = one cell of the run machinery on the tuning split: the cells a tune builds its variants
from, and the three ways a stage of the tune measures one (a worker call beyond a cell's stages, a cell
scored without timing, a cell timed beside the fp32 reference).

Every part of a tune (sensitivity, fallback, the runtime's accuracy control, the calibration study)
measures through here, so a variant is prepared, cached by content hash and scored exactly as a cell of
`segbench run` is (bench.run.cell): a float-layer set or calibration draw is an option or input of the
artifact, so of its key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.backend import FLOAT_LAYERS_OPTION
from bench.cache import stable_hash
from bench.measure.reference_kernel import ReferenceKernel
from bench.results.speedup import TimedRounds, speedup_of
from bench.run.cell import CellOutcome, evaluate_cell, explain_cell
from bench.run.isolation import Worker, WorkerFailed
from bench.run.matrix import BackendPlan, CellSpec
from bench.run.runner import measure_cells, reference_kernel_record
from bench.tune.config import TuneConfig
from bench.tune.records import TimedScore, VariantScore, number

Log = Callable[[str], None]


@dataclass(frozen=True)
class Variants:
    """The cells a tune builds its variants from: the tuned backend and the fp32 reference, on the
    tuning split, and the tuned backend on the evaluation split (for the confirmation only)."""

    plan: BackendPlan
    reference_plan: BackendPlan
    tuned: CellSpec
    reference: CellSpec
    evaluation: CellSpec
    base_options: dict[str, str]
    folder: Path

    def with_layers(self, layers: tuple[str, ...], split: str = "tuning") -> CellSpec:
        base = self.tuned if split == "tuning" else self.evaluation
        options = {**self.base_options, FLOAT_LAYERS_OPTION: ",".join(layers)}
        label = f"float{len(layers)}-{stable_hash(list(layers))[:8]}" if layers else "int8"
        return replace(
            base,
            options=self.plan.backend.parse_options(options),
            log_file=self.folder / "logs" / f"{split}-{label}.log",
        )

    def with_options(self, extra: dict[str, str], label: str, split: str = "tuning") -> CellSpec:
        """The tuned backend with `extra` options (the peer's model), on `split`."""
        base = self.tuned if split == "tuning" else self.evaluation
        return replace(
            base,
            options=self.plan.backend.parse_options({**self.base_options, **extra}),
            log_file=self.folder / "logs" / f"{split}-{label}.log",
        )

    def with_calibration(self, method: str | None, size: int, seed: int) -> CellSpec:
        options = dict(self.base_options) | ({"calibration": method} if method else {})
        return replace(
            self.tuned,
            options=self.plan.backend.parse_options(options),
            calibration_draw=(size, seed),
            log_file=self.folder / "logs" / f"calibration-{method or 'default'}-{size}-{seed}.log",
        )


def in_worker(
    function: Callable[..., Any], args: tuple[Any, ...], timeout: float, on_stage: Log, log_file: Path
) -> tuple[str, Any]:
    """One call with the worker's context in a fresh worker that writes what libraries say (and a
    traceback) to `log_file`: ("ok", value) or ("error", message)."""
    with Worker(on_stage, log_file) as worker:
        try:
            return "ok", worker.call_with_context(timeout, function, *args)
        except WorkerFailed as exc:
            return "error", str(exc)


def label(log: Log, prefix: str) -> Callable[[str], None]:
    """Progress of a variant's stages, each line led by which variant it is."""
    return lambda stage: log(f"{prefix}: {stage}")


def scored(spec: CellSpec, plan: BackendPlan, timeout: float, on_stage: Callable[[str], None]) -> CellOutcome:
    """Scored without timing, and explained when a budget is on a Grad-CAM column."""
    return explain_cell(evaluate_cell(spec, plan, timeout, on_stage), on_stage)


def reference_kernel(config: TuneConfig) -> ReferenceKernel:
    """The reference kernel the timed variants' rounds are judged by, timed once before the first."""
    shared = config.shared
    kernel = ReferenceKernel(shared.threads, reference_kernel_record(shared.threads), shared.timing.priority)
    kernel.measure()
    return kernel


def timed_variant(
    config: TuneConfig,
    variants: Variants,
    kernel: ReferenceKernel,
    spec: CellSpec,
    prefix: str,
    log: Log,
) -> TimedScore:
    """The variant `spec`, timed in a group with the fp32 reference and scored."""
    labels = {variants.reference.key: f"{prefix} / fp32 reference", spec.key: prefix}
    reference, tuned = measure_cells(
        [(variants.reference, variants.reference_plan), (spec, variants.plan)],
        config.shared.cell_timeout_s,
        kernel,
        log,
        labels,
    )
    speedup = None
    if reference.measurement is not None and tuned.measurement is not None:
        fp32, int8 = reference.measurement, tuned.measurement  # one group: their cycles pair
        speedup = speedup_of(
            fp32.stats.p50_ms,
            int8.stats.p50_ms,
            TimedRounds(0, fp32.round_p50_ms()),
            TimedRounds(0, int8.round_p50_ms()),
        )
    fp32_p50 = reference.measurement.stats.p50_ms if reference.measurement else None
    return TimedScore(fp32_p50, VariantScore.of(tuned, speedup))


def summary(row: dict[str, Any], config: TuneConfig) -> str:
    """A judged row in one line: its status, p50, each budget's column and whether every budget held."""
    p50 = row.get("latency_p50_ms")
    return (
        f"{row.get('status')}"
        + (f", p50 {p50:.2f} ms" if p50 else "")
        + "".join(f", {b.column} {number(row.get(b.column), math.nan):.4f}" for b in config.parsed_budgets)
        + (", budgets met" if row.get("budgets_met") else "")
    )
