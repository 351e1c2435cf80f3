"""One cell, one way: prepare, measure, explain, each in a worker process, under one time budget; then
the row, built once from the records the stages returned.

prepare (worker 1; none where the cache has the artifact) -> PreparedArtifact -> [int8 coverage checked
here] -> load, warm up (worker 2, a fresh process) -> timed rounds (`bench.run.rounds`: alone, or in turns
with the other backends of the same suite and model) -> measurement (the timing's memory read
first), evaluate (worker 2)
-> Measurement + QualityResult [-> with --scenario offline|server, the group's scenario turns in the
same worker (`bench.run.scenario`) -> OfflineResult | ServerResult] -> explain (worker 3) -> GradcamResult
-> `CellOutcome.row()`. A stage
that fails before the latency is measured ends the cell with an error row; one after it (evaluation,
--profile, Grad-CAM) keeps the measured numbers, and its status column (`evaluation_status`,
`profile_status`, `gradcam_status`) says `error: <cause>`, the traceback in the cell's log file.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.backend import get_backend
from bench.gradcam.explain import GradcamResult
from bench.measure.contention import (
    Contention,
    CpuCounters,
    CpuWindows,
    NotQuiet,
    TimedRound,
    left_out_summary,
    load_average,
)
from bench.measure.measurement import Measurement
from bench.measure.profile import ProfileResult
from bench.measure.quality import QualityResult
from bench.measure.reference_kernel import ReferenceKernel
from bench.measure.roofline import Roofline
from bench.measure.scenario_results import OfflineResult, ServerResult
from bench.results.row import Row, StageStatus
from bench.results.speedup import Speedup
from bench.run import stages
from bench.run.artifacts import PreparedArtifact, cached_artifact
from bench.run.isolation import Budget, Worker, WorkerFailed, WorkerTimeout
from bench.run.matrix import BackendPlan, CellSpec, size_text

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CellOutcome:
    """What one cell's stages returned; `status` is ok, unavailable: <reason> or error: <message>."""

    spec: CellSpec
    status: str
    prepared: PreparedArtifact | None = None
    measurement: Measurement | None = None
    quality: QualityResult | None = None
    gradcam: GradcamResult | None = None
    profile: ProfileResult | None = None  # --profile: the profiled pass after the timing
    rounds: tuple[dict[str, Any], ...] = ()  # every timed round, counted or not (rounds.parquet)
    duration_s: float | None = None  # the cell's own work (`Budget.spent`), not its group's
    budget: Budget | None = None
    evaluation_status: str = "ok"  # or error: <cause> (no quality record; the latency stands)
    roofline: Roofline | None = None  # share of peak, from the p50 (bench/run/roofline.py, in the parent)
    scenario: OfflineResult | ServerResult | None = None  # --scenario offline|server (bench.run.scenario)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self, speedup: Speedup | None = None) -> Row:
        spec = self.spec
        timed = spec.input_size or spec.suite_size
        bare = Row(
            suite=spec.suite,
            model=spec.model,
            backend=spec.backend,
            precision=spec.precision,
            device=spec.device,
            status=self.status,
            batch_size=spec.batch_size,
            input_size=spec.swept_size,
            input_height=timed[0] if timed else None,
            input_width=timed[1] if timed else None,
            threads=spec.threads,
            checkpoint_digest=spec.checkpoint_digest or None,
            duration_s=self.duration_s,
        )
        if not self.ok or self.prepared is None:
            return bare
        evaluated = StageStatus("evaluation_status", self.evaluation_status)
        parts = tuple(
            p
            for p in (
                self.measurement,
                self.scenario,
                self.prepared,
                evaluated,
                self.quality,
                self.gradcam,
                self.profile,
                self.roofline,
            )
            if p is not None
        )
        options = ",".join(f"{k}={v}" for k, v in sorted(spec.options.as_strings().items()))
        details = {"options": spec.options.as_strings(), **self.prepared.details()}
        if self.scenario is not None:
            details.update(self.scenario.details())
        session_notes = self.measurement.session_notes if self.measurement else ""
        return replace(
            bare,
            parts=parts,
            speedup=speedup,
            notes="; ".join(n for n in (self.prepared.notes, session_notes) if n),
            options=options,
            details=details,
        )


def _own_size(spec: CellSpec) -> str:
    return "the row without input_size" if spec.suite_size is None else size_text(spec.suite_size)


def _failed(spec: CellSpec, budget: Budget, message: str) -> CellOutcome:
    return CellOutcome(spec, f"error: {cause(message, budget)}", duration_s=budget.spent)


def cause(message: str, budget: Budget) -> str:
    """A worker's one-line failure; a timeout names the cell's whole budget, not what was left of it."""
    return f"timeout after {budget.seconds:g} s" if message.startswith("timeout after") else message


def prepare_cell(
    spec: CellSpec, plan: BackendPlan, timeout_s: float, on_stage: Progress
) -> tuple[PreparedArtifact, Budget] | CellOutcome:
    """The artifact (worker 1), checked: an int8 artifact without int8 operators never gets timed."""
    if plan.unavailable is not None:
        return CellOutcome(spec, f"unavailable: {plan.unavailable}")
    budget = Budget(timeout_s)
    try:
        prepared = _already_prepared(spec)
        if prepared is None:
            with Worker(on_stage, spec.log_file) as worker:
                prepared = budget.call(worker, stages.prepare, spec)
    except WorkerTimeout as exc:
        return _failed(spec, budget, str(exc))
    except WorkerFailed as exc:
        return _failed(spec, budget, f"preparing the artifact: {exc}")
    coverage = prepared.coverage
    if spec.precision == "int8" and (coverage is None or coverage.int8_count == 0):
        found = "no operator coverage reported" if coverage is None else "the artifact contains no int8 operator"
        return _failed(spec, budget, f"{found}; it would silently run in float")
    return prepared, budget


def _already_prepared(spec: CellSpec) -> PreparedArtifact | None:
    """The cell's artifact where the cache holds it, found in this process: a worker to find it costs 4-6 s
    here (its start and its imports of torch and the runtime; measured on a 1-ms model, 6.5 s of its
    28-s run), for every cell of every run after the first. Building an artifact stays in a worker, where a
    crash or a timeout costs only its cell; anything odd here (a damaged cache entry, a checkpoint that
    does not load) is left to that worker to meet and report."""
    try:
        ctx = stages.prepare_context(spec, set_threads=False)
        return cached_artifact(get_backend(spec.backend), ctx, spec.checkpoint, stages.artifact_label(spec))
    except Exception:  # noqa: BLE001 - the worker meets it again and reports it in the row
        return None


@dataclass(frozen=True)
class GroupTiming:
    """What the group's timing decided for all its cells (`bench.run.rounds.time_cells`): the cycles that
    count (None: every round), whether they fall short of the minimum in quiet cycles, each cycle's
    verdict (None: quiet), the machine's fast level they were judged against, and the fp32 eager cell's
    median round p50 over those cycles (None: not in the group): an int8 cell slower than it is profiled."""

    counted: list[int] | None
    too_few_quiet: bool
    verdicts: tuple[NotQuiet | None, ...] = ()
    reference_ms: float | None = None
    reference_p50_ms: float | None = None


class MeasuringCell:
    """A cell whose session is loaded and warm in a worker of its own, ready to be timed round by round;
    the parent reads the machine's speed before, and its CPU accounting around, every round.

    Which rounds count is decided for the whole group (`bench.run.rounds.time_cells`): only cycles in
    which every cell's round was quiet, so that all the group's rows describe the same moments."""

    def __init__(self, spec: CellSpec, prepared: PreparedArtifact, budget: Budget, worker: Worker) -> None:
        self.spec, self.prepared, self.budget, self.worker = spec, prepared, budget, worker
        self.rounds: list[TimedRound] = []
        self.kernel: ReferenceKernel | None = None
        self.failure: CellOutcome | None = None
        self.scenario: OfflineResult | ServerResult | None = None  # set by bench.run.scenario
        self._measured: tuple[list[int], Measurement, QualityResult | None, float | None, str] | None = None

    @classmethod
    def start(
        cls, spec: CellSpec, prepared: PreparedArtifact, budget: Budget, on_stage: Progress
    ) -> MeasuringCell | CellOutcome:
        """The session loaded and warm in a fresh worker; on failure the worker is gone and the error row
        says why."""
        worker = Worker(on_stage, spec.log_file)
        try:
            budget.call(worker, stages.load, spec, prepared)
            budget.call(worker, stages.warm_up, spec)
        except WorkerFailed as exc:
            worker.close(kill=True)
            return _failed(spec, budget, str(exc))
        except BaseException:  # an interrupt, or a fault in the parent: no worker is left behind
            worker.close(kill=True)
            raise
        return cls(spec, prepared, budget, worker)

    def close(self) -> None:
        """Kill the worker (a group that stops early must not leave loaded sessions running)."""
        self.worker.close(kill=True)

    def has_minimum(self) -> bool:
        """Do its rounds so far hold the cell's minimum time and count?"""
        timing = self.spec.timing
        calls, seconds = sum(r.calls for r in self.rounds), sum(r.seconds for r in self.rounds)
        return calls >= timing.min_iters and seconds >= timing.min_time_s

    def time_round(self, kernel: ReferenceKernel | None = None, position: int | None = None) -> None:
        """One round: a pause so that what ran before stops spinning (measured here: a kernel read straight
        after another runtime's round ran 2-5% slower than one read after a pause), the reference kernel
        (how fast is the machine right now?), then the worker's timed calls (their first two untimed), with
        the machine's CPU read around them."""
        self.kernel = kernel
        time.sleep(self.spec.timing.settle_s)  # before the kernel too: the last round's runtime may still spin
        kernel_ms = kernel.measure() if kernel is not None else None
        before = CpuCounters.read(self.worker.pid)
        try:
            calls, seconds, p50_ms = self.budget.call(self.worker, stages.time_round, self.spec)
        except WorkerFailed as exc:
            self.worker.close(kill=True)
            self.failure = _failed(self.spec, self.budget, str(exc))
            return
        cpu = CpuWindows.between(before, CpuCounters.read(self.worker.pid))
        self.rounds.append(TimedRound(calls, seconds, kernel_ms, cpu, load_average(), p50_ms, position))

    def measure(self, timing: GroupTiming) -> None:
        """The timing's record (its memory read first: it is reset for the evaluation) and the evaluation,
        over the cycles the group counted; the worker stays up for what follows (a scenario, the profile).
        A failure here ends the cell (`failure`)."""
        if self.failure is not None or self._measured is not None:
            return
        spec, budget = self.spec, self.budget
        used = timing.counted if timing.counted is not None else list(range(len(self.rounds)))
        try:
            measured: Measurement = budget.call(self.worker, stages.measurement, spec, used)
            quality, evaluation_peak, evaluation_status = self._evaluate(self.worker)
        except WorkerFailed as exc:
            self.worker.close(kill=True)
            self.failure = _failed(spec, budget, str(exc))
            return
        self._measured = (used, measured, quality, evaluation_peak, evaluation_status)

    def finish(self, timing: GroupTiming) -> CellOutcome:
        """Evaluate (unless `measure` did), profile, read the memory, close the worker: the measured cell (not
        yet explained), over the cycles the group counted (the row says when they fall short of the minimum
        in quiet cycles)."""
        self.measure(timing)
        if self.failure is not None:
            return self.failure
        assert self._measured is not None
        used, measured, quality, evaluation_peak, evaluation_status = self._measured
        spec, budget = self.spec, self.budget
        try:
            with self.worker as worker:
                profiled = self._profile(worker, measured.stats.p50_ms, self._profile_calls(used, timing))
                self._count_graph(worker)
        except WorkerFailed as exc:
            return _failed(spec, budget, str(exc))
        rounds = [self.rounds[i] for i in used]
        loads = [r.load_avg_1m for r in rounds if r.load_avg_1m is not None]
        contention = Contention.from_windows(
            CpuWindows.summed([r.cpu for r in rounds]),
            max(loads) if loads else None,
            [r.kernel_ms for r in rounds if r.kernel_ms is not None],
            self.kernel,
            too_few_quiet_rounds=timing.too_few_quiet,
            left_out=left_out_summary(list(timing.verdicts)) if timing.too_few_quiet else "",
            round_p50_ms=[r.p50_ms for r in rounds if r.p50_ms is not None],
        )
        measurement = replace(
            measured,
            timing_mode=spec.timing.mode,
            timing_rounds=len(used),
            timing_rounds_left_out=len(self.rounds) - len(used),
            evaluation_peak_rss_mib=evaluation_peak,
            contention=contention,
        )
        verdicts = timing.verdicts
        records = tuple(
            r.record(i, timing.reference_ms, verdicts[i] if i < len(verdicts) else None, i in used)
            for i, r in enumerate(self.rounds)
        )
        return CellOutcome(
            spec,
            "ok",
            self.prepared,
            measurement,
            quality,
            profile=profiled,
            duration_s=budget.spent,
            budget=budget,
            rounds=records,
            evaluation_status=evaluation_status,
            scenario=self.scenario,
        )

    def _evaluate(self, worker: Worker) -> tuple[QualityResult | None, float | None, str]:
        """The quality record, the evaluation's memory peak and the stage's status; a failed evaluation
        costs the quality columns (`evaluation_status` says why), never the latency measured before it. A
        cell of a shape sweep at another size than the suite's is not evaluated: its reference logits and
        labels are the suite's own size (docs/sweeps.md)."""
        spec = self.spec
        if spec.input_size is not None:
            return None, None, f"not measured: quality is measured at the suite's own size ({_own_size(spec)})"
        try:
            quality: QualityResult = self.budget.call(worker, stages.evaluate, self.spec)
            return quality, self.budget.call(worker, stages.evaluation_peak), "ok"
        except WorkerFailed as exc:
            return None, None, f"error: {cause(str(exc), self.budget)}"

    def median_p50_ms(self, cycles: list[int] | None) -> float | None:
        """The median of this cell's round p50s over `cycles` (None: every round)."""
        chosen = self.rounds if cycles is None else [self.rounds[i] for i in cycles if i < len(self.rounds)]
        values = [r.p50_ms for r in chosen if r.p50_ms is not None]
        return statistics.median(values) if values else None

    def _profile_calls(self, used: list[int], timing: GroupTiming) -> int:
        """`--profile`'s calls; without it, an int8 cell slower than the group's fp32 eager over the same
        cycles is still profiled (after everything measured), so the decision can say where its time goes."""
        spec = self.spec
        if spec.profile_calls or not spec.slow_int8_profile_calls or timing.reference_p50_ms is None:
            return spec.profile_calls
        p50 = self.median_p50_ms(used)
        return spec.slow_int8_profile_calls if p50 is not None and p50 > timing.reference_p50_ms else 0

    def _count_graph(self, worker: Worker) -> None:
        """The model's MAC count, cached for the share of peak (`stages.cache_graph_count`), last in the
        measuring worker; a count that fails costs nothing here (the roofline stage meets it and says so)."""
        try:
            self.budget.call(worker, stages.cache_graph_count, self.spec)
        except WorkerFailed:  # a timeout too: the worker is gone, everything measured is kept
            pass

    def _profile(self, worker: Worker, p50_ms: float, calls: int) -> ProfileResult | None:
        """The profiled pass (`--profile`, or an int8 cell slower than fp32), last in the measuring worker;
        a profiler that fails costs the profile columns, never the measured row."""
        if not calls:
            return None
        try:
            found = self.budget.call(worker, stages.profile, replace(self.spec, profile_calls=calls))
        except WorkerFailed as exc:  # its timeout too: the worker is gone, the measured numbers are kept
            return ProfileResult(f"error: {cause(str(exc), self.budget)}", p50_ms=p50_ms)
        return replace(ProfileResult.of(found, self.spec.backend), p50_ms=p50_ms)


def explain_cell(outcome: CellOutcome, on_stage: Progress) -> CellOutcome:
    """The Grad-CAM stage (worker 3); a failure keeps the measured numbers and says why the columns are empty."""
    spec, budget = outcome.spec, outcome.budget
    if not outcome.ok or outcome.prepared is None or budget is None:
        return outcome
    gradcam = None
    if spec.gradcam:
        try:
            with Worker(on_stage, spec.log_file) as worker:
                gradcam = budget.call(worker, stages.explain, spec, outcome.prepared)
        except WorkerFailed as exc:
            message = cause(str(exc), budget)
            gradcam = GradcamResult.failed(f"error: {message}", methods=spec.gradcam_methods)
    return replace(outcome, gradcam=gradcam, duration_s=budget.spent)


def evaluate_cell(spec: CellSpec, plan: BackendPlan, timeout_s: float, on_stage: Progress) -> CellOutcome:
    """Prepare (or find) the artifact and score it on the cell's split, without timing it: what a
    sensitivity or calibration study needs of each of its many variants (`segbench tune`). The row
    then has quality and artifact columns and no latency."""
    prepared = prepare_cell(spec, plan, timeout_s, on_stage)
    if isinstance(prepared, CellOutcome):
        return prepared
    artifact, budget = prepared
    try:
        with Worker(on_stage, spec.log_file) as worker:
            budget.call(worker, stages.load, spec, artifact)
            quality: QualityResult = budget.call(worker, stages.evaluate, spec)
    except WorkerFailed as exc:
        return _failed(spec, budget, str(exc))
    return CellOutcome(spec, "ok", artifact, None, quality, duration_s=budget.spent, budget=budget)
