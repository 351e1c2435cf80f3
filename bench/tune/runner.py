"""`segbench tune`, in order: the references, the layers' sensitivity (bench/tune/sensitivity.py), the
greedy fallback under the budgets and the evaluation split's confirmation of the choice
(bench/tune/fallback.py), the runtime's own accuracy control beside it (bench/tune/peer.py), and the
calibration study (bench/tune/calibration.py); then the tune's reports.

Every variant is a cell of the run machinery (`bench.run`) on the suite's tuning split
(bench/tune/variants.py); each finished layer, step and draw is on disk at once (`bench.tune.store`,
its rows `bench.tune.records`); `--resume` measures only what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.cache import cache_root, file_digest
from bench.data.suite import get_suite
from bench.environment import collect_environment
from bench.errors import UsageError
from bench.output.terminal import progress
from bench.run.runner import new_run_dir, plan_cells
from bench.tune.calibration import calibration_study
from bench.tune.config import TuneConfig, save_tune_config
from bench.tune.fallback import fallback
from bench.tune.peer import accuracy_control_peer
from bench.tune.records import TuneOutcome
from bench.tune.sensitivity import sensitivity
from bench.tune.store import TuneStore
from bench.tune.variants import Log, Variants


def run_tune(
    config: TuneConfig,
    log: Log = progress,  # the `segbench` logger: a library caller configures where it goes
    resume: Path | None = None,
    on_folder: Callable[[Path], None] = lambda folder: None,
) -> TuneOutcome:
    """The whole tune (or what `resume`'s folder lacks). `on_folder` is told the tune folder as soon as it
    exists; the end counts what the capture of library output put into its logs/ in one line."""
    from bench.output.library_lines import library_summary, log_sizes

    logged_before = log_sizes(resume / "logs") if resume is not None else {}
    plans, suite = config.plans()
    plan = plans[-1]
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))
    from bench.run.references import reference_outputs
    from bench.run.runner import prepare_references

    run_config = config.run_config()
    references, onnx_files = prepare_references(run_config, {suite.name: suite})
    checkpoint, _ = references[(suite.name, config.model)]
    tuning_reference = reference_outputs(suite, config.model, checkpoint, "tuning")
    folder = resume if resume is not None else new_run_dir(config.shared.results_root, prefix="tune-")
    store = TuneStore(folder)
    if resume is None:
        folder.mkdir(parents=True, exist_ok=True)
        store.write_json(
            "env.json", {**collect_environment(config.shared.threads), "checkpoint": file_digest(checkpoint)}
        )
        save_tune_config(config, folder)
    on_folder(folder)
    cells = plan_cells(run_config, plans, references, onnx_files, folder)
    (reference_spec, reference_plan), (evaluation_spec, _) = cells[0], cells[-1]
    variants = Variants(
        plan=plan,
        reference_plan=reference_plan,
        tuned=replace(evaluation_spec, split="tuning", reference=tuning_reference),
        reference=replace(reference_spec, split="tuning", reference=tuning_reference, gradcam=False),
        evaluation=evaluation_spec,
        base_options=dict(config.backend_options),
        folder=folder,
    )
    log(
        f"tune {suite.name} / {config.model} / {plan.name} on the tuning split ({suite.split_sizes['tuning']} images); "
        f"folder {folder}"
    )
    outcome = TuneOutcome(folder, True, None, "calibration study only: see calibration.parquet and report.html")
    if config.budgets:
        ranked = sensitivity(config, variants, store, log)
        outcome = fallback(config, variants, ranked, store, log)
        accuracy_control_peer(config, variants, store, log)
    if config.studies_calibration:
        calibration_study(config, suite, variants, store, log)
    write_reports(folder, config, store)
    if library := library_summary(folder / "logs", logged_before):
        log(library)
    return replace(outcome, errors=tuple(store.errors()))


def write_reports(folder: Path, config: TuneConfig, store: TuneStore | None = None) -> list[Path]:
    """report.md, report.html and figures/ of a tune folder, from its own tables (`segbench report DIR`)."""
    from bench.report.tuning import write_tune_reports

    store = store or TuneStore(folder)
    lines = [[b.column, b.op, b.bound, str(b)] for b in config.parsed_budgets]
    report = {**config.to_json(), "budget_lines": lines, "suite_name": _suite_name(config)}
    return write_tune_reports(
        folder,
        store.frame("sensitivity"),
        store.frame("tuning"),
        store.frame("calibration"),
        report,
        store.frame("peer"),
    )


def _suite_name(config: TuneConfig) -> str:
    """The suite's own `name` for the report's title (--suite may be a path); the entry if it cannot be read."""
    try:
        return get_suite(config.suite, data_dir=config.shared.data_dir).name
    except UsageError:
        return config.suite
