"""Bounds on a row column, `COLUMN>=X` or `COLUMN<=X`: `segbench tune --budget` and `segbench run --fail-on`.

One grammar and one parser for both, so a bound written for one works in the other. A bound names a
declared column with a better direction (bench/results/columns.py): a bound on a column no declaration
knows would never be met (a typo), and one on an informational column (a count, a timing diagnostic)
judges nothing that matters. The margin says by how much a row holds the bound (>= 0) or misses it
(< 0), in the column's unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.results.columns import COLUMNS, Column, column

_PATTERN = re.compile(r"^\s*([A-Za-z0-9_@.\-]+)\s*(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
EXAMPLE = "miou_drift>=-0.005"


@dataclass(frozen=True)
class Bound:
    column: str
    op: str  # ">=" or "<="
    bound: float

    @classmethod
    def parse(cls, text: str, option: str = "--budget") -> Bound:
        """`option` names the flag in the error (a bound is given as --budget or --fail-on)."""
        match = _PATTERN.match(text)
        if match is None:
            raise UsageError(
                f"{option} '{text}' is not valid; expected COLUMN>=NUMBER or COLUMN<=NUMBER, e.g. {EXAMPLE}"
            )
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def __str__(self) -> str:
        whole = abs(self.bound) >= 1e4 and self.bound.is_integer()  # bytes: 3000000, not 3e+06
        return f"{self.column}{self.op}{self.bound:.0f}" if whole else f"{self.column}{self.op}{self.bound:g}"

    @property
    def needs_gradcam(self) -> bool:
        return self.column.startswith("gradcam_")

    @property
    def declared(self) -> Column | None:
        return column(self.column)

    def margin(self, row: Mapping[str, Any]) -> float | None:
        """How far the row is inside the bound (negative: outside), in the column's unit; None when the
        row has no valid number in that column (a failed cell, or a Grad-CAM method that could not run)."""
        value = row.get(self.column)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        return float(value) - self.bound if self.op == ">=" else self.bound - float(value)

    def holds(self, row: Mapping[str, Any]) -> bool:
        margin = self.margin(row)
        return margin is not None and margin >= 0


def parse_bounds(texts: Iterable[str], option: str) -> tuple[Bound, ...]:
    """Each text parsed, and its column declared and judged: a usage error naming `option` otherwise."""
    bounds = tuple(Bound.parse(text, option) for text in texts)
    for bound in bounds:
        declared = bound.declared
        if declared is None:
            raise UsageError(f"{option} '{bound}': no column '{bound.column}' is declared; e.g. {_examples(bound)}")
        if not declared.judged:
            raise UsageError(
                f"{option} '{bound}': '{bound.column}' is informational (a count, a diagnostic or a note), "
                f"not a metric with a better direction; e.g. {_examples(bound)}"
            )
    return bounds


def _examples(bound: Bound) -> str:
    """Judged columns that share the mistaken name's first word, else the usual ones."""
    head = bound.column.split("_")[0]
    close = [c.name for c in COLUMNS if c.judged and head in c.name][:6]
    return ", ".join(close or [EXAMPLE.split(">=")[0], "min_class_iou_drift", "latency_p50_ms", "speedup_vs_fp32"])


def shortfall(bounds: Iterable[Bound], row: Mapping[str, Any]) -> list[str]:
    """One phrase per bound the row does not meet: which, its value, and by how much it misses."""
    missed = []
    for bound in bounds:
        margin = bound.margin(row)
        if margin is None:
            missed.append(f"{bound}: no valid value ({row.get('status', 'no row')})")
        elif margin < 0:
            missed.append(f"{bound}: {number(row[bound.column])}, misses by {number(-margin)}")
    return missed


def number(value: float) -> str:
    """Four places for a score, four digits for a time or a ratio, whole numbers for bytes."""
    size = abs(value)
    return f"{value:.4f}" if size < 1 else f"{value:.4g}" if size < 1e4 else f"{value:.0f}"
