"""The runtime's own accuracy-aware quantization (NNCF's accuracy control for openvino-int8) as the peer of
segbench's fallback: given the same budget on the same tuning split, in a worker, and the model it
returns measured as segbench measures a step (timed beside the fp32 reference, scored, confirmed on the
evaluation split): peer.parquet, beside the fallback in the report.

It lives apart from the fallback because it is a different tool's answer to the same question, which the
report sets side by side; only a backend that implements `accuracy_control` has one.
"""

from __future__ import annotations

from bench.backend import Backend
from bench.results.bounds import Bound
from bench.tune import work
from bench.tune.config import TuneConfig
from bench.tune.records import PeerFailure, PeerRow, VariantScore
from bench.tune.store import TuneStore
from bench.tune.variants import Log, Variants, in_worker, label, reference_kernel, scored, summary, timed_variant


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
    """The runtime's own accuracy-aware quantization under the same budget on the same tuning split; the
    model it returns (saved under peer/, deployed through the options it names) is then measured as
    segbench measures a step (timed beside the fp32 reference, scored, confirmed on evaluation):
    peer.parquet."""
    if type(variants.plan.backend).accuracy_control is Backend.accuracy_control:
        return  # the runtime has no such tool
    budget = peer_budget(config)
    if budget is None:
        log("accuracy control: not run (it takes one absolute drop of one metric, e.g. miou_drift>=-0.005)")
        return
    metric, max_drop = budget.column.removesuffix("_drift"), -budget.bound
    budgets, timeout = config.parsed_budgets, config.shared.cell_timeout_s
    tuned = store.find("peer", split="tuning")
    if tuned is None:
        prefix = f"[accuracy control] {variants.plan.name}, {metric} drop <= {max_drop:g}"
        args = (variants.tuned, metric, max_drop, variants.folder / "peer")
        status, result = in_worker(
            work.accuracy_control, args, timeout, label(log, prefix), variants.folder / "logs" / "accuracy-control.log"
        )
        if status != "ok" or result is None:
            log(f"{prefix}: {result if status != 'ok' else 'no result'}")
            store.append("peer", PeerFailure(budget, str(result)).columns())
            return
        kernel = reference_kernel(config)
        measured = timed_variant(config, variants, kernel, variants.with_options(result.options, "peer"), prefix, log)
        tuned = PeerRow.timed(result, budget, measured, budgets).columns()
        store.append("peer", tuned)
        log(
            f"{prefix}: {len(result.float_layers)} layer(s) in float in {result.seconds:.0f} s "
            f"(its own {metric}: float {result.float_score:.4f}, int8 {result.quantized_score:.4f}); "
            f"measured: {summary(tuned, config)}"
        )
    if str(tuned.get("status", "")).startswith("error") or store.find("peer", split="evaluation") is not None:
        return
    layers = tuple(x for x in str(tuned.get("float_layers", "")).split(",") if x)
    extra = dict(item.split("=", 1) for item in str(tuned.get("peer_options", "")).split(",") if "=" in item)
    prefix = "[accuracy control] evaluation split"
    outcome = scored(variants.with_options(extra, "peer", "evaluation"), variants.plan, timeout, label(log, prefix))
    row = PeerRow.confirmed(tuned.get("method"), budget, layers, VariantScore.of(outcome), budgets).columns()
    store.append("peer", row)
    log(f"{prefix}: {summary(row, config)}")
