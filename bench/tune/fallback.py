"""The budgeted float fallback: layers into float in the sensitivity's order, one more per step, each step
timed beside the fp32 reference (so its speedup is a same-run ratio) and scored on the tuning split,
until every budget holds (tuning.parquet); then the all-int8 start and the choice scored on the
evaluation split, which the tuning never looked at, to confirm it.
"""

from __future__ import annotations

import math
from typing import Any

from bench.backend import FLOAT_LAYERS_OPTION
from bench.measure.reference_kernel import ReferenceKernel
from bench.results.bounds import shortfall
from bench.tune.config import TuneConfig
from bench.tune.records import RankedLayer, StepRow, TuneOutcome, VariantScore, number
from bench.tune.store import TuneStore
from bench.tune.variants import Log, Variants, label, reference_kernel, scored, summary, timed_variant


def fallback(
    config: TuneConfig, variants: Variants, ranked: list[RankedLayer], store: TuneStore, log: Log
) -> TuneOutcome:
    """Layers into float in sensitivity order, one more per step, each step timed and scored on the
    tuning split, until every budget holds; then the choice (and the all-int8 start) scored on the
    evaluation split."""
    budgets = config.parsed_budgets
    candidates = [r.layer for r in ranked if r.helped]  # one that did not help alone: not tried
    limit = min(len(candidates), config.max_steps) if config.max_steps else len(candidates)
    kernel = reference_kernel(config)
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
    p50 = number(chosen.get("latency_p50_ms"), math.nan)
    speedup = number(chosen.get("speedup_vs_fp32"), math.nan)
    size_mib = number(chosen.get("model_size_bytes"), math.nan) / 2**20
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


def _timed_step(
    config: TuneConfig,
    variants: Variants,
    kernel: ReferenceKernel,
    step: int,
    layers: tuple[str, ...],
    store: TuneStore,
    log: Log,
) -> dict[str, Any]:
    """Step `step` (`layers` in float) timed beside the fp32 reference, scored and judged: its stored row."""
    prefix = f"[step {step}] {len(layers)} layer(s) in float" + (f", + {layers[-1]}" if layers else "")
    measured = timed_variant(config, variants, kernel, variants.with_layers(layers), prefix, log)
    row = StepRow.timed(step, layers, measured, config.parsed_budgets).columns()
    store.append("tuning", row)
    log(f"{prefix}: {summary(row, config)}")
    return row


def _confirm(config: TuneConfig, variants: Variants, store: TuneStore, log: Log, steps: list[int]) -> None:
    """The all-int8 start and the chosen step scored on the evaluation split: does it confirm tuning?"""
    for step in steps:
        if store.find("tuning", split="evaluation", step=step) is not None:
            continue
        tuned = store.find("tuning", split="tuning", step=step)
        layers = tuple(x for x in str(tuned["float_layers"]).split(",") if x) if tuned else ()
        prefix = f"[confirm step {step}] evaluation split"
        outcome = scored(
            variants.with_layers(layers, "evaluation"), variants.plan, config.shared.cell_timeout_s, label(log, prefix)
        )
        row = StepRow.confirmed(step, layers, VariantScore.of(outcome), config.parsed_budgets).columns()
        store.append("tuning", row)
        log(
            f"{prefix}: {outcome.status}"
            + "".join(f", {b.column} {row.get(b.column, float('nan')):.4f}" for b in config.parsed_budgets)
        )
