"""The roofline stage of a run, in the parent after each group's timing: the machine's peaks (measured
once per machine, `bench.measure.peaks`), each model's MACs per image (counted once per model, by the first
cell's measuring worker or else in a worker of its own, and kept in the cache: `bench.run.count_cache`),
and the `Roofline` record every measured row gets from them.

Never a cause of a failed cell: a count that fails gives its rows `roofline_status` `error: <one line>`
(the traceback in the cell's log file), a row without a peak for its precision or device `unavailable:
<why>`, and every other number of the row stands.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import one_line
from bench.measure.peaks import MachinePeaks, machine_peaks, peaks_record
from bench.measure.roofline import Roofline
from bench.onnx.macs import GraphCount
from bench.run import stages
from bench.run.count_cache import count_record, store_count
from bench.run.isolation import Budget, Worker, WorkerFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.run.cell import CellOutcome
    from bench.run.config import RunConfig
    from bench.run.matrix import CellSpec


def run_peaks(config: RunConfig) -> MachinePeaks:
    """The peaks a local CPU run's rows are judged against (the best per machine and thread count); none for a
    CUDA run (its rows are not the CPU's) or on a Ray driver (each node's run measures its own)."""
    if config.executor != "local":
        return MachinePeaks.unavailable(config.threads, f"measured by each node's run (--executor {config.executor})")
    if config.device != "cpu":
        return MachinePeaks.unavailable(config.threads, f"no measured peak for {config.device} rows")
    return machine_peaks(config.threads, config.timing.priority, peaks_record(config.threads))


def peaks_line(peaks: MachinePeaks) -> str:
    """The run's line on the peaks it measured and the best ones it judges its rows against; "" without."""
    if peaks.status != "ok":
        return ""
    found = ", ".join(f"{precision} {gmacs:.0f}" for precision, gmacs in peaks.gmacs.items())
    missing = "".join(f"; no {precision} peak ({why})" for precision, why in peaks.missing.items())
    bandwidth = f", copy {peaks.bandwidth_gbs:.1f} GB/s" if peaks.bandwidth_gbs is not None else ""
    runs = f"best of {peaks.runs} runs" if peaks.runs > 1 else "first run here"
    return (
        f"machine peaks on {peaks.threads} thread(s) ({runs}; measured in {peaks.measure_s or 0:.1f} s): "
        f"GEMM GMAC/s {found}{bandwidth}{missing}"
    )


def peaks_env(peaks: MachinePeaks) -> dict[str, object]:
    """env.json's `peaks`: the measured peaks and the theoretical ones of the instruction set (none on a
    Ray driver: the nodes' own env.json have theirs)."""
    from bench.measure.peaks import machine_theoretical_peaks

    theoretical = machine_theoretical_peaks(peaks.threads) if peaks.status == "ok" else None
    return {"peaks": {"measured": peaks.record(), "theoretical": theoretical}}


class RooflineStage:
    """The peaks of the run and the counts of its models; `apply` gives a measured outcome its record."""

    def __init__(self, peaks: MachinePeaks, timeout_s: float) -> None:
        self.peaks, self.timeout_s = peaks, timeout_s
        self._counts: dict[Path, GraphCount | str] = {}

    def count(self, spec: CellSpec, on_stage: Callable[[str], None]) -> GraphCount | str:
        """The model's count (from this run, the cache, or a worker now), or the status saying why none."""
        record = count_record(spec)
        if record in self._counts:
            return self._counts[record]
        try:
            found: GraphCount | str = GraphCount.from_json(record.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            found = self._counted(spec, on_stage)
            if isinstance(found, GraphCount):
                store_count(record, found)
        self._counts[record] = found
        return found

    def _counted(self, spec: CellSpec, on_stage: Callable[[str], None]) -> GraphCount | str:
        try:
            with Worker(on_stage, spec.log_file) as worker:
                counted: GraphCount = Budget(self.timeout_s).call(worker, stages.count_graph, spec)
                return counted
        except WorkerFailed as exc:
            return f"error: counting MACs: {exc}"

    def apply(self, outcome: CellOutcome, on_stage: Callable[[str], None]) -> CellOutcome:
        """The outcome with its `Roofline`, where it was measured (a failed or unmeasured cell has none)."""
        measured = outcome.measurement
        if not outcome.ok or measured is None:
            return outcome
        spec = outcome.spec
        try:
            count = self.count(spec, on_stage)
        except Exception as exc:  # the cache key's digests, a spawn that failed: never the cell's numbers
            count = f"error: counting MACs: {one_line(exc)}"
        roofline = Roofline.of(count, self.peaks, spec.precision, spec.device, spec.batch_size, measured.stats.p50_ms)
        return replace(outcome, roofline=roofline)
