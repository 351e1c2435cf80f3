"""Quality budgets: `miou_drift>=-0.005`, `min_class_iou_drift>=-0.02`, `gradcam_pearson>=0.95`.

A budget is a bound (bench/results/bounds.py, the grammar `segbench run --fail-on` shares) checked
against a variant's row on the tuning split. Tune scores every variant (each layer alone in float, each
calibration draw, the evaluation split's confirmation) but times only the fallback's steps, so a budget
must be on a column scoring fills: quality, drift, agreement, boundary, per-class, SQNR or Grad-CAM.
A latency, speed, size or memory bound belongs on the run (`--fail-on`), where every row has it.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.errors import UsageError
from bench.results.bounds import Bound, parse_bounds

SCORED_KINDS = ("quality", "boundary", "drift", "agreement", "per-class", "sqnr", "gradcam")
OPTION = "--budget"


def parse_budgets(texts: Iterable[str]) -> tuple[Bound, ...]:
    """Each budget parsed, on a declared metric tune scores: a one-line usage error otherwise."""
    budgets = parse_bounds(texts, OPTION)
    for budget in budgets:
        declared = budget.declared
        assert declared is not None  # parse_bounds refuses undeclared columns
        if declared.kind not in SCORED_KINDS:
            raise UsageError(
                f"{OPTION} '{budget}': '{budget.column}' is a {declared.kind} column, which tune does not measure "
                f"on every variant; budgets take {', '.join(SCORED_KINDS)} columns (bound it on the run: "
                "segbench run --fail-on)"
            )
    return budgets


def check_columns(budgets: Iterable[Bound], columns: Iterable[str]) -> None:
    """A usage error for a budget on a column this suite's rows do not have (a class it has no such name for)."""
    known = set(columns)
    for budget in budgets:
        if budget.column not in known:
            close = sorted(c for c in known if budget.column.split("_")[0] in c)[:6]
            raise UsageError(
                f"{OPTION} '{budget}': no column '{budget.column}'; e.g. "
                + ", ".join(close or ["miou_drift", "min_class_iou_drift", "dice_drift", "mean_bf_score_drift"])
            )
