"""Which layers break int8: each quantizable layer alone in float on the tuning split, scored against the
all-int8 start (sensitivity.parquet), and the layers ranked for the fallback by what that gained.

The runtime's numeric debugger gives each layer's SQNR first, a cheap proxy: layers are measured in its
order (lowest SQNR first, so --max-layers keeps the likeliest suspects), and sensitivity.json says how
well it agreed with the measurement (Spearman's rho).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.tune import work
from bench.tune.config import TuneConfig
from bench.tune.records import RankedLayer, SensitivityRow, SensitivitySummary, StepRow, VariantScore
from bench.tune.store import TuneStore
from bench.tune.variants import Log, Variants, in_worker, label, scored

# Columns every sensitivity row reports the gain of (value with the layer in float - all-int8 value).
GAIN_COLUMNS = ("miou", "dice", "mean_bf_score", "pixel_agreement", "min_class_iou_drift", "sqnr_db")


class TuneFailed(RuntimeError):
    """A tune that cannot go on (the all-int8 model or the layer list could not be made): one line, exit 1."""


def sensitivity(config: TuneConfig, variants: Variants, store: TuneStore, log: Log) -> list[RankedLayer]:
    """Each layer alone in float on the tuning split, against the all-int8 model: sensitivity.parquet.
    Returns the measured layers ranked by the first budget's gain (then by SQNR, lowest first)."""
    spec, timeout = variants.tuned, config.shared.cell_timeout_s
    budgets = config.parsed_budgets
    logs = variants.folder / "logs"
    status, layers = in_worker(work.quantizable_layers, (spec,), timeout, label(log, "layers"), logs / "layers.log")
    if status != "ok" or not layers:
        raise TuneFailed(f"backend '{spec.backend}' listed no quantizable layer of '{spec.model}' ({layers})")
    status, sqnr = in_worker(
        work.layer_sqnr, (spec, config.sqnr_images), timeout, label(log, "layer SQNR"), logs / "layer-sqnr.log"
    )
    sqnr_note = (
        ""
        if status == "ok" and sqnr
        else f"layer SQNR not available: {sqnr if status != 'ok' else 'the backend has no numeric debugger'}"
    )
    sqnr = sqnr if status == "ok" and sqnr else {}
    if sqnr_note:
        log(sqnr_note)
    start = _start_row(variants, store, log, timeout)
    # measured in order of the proxy (lowest SQNR first), so --max-layers keeps the likeliest suspects
    order = sorted(layers, key=lambda layer: sqnr.get(layer.name, math.inf))
    todo = order[: config.max_layers] if config.max_layers else order
    columns = list(dict.fromkeys([*(b.column for b in budgets), *GAIN_COLUMNS]))
    primary = budgets[0].column
    for i, layer in enumerate(todo, 1):
        if store.find("sensitivity", layer=layer.name) is not None:
            continue
        prefix = f"[layer {i}/{len(todo)}] {layer.name}"
        outcome = scored(variants.with_layers((layer.name,)), variants.plan, timeout, label(log, prefix))
        row = SensitivityRow.measured(layer, VariantScore.of(outcome), start, columns, sqnr.get(layer.name), sqnr_note)
        store.append("sensitivity", row.columns())
        gain = row.gain(primary)
        log(f"{prefix}: {outcome.status}" + (f", {primary} gain {gain:+.4f}" if gain is not None else ""))
    rows = [r for r in store.rows("sensitivity") if r["status"] == "ok"]
    rho = rank_agreement(rows, primary)
    store.write_json("sensitivity.json", SensitivitySummary(rho, primary, len(layers), len(rows), sqnr_note).to_json())
    log(
        f"sensitivity: {len(rows)} of {len(layers)} layers measured; Spearman (SQNR rank vs {primary} "
        f"gain rank) {'n/a' if rho is None else f'{rho:+.2f}'}"
    )
    return rank_layers(rows, primary)


def _start_row(variants: Variants, store: TuneStore, log: Log, timeout: float) -> Mapping[str, Any]:
    """The all-int8 model scored on the tuning split (tuning.parquet, split `tuning-untimed`): what each
    layer's gain is measured from. A resumed tune reads it back."""
    stored = store.find("tuning", split="tuning-untimed", step=0)
    if stored is not None:
        return stored
    outcome = scored(variants.with_layers(()), variants.plan, timeout, label(log, "all-int8"))
    if not outcome.ok:
        raise TuneFailed(f"the all-int8 model could not be scored on the tuning split: {outcome.status}")
    row = StepRow.start(VariantScore.of(outcome)).columns()
    store.append("tuning", row)
    return row


def rank_layers(rows: list[dict[str, Any]], metric: str) -> list[RankedLayer]:
    """The stored layers that helped `metric` most first (then the lowest SQNR first, the proxy's suspects)."""
    return sorted((RankedLayer.of(row, metric) for row in rows), key=RankedLayer.rank)


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
