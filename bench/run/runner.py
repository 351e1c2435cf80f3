"""The benchmark matrix: reference models first, then one cell at a time, each row written at once.

The parent checks everything (`RunConfig.validate`), trains (or finds) each reference checkpoint and
computes the fp32 reference predictions once, and only then creates the run folder, so a usage error
touches nothing on disk. Every cell then runs its stages in worker processes (`bench.run.cell`); a
cell that crashes, is killed or times out yields an error row, and the run goes on.

Over 400 lines (481) for now: the run's order of events (validate, references, folder, groups, cells,
end-of-run verdicts) reads as one story from top to bottom; the pieces with logic of their own already
live apart (cell.py, rounds.py, matrix.py, references.py, stages.py), and what is left are the short
functions that tie them together in that order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.backend import GRADCAM_CHOICES
from bench.cache import cache_root, file_digest
from bench.data.suite import Suite
from bench.environment import collect_environment
from bench.measure.reference_kernel import ReferenceKernel
from bench.output.terminal import progress
from bench.results.files import check_run_folder
from bench.results.row import Row, cell_id, stage_failures
from bench.results.speedup import SameRunReference, TimedRounds, ratios_trusted
from bench.results.store import RunStore, update_latest
from bench.run.cell import CellOutcome, MeasuringCell, explain_cell, prepare_cell
from bench.run.config import RunConfig, save_run_config
from bench.run.gradcam_checks import CutVerdicts
from bench.run.matrix import BackendPlan, CellSpec, group_cells, size_text
from bench.run.roofline import RooflineStage, peaks_env, peaks_line, run_peaks
from bench.run.rounds import time_cells
from bench.run.shard import ShardPlan


def new_run_dir(results_root: Path, prefix: str = "") -> Path:
    stamp = prefix + datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results_root / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = results_root / f"{stamp}-{suffix}"
    return run_dir


def _file_label(suite: str, model: str, plan: BackendPlan, shape: str = "") -> str:
    text = f"{suite}_{model}_{plan.name}-{plan.precision}{shape}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def plan_cells(
    config: RunConfig,
    plans: list[BackendPlan],
    references: dict[tuple[str, str], tuple[Path, Path]],
    onnx_files: dict[str, Path],
    run_dir: Path | None = None,
) -> list[tuple[CellSpec, BackendPlan]]:
    """Suite x model x shape x backend, the reference backend first within each group, then the other fp32
    ones (their Grad-CAM checks the graph cuts the int8 rows use, `bench.run.gradcam_checks`); a failing
    stage's traceback goes to run_dir/logs/<cell>.log. A shape is (swept input size, batch size): one
    comparison group each (`RunConfig.shapes`)."""
    cells = []
    ordered = _run_order(plans)
    for suite, (entry, loaded) in config.named_suites().items():
        for model in config.models:
            if (suite, model) not in references:  # another shard's group (--shard)
                continue
            checkpoint, reference = references[(suite, model)]
            shapes = config.shapes(loaded)
            for input_size, batch_size in shapes:
                size = f"_{size_text(input_size)}" if input_size else ""
                shape = "" if len(shapes) == 1 else f"_b{batch_size}{size}"
                for plan in ordered:
                    label = _file_label(suite, model, plan, shape)
                    spec = CellSpec(
                        suite=suite,
                        suite_file=entry,
                        splits=tuple(config.splits.items()),
                        model=model,
                        backend=plan.name,
                        precision=plan.precision,
                        device=config.device,
                        threads=config.threads,
                        batch_size=batch_size,
                        timing=config.timing,
                        checkpoint=checkpoint,
                        reference=reference,
                        options=plan.options,
                        data_dir=config.data_dir,
                        onnx=onnx_files.get(suite) if plan.backend.takes_onnx else None,
                        gradcam=config.gradcam and input_size is None,
                        gradcam_layers=config.gradcam_layers,
                        gradcam_methods=GRADCAM_CHOICES[config.gradcam_method],
                        threshold=config.threshold,
                        checkpoint_digest=file_digest(checkpoint),
                        log_file=None if run_dir is None else run_dir / "logs" / f"{label}.log",
                        profile_calls=config.profile_calls if config.profile else 0,
                        slow_int8_profile_calls=config.profile_calls if plan.precision == "int8" else 0,
                        profile_dir=None if run_dir is None else run_dir / "profiles" / label,
                        scenario=config.scenario,
                        input_size=input_size,
                        suite_size=(loaded.input_size[0], loaded.input_size[1]),
                    )
                    cells.append((spec, plan))
    return cells


def _run_order(plans: list[BackendPlan]) -> list[BackendPlan]:
    return sorted(plans, key=lambda plan: plan.precision != "fp32")  # stable: the reference stays first


def plan_matrix(config: RunConfig, plans: list[BackendPlan]) -> dict[tuple[str, str, str, int, str], tuple[str, ...]]:
    """Every comparison group of the whole matrix (`CellSpec.group`), in run order, with its cells' ids:
    what `--shard` selects from (whole groups) and `segbench merge` checks for missing cells."""
    matrix = {}
    for suite, (_, loaded) in config.named_suites().items():
        for model in config.models:
            for input_size, batch_size in config.shapes(loaded):
                swept = "" if input_size is None else size_text(input_size)
                group = (suite, model, config.device, batch_size, swept)
                identity = dict(suite=suite, model=model, device=config.device, batch_size=batch_size, input_size=swept)
                matrix[group] = tuple(
                    cell_id({**identity, "backend": p.name, "precision": p.precision}) for p in _run_order(plans)
                )
    return matrix


def prepare_references(
    config: RunConfig, suites: dict[str, Suite], groups: Iterable[tuple[str, str, str, int, str]] | None = None
) -> tuple[dict[tuple[str, str], tuple[Path, Path]], dict[str, Path]]:
    """(checkpoint, reference logits) per (suite name, model), trained or imported first, for every pair or
    only those of `groups` (a shard's); a user's ONNX per suite name."""
    from bench.models.external import is_huggingface
    from bench.run.references import reference_outputs
    from bench.training.checkpoints import ensure_checkpoint, imported_checkpoint
    from bench.training.recipes import suite_recipe

    references, onnx_files = {}, {}
    wanted = None if groups is None else {(suite, model) for suite, model, *_ in groups}
    for name, suite in suites.items():
        if config.onnx is not None:
            from bench.onnx.user_model import import_onnx

            onnx_files[name] = import_onnx(config.onnx, suite.in_channels, suite.input_size, suite.num_classes)
        for model in config.models:
            if wanted is not None and (name, model) not in wanted:
                continue
            if config.checkpoint is not None:  # checked by validate: the same file on every machine
                checkpoint = config.checkpoint.resolve()
            elif config.weights is not None or is_huggingface(model):  # hf:PATH: the folder's own weights
                checkpoint = imported_checkpoint(model, suite, config.weights, progress=config.progress)
            else:
                recipe_name, recipe = suite_recipe(model, suite)
                checkpoint = ensure_checkpoint(model, suite, recipe, progress=config.progress, recipe_name=recipe_name)
            references[(name, model)] = (checkpoint, reference_outputs(suite, model, checkpoint))
    return references, onnx_files


def run_benchmark(
    config: RunConfig,
    log: Callable[[str], None] = progress,  # the `segbench` logger: a library caller configures where it goes
    resume: Path | None = None,
    on_folder: Callable[[Path], None] = lambda folder: None,
) -> Path:
    """Run the whole matrix (or what `resume`'s folder has not finished); returns the run folder.
    `on_folder` is told the run folder as soon as it exists (the command moves its captured output into
    logs/ then); the end of the run counts what the capture put there in one line."""
    from bench.output.library_lines import library_summary, log_sizes
    from bench.report.files import write_reports

    logged_before = log_sizes(resume / "logs") if resume is not None else {}
    plans = config.validate()
    if resume is not None:  # a damaged file of the folder is a usage error before any training or writing
        check_run_folder(resume)
    # Inductor's compiled kernels (the PT2E backend compiles at load) are kept with segbench's own cache
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))
    executor = None
    if config.executor == "ray":  # connected and its nodes checked before any training or writing
        from bench.run.ray_executor import RayExecutor

        executor = RayExecutor(config)
    suites = {name: suite for name, (_, suite) in config.named_suites().items()}
    shard = ShardPlan.of(config.shard, plan_matrix(config, plans))
    if config.shard is not None:
        log(shard.note())
    references, onnx_files = prepare_references(config, suites, shard.groups)
    peaks = run_peaks(config)  # measured each run, the best kept per machine; a Ray run's nodes measure their own
    if line := peaks_line(peaks):
        log(line)
    run_dir = resume if resume is not None else new_run_dir(config.results_root)
    store = RunStore(run_dir)
    if resume is None:
        checkpoints = {f"{suite}/{model}": file_digest(path) for (suite, model), (path, _) in references.items()}
        env = {**collect_environment(config.threads), **peaks_env(peaks), "checkpoints": checkpoints}
        store.write_env({**env, **shard.record()})
        save_run_config(config, run_dir)
        update_latest(config.results_root, run_dir)
    on_folder(run_dir)
    cells = plan_cells(config, plans, references, onnx_files, run_dir)
    if executor is not None:
        entries = {name: entry for name, (entry, _) in config.named_suites().items()}
        return executor.run(cells, entries, run_dir, log)
    finished = store.finished_cells()
    labels = {spec.key: f"[{i}/{len(cells)}] {spec.label}" for i, (spec, _) in enumerate(cells, 1)}
    for spec, _ in cells:
        if spec.key in finished:
            log(f"{labels[spec.key]}: finished earlier, kept")
    todo = [(spec, plan) for spec, plan in cells if spec.key not in finished]
    kernel = ReferenceKernel(config.threads, reference_kernel_record(config.threads), config.timing.priority)
    kernel.measure()  # the run's first reading of the reference kernel, before any cell
    same_run = SameRunReference(store.rows())
    verdicts = CutVerdicts(store.rows())
    roofline = RooflineStage(peaks, config.cell_timeout_s)
    for timing_group, group in enumerate(_groups(todo, config.timing.mode)):
        outcomes = _measure_group(group, config.cell_timeout_s, kernel, labels, log)
        for outcome in outcomes:
            label = labels[outcome.spec.key]
            outcome = verdicts.apply(explain_cell(outcome, _stage_logger(log, label)))
            outcome = roofline.apply(outcome, _stage_logger(log, label))
            verdicts.observe(outcome)
            _record(store, run_dir, outcome, same_run, timing_group, suites[outcome.spec.suite], label, log)
    if not cells:  # a shard no group fell to (--shard): its empty table, so that reports and merge read it
        store.write_table()
    write_reports(run_dir)
    rows = store.rows()
    for line in (stage_summary(rows), _noisy_summary(rows), priority_summary(rows, config.timing.priority)):
        if line:
            log(line)
    if library := library_summary(run_dir / "logs", logged_before):
        log(library)
    return run_dir


def measure_cells(
    cells: list[tuple[CellSpec, BackendPlan]],
    timeout_s: float,
    kernel: ReferenceKernel,
    log: Callable[[str], None],
    labels: dict[str, str] | None = None,
) -> list[CellOutcome]:
    """Prepare, time (interleaved when the timing mode says so) and evaluate these cells as one group,
    then explain each that asks for Grad-CAM: what a run does with each group, for callers that run
    their own variants (`segbench tune`). Outcomes in cell order; rows are the caller's to build."""
    names = labels or {spec.key: spec.label for spec, _ in cells}
    outcomes = _measure_group(cells, timeout_s, kernel, names, log)
    return [explain_cell(outcome, _stage_logger(log, names[outcome.spec.key])) for outcome in outcomes]


def reference_kernel_record(threads: int) -> Path:
    """Where this machine's quietest reference-kernel time at `threads` threads is kept between runs.

    Keyed on the machine, the kernel's version and torch's: a torch that runs the kernel slower would
    otherwise judge every round of every later run against a time it can no longer reach."""
    from bench.cache import cache_root, library_versions, stable_hash
    from bench.environment import machine_fingerprint, machine_identity

    key = stable_hash(
        {
            "machine": machine_fingerprint(machine_identity(threads)),
            "kernel": ReferenceKernel.VERSION,
            "torch": library_versions(("torch",)),
        }
    )
    return cache_root() / "machine" / f"reference-kernel--{key}--t{threads}.json"


def _groups(cells: list[tuple[CellSpec, BackendPlan]], mode: str) -> list[list[tuple[CellSpec, BackendPlan]]]:
    """Interleaved: the cells of one (suite, model, device, batch size) together; sequential: one by one."""
    if mode == "sequential":
        return [[cell] for cell in cells]
    return group_cells(cells)


def _measure_group(
    group: list[tuple[CellSpec, BackendPlan]],
    timeout_s: float,
    kernel: ReferenceKernel,
    labels: dict[str, str],
    log: Callable[[str], None],
) -> list[CellOutcome]:
    """Prepare and load every cell of the group, time them together, evaluate each: outcomes in cell order."""
    done: dict[str, CellOutcome] = {}
    measuring: list[MeasuringCell] = []
    try:
        for spec, plan in group:
            on_stage = _stage_logger(log, labels[spec.key])
            prepared = prepare_cell(spec, plan, timeout_s, on_stage)
            if isinstance(prepared, CellOutcome):
                done[spec.key] = prepared
                continue
            started = MeasuringCell.start(spec, *prepared, on_stage)
            if isinstance(started, CellOutcome):
                done[spec.key] = started
            else:
                measuring.append(started)
        if measuring:
            first = measuring[0].spec
            name = f"{first.suite} / {first.model}" if len(group) > 1 else labels[first.key]
            log(f"{name}: timing {len(measuring)} backend(s), {first.timing.mode}")
            for outcome in time_cells(measuring, kernel, lambda line: log(f"{name}: {line}")):
                done[outcome.spec.key] = outcome
    finally:  # an interrupt or a fault in the parent leaves no loaded session running
        for cell in measuring:
            cell.close()
    return [done[spec.key] for spec, _ in group]


def _record(
    store: RunStore,
    run_dir: Path,
    outcome: CellOutcome,
    same_run: SameRunReference,
    timing_group: int,
    suite: Suite,
    label: str,
    log: Callable[[str], None],
) -> None:
    """The cell's row, its samples and maps on disk at once, and its montage. `timing_group` numbers the
    group the cell was timed in: only rows of one group have cycles a speedup can pair."""
    spec, measured = outcome.spec, outcome.measurement
    speedup = (
        None
        if measured is None
        else same_run.speedup(
            spec.group(),
            spec.backend,
            spec.precision,
            measured.stats.p50_ms,
            TimedRounds(timing_group, measured.round_p50_ms()),
        )
    )
    row = outcome.row(speedup)
    gradcam = outcome.gradcam
    store.append(
        row,
        measured.samples_ns if measured else None,
        outcome.quality.per_image_dice if outcome.quality else None,
        gradcam.records if gradcam is not None else None,
        measured.sample_rounds if measured else None,
        outcome.profile.records() if outcome.profile is not None else None,
        outcome.rounds,
        outcome.quality.image_count_columns() if outcome.quality else None,
    )
    try:
        write_montage(run_dir, outcome, row, suite)
    except Exception as exc:  # a figure must never cost the finished numbers
        log(f"{label}: Grad-CAM montage not drawn: {type(exc).__name__}: {exc}")
    log(f"{label}: {_outcome_line(outcome, row.record())}")


def _noisy_summary(rows: list[dict[str, Any]]) -> str:
    """One line at the end of a run: how many rows have noisy timing, and what was seen (each row's own
    reasons: other processes, steal, a slow host phase, rounds that disagreed; "busy" only where it was)."""
    noisy = [row for row in rows if str(row.get("timing_quality", "")).startswith("noisy")]
    if not noisy:
        return ""
    reasons = "; ".join(f"{row['backend']}: {str(row['timing_quality']).removeprefix('noisy: ')}" for row in noisy)
    biased = [str(row["backend"]) for row in noisy if not ratios_trusted(row.get("timing_quality"))]
    speedups = f", nor the speedups of {', '.join(biased)}" if biased else " (their speedups, paired by cycle, stand)"
    latencies = "their latencies are not to be trusted"
    return f"{len(noisy)} of {len(rows)} rows have noisy timing ({reasons}); {latencies}{speedups}"


def priority_summary(rows: list[dict[str, Any]], asked: str) -> str:
    """One line at the end of a run whose timed rounds did not get the priority asked for, and why: a
    busy core then bends their ratios (docs/timing.md)."""
    got = sorted({str(row["timing_priority"]) for row in rows if _got_less(row.get("timing_priority"), asked)})
    if not got:
        return ""
    return (
        f"timed rounds ran below --priority {asked}: {' / '.join(got)}; another busy process would change "
        "their ratios (run as root, or grant CAP_SYS_NICE or an RLIMIT_RTPRIO, for realtime)"
    )


def _got_less(described: Any, asked: str) -> bool:
    return isinstance(described, str) and not described.startswith(f"{asked} (")


def _stage_logger(log: Callable[[str], None], label: str) -> Callable[[str], None]:
    """Progress lines of one cell: `[i/n] suite / model / backend: stage`."""
    return lambda name: log(f"{label}: {name}")


def write_montage(run_dir: Path, outcome: CellOutcome, row: Row, suite: Suite) -> Path | None:
    """figures/gradcam_<suite>_<model>_<backend>-<precision>.png for a cell that was explained."""
    from bench.report.figures import figure_name, gradcam_montage, montage_title, save_figure

    explained, quality = outcome.gradcam, outcome.quality
    if (
        explained is None
        or quality is None
        or explained.images is None
        or explained.reference_maps is None
        or explained.backend_maps is None
    ):
        return None
    summary = explained.summaries[explained.layer or ""]
    labels = quality.predictions_head[: len(explained.images)]
    title = montage_title(
        f"{row.suite} / {row.model} / {row.backend} {row.precision}",
        explained.layer,
        explained.method,
        summary.gradcam_pearson,
        summary.gradcam_top10_iou,
        explained.reference_maps,
        explained.backend_maps,
        row.backend,
        explained.floor_pearson,
        explained.status.split(":")[0],
    )
    fig = gradcam_montage(
        explained.images,
        labels,
        explained.reference_maps,
        explained.backend_maps,
        [suite.classes[c] for c in explained.classes],
        suite.colors,
        title,
        row.backend,
    )
    name = figure_name(
        "gradcam", row.suite, row.model, f"{row.backend}-{row.precision}", row.device, f"b{row.batch_size}"
    )
    return save_figure(fig, run_dir / "figures" / f"{name}.png")


def _outcome_line(outcome: CellOutcome, record: dict[str, Any]) -> str:
    """The cell's line: its status, p50, Dice and time, and each stage that failed after the timing with
    its cause (the row's `<stage>_status`), so that `ok` never hides a failed stage."""
    from bench.output.capture import wrote_traceback

    log_file = outcome.spec.log_file
    traceback = f"traceback in {log_file}" if log_file is not None and wrote_traceback(log_file) else ""
    if outcome.status.startswith("error") and traceback:
        return f"{outcome.status} ({traceback})"
    if not outcome.ok or outcome.measurement is None:
        return outcome.status
    dice = f", dice {outcome.quality.scores.dice:.4f}" if outcome.quality is not None else ""
    line = (
        f"ok, p50 {outcome.measurement.stats.p50_ms:.2f} ms{dice}{_scenario_text(record)}, {outcome.duration_s:.1f} s"
    )
    failed = stage_failures(record)
    if not failed:
        return line
    stages = "; ".join(f"{stage} {status}" for stage, status in failed)
    return f"{line}; FAILED: {stages}" + (f" ({traceback})" if traceback else "")


def _scenario_text(record: dict[str, Any]) -> str:
    """`, offline 812 images/s` or `, server 140 images/s (p99 18.2 ms)`: the scenario's number on the cell's line."""
    offline, rate, p99 = record.get("offline_ips"), record.get("server_max_rate_ips"), record.get("server_p99_ms")
    if offline is not None:
        return f", offline {offline:.0f} images/s"
    if rate is not None:
        return f", server {rate:.0f} images/s" + (f" (p99 {p99:.1f} ms)" if p99 is not None else "")
    status = record.get("server_status")
    if isinstance(status, str) and status.startswith("not met"):  # an error is named with the failed stages
        return ", server: no rate met the bound"
    return ""


def stage_summary(rows: list[dict[str, Any]]) -> str:
    """One line at the end of a run: how many stages failed in rows whose measured numbers stand, and which."""
    failed = [(row, stage, status) for row in rows for stage, status in stage_failures(row)]
    if not failed:
        return ""
    named = "; ".join(
        f"{row['suite']} / {row['model']} / {row['backend']} {row['precision']} {stage}: {status}"
        for row, stage, status in failed
    )
    count = len({cell_id(row) for row, _, _ in failed})
    return (
        f"{len(failed)} stage failure(s) in {count} of {len(rows)} rows (their other numbers stand; "
        f"tracebacks in logs/): {named}"
    )
