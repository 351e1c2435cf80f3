"""Budgets a decision holds every cell to, judged with the number's 95% interval where the row has one.

A budget is a bound in the grammar of `--fail-on` and `tune --budget` (bench.results.bounds). A number
with an interval (`<column>_ci_low/_ci_high`: the quality drifts, from a paired bootstrap over images;
the speedup, from its per-cycle ratios) is judged by its ends: **met** when the interval's worse end
holds the bound, **failed** when even its better end misses, **uncertain** when the bound lies inside
the interval (the run cannot tell; more evaluation images or cycles would). A number without one
(memory, size, a per-class drift) is judged by its value. The fp32 reference is its own yardstick:
a bound on a column measured against it holds there by definition.

Without `--budget` a run is still decided, under MLPerf's rule for a quantized model (its accuracy
target: 99% of the fp32 model's): keep at least 99% of the fp32 reference's mIoU, or Dice where the
suite has two classes (one foreground: mIoU would average in the background, which hides a lost object).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.results.bounds import Bound, number
from bench.results.verdict import is_reference

KEEP_SHARE = 0.99  # MLPerf Inference's accuracy target for a quantized model: 99% of the fp32 model's
MET, UNCERTAIN, FAILED, NOT_JUDGED = "met", "uncertain", "failed", "not judged"


@dataclass(frozen=True)
class Budget:
    bound: Bound
    source: str  # "given" (--budget), or the default's rule and the fp32 value it was computed from

    @property
    def given(self) -> bool:
        return self.source == "given"

    def describe(self) -> str:
        return str(self.bound) if self.given else f"{self.bound} ({self.source})"


@dataclass(frozen=True)
class BudgetCheck:
    budget: Budget
    outcome: str  # met | uncertain | failed | not judged
    value: float | None = None
    low: float | None = None  # the 95% interval, where the row has one
    high: float | None = None
    why: str = ""  # for "not judged": noisy timing, no value

    def phrase(self) -> str:
        """`miou_drift>=-0.0071: -0.0123 [-0.0150, -0.0098], misses by 0.0052`"""
        bound = self.budget.bound
        if self.outcome == NOT_JUDGED or self.value is None:
            return f"{bound}: not judged ({self.why})"
        text = f"{bound}: {number(self.value)}"
        if self.low is not None and self.high is not None:
            text += f" [{number(self.low)}, {number(self.high)}]"
        if self.outcome == FAILED:
            return f"{text}, misses by {number(-_margin(bound, self.value))}"
        if self.outcome == UNCERTAIN:
            return f"{text}: the interval straddles the bound"
        return text


def primary_quality(row: Mapping[str, Any]) -> str:
    """`dice` where the suite has two classes (one foreground), `miou` otherwise: what the default budget
    keeps and what breaks a tie. The classes are counted from the row's own per-class columns."""
    classes = [c for c in row if c.startswith("iou_vs_reference_")]
    return "dice" if len(classes) == 2 else "miou"


def default_budgets(reference: Mapping[str, Any] | None) -> tuple[Budget, ...]:
    """Keep >= 99% of the fp32 reference's primary quality, as a bound on its drift; none without a
    reference row with that number (there is nothing to keep a share of)."""
    if reference is None:
        return ()
    metric = primary_quality(reference)
    value = reference.get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return ()
    bound = Bound(f"{metric}_drift", ">=", round(-(1 - KEEP_SHARE) * float(value), 6))
    name = {"miou": "mIoU", "dice": "Dice"}[metric]
    return (Budget(bound, f"default: keep >= {KEEP_SHARE:.0%} of fp32 {name} {value:.4f}, MLPerf's rule"),)


def check(budget: Budget, row: Mapping[str, Any]) -> BudgetCheck:
    """One budget on one ok row."""
    bound = budget.bound
    declared = bound.declared
    if declared is not None and declared.against_reference and is_reference(row):
        return BudgetCheck(budget, MET, _float(row.get(bound.column)), why="the reference itself")
    if declared is not None and declared.noisy(row):  # the timing of the column's own scenario
        return BudgetCheck(budget, NOT_JUDGED, why="noisy timing")
    value = _float(row.get(bound.column))
    if value is None:
        return BudgetCheck(budget, NOT_JUDGED, why="no value")
    low, high = _float(row.get(f"{bound.column}_ci_low")), _float(row.get(f"{bound.column}_ci_high"))
    if low is None or high is None:
        return BudgetCheck(budget, MET if _margin(bound, value) >= 0 else FAILED, value)
    worse, better = (low, high) if bound.op == ">=" else (high, low)
    if _margin(bound, worse) >= 0:
        outcome = MET
    elif _margin(bound, better) < 0:
        outcome = FAILED
    else:
        outcome = UNCERTAIN
    return BudgetCheck(budget, outcome, value, low, high)


def _margin(bound: Bound, value: float) -> float:
    return value - bound.bound if bound.op == ">=" else bound.bound - value


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
