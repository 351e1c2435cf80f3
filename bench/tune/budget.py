"""Quality budgets: `miou_drift>=-0.005`, `min_class_iou_drift>=-0.02`, `gradcam_pearson>=0.95`.

A budget names one row column (any quality, per-class, boundary or Grad-CAM column of `segbench run`),
a comparison and a bound. It is checked against a variant's row on the tuning split; the margin says
by how much it holds (>= 0) or fails (< 0), in the column's unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError

_PATTERN = re.compile(r"^\s*([A-Za-z0-9_@.\-]+)\s*(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Budget:
    column: str
    op: str  # ">=" or "<="
    bound: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        match = _PATTERN.match(text)
        if match is None:
            raise UsageError(
                f"--budget '{text}' is not valid; expected COLUMN>=NUMBER or COLUMN<=NUMBER, e.g. miou_drift>=-0.005"
            )
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.bound:g}"

    @property
    def needs_gradcam(self) -> bool:
        return self.column.startswith("gradcam_")

    def margin(self, row: Mapping[str, Any]) -> float | None:
        """How far the row is inside the budget (negative: outside), in the column's unit; None when the
        row has no valid number in that column (a failed cell, or a Grad-CAM method that could not run)."""
        value = row.get(self.column)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        return float(value) - self.bound if self.op == ">=" else self.bound - float(value)

    def holds(self, row: Mapping[str, Any]) -> bool:
        margin = self.margin(row)
        return margin is not None and margin >= 0


def check_columns(budgets: Iterable[Budget], columns: Iterable[str]) -> None:
    """A usage error for a budget on a column no row has (a typo would never be met)."""
    known = set(columns)
    for budget in budgets:
        if budget.column not in known:
            close = sorted(c for c in known if budget.column.split("_")[0] in c)[:6]
            raise UsageError(
                f"--budget '{budget}': no column '{budget.column}'; e.g. "
                + ", ".join(close or ["miou_drift", "min_class_iou_drift", "dice_drift", "mean_bf_score_drift"])
            )


def shortfall(budgets: Iterable[Budget], row: Mapping[str, Any]) -> list[str]:
    """One phrase per budget the row does not meet: which, its value, and by how much it misses."""
    missed = []
    for budget in budgets:
        margin = budget.margin(row)
        if margin is None:
            missed.append(f"{budget}: no valid value ({row.get('status', 'no row')})")
        elif margin < 0:
            missed.append(f"{budget}: {row[budget.column]:.4f}, misses by {-margin:.4f}")
    return missed
