"""`segbench tune`, in order: the references, the layers' sensitivity, the greedy fallback under the
budgets, the evaluation split's confirmation of the choice, and the calibration study.

Every variant is a cell of the run machinery (`bench.run`) on the suite's tuning split: prepared in a
worker and cached by content hash (a float-layer set or calibration draw is an option or input of the
artifact, so its key), scored like any cell; the greedy steps are also timed, each in a group with the
fp32 reference so its speedup is a same-run ratio. Each finished layer, step and draw is on disk at
once (`bench.tune.store`); `--resume` measures only what is missing.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.backend import FLOAT_LAYERS_OPTION, Backend, QuantLayer
from bench.cache import cache_root, file_digest, stable_hash
from bench.data.suite import Suite, get_suite
from bench.environment import collect_environment
from bench.errors import UsageError
from bench.measure.reference_kernel import ReferenceKernel
from bench.results.bounds import Bound, shortfall
from bench.results.columns import judged
from bench.results.speedup import Speedup, TimedRounds, speedup_of
from bench.run.cell import CellOutcome, evaluate_cell, explain_cell
from bench.run.isolation import Worker, WorkerFailed
from bench.run.matrix import BackendPlan, CellSpec
from bench.run.runner import measure_cells, new_run_dir, plan_cells, reference_kernel_record
from bench.tune import work
from bench.tune.config import TuneConfig, save_tune_config
from bench.tune.store import TuneStore

Log = Callable[[str], None]
# Columns every sensitivity row reports the gain of (value with the layer in float - all-int8 value).
GAIN_COLUMNS = ("miou", "dice", "mean_bf_score", "pixel_agreement", "min_class_iou_drift", "sqnr_db")


class TuneFailed(RuntimeError):
    """A tune that cannot go on (the all-int8 model or the layer list could not be made): one line, exit 1."""


def _in_worker(
    function: Callable[..., Any], args: tuple[Any, ...], timeout: float, on_stage: Log, log_file: Path
) -> tuple[str, Any]:
    """One call with the worker's context in a fresh worker that writes what libraries say (and a
    traceback) to `log_file`: ("ok", value) or ("error", message)."""
    with Worker(on_stage, log_file) as worker:
        try:
            return "ok", worker.call_with_context(timeout, function, *args)
        except WorkerFailed as exc:
            return "error", str(exc)


@dataclass(frozen=True)
class TuneOutcome:
    folder: Path
    met: bool  # a configuration met every budget (always True for a calibration-only tune)
    option_line: str | None  # `--option B.float_layers=...` of the chosen configuration
    message: str  # what was chosen, or which budget failed and by how much
    errors: tuple[str, ...] = ()  # variants (layers, steps, draws) that ended in error: the tune exits 1
    # the chosen configuration is slower than fp32 eager (its speedup and interval): quantizing does not
    # pay; the tune exits 1 unless --allow-slower
    slower: str = ""
    chosen: dict[str, Any] | None = None  # the chosen step's tuning row (a cross-backend tune decides on it)


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


def run_tune(
    config: TuneConfig,
    log: Log = lambda m: print(m, file=sys.stderr),
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
    folder = resume if resume is not None else new_run_dir(config.results_root, prefix="tune-")
    store = TuneStore(folder)
    if resume is None:
        folder.mkdir(parents=True, exist_ok=True)
        store.write_json("env.json", {**collect_environment(config.threads), "checkpoint": file_digest(checkpoint)})
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
        return get_suite(config.suite, data_dir=config.data_dir).name
    except UsageError:
        return config.suite


def _label(log: Log, prefix: str) -> Callable[[str], None]:
    return lambda stage: log(f"{prefix}: {stage}")


def _record(outcome: CellOutcome, speedup: Speedup | None = None) -> dict[str, Any]:
    return outcome.row(speedup).record()


def sensitivity(config: TuneConfig, variants: Variants, store: TuneStore, log: Log) -> list[dict[str, Any]]:
    """Each layer alone in float on the tuning split, against the all-int8 model: sensitivity.parquet.
    Returns the measured rows ranked by the first budget's gain (then by SQNR, lowest first)."""
    spec, timeout = variants.tuned, config.cell_timeout_s
    budgets = config.parsed_budgets
    logs = variants.folder / "logs"
    status, layers = _in_worker(work.quantizable_layers, (spec,), timeout, _label(log, "layers"), logs / "layers.log")
    if status != "ok" or not layers:
        raise TuneFailed(f"backend '{spec.backend}' listed no quantizable layer of '{spec.model}' ({layers})")
    status, sqnr = _in_worker(
        work.layer_sqnr, (spec, config.sqnr_images), timeout, _label(log, "layer SQNR"), logs / "layer-sqnr.log"
    )
    sqnr_note = (
        ""
        if status == "ok" and sqnr
        else f"layer SQNR not available: {sqnr if status != 'ok' else 'the backend has no numeric debugger'}"
    )
    sqnr = sqnr if status == "ok" and sqnr else {}
    if sqnr_note:
        log(sqnr_note)
    base = _base_row(variants, store, log, timeout)
    # measured in order of the proxy (lowest SQNR first), so --max-layers keeps the likeliest suspects
    order = sorted(layers, key=lambda layer: sqnr.get(layer.name, math.inf))
    todo = order[: config.max_layers] if config.max_layers else order
    columns = list(dict.fromkeys([*(b.column for b in budgets), *GAIN_COLUMNS]))
    for i, layer in enumerate(todo, 1):
        if store.find("sensitivity", layer=layer.name) is not None:
            continue
        prefix = f"[layer {i}/{len(todo)}] {layer.name}"
        outcome = _scored(variants.with_layers((layer.name,)), variants.plan, timeout, _label(log, prefix))
        row = _sensitivity_row(layer, outcome, base, columns, sqnr.get(layer.name), sqnr_note)
        store.append("sensitivity", row)
        primary = budgets[0].column
        gain = row.get(f"{primary}_gain")
        log(f"{prefix}: {outcome.status}" + (f", {primary} gain {gain:+.4f}" if gain is not None else ""))
    rows = [r for r in store.rows("sensitivity") if r["status"] == "ok"]
    rho = rank_agreement(rows, budgets[0].column)
    store.write_json(
        "sensitivity.json",
        {
            "spearman_sqnr_vs_metric": rho,
            "metric": budgets[0].column,
            "layers": len(layers),
            "measured": len(rows),
            "sqnr_note": sqnr_note,
        },
    )
    log(
        f"sensitivity: {len(rows)} of {len(layers)} layers measured; Spearman (SQNR rank vs {budgets[0].column} "
        f"gain rank) {'n/a' if rho is None else f'{rho:+.2f}'}"
    )
    return rank_layers(rows, budgets[0].column)


def improvement(row: dict[str, Any], metric: str, default: float) -> float:
    """What keeping the layer in float did for `metric`, positive when it helped: the stored gain (value with
    the layer in float minus the all-int8 value), negated where lower is better (bench/results/columns.py:
    gradcam_jsd), `default` where there is none."""
    gain = _number(row.get(f"{metric}_gain"), math.nan)
    if math.isnan(gain):
        return default
    declared = judged(metric)
    return -gain if declared is not None and declared.better == "lower" else gain


def rank_layers(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The layers that helped `metric` most first (then the lowest SQNR first, the proxy's suspects)."""
    return sorted(rows, key=lambda r: (-improvement(r, metric, -math.inf), _number(r.get("layer_sqnr_db"), math.inf)))


def _scored(spec: CellSpec, plan: BackendPlan, timeout: float, on_stage: Callable[[str], None]) -> CellOutcome:
    """Scored without timing, and explained when a budget is on a Grad-CAM column."""
    return explain_cell(evaluate_cell(spec, plan, timeout, on_stage), on_stage)


def _number(value: Any, default: float) -> float:
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _base_row(variants: Variants, store: TuneStore, log: Log, timeout: float) -> dict[str, Any]:
    stored = store.find("tuning", split="tuning-untimed", step=0)
    if stored is not None:
        return stored
    outcome = _scored(variants.with_layers(()), variants.plan, timeout, _label(log, "all-int8"))
    if not outcome.ok:
        raise TuneFailed(f"the all-int8 model could not be scored on the tuning split: {outcome.status}")
    row = {"split": "tuning-untimed", "step": 0, "float_layers": "", "n_float_layers": 0, **_record(outcome)}
    store.append("tuning", row)
    return row


def _sensitivity_row(
    layer: QuantLayer,
    outcome: CellOutcome,
    base: dict[str, Any],
    columns: list[str],
    sqnr: float | None,
    sqnr_note: str,
) -> dict[str, Any]:
    record = _record(outcome)
    row: dict[str, Any] = {
        "layer": layer.name,
        "module_path": layer.name,
        "op_type": layer.op_type,
        "node": layer.node,
        "status": outcome.status,
        "layer_sqnr_db": sqnr,
        "layer_sqnr_method": sqnr_note or "runtime numeric debugger (bench.measure.layer_sqnr)",
    }
    for column in columns:
        value = record.get(column)
        row[column] = value
        base_value = base.get(column)
        row[f"{column}_gain"] = (
            None if value is None or base_value is None or not outcome.ok else float(value) - float(base_value)
        )
    row |= {
        "model_size_bytes": record.get("model_size_bytes"),
        "float_ops": record.get("float_ops"),
        "int8_ops": record.get("int8_ops"),
        "artifact_cached": record.get("artifact_cached"),
    }
    return row


def rank_agreement(rows: list[dict[str, Any]], metric: str) -> float | None:
    """Spearman's rho between the SQNR ranking (lowest SQNR = most sensitive) and the measured ranking
    (largest gain when kept in float = most sensitive): +1 when the cheap proxy orders layers as the
    measurement does; None with fewer than 3 layers that have both numbers."""
    from scipy.stats import spearmanr

    pairs = [
        (r["layer_sqnr_db"], r[f"{metric}_gain"])
        for r in rows
        if r.get("layer_sqnr_db") is not None
        and r.get(f"{metric}_gain") is not None
        and not math.isnan(r["layer_sqnr_db"])
        and not math.isnan(r[f"{metric}_gain"])
    ]
    if len(pairs) < 3:
        return None
    rho = spearmanr([-s for s, _ in pairs], [g for _, g in pairs]).statistic
    return None if math.isnan(rho) else float(rho)


def fallback(
    config: TuneConfig, variants: Variants, ranked: list[dict[str, Any]], store: TuneStore, log: Log
) -> TuneOutcome:
    """Layers into float in sensitivity order, one more per step, each step timed and scored on the
    tuning split, until every budget holds; then the choice (and the all-int8 start) scored on the
    evaluation split."""
    budgets = config.parsed_budgets
    primary = budgets[0].column
    candidates = [
        r["layer"] for r in ranked if improvement(r, primary, 0.0) > 0
    ]  # one that did not help alone: not tried
    limit = min(len(candidates), config.max_steps) if config.max_steps else len(candidates)
    kernel = ReferenceKernel(config.threads, reference_kernel_record(config.threads), config.timing.priority)
    kernel.measure()
    best: tuple[float, dict[str, Any]] | None = None
    chosen: dict[str, Any] | None = None
    for step in range(limit + 1):
        layers = tuple(candidates[:step])
        stored = store.find("tuning", split="tuning", step=step, float_layers=",".join(layers))
        row = stored or _timed_step(config, variants, kernel, step, layers, store, log)
        margins = [b.margin(row) for b in budgets]
        worst = min((m if m is not None else -math.inf) for m in margins)
        if best is None or worst > best[0]:
            best = (worst, row)
        if all(b.holds(row) for b in budgets):
            chosen = row
            break
    if chosen is None:
        assert best is not None
        missed = "; ".join(shortfall(budgets, best[1]))
        message = (
            f"no configuration met the budget on the tuning split: the best ({best[1]['n_float_layers']} layer(s) "
            f"in float, of {len(candidates)} that helped alone) misses {missed}"
        )
        _confirm(config, variants, store, log, [0])
        return TuneOutcome(variants.folder, False, None, message)
    _confirm(config, variants, store, log, sorted({0, int(chosen["step"])}))
    kept = str(chosen["float_layers"])
    option = f"--option {variants.plan.name}.{FLOAT_LAYERS_OPTION}={kept}" if kept else None
    p50 = _number(chosen.get("latency_p50_ms"), math.nan)
    speedup = _number(chosen.get("speedup_vs_fp32"), math.nan)
    size_mib = _number(chosen.get("model_size_bytes"), math.nan) / 2**20
    low, high = chosen.get("speedup_vs_fp32_ci_low"), chosen.get("speedup_vs_fp32_ci_high")
    interval = f" [{low:.2f}, {high:.2f}]" if isinstance(low, float) and isinstance(high, float) else ""
    message = (
        f"every budget holds with {chosen['n_float_layers']} layer(s) in float: p50 {p50:.2f} ms, "
        f"{speedup:.2f}x{interval} fp32 eager (same group), {size_mib:.2f} MiB"
    )
    slower = ""
    if speedup < 1:  # more layers in float only slow it further: no configuration beats fp32
        slower = (
            f"but it is slower than fp32 eager ({speedup:.2f}x{interval}): quantizing {variants.plan.name} does "
            "not pay here"
        )
        message += f"; {slower}"
    return TuneOutcome(variants.folder, True, option, message, slower=slower, chosen=chosen)


def _timed_variant(
    config: TuneConfig,
    variants: Variants,
    kernel: ReferenceKernel,
    spec: CellSpec,
    prefix: str,
    log: Log,
) -> dict[str, Any]:
    """The variant `spec`, timed in a group with the fp32 reference and scored."""
    labels = {variants.reference.key: f"{prefix} / fp32 reference", spec.key: prefix}
    reference, tuned = measure_cells(
        [(variants.reference, variants.reference_plan), (spec, variants.plan)],
        config.cell_timeout_s,
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
    return {
        "fp32_latency_p50_ms": reference.measurement.stats.p50_ms if reference.measurement else None,
        **_record(tuned, speedup),
    }


def _with_margins(config: TuneConfig, row: dict[str, Any]) -> dict[str, Any]:
    for budget in config.parsed_budgets:
        row[f"margin: {budget}"] = budget.margin(row)
    row["budgets_met"] = all(b.holds(row) for b in config.parsed_budgets)
    return row


def _summary(row: dict[str, Any], config: TuneConfig) -> str:
    p50 = row.get("latency_p50_ms")
    return (
        f"{row.get('status')}"
        + (f", p50 {p50:.2f} ms" if p50 else "")
        + "".join(f", {b.column} {_number(row.get(b.column), math.nan):.4f}" for b in config.parsed_budgets)
        + (", budgets met" if row.get("budgets_met") else "")
    )


def _timed_step(
    config: TuneConfig,
    variants: Variants,
    kernel: ReferenceKernel,
    step: int,
    layers: tuple[str, ...],
    store: TuneStore,
    log: Log,
) -> dict[str, Any]:
    prefix = f"[step {step}] {len(layers)} layer(s) in float" + (f", + {layers[-1]}" if layers else "")
    measured = _timed_variant(config, variants, kernel, variants.with_layers(layers), prefix, log)
    row = _with_margins(
        config,
        {
            "split": "tuning",
            "step": step,
            "float_layers": ",".join(layers),
            "n_float_layers": len(layers),
            "added_layer": layers[-1] if layers else "",
            **measured,
        },
    )
    store.append("tuning", row)
    log(f"{prefix}: {_summary(row, config)}")
    return row


def _confirm(config: TuneConfig, variants: Variants, store: TuneStore, log: Log, steps: list[int]) -> None:
    """The all-int8 start and the chosen step scored on the evaluation split: does it confirm tuning?"""
    for step in steps:
        if store.find("tuning", split="evaluation", step=step) is not None:
            continue
        tuned = store.find("tuning", split="tuning", step=step)
        layers = tuple(x for x in str(tuned["float_layers"]).split(",") if x) if tuned else ()
        prefix = f"[confirm step {step}] evaluation split"
        outcome = _scored(
            variants.with_layers(layers, "evaluation"), variants.plan, config.cell_timeout_s, _label(log, prefix)
        )
        row = {
            "split": "evaluation",
            "step": step,
            "float_layers": ",".join(layers),
            "n_float_layers": len(layers),
            **_record(outcome),
        }
        for budget in config.parsed_budgets:
            row[f"margin: {budget}"] = budget.margin(row)
        row["budgets_met"] = all(b.holds(row) for b in config.parsed_budgets)
        store.append("tuning", row)
        log(
            f"{prefix}: {outcome.status}"
            + "".join(f", {b.column} {row.get(b.column, float('nan')):.4f}" for b in config.parsed_budgets)
        )


def peer_budget(config: TuneConfig) -> Bound | None:
    """The first budget a runtime's accuracy control can take: an absolute drop of one metric
    (`<metric>_drift>=-X`; NNCF's `max_drop` is one number on one metric)."""
    return next(
        (
            b
            for b in config.parsed_budgets
            if b.column.endswith("_drift") and b.op == ">=" and b.bound <= 0 and b.column != "min_class_iou_drift"
        ),
        None,
    )


def accuracy_control_peer(config: TuneConfig, variants: Variants, store: TuneStore, log: Log) -> None:
    """The runtime's own accuracy-aware quantization (NNCF's accuracy control for openvino-int8) under the
    same budget on the same tuning split; the model it returns (saved under peer/, deployed through the
    options it names) is then measured as segbench measures a step (timed beside the fp32 reference,
    scored, confirmed on evaluation): peer.parquet."""
    if type(variants.plan.backend).accuracy_control is Backend.accuracy_control:
        return  # the runtime has no such tool
    budget = peer_budget(config)
    if budget is None:
        log("accuracy control: not run (it takes one absolute drop of one metric, e.g. miou_drift>=-0.005)")
        return
    metric, max_drop = budget.column.removesuffix("_drift"), -budget.bound
    tuned = store.find("peer", split="tuning")
    if tuned is None:
        prefix = f"[accuracy control] {variants.plan.name}, {metric} drop <= {max_drop:g}"
        args = (variants.tuned, metric, max_drop, variants.folder / "peer")
        status, result = _in_worker(
            work.accuracy_control,
            args,
            config.cell_timeout_s,
            _label(log, prefix),
            variants.folder / "logs" / "accuracy-control.log",
        )
        if status != "ok" or result is None:
            log(f"{prefix}: {result if status != 'ok' else 'no result'}")
            store.append("peer", {"split": "tuning", "budget": str(budget), "status": f"error: {result}"})
            return
        kernel = ReferenceKernel(config.threads, reference_kernel_record(config.threads), config.timing.priority)
        kernel.measure()
        spec = variants.with_options(result.options, "peer")
        measured = _timed_variant(config, variants, kernel, spec, prefix, log)
        tuned = _with_margins(
            config,
            {
                "split": "tuning",
                "method": result.method,
                "budget": str(budget),
                "float_layers": ",".join(result.float_layers),
                "n_float_layers": len(result.float_layers),
                "peer_options": ",".join(f"{k}={v}" for k, v in result.options.items()),
                "own_float_score": result.float_score,
                "own_quantized_score": result.quantized_score,
                "own_drop": result.float_score - result.quantized_score,
                "own_seconds": result.seconds,
                "own_notes": result.notes,
                **measured,
            },
        )
        store.append("peer", tuned)
        log(
            f"{prefix}: {len(result.float_layers)} layer(s) in float in {result.seconds:.0f} s "
            f"(its own {metric}: float {result.float_score:.4f}, int8 {result.quantized_score:.4f}); "
            f"measured: {_summary(tuned, config)}"
        )
    if str(tuned.get("status", "")).startswith("error") or store.find("peer", split="evaluation") is not None:
        return
    layers = tuple(x for x in str(tuned.get("float_layers", "")).split(",") if x)
    extra = dict(item.split("=", 1) for item in str(tuned.get("peer_options", "")).split(",") if "=" in item)
    prefix = "[accuracy control] evaluation split"
    spec = variants.with_options(extra, "peer", "evaluation")
    outcome = _scored(spec, variants.plan, config.cell_timeout_s, _label(log, prefix))
    row = _with_margins(
        config,
        {
            "split": "evaluation",
            "method": tuned.get("method"),
            "budget": str(budget),
            "float_layers": ",".join(layers),
            "n_float_layers": len(layers),
            **_record(outcome),
        },
    )
    store.append("peer", row)
    log(f"{prefix}: {_summary(row, config)}")


def calibration_study(config: TuneConfig, suite: Suite, variants: Variants, store: TuneStore, log: Log) -> None:
    """Every (method, size, seed) calibrated and scored on the tuning split: calibration.parquet."""
    methods: tuple[str | None, ...] = config.calibration_methods or (None,)
    sizes = config.calibration_sizes or (suite.split_sizes["calibration"],)
    total = len(methods) * len(sizes) * config.seeds
    i = 0
    for method in methods:
        for size in sizes:
            for seed in range(config.seeds):
                i += 1
                name = method or "default"
                if store.find("calibration", method=name, size=size, seed=seed) is not None:
                    continue
                prefix = f"[calibration {i}/{total}] {name}, {size} images, seed {seed}"
                outcome = evaluate_cell(
                    variants.with_calibration(method, size, seed),
                    variants.plan,
                    config.cell_timeout_s,
                    _label(log, prefix),
                )
                record = _record(outcome)
                store.append("calibration", {"method": name, "size": size, "seed": seed, **record})
                log(f"{prefix}: {outcome.status}" + (f", miou_drift {record['miou_drift']:+.4f}" if outcome.ok else ""))
